"""Prometheus `/metrics` over the latest snapshots: a custom collector and the HTTP server that serves it.

The collector builds fresh metric families from whatever snapshots `source()` returns at scrape time
(client_python's custom-collector pattern): nothing is updated per log line, no state carries over
between scrapes, and a run that disappears needs no label cleanup. A value trainwatch does not know
is left out of the exposition, never exported as 0: a 0 would be graphed and alerted on as a fact.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import math
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor import defaults
from monitor.errors import TrainwatchError
from monitor.snapshot import JOB_END_STATES, Snapshot

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from monitor.snapshot import GpuSample

DEFAULT_PORT = defaults.LISTEN_PORT  # why 10464: monitor/defaults.py

RUN_STATES = ("starting", "running", "evaluating", "finished", "crashed", "stalled", *JOB_END_STATES, "error")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Family(Generic[T]):
    """One metric family read from one field of a snapshot (or of a GPU sample)."""

    name: str  # as exposed: counters end in _total
    kind: str  # gauge | counter
    help: str
    value: Callable[[T], float | None]

    def empty(self) -> Metric:
        """A new family of this name and kind, for one scrape's samples."""
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.help)
        return GaugeMetricFamily(self.name, self.help)


def _mhz_to_hz(mhz: float | None) -> float | None:
    return mhz * 1e6 if mhz is not None else None


RUN_SERIES: tuple[Family[Snapshot], ...] = (
    Family("trainwatch_iteration", "gauge", "Last logged iteration.", lambda s: s.iter),
    Family("trainwatch_max_iterations", "gauge", "Last iteration of the run (nanoGPT runs 0..max_iters inclusive).",
           lambda s: s.max_iters),
    Family("trainwatch_progress_ratio", "gauge", "Share of the run's iterations done (0..1).", lambda s: s.fraction),
    Family("trainwatch_train_loss", "gauge", "Training loss of the last iteration line; NaN when the run printed NaN.",
           lambda s: s.train_loss),
    Family("trainwatch_val_loss", "gauge", "Validation loss of the last eval.", lambda s: s.val_loss),
    Family("trainwatch_best_val_loss", "gauge", "Lowest validation loss so far.", lambda s: s.best_val),
    Family("trainwatch_iteration_duration_seconds", "gauge",
           "The forecaster's steady-state time per iteration (evals and warm-up excluded).",
           lambda s: s.forecast.iter_s),
    Family("trainwatch_eval_overhead_seconds", "gauge", "Measured extra time each eval (and checkpoint) adds.",
           lambda s: s.forecast.eval_overhead_s),
    Family("trainwatch_expected_line_interval_seconds", "gauge",
           "Expected time between two progress lines at the current speed (the stall alert's unit).",
           lambda s: s.forecast.expected_gap_s),
    Family("trainwatch_tokens", "gauge", "Tokens trained on so far.", lambda s: s.tokens_seen),
    Family("trainwatch_tokens_target", "gauge", "Tokens the whole run will train on.", lambda s: s.tokens_total),
    Family("trainwatch_tokens_per_second", "gauge", "Steady-state training throughput.",
           lambda s: s.forecast.tokens_per_s),
    Family("trainwatch_dataset_tokens", "gauge", "Tokens in the training set.", lambda s: s.dataset_tokens),
    Family("trainwatch_epochs", "gauge", "Passes over the training set so far.", lambda s: s.epochs),
    Family("trainwatch_expected_finish_timestamp_seconds", "gauge",
           "When the run is expected to finish (median forecast), unix seconds.", lambda s: s.forecast.finish_at),
    Family("trainwatch_job_end_timestamp_seconds", "gauge",
           "When the run's Slurm job ends by its time limit (--slurm), unix seconds.", lambda s: s.job_end_at),
    Family("trainwatch_last_progress_timestamp_seconds", "gauge",
           "When the last iteration line was written, unix seconds.", lambda s: s.last_progress_at),
    Family("trainwatch_elapsed_seconds", "gauge", "Training time so far.", lambda s: s.elapsed_s),
    Family("trainwatch_parameters", "gauge", "Model parameters.", lambda s: s.params),
    Family("trainwatch_mfu_ratio", "gauge", "Model FLOPs utilization against the detected GPUs' dense bf16 peak.",
           lambda s: s.mfu),
    Family("trainwatch_logged_mfu_ratio", "gauge", "MFU as the training script printed it (nanoGPT: against an A100).",
           lambda s: s.mfu_logged),
    Family("trainwatch_flops_total", "counter", "Training FLOPs done so far (6N + attention, per token).",
           lambda s: s.flops_done),
    Family("trainwatch_flops_target", "gauge", "Training FLOPs of the whole run.", lambda s: s.flops_total),
    Family("trainwatch_energy_joules_total", "counter", "Energy the run's GPUs used so far.",
           lambda s: s.energy.joules),
    Family("trainwatch_energy_forecast_joules", "gauge", "Energy the whole run will have used: so far + power × ETA.",
           lambda s: s.energy_forecast_j),
    Family("trainwatch_checkpoints_total", "counter", "Checkpoints saved.", lambda s: s.checkpoints),
    Family("trainwatch_lines_total", "counter", "Log lines read.", lambda s: s.lines),
    Family("trainwatch_parse_errors_total", "counter", "Log lines the parser could not read.",
           lambda s: s.parse_errors),
    Family("trainwatch_target_loss", "gauge", "The final validation loss the user hopes for (--target-loss).",
           lambda s: s.target_loss),
    Family("trainwatch_snapshot_timestamp_seconds", "gauge",
           "When this run's snapshot was taken, unix seconds (stops moving if the monitor hangs).",
           lambda s: s.taken_at),
)

