"""`trainwatch demo` in a real terminal: tmux at 120×40, the screen read back with `capture-pane`.

This is the newcomer's first command, so it runs for real: the console script, the simulator
thread, the writer loop, the simulated GPU and the Textual app, with keys sent as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PANELS = ("shakespeare-char", "ETA", "loss", "iteration time", "GPU", "stats", "events", "q quit")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]


def trainwatch() -> list[str]:
    """The installed console script (pip install -e .), else the same entry point through this Python."""
    script = Path(sys.executable).with_name("trainwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from monitor.cli import entry; entry()"]


class Tmux:
    """A private tmux server: its socket is a file of the test's own temporary directory."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True, text=True,
                              env=self.env, timeout=30)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "tw").stdout

    def wait_for(self, condition: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not on screen after {timeout:.0f}s; it shows:\n{screen}")
            time.sleep(0.2)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    # COLUMNS/LINES (set under pytest-xdist's workers) would override the pane's 120×40 in Textual
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX", "TEXTUAL", "COLUMNS", "LINES")}
    t = Tmux(tmp_path / "tmux.sock", env)
    yield t
    t("kill-server")


def test_demo_shows_every_panel_and_quits_on_q(tmux: Tmux, tmp_path: Path) -> None:
    status = tmp_path / "status"
    command = " ".join(f"'{a}'" for a in trainwatch()) + f" demo; echo $? > '{status}'; sleep 30"
    started = tmux("new-session", "-d", "-s", "tw", "-x", "120", "-y", "40", "-c", str(ROOT), command)
    assert started.returncode == 0, started.stderr

    screen = tmux.wait_for(lambda s: all(p in s for p in PANELS) and " / " in s, 60, "the main screen")
    assert "running" in screen or "evaluating" in screen or "starting" in screen
    # the progress counter moves: the simulated run is being followed live
    first = next(line for line in screen.splitlines() if " / " in line and "%" in line)
    tmux.wait_for(lambda s: first not in s, 30, "a new iteration")

    tmux("send-keys", "-t", "tw", "?")
    tmux.wait_for(lambda s: "log / linear scale" in s, 10, "the help screen")
    tmux("send-keys", "-t", "tw", "Escape")
    tmux.wait_for(lambda s: "log / linear scale" not in s, 10, "the help screen closing")
    tmux("send-keys", "-t", "tw", "l")
    tmux.wait_for(lambda s: "loss (log scale)" in s, 10, "the log-scale loss chart")

    tmux("send-keys", "-t", "tw", "q")
    deadline = time.monotonic() + 15
    while not status.exists() or not status.read_text().strip():
        assert time.monotonic() < deadline, f"trainwatch did not exit on q; screen:\n{tmux.screen()}"
        time.sleep(0.2)
    assert status.read_text().strip() == "0"
    assert "Traceback" not in tmux.screen()
