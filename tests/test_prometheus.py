"""The Prometheus exporter: the collector over snapshots of real logs, the exposition text, the HTTP server
(private registry, basic auth, TLS), and the shipped rules checked and unit-tested by promtool."""

from __future__ import annotations

import math
import os
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import pytest
from prom_fixtures import (
    ALERTS,
    RULES,
    T0,
    full_snapshot,
    gpu_sample,
    http_get,
    write_nanogpt_log,
)
from prometheus_client import CollectorRegistry, generate_latest

from exporters.prometheus import (
    DEFAULT_PORT,
    GPU_SERIES,
    RUN_SERIES,
    RUN_STATES,
    TrainwatchCollector,
    parse_listen,
    start_server,
)
from monitor.daemon.load import load
from monitor.errors import TrainwatchError
from monitor.model.build import build_snapshot
from monitor.snapshot import Snapshot

GOLDEN = Path(__file__).parent / "golden" / "metrics.txt"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool not installed (apt-get install prometheus; .ci/run does)")


def registry_for(*snaps: Snapshot, **kw: object) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(TrainwatchCollector(lambda: snaps, version="test", **kw))  # type: ignore[arg-type]
    return reg


def snapshot_of(path: Path, *, now: float = T0, run: str = "run", **kw: object) -> Snapshot:
    ingest = load(str(path))
    return build_snapshot(ingest.state, run=run, log=str(path), now=now, lines=ingest.lines,
                 parse_errors=ingest.parse_errors, **kw)  # type: ignore[arg-type]


def sample_names(reg: CollectorRegistry) -> set[str]:
    return {s.name for m in reg.collect() for s in m.samples}


# ---- the collector over real logs -------------------------------------------------------------


def test_running_log_values_come_from_the_log(tmp_path: Path) -> None:
    log = write_nanogpt_log(tmp_path / "out.log", last_iter=300, max_iters=500)
    snap = snapshot_of(log, run="shakespeare")
    reg = registry_for(snap)
    run = {"run": "shakespeare"}
    assert reg.get_sample_value("trainwatch_iteration", run) == 300
    assert reg.get_sample_value("trainwatch_max_iterations", run) == 500
    assert reg.get_sample_value("trainwatch_train_loss", run) == pytest.approx(2.2)
    assert reg.get_sample_value("trainwatch_val_loss", run) == pytest.approx(2.8)
    assert reg.get_sample_value("trainwatch_tokens", run) == 301 * 16_384
    assert reg.get_sample_value("trainwatch_tokens_target", run) == 501 * 16_384
    assert reg.get_sample_value("trainwatch_checkpoints_total", run) == 3  # at 100, 200, 300
    assert reg.get_sample_value("trainwatch_lines_total", run) == len(log.read_text().splitlines())
    assert reg.get_sample_value("trainwatch_run_info", {**run, "log": str(log), "format": "nanogpt"}) == 1
    assert reg.get_sample_value("trainwatch_build_info", {"version": "test"}) == 1
    # steady iterations print 250–256 ms; the forecast uses them, not the 900 ms eval iterations
    assert 0.25 <= reg.get_sample_value("trainwatch_iteration_duration_seconds", run) <= 0.257  # type: ignore[operator]
    for series in RUN_SERIES:  # every family mirrors its snapshot field; unknown stays absent
        want = series.value(snap)
        assert reg.get_sample_value(series.name, run) == (None if want is None else float(want)), series.name


def test_state_is_one_hot_over_all_states(tmp_path: Path) -> None:
    snap = snapshot_of(write_nanogpt_log(tmp_path / "out.log", last_iter=300), run="r")
    reg = registry_for(snap)
    values = {s: reg.get_sample_value("trainwatch_run_state", {"run": "r", "state": s}) for s in RUN_STATES}
    assert values == {s: (1.0 if s == snap.state else 0.0) for s in RUN_STATES}
    assert snap.state == "running"


