"""A `trainwatch serve` child process for the benchmarks: start it, read its CPU time, scrape it, stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """`python -m monitor.cli serve LOGS… --no-gpu --listen 127.0.0.1:PORT [extra]`, stderr to `err`."""

    def __init__(self, logs: list[str], extra: list[str], err: Path) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(err.parent / "cfg")}
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", *logs, "--no-gpu",
                                      "--listen", f"127.0.0.1:{self.port}", *extra],
                                     stdin=subprocess.DEVNULL, stderr=err.open("wb"), env=env, cwd=ROOT)

    def cpu_seconds(self) -> float:
        """utime + stime of the process, all threads (/proc/PID/stat fields 14 and 15)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def threads(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("Threads:"))

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")) / 1024

    def samples(self, name: str) -> dict[str, float]:
        """run label → value of metric `name`; empty when the scrape fails."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics?name[]={name}", timeout=10) as r:
                body = r.read().decode()
        except OSError:
            return {}
        out = {}
        for line in body.splitlines():
            if line.startswith(name + "{"):
                run = line.split('run="', 1)[1].split('"', 1)[0]
                out[run] = float(line.rsplit(" ", 1)[1])
        return out

    def wait_for_runs(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.samples("trainwatch_lines_total")) < n:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit(f"serve did not show {n} runs in {timeout:g} s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
