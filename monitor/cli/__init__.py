"""The `trainwatch` command: parses arguments, dispatches to a command, maps errors to exit 2.

This package is the one place where monitor and exporters are wired together (import-linter checks it).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from monitor.errors import TrainwatchError
from monitor.units import printable

COMMANDS = ("watch", "serve", "report", "backtest", "simulate", "demo", "check", "install-service", "plan")


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line naming it, like every other user error (`trainwatch -h` has the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {printable(message)}\n")


def _top() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    p = _Parser(prog="trainwatch", description="Live monitor for LLM training logs.")
    version = importlib.metadata.version("trainwatch")
    p.add_argument("-V", "--version", action="version", version=f"trainwatch {version}")
    return p, p.add_subparsers(dest="command", required=True)


def _add_plan(sub: argparse._SubParsersAction) -> None:
    from monitor.cli.plan import add_arguments

    add_arguments(sub.add_parser("plan", help="what a nanoGPT run will need before it starts: tokens, FLOPs, "
                                 "time, VRAM, energy (from its config file, or the log of a started run)"))


def plan_parser() -> argparse.ArgumentParser:
    """The parser of `trainwatch plan` alone: it imports none of the following machinery, so plan answers
    in a blink."""
    p, sub = _top()
    _add_plan(sub)
    return p


def build_parser() -> argparse.ArgumentParser:
    from monitor.cli.options import add_follow_options, add_listen_option, add_plan_options, add_run_options
    from monitor.daemon import install as service
    from monitor.sim import write as simulate

    p, sub = _top()
    w = sub.add_parser("watch", help="the live terminal view (the default: `trainwatch LOG…`)")
    w.add_argument("logs", nargs="*", metavar="LOG|URL",
                   help="log files, globs ('runs/*/out.log'), directories, or a remote serve's http(s)://HOST:PORT")
    add_listen_option(w, "--metrics", True, "also serve Prometheus metrics")
    w.add_argument("--tls-ca", metavar="CA.pem",
                   help="certificates to check a remote https:// serve against (default: the system's)")
    add_run_options(w)
    add_follow_options(w)
    add_plan_options(w, gpu_name=False)
    s = sub.add_parser("serve", help="headless: Prometheus /metrics, the web page, the JSON API and notifications")
    s.add_argument("logs", nargs="*", metavar="LOG", help="log files, globs ('runs/*/out.log') or directories")
    add_listen_option(s, "--listen", False, "where /metrics, the web page and the API listen")
    add_run_options(s)
    add_follow_options(s)
    add_plan_options(s, gpu_name=False)
    r = sub.add_parser("report", help="one-shot summary of a log")
    r.add_argument("log")
    r.add_argument("--json", action="store_true", help="print trainwatch.report/1 JSON")
    add_run_options(r)
    add_plan_options(r, gpu_name=True)
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
    add_run_options(b)
    _add_plan(sub)
    return p


HANDLERS: dict[str, str] = {
    "report": "monitor.cli.oneshot:cmd_report", "backtest": "monitor.cli.oneshot:cmd_backtest",
    "serve": "monitor.cli.follow:cmd_serve", "watch": "monitor.cli.follow:cmd_watch",
    "simulate": "monitor.sim.write:run", "demo": "monitor.cli.follow:cmd_demo",
    "check": "monitor.cli.oneshot:cmd_check", "install-service": "monitor.daemon.install:run",
    "plan": "monitor.cli.plan:cmd_plan",
}
"""Imported when run: a command loads only what it uses."""


def handler_of(command: str) -> Callable[[argparse.Namespace], int]:
    module, _, name = HANDLERS[command].partition(":")
    return getattr(importlib.import_module(module), name)


class JournalFormatter(logging.Formatter):
    """Under systemd, `<N>` prefixes give each line its syslog priority, so `journalctl -p warning` works."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "-V", "--version"):
        argv.insert(0, "watch")  # `trainwatch LOG…`, `trainwatch --slurm`: the live view
    parser = plan_parser() if argv[:1] == ["plan"] else build_parser()
    args = parser.parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JournalFormatter() if os.environ.get("JOURNAL_STREAM") else
                         logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    wanted = os.environ.get("TRAINWATCH_LOG_LEVEL", "INFO").upper()
    level = logging.getLevelName(wanted)
    logging.basicConfig(level=level if isinstance(level, int) else logging.INFO, handlers=[handler])
    if not isinstance(level, int):
        logging.getLogger("trainwatch").warning("TRAINWATCH_LOG_LEVEL=%s is not a level (DEBUG, INFO, WARNING, "
                                                "ERROR): using INFO", printable(wanted))
    # watchdog logs every inotify event at debug: with stderr in a followed folder, each line is an event
    logging.getLogger("watchdog").setLevel(max(logging.INFO, logging.getLogger().level))
    try:
        return handler_of(args.command)(args)
    except TrainwatchError as e:  # the user's to fix; anything else is a bug, below
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