def test_eta_band_and_finish_time(tmp_path: Path) -> None:
    snap = snapshot_of(write_nanogpt_log(tmp_path / "out.log", last_iter=300), run="r")
    reg = registry_for(snap)
    eta = {p: reg.get_sample_value("trainwatch_eta_seconds", {"run": "r", "percentile": p}) for p in ("10", "50", "90")}
    assert eta == {"10": snap.forecast.eta_p10_s, "50": snap.forecast.eta_s, "90": snap.forecast.eta_p90_s}
    assert eta["10"] <= eta["50"] <= eta["90"]  # type: ignore[operator]
    # 200 iterations left at ~0.25 s, two evals: minutes, not hours
    assert 40 < eta["50"] < 120  # type: ignore[operator]
    assert reg.get_sample_value("trainwatch_expected_finish_timestamp_seconds", {"run": "r"}) == snap.forecast.finish_at


def test_finished_log(tmp_path: Path) -> None:
    reg = registry_for(snapshot_of(write_nanogpt_log(tmp_path / "out.log", last_iter=500, max_iters=500), run="r"))
    assert reg.get_sample_value("trainwatch_run_state", {"run": "r", "state": "finished"}) == 1
    assert reg.get_sample_value("trainwatch_progress_ratio", {"run": "r"}) == 1
    assert reg.get_sample_value("trainwatch_eta_seconds", {"run": "r", "percentile": "50"}) == 0


def test_unknown_values_are_absent_not_zero(tmp_path: Path) -> None:
    """A log that has printed its config but no iteration yet: nothing is known about progress."""
    log = tmp_path / "out.log"
    log.write_text("Overriding config with config/train_shakespeare_char.py:\nmax_iters = 500\n")
    reg = registry_for(snapshot_of(log, run="r"))
    assert reg.get_sample_value("trainwatch_run_state", {"run": "r", "state": "starting"}) == 1
    assert sample_names(reg) == {
        "trainwatch_build_info", "trainwatch_run_info", "trainwatch_run_state", "trainwatch_max_iterations",
        "trainwatch_checkpoints_total", "trainwatch_lines_total", "trainwatch_parse_errors_total",
        "trainwatch_snapshot_timestamp_seconds"}


def test_nan_loss_is_exported_as_nan(tmp_path: Path) -> None:
    log = write_nanogpt_log(tmp_path / "out.log", last_iter=300, nan_from=250)
    value = registry_for(snapshot_of(log, run="r")).get_sample_value("trainwatch_train_loss", {"run": "r"})
    assert value is not None and math.isnan(value)
    assert b'trainwatch_train_loss{run="r"} NaN' in generate_latest(registry_for(snapshot_of(log, run="r")))


def test_crashed_corpus_log_exports_the_error_type() -> None:
    snap = snapshot_of(CORPUS / "nanogpt" / "char-1gpu-xxl-cuda-oom-crash.log", run="xxl")
    reg = registry_for(snap)
    assert reg.get_sample_value("trainwatch_run_state", {"run": "xxl", "state": "crashed"}) == 1
    assert reg.get_sample_value("trainwatch_error_info", {"run": "xxl", "type": snap.error_type or ""}) == 1
    assert "OutOfMemoryError" in (snap.error_type or "")
    assert reg.get_sample_value("trainwatch_eta_seconds", {"run": "xxl", "percentile": "50"}) is None


def test_a_slurm_job_exports_its_end_and_its_labels_and_slurms_end_state() -> None:
    labels = {"job_id": "12345", "job_name": "gpt2-124m", "user": "alice", "partition": "gpu", "nodes": "g[01-04]"}
    reg = registry_for(full_snapshot("12345 gpt2-124m", labels=labels, job_end_at=T0 + 3600.0),
                       full_snapshot("12346 gpt2-350m", state="timeout", labels={**labels, "job_id": "12346"}))
    ours = {**labels, "run": "12345 gpt2-124m"}
    assert reg.get_sample_value("trainwatch_job_end_timestamp_seconds", ours) == T0 + 3600.0
    assert reg.get_sample_value("trainwatch_run_info", {**ours, "log": "/data/runs/12345 gpt2-124m/out.log",
                                                        "format": "nanogpt"}) == 1
    ended = {**labels, "job_id": "12346", "run": "12346 gpt2-350m"}
    assert reg.get_sample_value("trainwatch_run_state", {**ended, "state": "timeout"}) == 1
    assert reg.get_sample_value("trainwatch_run_state", {**ended, "state": "crashed"}) == 0
    assert reg.get_sample_value("trainwatch_job_end_timestamp_seconds", ended) is None


