"""The commands that read a log once, or look at the machine: report, backtest, check."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

from monitor.cli.options import plan_target, run_name, user_settings
from monitor.daemon.load import load
from monitor.errors import TrainwatchError
from monitor.model.build import build_snapshot
from monitor.model.plan import check


def cmd_check(args: argparse.Namespace) -> int:
    """The environment, one fact a line: NVML, the file watcher, package ownership."""
    import importlib.metadata

    from monitor.follow.wake import make_waker
    from monitor.hardware.gpu import check_lines

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


def cmd_report(args: argparse.Namespace) -> int:
    from exporters import report

    ingest = load(args.log, format=args.format, user=user_settings(args))
    now = time.time()
    snap = build_snapshot(ingest.state, run=run_name(args, args.log), log=args.log, now=now,
                          lines=ingest.lines, parse_errors=ingest.parse_errors, history=False,
                          price_per_kwh=args.price_per_kwh, power_watts=args.power_watts,
                          target_loss=args.target_loss)
    if snap.no_progress is not None:
        raise TrainwatchError(snap.no_progress)
    target = plan_target(args)
    if target is not None:
        snap = replace(snap, plan=check(snap, target))
        if snap.plan is None:
            print("trainwatch: warning: no plan for this run: its GPU (give --gpu NAME) or its FLOPs (tokens per "
                  "iteration and parameters) are not known", file=sys.stderr)
    print(report.to_json(snap) if args.json else report.to_text(snap))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from exporters import backtest_report
    from monitor.daemon.load import new_ingest
    from monitor.follow.read import read_batches
    from monitor.model.backtest import replay

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
