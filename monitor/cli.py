"""The `trainwatch` command: parses arguments, wires monitor and exporters together, maps errors to exit 2."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence

from monitor import energy, snapshot
from monitor.compute import dataset_tokens_from_bin
from monitor.errors import TrainwatchError
from monitor.load import load

COMMANDS = ("watch", "serve", "report", "backtest", "simulate", "demo", "check")


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what the log may not say (flags override the log)")
    g.add_argument("--max-iters", type=int, help="iterations of the run (nanoGPT runs 0..max_iters inclusive)")
    g.add_argument("--tokens-per-iter", type=int, help="tokens per optimizer step")
    g.add_argument("--eval-interval", type=int, help="iterations between evals")
    g.add_argument("--dataset-tokens", type=float, help="tokens in the training set, for epochs")
    g.add_argument("--data-dir", help="nanoGPT data directory holding train.bin (uint16 tokens: size/2)")
    g.add_argument("--format", help="log format (default: detected)")
    g.add_argument("--run-name", help="run label (default: the log's file name without extension)")
    g.add_argument("--power-watts", type=float, help="GPU power to assume when NVML is absent")
    g.add_argument("--price-per-kwh", type=float, help="electricity price, for cost")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="trainwatch", description="Live monitor for LLM training logs.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="one-shot summary of a log")
    r.add_argument("log")
    r.add_argument("--json", action="store_true", help="print trainwatch.report/1 JSON")
    _common(r)
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


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"report": cmd_report, "backtest": cmd_backtest}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in COMMANDS and not argv[0].startswith("-"):
        argv.insert(0, "watch")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return HANDLERS[args.command](args)
    except TrainwatchError as e:
        print(f"trainwatch: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"trainwatch: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line for the user, the traceback only when asked for
        if os.environ.get("TRAINWATCH_DEBUG"):
            raise
        print(f"trainwatch: internal error: {type(e).__name__}: {e} (set TRAINWATCH_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
