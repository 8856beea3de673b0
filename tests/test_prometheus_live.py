"""Real Prometheus and Alertmanager against trainwatch's exporter, on 127.0.0.1 with free ports.

One Prometheus (scrape and rule evaluation every second, the shipped rules loaded) scrapes two targets:
an in-test exporter whose snapshots the tests set, and a real `trainwatch serve` process following a
simulated run. Debian's Prometheus 2.42 shows its first sample ~6 s after it starts (components.md §5),
so everything waits by polling, never by sleeping a fixed time.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from prom_fixtures import (
    RULES,
    Daemon,
    WebhookSink,
    as_promql,
    exprs,
    free_port,
    full_snapshot,
    load_dashboard,
    query,
    start_alertmanager,
    start_prometheus,
    value,
    wait_for,
)

from exporters.prometheus import TrainwatchCollector, start_server
from monitor.snapshot import Snapshot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.xdist_group("prometheus"),  # one Prometheus + Alertmanager stack for the module
    pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("prometheus-alertmanager") is None,
                       reason="Debian's prometheus / prometheus-alertmanager are not installed "
                              "(apt-get install --no-install-recommends prometheus prometheus-alertmanager; "
                              ".ci/run does)"),
]
FIRST_SAMPLE_S = 30  # Prometheus 2.42 hands targets to the scraper on a 5 s tick; leave room on a busy machine


@dataclass
class Runs:
    """The in-test exporter's source: three runs whose values the tests read back or alert on."""

    started: float = field(default_factory=time.time)
    steady_iter: int = 1234

    @property
    def steady_finish(self) -> float:
        return round(self.started) + 3600.0

    def __call__(self) -> tuple[Snapshot, ...]:
        now = time.time()
        base = full_snapshot(taken_at=now, last_progress_at=now - 1.0)
        fc = base.forecast
        return (
            replace(base, run="steady", iter=self.steady_iter,
                    forecast=replace(fc, finish_at=self.steady_finish, eta_s=self.steady_finish - now)),
            replace(base, run="soon", forecast=replace(fc, finish_at=now + 300.0, eta_s=300.0)),
            # stalled for an hour: its forecast counts the silence as progress and says "finishing now"
            replace(base, run="stuck", state="stalled", last_progress_at=now - 3600.0,
                    forecast=replace(fc, finish_at=now, eta_s=0.0, expected_gap_s=10.0)),
        )


@dataclass
class Stack:
    prometheus: Daemon
    sink: WebhookSink
    runs: Runs
    serve_port: int


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus")
    runs = Runs()
    server, thread = start_server(TrainwatchCollector(runs, version="test"), port=0)
    sink = WebhookSink()
    alertmanager = start_alertmanager(tmp, sink.url)
    serve_port = free_port()  # `trainwatch serve` comes up later, in its own test; until then the target is down
    prometheus = start_prometheus(
        tmp, {"trainwatch": [f"127.0.0.1:{server.server_port}"], "trainwatch-serve": [f"127.0.0.1:{serve_port}"]},
        rules=[RULES], alertmanager=f"127.0.0.1:{alertmanager.port}")
    try:
        yield Stack(prometheus, sink, runs, serve_port)
    finally:
        prometheus.stop()
        alertmanager.stop()
        sink.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_prometheus_reads_back_iteration_finish_time_and_state(stack: Stack) -> None:
    p = stack.prometheus
    wait_for(lambda: value(p, 'trainwatch_iteration{run="steady"}') == 1234, FIRST_SAMPLE_S, "the first sample")
    assert value(p, 'trainwatch_expected_finish_timestamp_seconds{run="steady"}') == stack.runs.steady_finish
    assert value(p, 'trainwatch_run_state{run="steady",state="running"}') == 1
    assert value(p, 'trainwatch_run_state{run="stuck",state="stalled"}') == 1
    assert value(p, 'trainwatch_eta_seconds{run="soon",percentile="90"}') == 2400
    stack.runs.steady_iter = 1300  # the next scrape reads the new snapshot
    wait_for(lambda: value(p, 'trainwatch_iteration{run="steady"}') == 1300, 10, "the new iteration")