def test_several_runs_with_their_own_labels() -> None:
    a = full_snapshot("a", labels={"team": "pretrain"})
    b = full_snapshot("b", iter=10, labels={})
    reg = registry_for(a, b)
    assert reg.get_sample_value("trainwatch_iteration", {"run": "a", "team": "pretrain"}) == 2800
    assert reg.get_sample_value("trainwatch_iteration", {"run": "b"}) == 10
    assert reg.get_sample_value("trainwatch_run_state", {"run": "a", "team": "pretrain", "state": "running"}) == 1
    assert reg.get_sample_value("trainwatch_eta_seconds", {"run": "a", "team": "pretrain", "percentile": "90"}) == 2400


def test_each_scrape_reads_the_latest_snapshots() -> None:
    """No state carries over between scrapes: a run that is gone leaves no series behind."""
    current: list[tuple[Snapshot, ...]] = [(full_snapshot("a"), full_snapshot("b"))]
    reg = CollectorRegistry()
    reg.register(TrainwatchCollector(lambda: current[0], version="test"))
    assert reg.get_sample_value("trainwatch_iteration", {"run": "b"}) == 2800
    current[0] = (full_snapshot("a", iter=2900),)
    assert reg.get_sample_value("trainwatch_iteration", {"run": "a"}) == 2900
    assert reg.get_sample_value("trainwatch_iteration", {"run": "b"}) is None


def test_registering_does_not_collect() -> None:
    def source() -> tuple[Snapshot, ...]:
        raise AssertionError("collect() ran at register()")

    CollectorRegistry().register(TrainwatchCollector(source, version="test"))


# ---- GPUs ----------------------------------------------------------------------------------------


def test_gpus_of_the_snapshots_once_each() -> None:
    shared, other = gpu_sample(0), gpu_sample(1, power_w=100.0)
    reg = registry_for(full_snapshot("a", gpus=(shared,)), full_snapshot("b", gpus=(other, shared)))
    g0 = {"gpu": "0", "uuid": shared.uuid}
    assert reg.get_sample_value("trainwatch_gpu_power_watts", g0) == 312.5
    assert reg.get_sample_value("trainwatch_gpu_power_watts", {"gpu": "1", "uuid": other.uuid}) == 100.0
    assert reg.get_sample_value("trainwatch_gpu_sm_clock_hertz", g0) == 1.98e9
    assert reg.get_sample_value("trainwatch_gpu_energy_joules_total", g0) == 8.25e6
    assert reg.get_sample_value("trainwatch_gpu_info", {**g0, "name": "NVIDIA H100 80GB HBM3"}) == 1
    assert reg.get_sample_value("trainwatch_gpu_throttle_reason_info", {**g0, "reason": "power cap"}) == 1
    assert reg.get_sample_value("trainwatch_gpu_lost", g0) == 0
    power = [s for m in reg.collect() for s in m.samples if s.name == "trainwatch_gpu_power_watts"]
    assert len(power) == 2


def test_machine_gpus_callable_wins_and_unsupported_fields_are_absent() -> None:
    lost = gpu_sample(3, power_w=None, energy_j=None, memory_used_bytes=None, utilization=None,
                      temperature_c=None, sm_clock_mhz=None, throttle=(), lost=True)
    reg = registry_for(full_snapshot("a"), gpus=lambda: (lost,))
    labels = {"gpu": "3", "uuid": lost.uuid}
    assert reg.get_sample_value("trainwatch_gpu_lost", labels) == 1
    assert reg.get_sample_value("trainwatch_gpu_memory_total_bytes", labels) == lost.memory_total_bytes
    for series in GPU_SERIES:
        if series.name not in ("trainwatch_gpu_lost", "trainwatch_gpu_memory_total_bytes"):
            assert reg.get_sample_value(series.name, labels) is None, series.name
    assert reg.get_sample_value("trainwatch_gpu_power_watts", {"gpu": "0", "uuid": gpu_sample(0).uuid}) is None


# ---- the exposition text --------------------------------------------------------------------------


