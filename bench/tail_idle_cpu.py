"""CPU the follow loop uses while the file it follows stays idle, from /proc (user + system, all threads).

    .venv/bin/python bench/tail_idle_cpu.py [--seconds 60] [--files 1] [--poll-interval 1.0] [--mode both]

The loop is the run loop's: `waker.wait(poll_interval)` then `tail.read()` on every file, so even with
inotify each file is looked at (two stat calls) once per poll interval. Target: ≤ 0.2 % of a core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.defaults import POLL_INTERVAL_S  # noqa: E402
from monitor.follow.tail import FileTail  # noqa: E402
from monitor.follow.wake import make_waker  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """utime + stime of this process, all its threads included (/proc/self/stat fields 14 and 15)."""
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def idle(seconds: float, files: int, poll_interval: float, *, force_poll: bool) -> tuple[float, int, str]:
    """CPU seconds used, loop passes made, and the wake-up mode."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"run{i}.log") for i in range(files)]
        for p in paths:
            with open(p, "w") as f:
                f.write("iter 0: loss 10.9779, time 87476.85ms, mfu -100.00%\n" * 100)
        tails = [FileTail(p) for p in paths]
        waker = make_waker(paths, force_poll=force_poll)
        for t in tails:
            t.read()  # the backfill is not what is measured
        passes = 0
        start_cpu, end = cpu_seconds(), time.monotonic() + seconds
        while time.monotonic() < end:
            waker.wait(poll_interval)
            for t in tails:
                t.read()
            passes += 1
        used = cpu_seconds() - start_cpu
        waker.close()
        for t in tails:
            t.close()
        return used, passes, waker.mode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--files", type=int, default=1)
    ap.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S)
    ap.add_argument("--mode", choices=["inotify", "polling", "both"], default="both")
    opts = ap.parse_args()
    print(f"{opts.files} idle file(s), {opts.seconds:g} s each, poll interval {opts.poll_interval:g} s; "
          f"CPU resolution {1000 / TICKS:g} ms; load average {os.getloadavg()[0]:.2f}")
    for force_poll in {"inotify": [False], "polling": [True], "both": [False, True]}[opts.mode]:
        used, passes, mode = idle(opts.seconds, opts.files, opts.poll_interval, force_poll=force_poll)
        print(f"{mode:9} CPU {used * 1000:6.0f} ms in {opts.seconds:g} s = {100 * used / opts.seconds:.3f} % of a core"
              f" ({passes} passes)")


if __name__ == "__main__":
    main()
