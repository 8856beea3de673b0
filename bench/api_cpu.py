"""Benchmark of the JSON API and the event stream: CPU per `/api/v1/runs` with 50 runs, the event stream's
CPU with 20 connected clients at 1 line/s, and the page's weight.

- API: (a) the WSGI handler in this process on 50 full snapshots; (b) a real `trainwatch serve` following
  50 logs, its own CPU (psutil) per request over loopback, less its idle CPU.
- Event stream: a real serve on one log that grows by a line a second; its CPU over `--window` seconds with
  no client, then with `--clients` clients reading the stream.

    .venv/bin/python bench/api_cpu.py [--requests 200] [--clients 20] [--window 60]

Targets (issue 20): /api/v1/runs for 50 runs ≤ 20 ms CPU; 20 stream clients ≤ 2 % of a core at 1 line/s;
the page ≤ 200 KB.
"""

from __future__ import annotations

import argparse
import http.client
import io
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tui_data import synthetic  # noqa: E402
from web_fixtures import GrowingLog, get, growing_log, start_serve  # noqa: E402

from exporters.sse import EventHub  # noqa: E402
from exporters.web.routes import with_web  # noqa: E402

PAGE = ("/", "/static/app.js", "/static/style.css", "/static/favicon.svg")


def wsgi_cpu(n_runs: int, requests: int) -> float:
    snaps = tuple(replace(synthetic(), run=f"run-{i}", log=f"/runs/{i}/train.log") for i in range(n_runs))
    app = with_web(lambda e, s: [b""], lambda: snaps, EventHub())
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/api/v1/runs", "QUERY_STRING": "", "wsgi.input": io.BytesIO()}
    size = 0
    t0 = time.process_time()
    for _ in range(requests):
        size = len(b"".join(app(dict(environ), lambda status, headers: None)))
    per = (time.process_time() - t0) / requests
    print(f"WSGI handler, {n_runs} runs: {1000 * per:.2f} ms CPU per /api/v1/runs ({size / 1024:.0f} KiB)")
    return per


def cpu_s(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def serve_cpu(tmp: Path, n_runs: int, requests: int) -> None:
    logs = [growing_log(tmp, f"run{i:02d}", start=400).path for i in range(n_runs)]
    served = start_serve(tmp, *map(str, logs))
    try:
        proc = psutil.Process(served.proc.pid)
        deadline = time.monotonic() + 120
        while get(served, "/api/v1/runs")[2].count(b'"schema":"trainwatch.report/1"') < n_runs:
            assert time.monotonic() < deadline, "serve did not load every log"
            time.sleep(0.5)
        time.sleep(2)
        c0, t0 = cpu_s(proc), time.monotonic()
        time.sleep(5)
        idle = (cpu_s(proc) - c0) / (time.monotonic() - t0)
        c0, t0 = cpu_s(proc), time.monotonic()
        for _ in range(requests):
            assert get(served, "/api/v1/runs")[0] == 200
        wall = time.monotonic() - t0
        per = (cpu_s(proc) - c0 - idle * wall) / requests
        print(f"real serve, {n_runs} runs: {1000 * per:.2f} ms CPU per /api/v1/runs over loopback "
              f"({1000 * wall / requests:.1f} ms wall; idle {100 * idle:.2f} % of a core)")
    finally:
        served.stop()


def reader(port: int, stop: threading.Event, counts: list[int], i: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/v1/events")
    resp = conn.getresponse()
    while not stop.is_set():
        line = resp.readline()
        if not line:
            break
        if line.startswith(b"event: runs"):
            counts[i] += 1
    resp.close()
    conn.close()


def stream_cpu(tmp: Path, clients: int, window: float) -> None:
    log = growing_log(tmp, "sse", start=300, max_iters=5000)
    served = start_serve(tmp, str(log.path))
    stop_writer = threading.Event()

    def write(g: GrowingLog) -> None:
        while not stop_writer.wait(1.0):
            g.more(1)

    writer = threading.Thread(target=write, args=(log,), daemon=True)
    writer.start()
    try:
        proc = psutil.Process(served.proc.pid)
        time.sleep(3)

        def measure() -> float:
            c0, t0 = cpu_s(proc), time.monotonic()
            time.sleep(window)
            return (cpu_s(proc) - c0) / (time.monotonic() - t0)

        alone = measure()
        stop = threading.Event()
        counts = [0] * clients
        threads = [threading.Thread(target=reader, args=(served.port, stop, counts, i), daemon=True)
                   for i in range(clients)]
        for t in threads:
            t.start()
        time.sleep(2)
        start_counts = sum(counts)
        with_clients = measure()
        messages = sum(counts) - start_counts
        stop.set()
        print(f"event stream at 1 line/s: serve uses {100 * alone:.2f} % of a core with no client, "
              f"{100 * with_clients:.2f} % with {clients} clients: {100 * (with_clients - alone):.2f} % for the "
              f"stream ({messages / clients / window:.2f} messages a second per client)")
    finally:
        stop_writer.set()
        served.stop()


def page_weight(tmp: Path) -> None:
    log = growing_log(tmp, "page", start=100)
    served = start_serve(tmp, str(log.path))
    try:
        sizes = {p: len(get(served, p)[2]) for p in PAGE}
    finally:
        served.stop()
    print("page: " + ", ".join(f"{p} {n / 1024:.1f} KiB" for p, n in sizes.items())
          + f"; {sum(sizes.values()) / 1024:.1f} KiB in all")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--only", choices=["api", "stream", "page"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.only in (None, "page"):
            page_weight(tmp)
        if args.only in (None, "api"):
            wsgi_cpu(50, args.requests)
            serve_cpu(tmp, 50, args.requests)
        if args.only in (None, "stream"):
            stream_cpu(tmp, args.clients, args.window)


if __name__ == "__main__":
    main()
