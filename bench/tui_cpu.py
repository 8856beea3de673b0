"""What the live view costs: CPU while following a run that writes 10 lines/s, and memory after a 1M-line log.

    .venv/bin/python bench/tui_cpu.py [--seconds 60] [--lines 1000000] [--rate 10]

The real `trainwatch LOG --no-gpu` runs in tmux at 120×40, so Textual draws to a real terminal. This
script writes the log (simulated nanoGPT lines, appended at --rate lines/s from a thread here) and
reads the trainwatch process's CPU time and RSS with psutil. CPU is the whole process: the writer loop
that tails and parses, and the UI that pulls a snapshot twice a second and redraws what changed.
Needs tmux and psutil. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.sim.scenario import SimConfig  # noqa: E402
from monitor.sim.write import write  # noqa: E402

SIZE = ("120", "40")


def trainwatch() -> list[str]:
    script = Path(sys.executable).with_name("trainwatch")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from monitor.cli import entry; entry()"]


class Pane:
    """trainwatch in its own tmux server (private socket), at 120×40."""

    def __init__(self, log: Path, name: str) -> None:
        self.socket = str(log.parent / f"tmux-{name}.sock")  # a private server, removed with the directory
        # Not exec'd: if trainwatch dies, the shell stays and the pane keeps its last words for the error.
        cmd = " ".join(f"'{a}'" for a in [*trainwatch(), str(log), "--no-gpu"]) + "; echo exited $?; sleep 600"
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX")}
        self._tmux("new-session", "-d", "-s", "tw", "-x", SIZE[0], "-y", SIZE[1], "-c", str(ROOT), cmd, env=env)
        shell = psutil.Process(int(self._tmux("display", "-p", "-t", "tw", "#{pane_pid}").strip()))
        deadline = time.monotonic() + 30
        while not shell.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.process = shell.children()[0]

    def _tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-S", self.socket, *args], capture_output=True, text=True, check=True,
                              env=env, timeout=30).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "tw")

    def wait_for(self, condition: Callable[[str], bool], timeout: float, what: str) -> float:
        start = time.monotonic()
        while not condition(self.screen()):
            if time.monotonic() - start > timeout:
                raise SystemExit(f"{what}: not on screen after {timeout:.0f}s:\n{self.screen()}")
            time.sleep(0.2)
        return time.monotonic() - start

    def cpu_s(self) -> float:
        t = self.process.cpu_times()
        return t.user + t.system

    def ui_cpu_s(self) -> float:
        """The main thread alone: Textual's event loop (pull, render, compose), not the writer loop's thread."""
        return next(t.user_time + t.system_time for t in self.process.threads() if t.id == self.process.pid)

    def close(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=30)


def simulated_lines(max_iters: int, log_interval: int, path: Path) -> list[bytes]:
    write(SimConfig(max_iters=max_iters, log_interval=log_interval), str(path), instant=True)
    return path.read_bytes().splitlines(keepends=True)


def cpu_while_following(tmp: Path, seconds: float, rate: float) -> dict[str, str]:
    lines = simulated_lines(50_000, 10, tmp / "source.log")
    first = next(i for i, line in enumerate(lines) if line.startswith(b"iter ")) + 5
    log = tmp / "live.log"
    log.write_bytes(b"".join(lines[:first]))
    pane = Pane(log, "live")
    stop = threading.Event()
    written = [first]

    def writer() -> None:
        with open(log, "ab", buffering=0) as fh:
            next_at = time.monotonic()
            while not stop.is_set() and written[0] < len(lines):
                fh.write(lines[written[0]])
                written[0] += 1
                next_at += 1.0 / rate
                stop.wait(max(0.0, next_at - time.monotonic()))

    try:
        pane.wait_for(lambda s: "ETA" in s and "events" in s, 60, "the main screen")
        idle_cpu0, idle_t0 = pane.cpu_s(), time.monotonic()
        time.sleep(seconds / 2)
        idle = (pane.cpu_s() - idle_cpu0) / (time.monotonic() - idle_t0)
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        time.sleep(10)  # warm-up: the first redraws of a growing chart
        before = pane.screen()
        cpu0, ui0, t0, n0 = pane.cpu_s(), pane.ui_cpu_s(), time.monotonic(), written[0]
        load0 = os.getloadavg()[0]
        time.sleep(seconds)
        wall = time.monotonic() - t0
        busy, ui = (pane.cpu_s() - cpu0) / wall, (pane.ui_cpu_s() - ui0) / wall
        n = written[0] - n0
        load1 = os.getloadavg()[0]
        after = pane.screen()
        stop.set()
        thread.join(5)
        assert before != after, "the screen did not change while the log grew"
        return {f"following a run writing {rate:.0f} lines/s ({n} lines in {seconds:.0f} s)":
                f"{100 * busy:.2f} % of a core",
                "… of which the UI thread (Textual's event loop)": f"{100 * ui:.2f} % of a core",
                "idle (file not growing)": f"{100 * idle:.2f} % of a core",
                "machine load average during the run": f"{load0:.2f} → {load1:.2f}",
                "RSS after following": f"{pane.process.memory_info().rss / 2**20:.0f} MiB"}
    finally:
        stop.set()
        pane.close()


def rss_after_big_log(tmp: Path, n_lines: int) -> dict[str, str]:
    out: dict[str, str] = {}
    small = tmp / "small.log"
    lines = simulated_lines(10_000, 10, tmp / "small-source.log")
    small.write_bytes(b"".join(lines))
    small_label = f"{len(lines):,}-line log"
    big = tmp / "big.log"
    t = time.monotonic()
    lines = simulated_lines(n_lines, 1, big)
    big_label = f"{len(lines):,}-line log"
    out[f"{big_label} generated"] = f"{big.stat().st_size / 2**20:.0f} MiB in {time.monotonic() - t:.1f} s"
    del lines
    for name, log, final in (("small", small, "10,000 / 10,000"), ("big", big, f"{n_lines:,} / {n_lines:,}")):
        pane = Pane(log, name)
        try:
            took = pane.wait_for(lambda s, f=final: f in s and "events" in s, 600, f"the {name} log loaded")
            rss = pane.process.memory_info().rss / 2**20
            cpu0, t0 = pane.cpu_s(), time.monotonic()
            time.sleep(10)
            idle = (pane.cpu_s() - cpu0) / (time.monotonic() - t0)
            label = big_label if name == "big" else small_label
            out[f"{label}: time to the full screen"] = f"{took:.1f} s"
            out[f"{label}: RSS once shown"] = f"{rss:.0f} MiB"
            out[f"{label}: CPU afterwards, idle"] = f"{100 * idle:.2f} % of a core"
        finally:
            pane.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window (default 60)")
    p.add_argument("--rate", type=float, default=10.0, help="lines per second written (default 10)")
    p.add_argument("--lines", type=int, default=1_000_000, help="iteration lines of the big log (default 1M)")
    args = p.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is needed", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tw-bench-") as d:
        rows = cpu_while_following(Path(d), args.seconds, args.rate)
        rows |= rss_after_big_log(Path(d), args.lines)
    print(f"trainwatch TUI at {SIZE[0]}×{SIZE[1]}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}\n")
    print("| measure | value |\n| --- | --- |")
    for k, v in rows.items():
        print(f"| {k} | {v} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
