"""Write → delivery latency of the tail: a writer process appends stamped lines, the follow loop reads them.

    .venv/bin/python bench/tail_latency.py [--appends 1000] [--gap-ms 10] [--poll-interval 1.0] [--mode both]

The writer (tests/writer_proc.py `stamp`) puts `time.monotonic()` (system-wide on Linux) into each line
just before its write(); the loop here is the run loop's: `waker.wait(poll_interval)`, then
`tail.read()`, and a line counts as delivered when read() returns it. Target: p99 ≤ 20 ms with inotify.
With polling the latency is spread over the poll interval by construction.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.defaults import POLL_INTERVAL_S  # noqa: E402
from monitor.follow.tail import FileTail  # noqa: E402
from monitor.follow.wake import make_waker  # noqa: E402

STAMP = re.compile(r"^seq (\d+) t=([0-9.]+)$")


def measure(appends: int, gap_s: float, poll_interval: float, *, force_poll: bool) -> tuple[list[float], float, str]:
    """Latencies in seconds, CPU seconds this process spent following, and the wake-up mode."""
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "out.log")
        writer = subprocess.Popen([sys.executable, str(ROOT / "tests" / "writer_proc.py"), log],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert writer.stdout is not None and writer.stdin is not None
        writer.stdout.readline()  # it has created the file
        tail, waker = FileTail(log), make_waker([log], force_poll=force_poll)
        latencies: list[float] = []
        cpu0 = time.process_time()
        writer.stdin.write(f"stamp {appends} {gap_s}\n")
        writer.stdin.flush()
        try:
            while len(latencies) < appends:
                read = tail.read()
                now = time.monotonic()
                for line in read.lines:
                    hit = STAMP.match(line)
                    if hit:
                        latencies.append(now - float(hit.group(2)))
                if not read.pending and len(latencies) < appends:
                    waker.wait(poll_interval)
            cpu = time.process_time() - cpu0
        finally:
            writer.stdin.close()
            writer.wait(10)
            waker.close()
            tail.close()
        return latencies, cpu, waker.mode


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--gap-ms", type=float, default=10.0, help="pause between appends")
    ap.add_argument("--poll-interval", type=float, default=POLL_INTERVAL_S)
    ap.add_argument("--mode", choices=["inotify", "polling", "both"], default="both")
    opts = ap.parse_args()
    print(f"{opts.appends} appends, {opts.gap_ms:g} ms apart; poll interval {opts.poll_interval:g} s; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'mode':9} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9} {'CPU':>8}")
    for force_poll in {"inotify": [False], "polling": [True], "both": [False, True]}[opts.mode]:
        lat, cpu, mode = measure(opts.appends, opts.gap_ms / 1000, opts.poll_interval, force_poll=force_poll)
        ms = [x * 1000 for x in lat]
        print(f"{mode:9} {pct(ms, .5):7.2f}ms {pct(ms, .9):7.2f}ms {pct(ms, .99):7.2f}ms {max(ms):7.2f}ms "
              f"{cpu:6.2f}s")


if __name__ == "__main__":
    main()
