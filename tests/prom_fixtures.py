"""Shared by the Prometheus tests: snapshots, GPU samples, nanoGPT logs, HTTP, real Prometheus and Alertmanager."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from monitor.snapshot import Energy, FinalLoss, Forecast, GpuProcess, GpuSample, Snapshot

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "exporters" / "alerts"
RULES = ALERTS / "trainwatch-rules.yml"
DASHBOARD = ROOT / "exporters" / "grafana" / "trainwatch-dashboard.json"
T0 = 1_764_275_588.0  # a fixed "now" for snapshots whose values must not depend on the clock


def wait_for(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll until `cond()` is truthy and return it; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (openssl), valid for a day."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- snapshots and GPU samples -----------------------------------------------------------------


def gpu_sample(index: int = 0, **changes: Any) -> GpuSample:
    base = GpuSample(index=index, uuid=f"GPU-0000000{index}-1111-2222-3333-444444444444", name="NVIDIA H100 80GB HBM3",
                     at=T0, power_w=312.5, energy_j=8.25e6, memory_used_bytes=61_203_283_968,
                     memory_total_bytes=85_520_809_984, utilization=0.97, temperature_c=64.0, sm_clock_mhz=1980.0,
                     throttle=("power cap",), processes=(GpuProcess(4242, 60_000_000_000),))
    return replace(base, **changes)


def full_snapshot(run: str = "shakespeare-char", **changes: Any) -> Snapshot:
    """A snapshot with every field known, written out by hand so the golden text does not move when the
    forecaster or the parser improve."""
    fc = Forecast(iter_s=0.25, eval_overhead_s=12.5, evals_left=3, eta_s=1800.0, eta_p10_s=1500.0, eta_p90_s=2400.0,
                  finish_at=T0 + 1800.0, finish_p10=T0 + 1500.0, finish_p90=T0 + 2400.0, tokens_per_s=262_144.0,
                  expected_gap_s=2.5)
    snap = Snapshot(
        run=run, log=f"/data/runs/{run}/out.log", format="nanogpt", taken_at=T0, state="running", iter=2800,
        max_iters=5000, max_iters_source="log", fraction=2801 / 5001, train_loss=1.2345, val_loss=1.4567,
        best_val=1.4012, tokens_per_iter=65_536.0, tokens_seen=2801 * 65_536.0, tokens_total=5001 * 65_536.0,
        dataset_tokens=1_003_854.0, params=10_650_000.0, flops_per_token=6.5e7, flops_done=1.19e16,
        flops_total=2.13e16, mfu=0.42, mfu_logged=0.31, gpu_peak_flops=989e12, elapsed_s=700.0,
        last_progress_at=T0 - 1.0, forecast=fc,
        energy=Energy(joules=2.2e5, source="nvml-counter", mean_power_w=312.5), energy_forecast_j=7.825e5,
        cost=None, checkpoints=5, error_type=None, error_message=None, lines=3012, parse_errors=1,
        gpus=(gpu_sample(0),),
        final_loss=FinalLoss(p50=1.3712, p10=1.3588, p90=1.3836, of="val", schedule="cosine (config)"),
        target_loss=1.4)  # within the band: no notification in tests that do not ask for one
    return replace(snap, **changes)


# ---- nanoGPT logs --------------------------------------------------------------------------------


def write_nanogpt_log(path: Path, *, last_iter: int, max_iters: int = 500, log_interval: int = 10,
                      eval_interval: int = 100, nan_from: int | None = None, config: bool = True) -> Path:
    """A nanoGPT stdout log: config block, tokens per iteration, evals, checkpoints, iteration lines."""
    lines = []
    if config:
        lines += ["Overriding config with config/train_shakespeare_char.py:", f"max_iters = {max_iters}",
                  f"eval_interval = {eval_interval}", f"log_interval = {log_interval}", "",
                  "tokens per iteration will be: 16,384", "number of parameters: 10.65M"]
    for i in range(0, last_iter + 1, log_interval):
        if i % eval_interval == 0:
            lines.append(f"step {i}: train loss {3.0 - i / 1000:.4f}, val loss {3.1 - i / 1000:.4f}")
            if i > 0:
                lines.append("saving checkpoint to out-shakespeare-char")
        loss = "nan" if nan_from is not None and i >= nan_from else f"{2.5 - i / 1000:.4f}"
        ms = 900.0 if i % eval_interval == 0 else 250.0 + (i % 7)
        lines.append(f"iter {i}: loss {loss}, time {ms:.2f}ms, mfu 31.00%")
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- the dashboard ------------------------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dash["panels"] if p["type"] != "row"]


def exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in panels(dash) for t in p.get("targets", [])]


def as_promql(expr: str) -> str:
    """What Grafana sends: its variables substituted (a multi-value `$run` becomes a regex)."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s").replace("$__range", "1h")
            .replace("${run}", ".+").replace("$run", ".+"))