def test_alertmanager_delivers_finishing_soon_and_stalled(stack: Stack) -> None:
    def delivered() -> dict[str, set[str]]:
        got: dict[str, set[str]] = {}
        for a in stack.sink.alerts():
            got.setdefault(a["labels"]["alertname"], set()).add(a["labels"].get("run", ""))
        return got if {"soon"} <= got.get("TrainwatchRunFinishingSoon", set()) and \
            {"stuck"} <= got.get("TrainwatchRunStalled", set()) else {}

    got = wait_for(delivered, FIRST_SAMPLE_S + 15, "the webhook to receive both alerts", interval=0.2)
    assert got["TrainwatchRunFinishingSoon"] == {"soon"}  # not the stalled run, whose forecast reads "now"
    assert got["TrainwatchRunStalled"] == {"stuck"}
    soon = next(a for a in stack.sink.alerts() if a["labels"]["alertname"] == "TrainwatchRunFinishingSoon")
    assert soon["labels"]["severity"] == "info" and soon["annotations"]["summary"].startswith("Run soon finishes in")
    firing = {(r["metric"]["alertname"], r["metric"].get("run")) for r in query(stack.prometheus, "ALERTS")}
    assert ("TrainwatchRunStalled", "steady") not in firing and ("TrainwatchRunFinishingSoon", "stuck") not in firing


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    """Each panel's PromQL runs on the real Prometheus and finds series: its metric names are what we export."""
    p = stack.prometheus
    wait_for(lambda: value(p, 'trainwatch_iteration{run="steady"}') is not None, FIRST_SAMPLE_S, "the first sample")
    for expr in exprs(load_dashboard()):
        wait_for(lambda e=expr: query(p, as_promql(e)), 10, f"data for {expr}")  # type: ignore[misc]


def trainwatch_command() -> list[str]:
    script = Path(sys.executable).with_name("trainwatch")
    return [str(script)] if script.exists() else [sys.executable, "-c", "from monitor.cli import entry; entry()"]


def test_trainwatch_serve_following_a_simulated_run(stack: Stack, tmp_path: Path) -> None:
    p, job = stack.prometheus, 'job="trainwatch-serve"'
    log = tmp_path / "sim.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    # shakespeare-char: ~6 s of compile at speed 5, then 2000 iterations and 8 evals in ~8 s
    sim = subprocess.Popen([sys.executable, "-m", "monitor.sim.write", str(log), "--max-iters", "2000", "--speed", "5"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    serve_log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen([*trainwatch_command(), "serve", str(log), "--listen", f"127.0.0.1:{stack.serve_port}"],
                             env=env, stderr=serve_log)
    try:
        first = wait_for(lambda: value(p, f"trainwatch_iteration{{{job}}}"), FIRST_SAMPLE_S, "serve's first iteration")
        seen: dict[str, float] = {}

        def running_with_forecast() -> bool:
            state = value(p, f'trainwatch_run_state{{{job},state="running"}}')
            finish = value(p, f"trainwatch_expected_finish_timestamp_seconds{{{job}}}")
            if state == 1 and finish is not None:
                seen.update(finish=finish, at=time.time())
            return bool(seen) and (value(p, f"trainwatch_iteration{{{job}}}") or 0) > first

        wait_for(running_with_forecast, 20, "progress and a forecast while running")
        assert seen["at"] - 5 < seen["finish"] < seen["at"] + 3600
        wait_for(lambda: value(p, f'trainwatch_run_state{{{job},state="finished"}}') == 1, 30, "the finished state")
        assert value(p, f"trainwatch_iteration{{{job}}}") == 2000
        assert value(p, f'trainwatch_run_info{{{job},run="sim",format="nanogpt"}}') == 1
        wait_for(lambda: any(a["labels"]["alertname"] == "TrainwatchRunFinished" and a["labels"]["run"] == "sim"
                             for a in stack.sink.alerts()), 15, "the finished alert through Alertmanager")
        assert sim.wait(10) == 0, sim.stderr.read() if sim.stderr else ""
    finally:
        sim.kill()
        sim.wait()
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(10)
        serve_log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert "serving metrics on http://127.0.0.1:" in (tmp_path / "serve.log").read_text()