ETA_PERCENTILES = (("10", "eta_p10_s"), ("50", "eta_s"), ("90", "eta_p90_s"))
LOSS_PERCENTILES = (("10", "p10"), ("50", "p50"), ("90", "p90"))
"""The ETA band's label is `percentile`, not `quantile`: Prometheus reserves `quantile` for summaries
(`promtool check metrics` rejects it on a gauge), and a forecast band is not a summary of observations."""

LABELLED = {  # families whose samples carry labels of their own besides run / gpu
    "trainwatch_build_info": "The trainwatch version serving these metrics (always 1).",
    "trainwatch_run_info": "One series per followed run: its log and format (always 1).",
    "trainwatch_run_state": "1 for the run's current state, 0 for the others.",
    "trainwatch_eta_seconds": "Time left until the run finishes: the forecast's 10th, 50th and 90th percentile.",
    "trainwatch_final_loss_predicted": "The validation loss (or bpb) predicted at max_iters: "
                                       "its 10th, 50th and 90th percentile.",
    "trainwatch_error_info": "Present while the run is crashed: the error's type (always 1).",
    "trainwatch_run_problem_info": "Present while trainwatch cannot follow the run, or failed on its data: why "
                                   "(always 1).",
    "trainwatch_gpu_info": "One series per GPU: its model name (always 1).",
    "trainwatch_gpu_throttle_reason_info": "One series per active clock-throttle reason of a GPU (always 1).",
}

GPU_SERIES: tuple[Family[GpuSample], ...] = (
    Family("trainwatch_gpu_power_watts", "gauge", "GPU power draw.", lambda g: g.power_w),
    Family("trainwatch_gpu_energy_joules_total", "counter", "GPU energy counter (NVML, since the driver loaded).",
           lambda g: g.energy_j),
    Family("trainwatch_gpu_memory_used_bytes", "gauge", "GPU memory in use.", lambda g: g.memory_used_bytes),
    Family("trainwatch_gpu_memory_total_bytes", "gauge", "GPU memory size.", lambda g: g.memory_total_bytes),
    Family("trainwatch_gpu_utilization_ratio", "gauge", "Share of time a kernel ran on the GPU (0..1).",
           lambda g: g.utilization),
    Family("trainwatch_gpu_temperature_celsius", "gauge", "GPU core temperature.", lambda g: g.temperature_c),
    Family("trainwatch_gpu_sm_clock_hertz", "gauge", "GPU SM clock.", lambda g: _mhz_to_hz(g.sm_clock_mhz)),
    Family("trainwatch_gpu_lost", "gauge", "1 when the GPU stopped answering (fell off the bus), else 0.",
           lambda g: 1.0 if g.lost else 0.0),
)


def _installed_version() -> str:
    try:
        return metadata.version("trainwatch")
    except metadata.PackageNotFoundError:
        return "unknown"


