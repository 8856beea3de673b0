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
from typing import Any, Protocol

from monitor.cli.options import follow_sources, option
from monitor.daemon.config import Config, load_config
from monitor.daemon.telemetry import Telemetry
from monitor.daemon.writer import Monitor, RunSpec
from monitor.errors import TrainwatchError
from monitor.follow.wake import DEFAULT_POLL_INTERVAL
from monitor.sim import write as simulate

log = logging.getLogger("trainwatch")

PUBLISH_S = 0.25
"""At most 4 publishes a second: a line after a quiet spell is published at once (scrapes see it within
milliseconds), but a run printing 1,000 lines a second does not rebuild its snapshot 1,000 times."""
SIGNAL_CHECK_S = 0.2  # how late serve may run a signal's handler (SIGHUP, SIGTERM) at worst


class Stoppable(Protocol):
    """The metrics server, as the commands that start it see it."""

    def shutdown(self) -> None: ...


def start_metrics(args: argparse.Namespace, listen: str, monitor: Monitor, telemetry: Telemetry) -> Stoppable:
    from exporters.prometheus import TrainwatchCollector, parse_listen, start_server

    host, port = parse_listen(listen)
    auth = None
    if args.basic_auth_file:
        try:
            with open(args.basic_auth_file) as fh:
                user, _, password = fh.read().strip().partition(":")
        except OSError as e:
            raise TrainwatchError(f"--basic-auth-file: {e.strerror}") from None
        if not user or not password:
            raise TrainwatchError("--basic-auth-file must hold USER:PASSWORD")
        auth = (user, password)
    gpus = telemetry.sampler.latest if telemetry.sampler is not None else None  # every GPU of the machine
    server, _ = start_server(TrainwatchCollector(monitor.snapshots, gpus), host, port, certfile=args.tls_cert,
                             keyfile=args.tls_key, basic_auth=auth)
    log.info("serving metrics on %s://%s:%d/metrics", "https" if args.tls_cert else "http", host,
             server.server_port)
    return server


def new_monitor(args: argparse.Namespace, cfg: Config) -> tuple[Monitor, Telemetry]:
    """The writer loop for the logs of `args` and `cfg`, with GPU telemetry unless --no-gpu."""
    from monitor.hardware.gpu import BackgroundSampler, make_sampler

    sampler = None if args.no_gpu else BackgroundSampler(make_sampler(), args.gpu_interval)
    gpus = option(args, cfg, "gpu", None)
    telemetry = Telemetry(sampler, fallback_gpus=gpus if isinstance(gpus, list) else None,
                          peak_override=option(args, cfg, "peak_flops", None))
    monitor = Monitor(sources=follow_sources(args, cfg),
                      poll_interval=option(args, cfg, "poll_interval", DEFAULT_POLL_INTERVAL),
                      force_poll=option(args, cfg, "poll", False),
                      keep_finished_s=option(args, cfg, "keep_finished", None),
                      max_runs=option(args, cfg, "max_runs", 100),
                      min_publish_s=option(args, cfg, "publish_interval", PUBLISH_S))
    monitor.extras = telemetry
    log.info("following %d log(s) with %s; GPUs: %s", len(monitor.followers), monitor.waker.mode,
             telemetry.status())
    return monitor, telemetry


def start_alerts(args: argparse.Namespace, cfg: Config, monitor: Monitor, *,
                 bell: Callable[[], None] | None = None, toast: Callable[[Any], None] | None = None,
                 state_dir: str | None = None) -> Any:
    """The alert rules on every publish, delivered off the writer thread; returns the notifier (close it)."""
    from exporters.notify import Notifier
    from monitor.alerts.pump import AlertPump
    from monitor.alerts.rules import AlertConfig
    from monitor.alerts.store import AlertStore

    urls = list(getattr(args, "notify", None) or ()) or list(cfg.options.get("notify", ()))
    milestones = getattr(args, "notify_milestones", None) or tuple(
        v / 100 for v in cfg.options.get("notify_milestones", ()))
    notifier = Notifier(urls, bell=bell)
    pump = AlertPump(notifier, AlertConfig(notify_before_s=option(args, cfg, "notify_before", 600.0),
                                           milestones=milestones),
                     busy=monitor.busy, toast=toast, store=AlertStore(state_dir))
    monitor.subscribe(pump.on_snapshots)
    return notifier


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    monitor, telemetry = new_monitor(args, cfg)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def reload(*_: object) -> None:
        """SIGHUP: re-read the config; runs it adds or drops change, the others keep their state."""
        try:
            monitor.reload(follow_sources(args, load_config(args.config)))
            log.info("config reloaded")
        except TrainwatchError as e:
            log.error("config not reloaded, keeping the old one: %s", e)

    signal.signal(signal.SIGHUP, reload)
    server = start_metrics(args, option(args, cfg, "listen", "127.0.0.1"), monitor, telemetry)
    notifier = start_alerts(args, cfg, monitor)
    monitor.start()
    try:
        # With a timeout: a signal the kernel hands to another thread runs its Python handler only when
        # the main thread next runs bytecode, and an untimed wait would never return to let it.
        while not stop.wait(SIGNAL_CHECK_S):
            pass
    finally:
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
        monitor = Monitor([spec], poll_interval=0.25, min_publish_s=PUBLISH_S)
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
    from exporters.tui.app import run_tui

    cfg = load_config(args.config)
    monitor, telemetry = new_monitor(args, cfg)
    server = start_metrics(args, args.metrics, monitor, telemetry) if args.metrics else None
    notifiers: list[Any] = []

    def wire(app: Any) -> None:
        """The TUI rings the bell and shows a toast for each alert, beside the configured destinations."""
        notifiers.append(start_alerts(args, cfg, monitor, bell=lambda: app.call_from_thread(app.bell),
                                      toast=lambda a: app.notify_alert(a.title, a.body, a.level)))
        monitor.start()

    try:
        return run_tui(monitor.snapshots, gpu_status=telemetry.status(), on_start=wire)
    finally:
        monitor.stop()
        for notifier in notifiers:
            notifier.close()
        telemetry.close()
        if server is not None:
            server.shutdown()
