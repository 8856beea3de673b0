"""The commands that follow logs live: serve, the terminal view, the demo; and their wiring of
metrics, notifications and GPU telemetry."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from monitor import defaults
from monitor.cli.options import effective, follow_sources, read_basic_auth, slurm_wanted, slurm_watch
from monitor.daemon.config import Config, load_config
from monitor.daemon.slurm import SlurmWatch
from monitor.daemon.telemetry import Telemetry
from monitor.daemon.writer import Monitor, RunSpec
from monitor.errors import TrainwatchError
from monitor.sim import write as simulate

log = logging.getLogger("trainwatch")

SIGNAL_CHECK_S = 0.2  # how late serve may run a signal's handler (SIGHUP, SIGTERM) at worst


class Stoppable(Protocol):
    """The metrics server, as the commands that start it see it."""

    def shutdown(self) -> None: ...


@dataclass(frozen=True)
class WebServer:
    """/metrics, the page and the API: stopping it also ends the event streams, which the HTTP server's
    shutdown() does not wait for."""

    server: Any
    hub: Any

    def shutdown(self) -> None:
        self.hub.close()
        self.server.shutdown()
        self.server.server_close()


def start_metrics(args: argparse.Namespace, listen: str, monitor: Monitor, telemetry: Telemetry) -> Stoppable:
    """/metrics, the web page and the JSON API on one server."""
    from exporters.prometheus import TrainwatchCollector, parse_listen, start_server
    from exporters.sse import EventHub
    from exporters.web.routes import with_web

    host, port = parse_listen(listen)
    auth = read_basic_auth(args.basic_auth_file) if args.basic_auth_file else None
    gpus = telemetry.sampler.latest if telemetry.sampler is not None else None  # every GPU of the machine
    hub = EventHub()
    monitor.subscribe(hub.publish)
    server, _ = start_server(TrainwatchCollector(monitor.snapshots, gpus), host, port, certfile=args.tls_cert,
                             keyfile=args.tls_key, basic_auth=auth,
                             routes=lambda metrics: with_web(metrics, monitor.snapshots, hub))
    scheme = "https" if args.tls_cert else "http"
    log.info("serving metrics on %s://%s:%d/metrics", scheme, host, server.server_port)
    log.info("the web page on %s://%s:%d/ and the JSON API under /api/v1/", scheme, host, server.server_port)
    return WebServer(server, hub)


def new_monitor(args: argparse.Namespace, cfg: Config) -> tuple[Monitor, Telemetry, SlurmWatch | None]:
    """The writer loop for the logs of `args` and `cfg` (and their Slurm jobs, asked in the background),
    with GPU telemetry unless --no-gpu."""
    from monitor.hardware.gpu import BackgroundSampler, make_sampler

    s = effective(args, cfg)
    sampler = None if args.no_gpu else BackgroundSampler(make_sampler(), s.gpu_interval)
    telemetry = Telemetry(sampler, fallback_gpus=list(s.gpu) if s.gpu is not None else None,
                          peak_override=s.peak_flops)
    slurm = slurm_watch(args, cfg)
    monitor = Monitor(sources=follow_sources(args, cfg, slurm), poll_interval=s.poll_interval, force_poll=s.poll,
                      keep_finished_s=s.keep_finished, max_runs=s.max_runs, min_publish_s=s.publish_interval)
    monitor.extras = telemetry
    if slurm is not None:
        slurm.on_change = monitor.reload  # new jobs and Slurm's new word reach the writer at its next pass
        slurm.start()
        log.info("following the Slurm jobs of %s, asking Slurm every %gs", slurm.describe(), slurm.interval_s)
    log.info("following %d log(s) with %s; GPUs: %s", len(monitor.followers), monitor.waker.mode,
             telemetry.status())
    return monitor, telemetry, slurm


def start_alerts(args: argparse.Namespace, cfg: Config, monitor: Monitor, *,
                 bell: Callable[[], None] | None = None, toast: Callable[[Any], None] | None = None,
                 state_dir: str | None = None) -> Any:
    """The alert rules on every publish, delivered off the writer thread; returns the notifier (close it)."""
    from exporters.notify import Notifier
    from monitor.alerts.pump import AlertPump
    from monitor.alerts.rules import AlertConfig
    from monitor.alerts.store import AlertStore

    s = effective(args, cfg)
    notifier = Notifier(s.notify, bell=bell)
    pump = AlertPump(notifier, AlertConfig(notify_before_s=s.notify_before, milestones=s.notify_milestones),
                     busy=monitor.busy, toast=toast, store=AlertStore(state_dir))
    monitor.subscribe(pump.on_snapshots)
    return notifier


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    monitor, telemetry, slurm = new_monitor(args, cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def reload(*_: object) -> None:
        """SIGHUP: re-read the config; runs it adds or drops change, the others keep their state."""
        try:
            monitor.reload(follow_sources(args, load_config(args.config), slurm))
            log.info("config reloaded")
        except TrainwatchError as e:
            log.error("config not reloaded, keeping the old one: %s", e)
        except Exception as e:  # whatever a bad file does, a running daemon keeps its old config
            log.error("config not reloaded, keeping the old one: %s: %s", type(e).__name__, e,
                      exc_info=log.isEnabledFor(logging.DEBUG))

    signal.signal(signal.SIGHUP, reload)
    server = start_metrics(args, effective(args, cfg).listen, monitor, telemetry)
    notifier = start_alerts(args, cfg, monitor)
    monitor.start()
    try:
        # With a timeout: a signal the kernel hands to another thread runs its Python handler only when
        # the main thread next runs bytecode, and an untimed wait would never return to let it.
        while not stop.wait(SIGNAL_CHECK_S):
            pass
    finally:
        if slurm is not None:
            slurm.stop()
        monitor.stop()
        notifier.close()
        telemetry.close()
        server.shutdown()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exporters.tui.app import run_tui
    from monitor.hardware.gpu import BackgroundSampler
    from monitor.hardware.simgpu import SimulatedGpu

    cfg = simulate.SimConfig(preset="shakespeare-char", seed=args.seed, max_iters=args.max_iters)
    with tempfile.TemporaryDirectory(prefix="trainwatch-demo-") as tmp:
        path = os.path.join(tmp, "shakespeare-char.log")
        writer = simulate.start(cfg, path, speed=args.speed)
        spec = RunSpec(path, "shakespeare-char (simulated)", price_per_kwh=DEMO_PRICE)
        monitor = Monitor([spec], poll_interval=0.25, min_publish_s=defaults.PUBLISH_INTERVAL_S)
        telemetry = Telemetry(BackgroundSampler(SimulatedGpu(args.seed)), rescan_s=1.0)
        monitor.extras = telemetry
        notifiers: list[Any] = []

        def wire(app: Any) -> None:
            """Alerts as toasts in the demo (nothing is sent anywhere, nothing is remembered)."""
            notifiers.append(start_alerts(args, Config(), monitor, state_dir=tmp,
                                          toast=lambda a: app.notify_alert(a.title, a.body, a.level)))
            monitor.start()

        try:
            return run_tui(monitor.snapshots, title="trainwatch demo — a simulated run on a simulated GPU",
                           gpu_status=telemetry.status(), on_start=wire)
        finally:
            monitor.stop()
            for notifier in notifiers:
                notifier.close()
            telemetry.close()
            writer.stop()


DEMO_PRICE = 0.30  # per kWh, to show the cost line


def cmd_watch(args: argparse.Namespace) -> int:
    """The live view of local logs and of remote serves (`trainwatch LOG… http://host:port…`)."""
    from exporters.remote import RemoteRuns, is_url
    from exporters.tui.app import run_tui

    cfg = load_config(args.config)
    urls = [x for x in args.logs if is_url(x)]
    args.logs = [x for x in args.logs if not is_url(x)]
    auth = read_basic_auth(args.basic_auth_file) if args.basic_auth_file else None
    remotes = [RemoteRuns(url, auth=auth, cafile=args.tls_ca) for url in urls]
    local = args.logs or cfg.runs or not urls or slurm_wanted(args, cfg)
    monitor, telemetry, slurm = new_monitor(args, cfg) if local else (None, None, None)
    if args.metrics and monitor is None:
        raise TrainwatchError("--metrics serves the local logs: name one beside the URLs")
    server = start_metrics(args, args.metrics, monitor, telemetry) if monitor and telemetry and args.metrics else None
    notifiers: list[Any] = []

    def source() -> tuple[Any, ...]:
        return (*(monitor.snapshots() if monitor else ()), *(s for r in remotes for s in r.snapshots()))

    def wire(app: Any) -> None:
        """The TUI rings the bell and shows a toast for each alert, beside the configured destinations.
        Remote runs alert where they are served."""
        for remote in remotes:
            remote.start()
        if monitor is not None:
            notifiers.append(start_alerts(args, cfg, monitor, bell=lambda: app.call_from_thread(app.bell),
                                          toast=lambda a: app.notify_alert(a.title, a.body, a.level)))
            monitor.start()

    try:
        return run_tui(source, gpu_status=telemetry.status() if telemetry else None, on_start=wire)
    finally:
        for remote in remotes:
            remote.close()
        if slurm is not None:
            slurm.stop()
        if monitor is not None:
            monitor.stop()
        for notifier in notifiers:
            notifier.close()
        if telemetry is not None:
            telemetry.close()
        if server is not None:
            server.shutdown()