class TrainwatchCollector(Collector):
    """Every trainwatch metric, read from `source()` at each scrape.

    `gpus` gives the machine's GPU samples; without it the GPUs attached to the snapshots are
    exported (each once, by UUID, when several runs share one). `version` is the build_info label.
    """

    def __init__(self, source: Callable[[], Sequence[Snapshot]],
                 gpus: Callable[[], Sequence[GpuSample]] | None = None, *, version: str | None = None) -> None:
        self._source = source
        self._gpus = gpus
        self._version = version if version is not None else _installed_version()
        self._failing: set[str] = set()  # runs whose metrics raised (logged once)

    def describe(self) -> list[Metric]:
        """Empty families of every name: register() then needs no collect(), and `?name[]=` filtering works."""
        return [*(_gauge(name) for name in LABELLED), *(s.empty() for s in RUN_SERIES),
                *(s.empty() for s in GPU_SERIES)]

    def collect(self) -> Iterator[Metric]:
        snaps = tuple(self._source())
        build = _gauge("trainwatch_build_info")
        build.add_sample("trainwatch_build_info", {"version": self._version}, 1.0)
        yield build
        yield from _nonempty(self._run_families(snaps))
        gpus = tuple(self._gpus()) if self._gpus is not None else _gpus_of(snaps)
        yield from _nonempty(_gpu_families(gpus))

    def _run_families(self, snaps: Sequence[Snapshot]) -> Iterator[Metric]:
        info, state = _gauge("trainwatch_run_info"), _gauge("trainwatch_run_state")
        eta, error = _gauge("trainwatch_eta_seconds"), _gauge("trainwatch_error_info")
        problem = _gauge("trainwatch_run_problem_info")
        final = _gauge("trainwatch_final_loss_predicted")
        families = [(s, s.empty()) for s in RUN_SERIES]
        every = (info, state, eta, final, error, problem, *(f for _, f in families))
        for snap in snaps:
            marks = [len(f.samples) for f in every]
            try:
                labels = {**snap.labels, "run": snap.run}
                info.add_sample(info.name, {**labels, "log": snap.log, "format": snap.format}, 1.0)
                for name in RUN_STATES:
                    state.add_sample(state.name, {**labels, "state": name}, 1.0 if snap.state == name else 0.0)
                for percentile, field in ETA_PERCENTILES:
                    _add(eta, eta.name, {**labels, "percentile": percentile}, getattr(snap.forecast, field))
                for percentile, field in LOSS_PERCENTILES:
                    _add(final, final.name, {**labels, "percentile": percentile}, getattr(snap.final_loss, field))
                if snap.error_type is not None:
                    error.add_sample(error.name, {**labels, "type": snap.error_type}, 1.0)
                if snap.problem is not None:
                    problem.add_sample(problem.name, {**labels, "problem": snap.problem}, 1.0)
                for series, family in families:
                    _add(family, _sample_name(family), labels, series.value(snap))
            except Exception:  # this run's boundary: /metrics answers for every other run
                for family, n in zip(every, marks, strict=True):
                    del family.samples[n:]
                if snap.run not in self._failing:  # once, not on every scrape
                    self._failing.add(snap.run)
                    log.exception("metrics of run %s left out of the scrapes", snap.run)
        yield from (info, state)
        yield from (f for _, f in families)
        yield from (eta, final, error, problem)


def _gpu_families(gpus: Sequence[GpuSample]) -> Iterator[Metric]:
    info, throttle = _gauge("trainwatch_gpu_info"), _gauge("trainwatch_gpu_throttle_reason_info")
    families = [(s, s.empty()) for s in GPU_SERIES]
    for g in gpus:
        labels = {"gpu": str(g.index), "uuid": g.uuid}
        info.add_sample(info.name, {**labels, "name": g.name}, 1.0)
        for reason in g.throttle:
            throttle.add_sample(throttle.name, {**labels, "reason": reason}, 1.0)
        for series, family in families:
            _add(family, _sample_name(family), labels, series.value(g))
    yield info
    yield from (f for _, f in families)
    yield throttle


def _gpus_of(snaps: Sequence[Snapshot]) -> tuple[GpuSample, ...]:
    seen: dict[str, GpuSample] = {}
    for snap in snaps:
        for g in snap.gpus:
            sample = cast("GpuSample", g)  # Snapshot.gpus holds monitor.hardware.gpu.GpuSample
            seen.setdefault(sample.uuid, sample)
    return tuple(sorted(seen.values(), key=lambda g: g.index))


def _gauge(name: str) -> Metric:
    """A family of LABELLED; samples are added with their own label sets (runs' labels may differ)."""
    return GaugeMetricFamily(name, LABELLED[name])


def _sample_name(family: Metric) -> str:
    return family.name + "_total" if family.type == "counter" else family.name


