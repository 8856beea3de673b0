"""The `trainwatch` command: parses arguments, wires monitor and exporters together, maps errors to exit 2."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from monitor import config, energy, service, simulate, snapshot
from monitor.compute import dataset_tokens_from_bin
from monitor.config import Config, RunConfig, load_config
from monitor.errors import TrainwatchError
from monitor.load import load
from monitor.run import Monitor, RunSpec, Sources
from monitor.telemetry import Telemetry
from monitor.units import parse_duration, printable
from monitor.wake import DEFAULT_POLL_INTERVAL
from parsers.detect import PARSERS

log = logging.getLogger("trainwatch")

PUBLISH_S = 0.25
"""At most 4 publishes a second: a line after a quiet spell is published at once (scrapes see it within
milliseconds), but a run printing 1,000 lines a second does not rebuild its snapshot 1,000 times."""

COMMANDS = ("watch", "serve", "report", "backtest", "simulate", "demo", "check", "install-service")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what the log may not say (flags override the log)")
    g.add_argument("--max-iters", type=int, help="iterations of the run (nanoGPT runs 0..max_iters inclusive)")
    g.add_argument("--tokens-per-iter", type=int, help="tokens per optimizer step")
    g.add_argument("--eval-interval", type=int, help="iterations between evals")
    g.add_argument("--dataset-tokens", type=float, help="tokens in the training set, for epochs")
    g.add_argument("--data-dir", help="nanoGPT data directory holding train.bin (uint16 tokens: size/2)")
    g.add_argument("--format", choices=[*PARSERS, "auto"],
                   help="log format: nanogpt, llmc, modded, nanochat, hf, auto (default: detected)")
    g.add_argument("--run-name", help="run label (default: the log's file name without extension)")
    g.add_argument("--power-watts", type=float, help="GPU power to assume when NVML is absent")
    g.add_argument("--price-per-kwh", type=float, help="electricity price, for cost")


def _following(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("following")
    g.add_argument("--config", help="TOML config file (default: $XDG_CONFIG_HOME/trainwatch/config.toml if present)")
    g.add_argument("--poll", action="store_true", default=None, help="poll only (no inotify), e.g. on NFS/Lustre")
    g.add_argument("--poll-interval", type=parse_duration, metavar="DURATION",
                   help=f"how often files are re-read when no file event comes (default {DEFAULT_POLL_INTERVAL:g}s)")
    g.add_argument("--keep-finished", type=parse_duration, metavar="DURATION",
                   help="drop finished or crashed runs this long after their last line (default: keep)")
    g.add_argument("--max-runs", type=int, help="follow at most this many logs (default 100)")
    g.add_argument("--no-gpu", action="store_true", help="do not read NVML")
    g.add_argument("--gpu", type=_int_list, help="GPU indexes of the run (default: found from its process)")
    g.add_argument("--gpu-interval", type=parse_duration, default=1.0, metavar="DURATION",
                   help="how often GPUs are sampled (default 1s)")
    g.add_argument("--peak-flops", type=float,
                   help="the GPU's dense bf16 peak FLOP/s, for MFU (default: from its name)")
    n = p.add_argument_group("notifications")
    n.add_argument("--notify", action="append", metavar="URL",
                   help="apprise URL (ntfy://topic, slack://…, json://host:port/path…); repeatable")
    n.add_argument("--notify-before", type=parse_duration, metavar="DURATION",
                   help="'finishing soon' lead time (default 10m)")
    n.add_argument("--notify-milestones", type=_fractions, metavar="25,50,75",
                   help="also notify at these percentages of the run (default: none)")


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) / 100 for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of percentages: {text!r}") from None
    if not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"percentages must be between 0 and 100: {text!r}")
    return values


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of GPU indexes: {text!r}") from None


def _listen(p: argparse.ArgumentParser, flag: str, default: str | None, help: str) -> None:
    if default is None:  # an optional feature: the bare flag turns it on at the default address
        p.add_argument(flag, nargs="?", const="127.0.0.1", metavar="HOST:PORT", help=help)
    else:
        p.add_argument(flag, metavar="HOST:PORT", help=f"{help} (default {default}:10464)")
    p.add_argument("--tls-cert", help="serve metrics over TLS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument("--basic-auth-file", help="file holding USER:PASSWORD; scrapes must authenticate")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainwatch", description="Live monitor for LLM training logs.")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="the live terminal view (the default: `trainwatch LOG…`)")
    w.add_argument("logs", nargs="*", metavar="LOG", help="log files, globs ('runs/*/out.log') or directories")
    _listen(w, "--metrics", None, "also serve Prometheus metrics (default 127.0.0.1:10464)")
    _common(w)
    _following(w)
    s = sub.add_parser("serve", help="headless: Prometheus /metrics and notifications")
    s.add_argument("logs", nargs="*", metavar="LOG", help="log files, globs ('runs/*/out.log') or directories")
    _listen(s, "--listen", "127.0.0.1", "where /metrics listens")
    _common(s)
    _following(s)
    r = sub.add_parser("report", help="one-shot summary of a log")
    r.add_argument("log")
    r.add_argument("--json", action="store_true", help="print trainwatch.report/1 JSON")
    _common(r)
    sim = sub.add_parser("simulate", help="write a realistic nanoGPT log live (warm-up, evals, checkpoints, failures)")
    simulate.add_arguments(sim)
    d = sub.add_parser("demo", help="a simulated run followed live in the terminal view: no GPU, no training")
    d.add_argument("--speed", type=float, default=5.0, help="how much faster than real time (default 5)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--max-iters", type=int, default=20000, help="length of the simulated run (default 20000)")
    sub.add_parser("check", help="the environment: NVML, file watcher, package names")
    inst = sub.add_parser("install-service", help="put the systemd units in place (user, or --system)")
    service.add_arguments(inst)
    b = sub.add_parser("backtest", help="replay a finished log and compare forecasts with what happened")
    b.add_argument("log")
    b.add_argument("--json", action="store_true", help="print trainwatch.backtest/1 JSON")
    _common(b)
    return p


def user_settings(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in ("max_iters", "tokens_per_iter", "eval_interval", "dataset_tokens"):
        v = getattr(args, key, None)
        if v is not None:
            out[key] = v
    data_dir = getattr(args, "data_dir", None)
    if data_dir:
        path = os.path.join(data_dir, "train.bin")
        try:
            out["dataset_tokens"] = dataset_tokens_from_bin(os.path.getsize(path))
        except OSError as e:
            raise TrainwatchError(f"--data-dir: cannot read {path}: {e.strerror}") from None
    return out


def run_name(args: argparse.Namespace, log: str) -> str:
    return getattr(args, "run_name", None) or os.path.splitext(os.path.basename(log))[0]


def follow_sources(args: argparse.Namespace, cfg: Config) -> Sources:
    """The runs to follow: the config's and the command line's, flags overriding both."""
    if not args.logs and not cfg.runs:
        raise TrainwatchError("no log to follow: name one (trainwatch LOG) or add [[run]] to the config file")
    if args.run_name and len(args.logs) == 1 and not cfg.runs:
        cfg = replace(cfg, runs=(RunConfig(log=args.logs[0], name=args.run_name),))
        args = argparse.Namespace(**{**vars(args), "logs": []})
    flags = {"settings": user_settings(args), "format": args.format, "power_watts": args.power_watts,
             "price_per_kwh": args.price_per_kwh}
    return config.sources(cfg, list(args.logs), flags)


def option(args: argparse.Namespace, cfg: Config, name: str, default: object) -> Any:
    """A following option: the flag, else the config file's value, else the default."""
    flag = getattr(args, name, None)
    if flag is not None:
        return flag
    return cfg.options.get(name, default)


