"""The real `trainwatch serve` process: signals, config reload, restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout: float = 60.0, why: Callable[[], str] = lambda: "") -> None:
    """Poll `cond` until it holds; on a timeout, `why()` (the daemon's stderr) goes into the failure."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time\n" + why())


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], int]:
    """The serve process; its stderr goes to tmp_path/serve.err (read it with `err`)."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--listen", f"127.0.0.1:{port}",
                             "--no-gpu", "--poll-interval", "0.1", *args],
                            stderr=(tmp_path / "serve.err").open("a"), text=True, env=env, cwd=ROOT)
    return proc, port


def err(tmp_path: Path) -> str:
    return (tmp_path / "serve.err").read_text()


def log_with(path: Path, last_iter: int) -> None:
    path.write_text("Overriding: max_iters = 1000\n" + "".join(
        f"iter {i}: loss 1.0, time 10.00ms, mfu 1.00%\n" for i in range(0, last_iter + 1, 10)))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_exits_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    log_with(tmp_path / "a.log", 100)
    proc, port = serve(tmp_path, str(tmp_path / "a.log"))
    try:
        wait_for(lambda: 'trainwatch_iteration{run="a"} 100.0' in scrape(port))
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert "Traceback" not in err(tmp_path)
    finally:
        proc.kill()


def test_sighup_reloads_the_config_and_keeps_the_other_runs(tmp_path: Path) -> None:
    log_with(tmp_path / "a.log", 100)
    log_with(tmp_path / "b.log", 200)
    cfg = tmp_path / "trainwatch.toml"
    cfg.write_text(f'[[run]]\nlog = "{tmp_path}/a.log"\n')
    proc, port = serve(tmp_path, "--config", str(cfg))
    try:
        wait_for(lambda: 'trainwatch_iteration{run="a"} 100.0' in scrape(port))
        cfg.write_text(f'[[run]]\nlog = "{tmp_path}/a.log"\nmax_iters = 5000\n\n[[run]]\nlog = "{tmp_path}/b.log"\n')
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'trainwatch_iteration{run="b"} 200.0' in scrape(port), why=lambda: err(tmp_path))
        assert 'trainwatch_max_iterations{run="a"} 5000.0' in scrape(port)
        cfg.write_text("max_iter = 3\n")  # a broken config is refused, the old one stays
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "unknown key `max_iter`" in err(tmp_path))
        assert "config not reloaded" in err(tmp_path) and 'run="a"' in scrape(port)
        cfg.write_text(f'[[run]]\nlog = "{tmp_path}/b.log"\n')
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'run="a"' not in scrape(port) and 'run="b"' in scrape(port))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()


def test_a_restarted_daemon_rebuilds_the_state_from_the_log(tmp_path: Path) -> None:
    log_with(tmp_path / "a.log", 500)
    first, port = serve(tmp_path, str(tmp_path / "a.log"))
    try:
        wait_for(lambda: 'trainwatch_iteration{run="a"} 500.0' in scrape(port))
        before = [ln for ln in scrape(port).splitlines() if ln.startswith(("trainwatch_tokens", "trainwatch_iter"))]
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=5)
        second, port = serve(tmp_path, str(tmp_path / "a.log"))
        try:
            wait_for(lambda: 'trainwatch_iteration{run="a"} 500.0' in scrape(port))
            after = [ln for ln in scrape(port).splitlines()
                     if ln.startswith(("trainwatch_tokens", "trainwatch_iter"))]
            assert after == before
        finally:
            second.kill()
    finally:
        first.kill()


def test_no_log_and_no_config_is_a_one_line_error(tmp_path: Path) -> None:
    proc, _ = serve(tmp_path)
    assert proc.wait(timeout=20) == 2
    assert err(tmp_path).strip().endswith(
        "no log to follow: name one (trainwatch LOG), add [[run]] to the config file, or follow your Slurm jobs "
        "(--slurm)")
