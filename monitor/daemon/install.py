"""`trainwatch install-service`: puts the shipped systemd units in place, pointing at this installation.

The units ship in the wheel as shared-data (`<prefix>/share/trainwatch/systemd/`) with a bare
`ExecStart=trainwatch …`, which systemd resolves only in /usr/local/bin, /usr/bin and the like. A
trainwatch installed with pipx or in a venv lives elsewhere, so the installed copy gets the absolute
path of the console script that belongs to the running interpreter: the unit runs the same
installation that wrote it, whatever PATH the service manager has.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from monitor.defaults import xdg_dir
from monitor.errors import TrainwatchError

SHARE = Path("share", "trainwatch", "systemd")
ENV_FILE = "trainwatch.env"
_EXEC_START = re.compile(r"^ExecStart=trainwatch(?=\s)", re.MULTILINE)


@dataclass(frozen=True)
class Kind:
    """What one kind of installation puts where, and the commands that start it afterwards."""

    units: tuple[str, ...]
    unit_dir: Path
    config_dir: Path  # where the units' EnvironmentFile is: systemd's %E/trainwatch
    systemctl: str
    start: str


def kinds() -> dict[str, Kind]:
    """The user kind follows $XDG_CONFIG_HOME as systemd's user manager does (%E); the system kind is /etc."""
    ours = Path(xdg_dir("config"))  # the same folder the config loader reads
    return {
        "user": Kind(("trainwatch.service", "trainwatch@.service"), ours.parent / "systemd" / "user",
                     ours, "systemctl --user", "trainwatch"),
        "system": Kind(("trainwatch-system.service",), Path("/etc/systemd/system"), Path("/etc/trainwatch"),
                       "systemctl", "trainwatch-system"),
    }


def source_dirs() -> list[Path]:
    """Where the unit files may be, best first.

    A source checkout comes first: an editable install copies no shared-data (or a stale one), and the
    checkout is what it runs. Then the shared-data of the default scheme (a venv, pipx, the system) and
    of the user scheme (`pip install --user`).
    """
    checkout = Path(__file__).resolve().parents[1] / "systemd"
    schemes = (sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user"))
    return [checkout, *(Path(sysconfig.get_path("data", scheme)) / SHARE for scheme in schemes)]


def find_units(dirs: list[Path] | None = None) -> Path:
    dirs = source_dirs() if dirs is None else dirs
    for d in dirs:
        if (d / "trainwatch.service").is_file():
            return d
    raise TrainwatchError(f"the systemd unit files are not installed with trainwatch (looked in "
                          f"{', '.join(map(str, dirs))})")


def find_program() -> str:
    """The `trainwatch` console script of the running interpreter's installation, else the one on PATH.

    Not resolved through symlinks: pipx's ~/.local/bin/trainwatch keeps working across `pipx reinstall`.
    """
    for d in (os.path.dirname(os.path.abspath(sys.executable)), sysconfig.get_path("scripts")):
        candidate = os.path.join(d, "trainwatch")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("trainwatch")
    if found is None:
        raise TrainwatchError("no `trainwatch` program found next to this Python or on PATH: install trainwatch "
                              "(pipx install .) before installing its service")
    return os.path.abspath(found)


def exec_path(path: str) -> str:
    """`path` as the first word of an ExecStart= line: specifier % doubled, backslashes escaped, quoted
    when it has spaces (systemd splits the line into words before it looks for the program)."""
    escaped = path.replace("\\", "\\\\").replace("%", "%%")
    return f'"{escaped}"' if any(c.isspace() for c in path) else escaped


def render(text: str, program: str, name: str = "unit") -> str:
    """The unit `text` with its bare `ExecStart=trainwatch` replaced by `program`'s absolute path."""
    out, n = _EXEC_START.subn(lambda _: "ExecStart=" + exec_path(program), text)
    if n == 0:
        raise TrainwatchError(f"{name}: no `ExecStart=trainwatch …` line to point at {program}")
    return out


def closed_to_others(path: str) -> str | None:
    """The first directory on the way to `path` (symlinks followed) that other users cannot enter, if any.

    The system unit's dynamic user is such an other user: it cannot run a trainwatch under a 0750 home.
    """
    real = Path(os.path.realpath(path))
    for d in reversed(real.parents):
        try:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return str(d)
        except OSError:
            return str(d)
    return None


def install_service(kind: str = "user", *, dest: str | None = None, dry_run: bool = False,
                    config_dir: str | None = None) -> list[str]:
    """Write the units of `kind` ("user" or "system") into `dest` (default: where systemd looks for them)
    and the example EnvironmentFile into `config_dir` unless one is there; return what to tell the user.

    Units are overwritten (a reinstall updates ExecStart); an existing environment file is the user's
    settings and is kept. `dry_run` writes nothing and says what it would write.
    """
    try:
        spec = kinds()[kind]
    except KeyError:
        raise TrainwatchError(f"unknown service kind {kind!r}: user or system") from None
    source, program = find_units(), find_program()
    unit_dir = Path(dest) if dest is not None else spec.unit_dir
    env_dir = Path(config_dir) if config_dir is not None else spec.config_dir
    verb = "would write" if dry_run else "wrote"
    lines: list[str] = []
    writes = [(unit_dir / name, render((source / name).read_text(encoding="utf-8"), program, name), 0o644)
              for name in spec.units]
    env_path = env_dir / ENV_FILE
    if env_path.exists():
        lines.append(f"kept {env_path} (your settings)")
    else:  # notification URLs in it may carry tokens
        writes.append((env_path, (source / ENV_FILE).read_text(encoding="utf-8"), 0o600))
    for path, text, mode in writes:
        if not dry_run:
            _write(path, text, mode)
        lines.append(f"{verb} {path}")
    lines.append(f"ExecStart runs {program}")
    if kind == "system" and (closed := closed_to_others(program)):
        lines.append(f"warning: {closed} is closed to other users, so the service's dynamic user cannot run "
                     f"{program}: install trainwatch outside it (python3 -m venv /opt/trainwatch) or set "
                     "User= (see the unit's comments)")
    lines += [
        "next:",
        f"  edit {env_path} (TRAINWATCH_LOGS, TRAINWATCH_ARGS) or {env_dir / 'config.toml'}, then",
        f"  {spec.systemctl} daemon-reload && {spec.systemctl} enable --now {spec.start}",
        f"  journalctl {'--user ' if kind == 'user' else ''}-u {spec.start} -f",
    ]
    if kind == "user":
        lines += [
            "  loginctl enable-linger   # keeps it running while you are logged out",
            f"  one daemon per config file: {spec.systemctl} enable --now trainwatch@NAME   "
            f"# reads {env_dir}/NAME.toml",
        ]
    return lines


def _write(path: Path, text: str, mode: int) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)  # O_CREAT's mode is filtered by the umask, and an old tmp keeps its own
        os.replace(tmp, path)
    except OSError as e:
        hint = " (run it with sudo, or pass --dest DIR)" if isinstance(e, PermissionError) else ""
        raise TrainwatchError(f"cannot write {path}: {e.strerror}{hint}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--system", action="store_true",
                   help="install the hardened system unit (as root) instead of the user units")
    p.add_argument("--dest", metavar="DIR",
                   help="directory for the unit files (default ~/.config/systemd/user, or /etc/systemd/system)")
    p.add_argument("--dry-run", action="store_true", help="say what would be written; write nothing")


def run(args: argparse.Namespace) -> int:
    for line in install_service("system" if args.system else "user", dest=args.dest, dry_run=args.dry_run):
        print(line)
    return 0