# ---- HTTP ----------------------------------------------------------------------------------------


def http_get(url: str, *, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=dict(headers or {}))
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class WebhookSink:
    """A local HTTP receiver that keeps every JSON body POSTed to it (Alertmanager's webhook)."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads the bodies."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, status: str = "firing") -> list[dict[str, Any]]:
        return [a for b in list(self.bodies) for a in b["alerts"] if a["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- real Prometheus and Alertmanager -----------------------------------------------------------


class Daemon:
    """A real server process on 127.0.0.1 that answers GET /-/ready; stopped (and reaped) by stop()."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
        wait_for(self._ready, 15, f"{argv[0]} to be ready (log: {log})")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"exited with {self.proc.returncode}:\n{self.log.read_text()}")
        try:
            return http_get(self.url + "/-/ready")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_prometheus(tmp: Path, jobs: dict[str, Iterable[str]], *, rules: Iterable[Path] = (),
                     alertmanager: str | None = None) -> Daemon:
    """Debian's `prometheus`, scraping each job's targets every second, with `rules` and an Alertmanager."""
    scrape = "".join(f"  - job_name: {job}\n    static_configs: [{{targets: {json.dumps(list(targets))}}}]\n"
                     for job, targets in jobs.items())
    config = ("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
              f"rule_files: {json.dumps([str(r) for r in rules])}\n"
              + (f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['{alertmanager}']}}]}}]}}\n"
                 if alertmanager else "")
              + "scrape_configs:\n" + scrape)
    (tmp / "prometheus.yml").write_text(config)
    port = free_port()
    return Daemon([shutil.which("prometheus") or "prometheus", f"--config.file={tmp / 'prometheus.yml'}",
                   f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                   "--rules.alert.resend-delay=1s", "--log.level=warn"], port, tmp / "prometheus.log")


def start_alertmanager(tmp: Path, webhook: str) -> Daemon:
    (tmp / "alertmanager.yml").write_text(
        "route: {receiver: sink, group_by: [alertname, run], group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n"
        f"receivers: [{{name: sink, webhook_configs: [{{url: '{webhook}', send_resolved: false}}]}}]\n")
    port = free_port()
    return Daemon([shutil.which("prometheus-alertmanager") or "prometheus-alertmanager",
                   f"--config.file={tmp / 'alertmanager.yml'}", f"--storage.path={tmp / 'am-data'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                  port, tmp / "alertmanager.log")


def query(prometheus: Daemon, expr: str) -> list[dict[str, Any]]:
    """Instant query through the HTTP API; raises if Prometheus rejects the expression."""
    status, _, body = http_get(f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    if status != 200 or answer.get("status") != "success":
        raise AssertionError(f"query {expr!r} failed: {answer}")
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


def value(prometheus: Daemon, expr: str) -> float | None:
    """The single value of an instant query, None while there is none."""
    result = query(prometheus, expr)
    assert len(result) <= 1, f"{expr} gave {len(result)} series: {result}"
    return float(result[0]["value"][1]) if result else None
