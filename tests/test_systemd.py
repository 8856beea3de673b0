"""The systemd units: systemd itself accepts them, the installer puts them in place pointing at a real
program, and the wheel ships them.

`systemd-analyze verify` exits 0 on a typo'd key or an unparsable value (it only warns and ignores the
line), so a unit passes only with exit status 0 AND no output at all. `ExecStart` must name a program
that exists, so the units verified are the installer's output, pointing at this venv's console script.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.daemon import install as service
from monitor.errors import TrainwatchError

pytestmark = pytest.mark.xdist_group("systemd")  # one wheel built for the module

ROOT = Path(__file__).resolve().parents[1]
UNITS = ROOT / "systemd"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (CI installs systemd)")
USER_UNITS = ("trainwatch.service", "trainwatch@.service")
SYSTEM_UNIT = "trainwatch-system.service"
EXPOSURE_MAX = 1.9
"""`systemd-analyze security` exposure (0 = locked down, 10 = unprotected) the system unit must stay within.
It scores 1.6 on systemd 252: what is left is the network it needs, the devices NVML needs, running in
the host's root, and no PrivateUsers/ProcSubset/MemoryDenyWriteExecute (see the unit's comments).
Losing the dynamic user, the capability bounding set, the system call filter, the address family or
namespace restrictions, or any two other sandbox lines, pushes it past 1.9; the 0.3 of slack is for
newer systemd versions, which score a few more settings."""
NEXT_USER = "systemctl --user daemon-reload && systemctl --user enable --now trainwatch"
NEXT_SYSTEM = "systemctl daemon-reload && systemctl enable --now trainwatch-system"


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`systemd-analyze --user` needs a manager runtime directory: an existing one, mode 0700."""
    d = tmp_path_factory.mktemp("xdg-runtime")
    d.chmod(0o700)
    return d


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every unit as the installer writes it, by name."""
    base = tmp_path_factory.mktemp("installed")
    service.install_service("user", dest=str(base / "user"), config_dir=str(base / "config"))
    service.install_service("system", dest=str(base / "system"), config_dir=str(base / "etc"))
    return {p.name: p for p in (base / "user").iterdir()} | {p.name: p for p in (base / "system").iterdir()}


def analyze(runtime_dir: Path, *args: str) -> tuple[int, str]:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime_dir), SYSTEMD_COLORS="0", SYSTEMD_PAGER="")
    assert ANALYZE is not None
    out = subprocess.run([ANALYZE, *args], capture_output=True, text=True, env=env, timeout=60)
    return out.returncode, (out.stdout + out.stderr).strip()


def verify(runtime_dir: Path, unit: Path) -> tuple[int, str]:
    """The CI rule: a unit is clean when verify exits 0 and prints nothing."""
    scope = [] if unit.name == SYSTEM_UNIT else ["--user"]
    return analyze(runtime_dir, *scope, "verify", str(unit))


@needs_analyze
@pytest.mark.parametrize("name", [*USER_UNITS, SYSTEM_UNIT])
def test_installed_unit_verifies_with_no_output(name: str, installed: dict[str, Path], runtime_dir: Path) -> None:
    assert verify(runtime_dir, installed[name]) == (0, "")


BROKEN: dict[str, tuple[Callable[[str], str], str]] = {  # how a unit is broken → what systemd says
    "typo-in-a-key": (lambda t: t.replace("\nRestart=", "\nRestrat="), "Unknown key 'Restrat'"),
    "unparsable-time": (lambda t: t.replace("RestartSec=5s", "RestartSec=five"), "Failed to parse sec value"),
    "program-not-installed": (lambda t: re.sub(r"ExecStart=\S+", "ExecStart=/opt/nowhere/trainwatch", t),
                              "is not executable"),
    "unknown-section": (lambda t: t.replace("[Install]", "[Instal]"), "Unknown section 'Instal'"),
}


@needs_analyze
@pytest.mark.parametrize("name", [USER_UNITS[0], SYSTEM_UNIT])
@pytest.mark.parametrize("breakage", BROKEN.values(), ids=BROKEN.keys())
def test_a_broken_unit_fails_the_no_output_rule(name: str, breakage: tuple[Callable[[str], str], str],
                                                installed: dict[str, Path], runtime_dir: Path,
                                                tmp_path: Path) -> None:
    """Some breakages exit 0 with a warning: only the no-output rule catches them."""
    breaks, message = breakage
    text = installed[name].read_text()
    broken = tmp_path / name
    broken.write_text(breaks(text))
    assert broken.read_text() != text, "the breakage did not apply: the unit changed under this test"
    rc, out = verify(runtime_dir, broken)
    assert message in out
    assert (rc, out) != (0, "")


def exposure(runtime_dir: Path, unit: Path) -> tuple[int, float]:
    rc, out = analyze(runtime_dir, "security", "--offline=true", f"--threshold={round(EXPOSURE_MAX * 10)}",
                      "--no-pager", str(unit))
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", out)
    assert found, out
    return rc, float(found.group(1))


@needs_analyze
def test_system_unit_exposure_is_within_the_threshold(installed: dict[str, Path], runtime_dir: Path) -> None:
    rc, level = exposure(runtime_dir, installed[SYSTEM_UNIT])
    assert level <= EXPOSURE_MAX
    assert rc == 0


@needs_analyze
@pytest.mark.parametrize("settings", [
    "DynamicUser", "CapabilityBoundingSet", "SystemCallFilter", "RestrictAddressFamilies", "RestrictNamespaces",
    "ProtectKernelTunables|ProtectClock",
])
def test_dropping_sandbox_settings_exceeds_the_threshold(settings: str, installed: dict[str, Path],
                                                         runtime_dir: Path, tmp_path: Path) -> None:
    unit = tmp_path / SYSTEM_UNIT
    text = installed[SYSTEM_UNIT].read_text()
    unit.write_text(re.sub(rf"^({settings})=.*\n", "", text, flags=re.MULTILINE))
    assert unit.read_text() != text
    rc, level = exposure(runtime_dir, unit)
    assert level > EXPOSURE_MAX
    assert rc != 0


def directives(text: str) -> list[tuple[int, str]]:
    return [(i, line) for i, line in enumerate(text.splitlines())
            if line.strip() and not line.startswith(("#", "["))]


@pytest.mark.parametrize("name", [*USER_UNITS, SYSTEM_UNIT, "trainwatch.env"])
def test_every_setting_says_why(name: str) -> None:
    """Each setting sits in a paragraph whose comment, above it, says why (earlyoom's style)."""
    lines = (UNITS / name).read_text().splitlines()
    for i, line in directives("\n".join(lines)):
        above = []
        for prev in reversed(lines[:i]):
            if not prev.strip() or prev.startswith("["):
                break
            above.append(prev)
        assert any(p.startswith("#") for p in above), f"{name}:{i + 1}: {line} has no comment saying why"


@pytest.mark.parametrize("name", [*USER_UNITS, SYSTEM_UNIT])
def test_no_unit_hides_the_gpus(name: str) -> None:
    """NVML needs /dev/nvidia*: a private /dev would make every GPU reading silently unknown."""
    assert not [line for _, line in directives((UNITS / name).read_text()) if line.startswith("PrivateDevices=")]


def test_system_unit_keeps_its_notification_state_where_trainwatch_looks() -> None:
    """The notifier reads $XDG_STATE_HOME/trainwatch/: that must be the StateDirectory, under %S."""
    settings = dict(line.split("=", 1) for _, line in directives((UNITS / SYSTEM_UNIT).read_text())
                    if line.startswith(("StateDirectory=", "Environment=XDG_STATE_HOME")))
    assert settings == {"StateDirectory": "trainwatch", "Environment": "XDG_STATE_HOME=%S"}


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for _, line in directives(path.read_text()))