def _add(family: Metric, name: str, labels: dict[str, str], value: float | None) -> None:
    """Unknown stays absent; NaN is kept (a NaN loss is a fact the NaN alert needs)."""
    if value is None:
        return
    v = float(value)
    if family.type == "counter" and not math.isfinite(v):
        return
    family.add_sample(name, labels, v)


def _nonempty(families: Iterable[Metric]) -> Iterator[Metric]:
    return (f for f in families if f.samples)


# ---- serving ----------------------------------------------------------------------------------


def start_server(collector: Collector, host: str = defaults.LISTEN_HOST, port: int = DEFAULT_PORT, *,
                 certfile: str | None = None, keyfile: str | None = None, client_cafile: str | None = None,
                 basic_auth: tuple[str, str] | None = None,
                 routes: Callable[[WsgiApp], WsgiApp] | None = None) -> tuple[WSGIServer, threading.Thread]:
    """Serve `collector` alone (a private registry) on host:port from a daemon thread.

    `routes(metrics_app)`, when given, is the app served instead: it adds paths beside /metrics (the
    web page and the API) behind the same TLS and basic auth.

    TLS is prometheus-client's own (`certfile`/`keyfile`; `client_cafile` also requires client
    certificates). prometheus-client takes no WSGI app, so the server starts on an empty registry and
    then gets the real app, wrapped in basic auth when asked: a request in between sees no metrics.
    Stop it with `server.shutdown(); server.server_close()`. Port 0 picks a free port
    (`server.server_port`).
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    app = make_wsgi_app(registry)
    if routes is not None:
        app = routes(app)
    if basic_auth is not None:
        app = require_basic_auth(app, *basic_auth)
    if bool(certfile) != bool(keyfile):
        raise TrainwatchError("TLS needs both a certificate file and its key file")
    try:
        server, thread = start_http_server(port, addr=host, registry=CollectorRegistry(), certfile=certfile,
                                           keyfile=keyfile, client_cafile=client_cafile,
                                           client_auth_required=client_cafile is not None)
    except OSError as e:
        raise TrainwatchError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from None
    _harden(server)
    server.set_app(app)
    return server, thread


LISTEN_BACKLOG = 128
HANDLER_TIMEOUT_S = 10.0


def _harden(server: WSGIServer) -> None:
    """What prometheus-client's server leaves open to a hostile or merely busy network.

    Its listen backlog is socketserver's 5: a burst of scrapers overflows it and waits for SYN
    retries (seconds). Its TLS socket does each handshake inside accept(), in the one serving thread:
    a client that connects and says nothing would block every scrape. The handshake moves to the
    request's own thread (on first read), and a silent connection is dropped after a timeout.
    """
    sock = server.socket
    if isinstance(sock, ssl.SSLSocket):
        context = sock.context
        raw = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        server.socket = context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
    server.socket.listen(LISTEN_BACKLOG)
    server.RequestHandlerClass.timeout = HANDLER_TIMEOUT_S  # type: ignore[attr-defined]
    server.handle_error = _quiet(server.handle_error)  # type: ignore[method-assign,assignment]


def _quiet(handle_error: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """A client that fails its TLS handshake (an untrusted certificate), times out or hangs up is the
    client's business: one debug line, not socketserver's traceback on stderr."""

    def handle(request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            log.debug("client %s: %s", client_address, error)
            return
        handle_error(request, client_address)

    return handle


WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def require_basic_auth(app: WsgiApp, user: str, password: str) -> WsgiApp:
    """`app` behind HTTP basic auth (RFC 7617); credentials are compared in constant time."""
    want_user, want_password = user.encode(), password.encode()

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
        got_user, sep, got_password = given.partition(b":")
        ok = hmac.compare_digest(got_user, want_user) & hmac.compare_digest(got_password, want_password)
        if scheme.lower() == "basic" and sep and ok:
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="trainwatch", charset="UTF-8"'),
                                            ("Content-Type", "text/plain; charset=utf-8")])
        return [b"401 Unauthorized: trainwatch metrics need the configured user and password\n"]

    return guarded


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `HOST`, `:PORT` or `PORT` (IPv6 as `[::1]:PORT`) → (host, port); defaults fill the gaps."""
    text = value.strip()
    host, port_text = defaults.LISTEN_HOST, ""
    if text.startswith("["):
        inner, _, rest = text[1:].partition("]")
        host, port_text = inner, rest.removeprefix(":")
    elif text.isdigit():
        port_text = text
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        host = host or defaults.LISTEN_HOST
    elif text:
        host = text
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise TrainwatchError(f"--listen {value!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)
