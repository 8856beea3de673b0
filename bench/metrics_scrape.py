"""Benchmark of trainwatch's /metrics: scrape time with 1 and 50 followed runs, write → visible-in-/metrics
latency, and memory per followed run. The real parts run: Monitor following real files (inotify, or
polling with --poll), the collector, and prometheus-client's HTTP server on 127.0.0.1.

    .venv/bin/python bench/metrics_scrape.py [--runs 1 50] [--scrapes 300] [--writes 100] [--poll]

Targets (issue 6): /metrics ≤ 10 ms at 50 runs; write → visible p99 ≤ 20 ms with inotify.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics  # noqa: E402

from exporters.prometheus import TrainwatchCollector, start_server  # noqa: E402
from monitor.daemon.writer import Monitor, RunSpec  # noqa: E402

HEADER = """Overriding config with config/train_gpt2.py:
max_iters = 600000
eval_interval = 1000
log_interval = 10
tokens per iteration will be: 491,520
number of parameters: 123.59M
"""


def write_log(path: Path, last_iter: int) -> None:
    """A GPT-2 124M nanoGPT log up to `last_iter`: the 500-line history a live run shows after an hour or so."""
    lines = [HEADER]
    for i in range(0, last_iter + 1, 10):
        if i % 1000 == 0:
            lines.append(f"step {i}: train loss {3.5 - i / 1e5:.4f}, val loss {3.6 - i / 1e5:.4f}\n")
        lines.append(f"iter {i}: loss {3.4 - i / 1e5:.4f}, time {250 + (i * 7919) % 13:.2f}ms, mfu 31.00%\n")
    path.write_text("".join(lines))


def follow(logs: list[Path], poll: bool, last_iter: int) -> Monitor:
    """A started Monitor that has read every log to its end."""
    mon = Monitor([RunSpec(str(p), p.stem) for p in logs], poll_interval=0.25 if poll else 1.0, force_poll=poll)
    mon.start()
    deadline = time.monotonic() + 60
    while not (len(mon.snapshots()) == len(logs) and all((s.iter or 0) >= last_iter for s in mon.snapshots())):
        if time.monotonic() > deadline:
            raise SystemExit("the monitor did not read the logs within 60 s")
        time.sleep(0.01)
    return mon


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.42 sends: it gets OpenMetrics


def get(conn_port: int, path: str = "/metrics", accept: str = "text/plain") -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", conn_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Accept": accept})
        body = conn.getresponse().read()
    finally:
        conn.close()
    return body


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def ms(xs: list[float]) -> str:
    return f"p50 {pct(xs, 0.5) * 1e3:6.2f} ms  p99 {pct(xs, 0.99) * 1e3:6.2f} ms  max {max(xs) * 1e3:6.2f} ms"


def scrape_times(port: int, n: int, accept: str) -> tuple[list[float], int]:
    get(port, accept=accept)  # warm: first-request imports, connection setup
    times = []
    size = 0
    for _ in range(n):
        t = time.perf_counter()
        size = len(get(port, accept=accept))
        times.append(time.perf_counter() - t)
    return times, size


def cpu_per_scrape(mon: Monitor, n: int = 100) -> str:
    """CPU time of one exposition, in-process: stable on a busy machine, unlike the wall times over HTTP."""
    reg = CollectorRegistry()
    reg.register(TrainwatchCollector(mon.snapshots))
    parts = []
    for name, encode in (("collect", lambda: list(reg.collect())), ("text", lambda: generate_latest(reg)),
                         ("OpenMetrics", lambda: generate_openmetrics(reg))):
        encode()
        t = time.process_time()
        for _ in range(n):
            encode()
        parts.append(f"{name} {(time.process_time() - t) / n * 1e3:.2f} ms")
    return ", ".join(parts)


def visible_latency(port: int, log: Path, writes: int) -> list[float]:
    """Append one iteration line, then scrape until /metrics shows it; the time from the write to that scrape."""
    last = int(log.read_text().rsplit("iter ", 1)[1].split(":")[0])
    needle_run = log.stem
    out = []
    with log.open("a") as fh:
        for k in range(1, writes + 1):
            it = last + 10 * k
            needle = f'trainwatch_iteration{{run="{needle_run}"}} {float(it)}'.encode()
            time.sleep(0.05)  # let the writer settle, as between real log lines
            t = time.perf_counter()
            fh.write(f"iter {it}: loss 3.0000, time 250.00ms, mfu 31.00%\n")
            fh.flush()
            while needle not in get(port, "/metrics?name[]=trainwatch_iteration"):
                if time.perf_counter() - t > 5:
                    raise SystemExit(f"iteration {it} not visible after 5 s")
            out.append(time.perf_counter() - t)
    return out


def python_heap_per_run(tmp: Path, counts: tuple[int, int], last_iter: int) -> tuple[float, float]:
    """Python heap held by Monitor + snapshots after backfill, per run: (bytes for counts[0], for counts[1])."""
    held = []
    for n in counts:
        logs = sorted(tmp.glob("*.log"))[:n]
        tracemalloc.start()
        mon = follow(logs, True, last_iter)
        current, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        mon.stop()
        held.append(current / n)
    return held[0], held[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, nargs="+", default=[1, 50])
    p.add_argument("--scrapes", type=int, default=300)
    p.add_argument("--writes", type=int, default=100)
    p.add_argument("--iters", type=int, default=5000, help="iterations already in each log (default: %(default)s)")
    p.add_argument("--poll", action="store_true", help="polling instead of inotify")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for i in range(max(args.runs)):
            write_log(tmp / f"run{i:02d}.log", args.iters)
        last_iter = args.iters - args.iters % 10
        print(f"logs: {last_iter // 10 + 1} iteration lines each; python {sys.version.split()[0]}")
        for n in args.runs:
            logs = sorted(tmp.glob("*.log"))[:n]
            mon = follow(logs, args.poll, last_iter)
            server, _ = start_server(TrainwatchCollector(mon.snapshots), port=0)
            try:
                print(f"CPU per scrape, {n:2d} run(s): {cpu_per_scrape(mon)}")
                for fmt, accept in (("text 0.0.4", "text/plain"), ("OpenMetrics", PROMETHEUS_ACCEPT)):
                    times, size = scrape_times(server.server_port, args.scrapes, accept)
                    print(f"/metrics {fmt:11s} {n:2d} run(s), {size:6d} bytes, {args.scrapes} scrapes: {ms(times)}")
                lat = visible_latency(server.server_port, logs[0], args.writes)
                print(f"write → visible, {n:2d} run(s), {mon.waker.mode}, {args.writes} writes: {ms(lat)}")
            finally:
                server.shutdown()
                server.server_close()
                mon.stop()
        small, large = python_heap_per_run(tmp, (1, max(args.runs)), last_iter)
        print(f"python heap per followed run (monitor + snapshot, tracemalloc): {small / 1024:.0f} KiB with 1 run, "
              f"{large / 1024:.0f} KiB each with {max(args.runs)}")


if __name__ == "__main__":
    main()
