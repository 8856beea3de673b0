"""`trainwatch serve --no-gpu` following 10 idle logs: the CPU it uses while nothing happens.

    .venv/bin/python bench/idle_many.py [--seconds 60] [--logs 10] [--lines 5000] [-- SERVE ARGS…]

Each log holds --lines simulated lines of a GPT-2 124M run in progress (log_interval 1), written before
serve starts; nothing is written after. Once serve shows every run, it is left alone (no scrape) for
--seconds, and its user + system CPU over that time is read from /proc (all threads: the writer
loop, its once-a-second republish, watchdog's inotify thread, the HTTP server). Target: ≤ 0.2 % of a core.
Pass `-- --poll` to measure polling instead of inotify.
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

from serve_child import Serve  # noqa: E402  (bench/ is sys.path[0])

from monitor.sim.emit import OUT, emissions  # noqa: E402
from monitor.sim.scenario import SimConfig  # noqa: E402


def write_log(path: Path, lines: int, seed: int) -> None:
    cfg = SimConfig(preset="gpt2-124m", seed=seed, log_interval=1, eval_interval=1000, max_iters=100_000)
    with path.open("wb") as fh:
        n = 0
        for e in emissions(cfg):
            if e.stream == OUT:
                fh.write(e.text.encode() + b"\n")
                n += 1
                if n >= lines:
                    return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--logs", type=int, default=10)
    ap.add_argument("--lines", type=int, default=5000, help="lines in each log")
    ap.add_argument("serve_args", nargs="*", help="more serve arguments (after --)")
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainwatch-idle-") as tmp:
        logs = []
        for i in range(opts.logs):
            path = Path(tmp) / f"run{i}.log"
            write_log(path, opts.lines, seed=i + 1)
            logs.append(str(path))
        serve = Serve(logs, opts.serve_args, Path(tmp) / "serve.err")
        try:
            serve.wait_for_runs(opts.logs)
            time.sleep(3)  # the attach and the first republishes are not what is measured
            cpu0, t0 = serve.cpu_seconds(), time.monotonic()
            time.sleep(opts.seconds)
            cpu, wall = serve.cpu_seconds() - cpu0, time.monotonic() - t0
            threads, rss = serve.threads(), serve.rss_mb()
        finally:
            serve.stop()
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"serve {' '.join(opts.serve_args) or '(defaults: inotify, poll interval 1 s)'}; CPU resolution "
          f"{1000 / os.sysconf('SC_CLK_TCK'):g} ms")
    print(f"{opts.logs} idle logs of {opts.lines:,} lines, {wall:.0f} s: serve CPU {cpu * 1000:.0f} ms = "
          f"{100 * cpu / wall:.3f} % of a core (target ≤ 0.2 %); threads {threads}, RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