def golden_text() -> str:
    snaps = (full_snapshot("shakespeare-char", labels={"team": "pretrain"}, job_end_at=T0 + 7200.0),
             full_snapshot("gpt2-124m", state="crashed", error_type="torch.OutOfMemoryError", train_loss=math.nan,
                           forecast=replace(full_snapshot().forecast, eta_s=None, eta_p10_s=None, eta_p90_s=None,
                                            finish_at=None),
                           gpus=(gpu_sample(0), gpu_sample(1, throttle=(), power_w=None))))
    return generate_latest(registry_for(*snaps)).decode()


def test_golden_exposition() -> None:
    """Names, types, help texts and labels as Prometheus sees them. Regenerate after a deliberate change with
    TRAINWATCH_UPDATE_GOLDEN=1 and review the diff."""
    text = golden_text()
    if os.environ.get("TRAINWATCH_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


@needs_promtool
def test_promtool_accepts_the_golden_text() -> None:
    r = subprocess.run(["promtool", "check", "metrics"], input=golden_text(), capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
def test_promtool_check_metrics_can_fail() -> None:
    bad = ("# HELP trainwatch_eta_seconds x\n# TYPE trainwatch_eta_seconds gauge\n"
           'trainwatch_eta_seconds{quantile="0.5"} 1\n')
    r = subprocess.run(["promtool", "check", "metrics"], input=bad, capture_output=True, text=True)
    assert r.returncode != 0 and "quantile" in r.stdout + r.stderr


# ---- the HTTP server -----------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[WSGIServer]:
    server, thread = start_server(TrainwatchCollector(lambda: (full_snapshot(),), version="test"), port=0)
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@needs_promtool
def test_promtool_check_metrics_on_a_real_scrape(served: WSGIServer) -> None:
    status, headers, body = http_get(f"http://127.0.0.1:{served.server_port}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b'trainwatch_iteration{run="shakespeare-char"} 2800.0' in body
    r = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_server_is_private_and_local(served: WSGIServer) -> None:
    """Only trainwatch's families (no process_/python_ collectors of the global registry), on loopback."""
    assert served.server_address[0] == "127.0.0.1"
    _, _, body = http_get(f"http://127.0.0.1:{served.server_port}/metrics")
    names = {line.split()[2] for line in body.decode().splitlines() if line.startswith("# TYPE")}
    assert names and all(n.startswith("trainwatch_") for n in names)


def test_openmetrics_and_name_filter(served: WSGIServer) -> None:
    url = f"http://127.0.0.1:{served.server_port}/metrics"
    status, headers, body = http_get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert status == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF") and b"# TYPE trainwatch_energy_joules counter" in body
    _, _, only = http_get(url + "?name[]=trainwatch_iteration")
    assert [n for n in only.decode().splitlines() if not n.startswith("#")] == [
        'trainwatch_iteration{run="shakespeare-char"} 2800.0']


def test_basic_auth() -> None:
    server, _ = start_server(TrainwatchCollector(lambda: (full_snapshot(),), version="test"), port=0,
                             basic_auth=("prometheus", "s3cret:with colon"))
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        status, headers, _ = http_get(url)
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
        assert http_get(url, auth=("prometheus", "wrong"))[0] == 401
        assert http_get(url, auth=("nobody", "s3cret:with colon"))[0] == 401
        assert http_get(url, headers={"Authorization": "Basic !!not-base64!!"})[0] == 401
        status, _, body = http_get(url, auth=("prometheus", "s3cret:with colon"))
        assert status == 200 and b"trainwatch_iteration" in body
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server, _ = start_server(TrainwatchCollector(lambda: (full_snapshot(),), version="test"), port=0,
                             certfile=str(cert), keyfile=str(key), basic_auth=("u", "p"))
    try:
        context = ssl.create_default_context(cafile=str(cert))
        status, _, body = http_get(f"https://127.0.0.1:{server.server_port}/metrics", auth=("u", "p"), context=context)
        assert status == 200 and b"trainwatch_iteration" in body
        with pytest.raises(OSError):  # plain HTTP gets no answer from a TLS socket
            http_get(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()


def test_start_server_errors_are_one_line(tmp_path: Path) -> None:
    collector = TrainwatchCollector(lambda: (), version="test")
    server, _ = start_server(collector, port=0)
    try:
        with pytest.raises(TrainwatchError, match=f"cannot serve metrics on 127.0.0.1:{server.server_port}"):
            start_server(collector, port=server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(TrainwatchError, match="both a certificate file and its key"):
        start_server(collector, port=0, certfile=str(tmp_path / "cert.pem"))
    with pytest.raises(TrainwatchError, match="cannot serve metrics"):
        start_server(collector, port=0, certfile=str(tmp_path / "missing.pem"), keyfile=str(tmp_path / "missing.key"))


@pytest.mark.parametrize(("text", "want"), [
    ("127.0.0.1:9999", ("127.0.0.1", 9999)),
    ("0.0.0.0:10464", ("0.0.0.0", 10464)),
    (":8000", ("127.0.0.1", 8000)),
    ("8000", ("127.0.0.1", 8000)),
    ("localhost", ("localhost", DEFAULT_PORT)),
    ("", ("127.0.0.1", DEFAULT_PORT)),
    ("[::1]:9000", ("::1", 9000)),
    ("[::1]", ("::1", DEFAULT_PORT)),
    ("host:0", ("host", 0)),
], ids=lambda v: repr(v) if isinstance(v, str) else "")
def test_parse_listen(text: str, want: tuple[str, int]) -> None:
    assert parse_listen(text) == want


@pytest.mark.parametrize("text", ["host:port", "host:70000", "host:-1"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(TrainwatchError, match="port must be a number"):
        parse_listen(text)


def test_default_port_is_free_of_well_known_exporters() -> None:
    assert not 9100 <= DEFAULT_PORT <= 9999 and DEFAULT_PORT not in (3903, 9090, 9093, 9464, 10250, 29500)
    assert DEFAULT_PORT < 32768  # below Linux's ephemeral range


# ---- the shipped rules and example configs --------------------------------------------------------


@needs_promtool
def test_promtool_check_rules() -> None:
    r = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS: 11 rules found" in r.stdout, r.stdout + r.stderr


@needs_promtool
def test_promtool_rule_unit_tests() -> None:
    """Stalled, loss NaN/inf, finishing soon, finished, crashed, throughput, exporter down, monitor stuck,
    the Slurm time limit ahead, a job Slurm ended, and a final loss predicted above the target."""
    r = subprocess.run(["promtool", "test", "rules", "trainwatch-rules.test.yml"], cwd=ALERTS,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_promtool
@pytest.mark.parametrize(("old", "new"), [
    ('trainwatch_run_state{state=~"finished|crashed|stalled|', 'trainwatch_run_state{state=~"finished|crashed|'),
    ("trainwatch_expected_finish_timestamp_seconds - trainwatch_job_end_timestamp_seconds > 0",
     "trainwatch_expected_finish_timestamp_seconds - trainwatch_job_end_timestamp_seconds > -3600"),
    ("clamp_min(10 * trainwatch_expected_line_interval_seconds, 5 * 60)",
     "clamp_min(10 * trainwatch_expected_line_interval_seconds, 2 * 60)"),
    ("trainwatch_train_loss != trainwatch_train_loss or ", ""),
    ('trainwatch_final_loss_predicted{percentile="10"}', 'trainwatch_final_loss_predicted{percentile="50"}'),
], ids=["finishing-soon-ignores-stall", "time-limit", "stall-threshold", "nan", "target-uses-p10"])
def test_rule_unit_tests_catch_a_broken_rule(tmp_path: Path, old: str, new: str) -> None:
    text = RULES.read_text()
    assert old in text
    (tmp_path / "trainwatch-rules.yml").write_text(text.replace(old, new))
    shutil.copy(ALERTS / "trainwatch-rules.test.yml", tmp_path)
    r = subprocess.run(["promtool", "test", "rules", "trainwatch-rules.test.yml"], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "FAILED" in r.stdout + r.stderr


@needs_promtool
def test_example_prometheus_config() -> None:
    r = subprocess.run(["promtool", "check", "config", "prometheus.example.yml"], cwd=ALERTS,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("amtool") is None,
                    reason="amtool not installed (apt-get install prometheus-alertmanager)")
def test_example_alertmanager_config() -> None:
    r = subprocess.run(["amtool", "check-config", str(ALERTS / "alertmanager.example.yml")], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr

