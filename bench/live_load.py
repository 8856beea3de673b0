"""A live run writing 1,000 lines/s, followed by `trainwatch serve --no-gpu`: its CPU, and whether it lags.

    .venv/bin/python bench/live_load.py [--seconds 60] [--rate 1000] [--history 20000] [-- SERVE ARGS…]

The log first gets --history simulated lines (GPT-2 124M at log_interval 1, evals every 1,000
iterations), which serve reads on attach. Then this process appends the simulator's next lines at
--rate lines per second for --seconds, one write() per line as `python -u` does, and once a second
scrapes `trainwatch_lines_total`: lag = lines written − lines serve has read. serve's CPU is its
user + system time from /proc over the writing period (all threads, the once-a-second scrape included).
Target: ≤ 5 % of a core, and no lag building up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from serve_child import Serve  # noqa: E402  (bench/ is sys.path[0])

from monitor.sim.emit import OUT, emissions  # noqa: E402
from monitor.sim.scenario import SimConfig  # noqa: E402


def lines() -> Iterator[bytes]:
    """The simulated run's stdout lines, for as long as needed."""
    cfg = SimConfig(preset="gpt2-124m", seed=2, log_interval=1, eval_interval=1000, max_iters=10_000_000)
    for e in emissions(cfg):
        if e.stream == OUT:
            yield e.text.encode() + b"\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--rate", type=float, default=1000.0, help="lines per second")
    ap.add_argument("--history", type=int, default=20_000, help="lines in the log before serve starts")
    ap.add_argument("serve_args", nargs="*", help="more serve arguments (after --)")
    opts = ap.parse_args()
    source = lines()
    with tempfile.TemporaryDirectory(prefix="trainwatch-live-") as tmp:
        log = Path(tmp) / "live.log"
        with log.open("wb") as fh:
            fh.writelines(next(source) for _ in range(opts.history))
        serve = Serve([str(log), *opts.serve_args], [], Path(tmp) / "serve.err")
        try:
            serve.wait_for_runs(1)
            deadline = time.monotonic() + 60
            while serve.samples("trainwatch_lines_total").get("live", 0) < opts.history:
                if time.monotonic() > deadline:
                    raise SystemExit("serve did not read the history")
                time.sleep(0.1)
            time.sleep(2)  # the attach is done; what follows is the live cost
            report = run(serve, log, source, opts.seconds, opts.rate, opts.history)
        finally:
            serve.stop()
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
              f"serve {' '.join(opts.serve_args) or '(defaults)'}")
        print(report)


def run(serve: Serve, log: Path, source: Iterator[bytes], seconds: float, rate: float, history: int) -> str:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    written = 0
    lags: list[tuple[float, int]] = []
    cpu0 = serve.cpu_seconds()
    start = time.monotonic()
    next_scrape = start + 1
    try:
        while (now := time.monotonic()) - start < seconds:
            due = int((now - start) * rate)
            while written < due:
                os.write(fd, next(source))
                written += 1
            if now >= next_scrape:
                read = serve.samples("trainwatch_lines_total").get("live")
                if read is not None:
                    lags.append((now - start, history + written - int(read)))
                next_scrape += 1
            time.sleep(0.001)
    finally:
        os.close(fd)
    wall = time.monotonic() - start
    cpu = serve.cpu_seconds() - cpu0
    caught_up = None
    end = time.monotonic()
    while time.monotonic() - end < 10:
        if serve.samples("trainwatch_lines_total").get("live") == history + written:
            caught_up = time.monotonic() - end
            break
        time.sleep(0.02)
    half = len(lags) // 2
    first, second = [lag for _, lag in lags[:half]], [lag for _, lag in lags[half:]]
    return "\n".join([
        f"wrote {written:,} lines in {wall:.1f} s = {written / wall:,.0f} lines/s",
        f"serve CPU {cpu:.2f} s = {100 * cpu / wall:.2f} % of a core (target ≤ 5 %); threads {serve.threads()}, "
        f"RSS {serve.rss_mb():.0f} MB",
        f"lag at each 1 s scrape (lines written − read): median {statistics.median(x for _, x in lags):.0f}, "
        f"max {max(x for _, x in lags)}; first half median {statistics.median(first):.0f}, "
        f"second half {statistics.median(second):.0f}" if first and second else "too few scrapes for a lag",
        "all lines read " + (f"{caught_up * 1000:.0f} ms after the writer stopped" if caught_up is not None
                             else "NOT within 10 s of the writer stopping"),
    ])


if __name__ == "__main__":
    main()