def start_metrics(args: argparse.Namespace, listen: str, monitor: Monitor, telemetry: Telemetry) -> object:
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


def new_monitor(args: argparse.Namespace, cfg: Config, *,
                min_publish_s: float = PUBLISH_S) -> tuple[Monitor, Telemetry]:
    """The writer loop for the logs of `args` and `cfg`, with GPU telemetry unless --no-gpu."""
    from monitor.gpu import BackgroundSampler, make_sampler

    sampler = None if args.no_gpu else BackgroundSampler(make_sampler(), args.gpu_interval)
    telemetry = Telemetry(sampler, fallback_gpus=option(args, cfg, "gpu", None),
                          peak_override=option(args, cfg, "peak_flops", None))
    monitor = Monitor(sources=follow_sources(args, cfg),
                      poll_interval=option(args, cfg, "poll_interval", DEFAULT_POLL_INTERVAL),
                      force_poll=option(args, cfg, "poll", False),
                      keep_finished_s=option(args, cfg, "keep_finished", None),
                      max_runs=option(args, cfg, "max_runs", 100), min_publish_s=min_publish_s)
    monitor.extras = telemetry
    log.info("following %d log(s) with %s; GPUs: %s", len(monitor.followers), monitor.waker.mode,
             telemetry.status())
    return monitor, telemetry