def test_example_arguments_are_ones_serve_accepts() -> None:
    env = env_file(UNITS / "trainwatch.env")
    assert set(env) == {"TRAINWATCH_LOGS", "TRAINWATCH_ARGS"}
    assert not re.search(r"[\"'$~\\]", "".join(env.values())), "systemd would pass quotes, $ and ~ on literally"
    args = build_parser().parse_args(["serve", *env["TRAINWATCH_LOGS"].split(), *env["TRAINWATCH_ARGS"].split()])
    assert args.logs == env["TRAINWATCH_LOGS"].split()


def exec_start_argv(unit: str, env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it, for the forms the user unit uses: `$NAME` becomes the value's words
    (none when empty); a quoted first word is unquoted, %% is %."""
    line = next(line for _, line in directives(unit) if line.startswith("ExecStart="))
    words = re.findall(r'"(?:[^"\\]|\\.)*"|\S+', line.removeprefix("ExecStart="))
    argv: list[str] = []
    for w in words:
        if w.startswith("$"):
            argv += env.get(w[1:], "").split()
        else:
            argv.append(w[1:-1].replace("\\\\", "\\") if w.startswith('"') else w)
    return [a.replace("%%", "%") for a in argv]


def test_user_unit_command_serves_and_stops_on_sigterm(installed: dict[str, Path], tmp_path: Path) -> None:
    """The installed unit's command with the example environment file (the listen port made free):
    metrics served, then a clean exit on SIGTERM well within TimeoutStopSec."""
    home = tmp_path / "home"
    (home / "runs" / "a").mkdir(parents=True)
    (home / "runs" / "a" / "out.log").write_text("iter 0: loss 10.9000, time 900.00ms, mfu -100.00%\n"
                                                 "iter 10: loss 9.1000, time 100.00ms, mfu 30.00%\n")
    env = env_file(UNITS / "trainwatch.env") | {"TRAINWATCH_ARGS": "--listen 127.0.0.1:0 --no-gpu"}
    argv = exec_start_argv(installed["trainwatch.service"].read_text(), env)
    assert os.access(argv[0], os.X_OK)
    child_env = dict(os.environ, HOME=str(home), XDG_STATE_HOME=str(tmp_path / "state"))
    for name in ("DBUS_SESSION_BUS_ADDRESS", "XDG_CONFIG_HOME"):  # no desktop notifications, no real config
        child_env.pop(name, None)
    with subprocess.Popen(argv, cwd=home, env=child_env, stderr=subprocess.PIPE, text=True) as p:
        try:
            assert p.stderr is not None
            serving = ""
            for line in p.stderr:  # ends when the process dies: then the assertion below says so
                if "serving metrics on" in line:
                    serving = line
                    break
            assert re.match(r"INFO \S+: serving metrics on http://127\.0\.0\.1:\d+/metrics$", serving.strip())
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
        finally:
            if p.poll() is None:
                p.kill()


# --- the installer -----------------------------------------------------------------------------------

def test_dry_run_writes_nothing_and_says_what_next(tmp_path: Path) -> None:
    lines = service.install_service("user", dest=str(tmp_path / "units"), config_dir=str(tmp_path / "cfg"),
                                    dry_run=True)
    assert not (tmp_path / "units").exists() and not (tmp_path / "cfg").exists()
    assert f"would write {tmp_path / 'units' / 'trainwatch.service'}" in lines
    assert f"would write {tmp_path / 'units' / 'trainwatch@.service'}" in lines
    assert f"would write {tmp_path / 'cfg' / 'trainwatch.env'}" in lines
    assert f"  {NEXT_USER}" in lines


def test_default_user_directories_follow_xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    lines = service.install_service("user", dry_run=True)
    assert f"would write {tmp_path / 'systemd' / 'user' / 'trainwatch.service'}" in lines
    assert f"would write {tmp_path / 'trainwatch' / 'trainwatch.env'}" in lines


def test_system_dry_run_targets_etc() -> None:
    lines = service.install_service("system", dry_run=True)
    assert "would write /etc/systemd/system/trainwatch-system.service" in lines
    assert f"  {NEXT_SYSTEM}" in lines


def test_install_points_execstart_at_this_venvs_program(tmp_path: Path) -> None:
    service.install_service("user", dest=str(tmp_path / "units"), config_dir=str(tmp_path / "cfg"))
    program = str(Path(sys.executable).parent / "trainwatch")
    for name in USER_UNITS:
        unit = tmp_path / "units" / name
        assert re.search(rf"^ExecStart={re.escape(program)} serve ", unit.read_text(), re.MULTILINE)
        assert stat.S_IMODE(unit.stat().st_mode) == 0o644
        assert unit.read_text().replace(program, "trainwatch") == (UNITS / name).read_text()
    assert stat.S_IMODE((tmp_path / "cfg" / "trainwatch.env").stat().st_mode) == 0o600  # may hold tokens


def test_reinstall_keeps_the_users_settings_and_updates_the_units(tmp_path: Path) -> None:
    units, cfg = tmp_path / "units", tmp_path / "cfg"
    service.install_service("user", dest=str(units), config_dir=str(cfg))
    (cfg / "trainwatch.env").write_text("TRAINWATCH_LOGS=/data/mine.log\n")
    (units / "trainwatch.service").write_text("stale\n")
    lines = service.install_service("user", dest=str(units), config_dir=str(cfg))
    assert (cfg / "trainwatch.env").read_text() == "TRAINWATCH_LOGS=/data/mine.log\n"
    assert f"kept {cfg / 'trainwatch.env'} (your settings)" in lines
    assert "ExecStart=" in (units / "trainwatch.service").read_text()


def test_unwritable_destination_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TrainwatchError, match="cannot write"):
        service.install_service("user", dest=str(blocker / "units"), config_dir=str(tmp_path / "cfg"))


def test_unknown_kind_is_a_user_error() -> None:
    with pytest.raises(TrainwatchError, match="user or system"):
        service.install_service("session", dry_run=True)


def test_command_line_prints_the_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = argparse.ArgumentParser()
    service.add_arguments(p)
    assert service.run(p.parse_args(["--dest", str(tmp_path), "--dry-run"])) == 0
    assert NEXT_USER in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("path", "word"), [
    ("/opt/trainwatch/bin/trainwatch", "/opt/trainwatch/bin/trainwatch"),
    ("/home/a b/bin/trainwatch", '"/home/a b/bin/trainwatch"'),
    ("/srv/100%/bin/trainwatch", "/srv/100%%/bin/trainwatch"),
], ids=["plain", "space", "percent"])
def test_exec_path_escapes_for_systemd(path: str, word: str) -> None:
    assert service.exec_path(path) == word


@needs_analyze
def test_a_program_path_with_space_and_percent_verifies(tmp_path: Path, runtime_dir: Path) -> None:
    """systemd reads the escaped word back as the real path: verify finds the program there."""
    odd = tmp_path / "bin dir 100%"
    odd.mkdir()
    (odd / "trainwatch").symlink_to(Path(sys.executable).parent / "trainwatch")
    unit = tmp_path / "trainwatch.service"
    unit.write_text(service.render((UNITS / "trainwatch.service").read_text(), str(odd / "trainwatch")))
    assert verify(runtime_dir, unit) == (0, "")


def test_render_refuses_a_unit_without_the_bare_execstart() -> None:
    with pytest.raises(TrainwatchError, match="no `ExecStart=trainwatch"):
        service.render("[Service]\nExecStart=/usr/bin/true\n", "/x/trainwatch")


def test_a_program_under_a_closed_directory_is_reported() -> None:
    """A 0750 home keeps the system unit's dynamic user from the trainwatch installed in it."""
    with tempfile.TemporaryDirectory() as base:  # not under pytest's own 0700 base directory
        os.chmod(base, 0o755)
        home = Path(base, "home")
        (home / "bin").mkdir(parents=True)
        (home / "bin" / "trainwatch").write_text("")
        home.chmod(0o750)
        assert service.closed_to_others(str(home / "bin" / "trainwatch")) == str(home)
        home.chmod(0o755)
        assert service.closed_to_others(str(home / "bin" / "trainwatch")) is None


# --- the wheel -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # With hatchling in this venv the build needs no network; without it pip fetches it.
    offline = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *offline, "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    return next(out.glob("trainwatch-*.whl"))


def test_wheel_ships_the_units_as_shared_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {n.split("/data/share/trainwatch/systemd/")[1] for n in names if "/data/share/trainwatch/systemd/" in n}
    assert shipped == {*USER_UNITS, SYSTEM_UNIT, "trainwatch.env"}
    assert all(re.fullmatch(r"trainwatch-[^/]+\.data/data/share/trainwatch/systemd/.+", n)
               for n in names if n.endswith((".service", ".env")))


@needs_analyze
def test_installed_wheel_installs_units_from_its_shared_data(wheel: Path, tmp_path: Path,
                                                             runtime_dir: Path) -> None:
    """A real install of the wheel (no dependencies: the installer needs none) in a fresh venv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import sys; from monitor.daemon import install as service; print(service.find_units()); "
            "service.install_service('user', dest=sys.argv[1], config_dir=sys.argv[2])")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code, str(tmp_path / "units"), str(tmp_path / "cfg")],
                         cwd=tmp_path, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == str(venv / "share" / "trainwatch" / "systemd")
    unit = tmp_path / "units" / "trainwatch.service"
    assert f"ExecStart={venv / 'bin' / 'trainwatch'} serve " in unit.read_text()
    assert verify(runtime_dir, unit) == (0, "")