def start_alerts(args: argparse.Namespace, cfg: Config, monitor: Monitor, *,
                 bell: Callable[[], None] | None = None, toast: Callable[[Any], None] | None = None,
                 state_dir: str | None = None) -> Any:
    """The alert rules on every publish, delivered off the writer thread; returns the notifier (close it)."""
    from exporters.alert_pump import AlertPump
    from exporters.notify import Notifier
    from monitor.alert_state import AlertStore
    from monitor.alerts import AlertConfig

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
        stop.wait()
    finally:
        monitor.stop()
        notifier.close()
        telemetry.close()
        server.shutdown()  # type: ignore[attr-defined]
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from exporters.tui.app import run_tui
    from monitor.gpu import BackgroundSampler
    from monitor.simgpu import SimulatedGpu

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


def cmd_check(args: argparse.Namespace) -> int:
    """The environment, one fact a line: NVML, the file watcher, package ownership."""
    import importlib.metadata

    from monitor.gpu import check_lines
    from monitor.wake import make_waker

    lines = [f"trainwatch {importlib.metadata.version('trainwatch')}, Python {sys.version.split()[0]}"]
    lines += check_lines()
    waker = make_waker([], force_poll=False)
    lines.append(f"file watcher: {waker.mode}" + ("" if waker.mode == "inotify" else
                                                   " (no inotify: changes are found by polling)"))
    waker.close()
    owners = importlib.metadata.packages_distributions()
    ok = True
    for name in ("monitor", "parsers", "exporters"):
        others = [d for d in owners.get(name, []) if d != "trainwatch"]
        ok &= not others
        lines.append(f"package {name}: " + (f"ALSO provided by {', '.join(others)} — install trainwatch in its own "
                                            "venv (pipx install .)" if others else "trainwatch's alone"))
    print("\n".join(lines))
    return 0 if ok else 2


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
            server.shutdown()  # type: ignore[attr-defined]


def cmd_report(args: argparse.Namespace) -> int:
    from exporters import report

    ingest = load(args.log, format=args.format, user=user_settings(args))
    now = time.time()
    snap = snapshot.build(ingest.state, run=run_name(args, args.log), log=args.log, now=now,
                          lines=ingest.lines, parse_errors=ingest.parse_errors, history=False,
                          price_per_kwh=args.price_per_kwh)
    if args.power_watts is not None:
        e = energy.from_power_flag(args.power_watts, snap.elapsed_s)
        snap = snapshot.build(ingest.state, run=snap.run, log=args.log, now=now, lines=ingest.lines,
                              parse_errors=ingest.parse_errors, history=False, energy=e,
                              price_per_kwh=args.price_per_kwh)
    print(report.to_json(snap) if args.json else report.to_text(snap))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from exporters import backtest_report
    from monitor.backtest import replay
    from monitor.load import new_ingest, read_batches

    batches = read_batches(args.log)
    head, first = next(batches)
    ingest = new_ingest(head, format=args.format, user=user_settings(args))
    result = replay(ingest, _chain(first, batches), log=args.log)
    print(backtest_report.to_json(result) if args.json else backtest_report.to_text(result))
    return 0


def _chain(first: list[str], rest: Iterator[tuple[bytes, list[str]]]) -> Iterator[str]:
    yield from first
    for _, lines in rest:
        yield from lines


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "report": cmd_report, "backtest": cmd_backtest, "serve": cmd_serve, "watch": cmd_watch,
    "simulate": simulate.run, "demo": cmd_demo, "check": cmd_check, "install-service": service.run,
}


class JournalFormatter(logging.Formatter):
    """Under systemd, `<N>` prefixes give each line its syslog priority, so `journalctl -p warning` works."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "watch")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if os.environ.get("JOURNAL_STREAM") else
                         logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=os.environ.get("TRAINWATCH_LOG_LEVEL", "INFO").upper(), handlers=[handler])
    try:
        return HANDLERS[args.command](args)
    except (TrainwatchError, ValueError) as e:
        print(f"trainwatch: error: {printable(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `trainwatch report … | head`: the reader left, nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # a bug: one line for the user, the traceback only when asked for
        if os.environ.get("TRAINWATCH_DEBUG"):
            raise
        print(f"trainwatch: internal error: {type(e).__name__}: {printable(str(e))} "
              "(set TRAINWATCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
