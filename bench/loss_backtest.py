"""Backtest the final-loss prediction on real finished runs, per half of the fixed split, and print the tables
for bench/README.md.

Each log is replayed line by line; at 5 %, 10 %, 20 % … 90 % of max_iters (the first line at or past each) the
prediction is made from what the log said so far, exactly as a snapshot would (monitor.model.finalloss), beside two
baselines: "it stays" (the last val loss so far) and a power law a + b·x^−c on the val points so far. The truth
is the run's val loss at max_iters (for a nanochat speedrun, each phase's own). Scored: points from 20 % to 90 %
where the val points already allow the power law (3 past step 0).
Usage: .venv/bin/python bench/loss_backtest.py [--split bench/split.toml] [--half tune|test|both]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.daemon.load import new_ingest
from monitor.follow.read import read_batches
from monitor.model.finalloss import final_loss
from monitor.model.forecast import max_iters_known
from monitor.model.lossfit import power_law
from monitor.snapshot import FinalLoss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True, slots=True)
class Point:
    phase: int
    fraction: float
    iter: int
    predicted: FinalLoss
    stays: float | None
    power_law: float | None
    val_points: int  # past step 0
    truth: float | None = None

    @property
    def scored(self) -> bool:
        return self.truth is not None and 0.2 <= self.fraction <= 0.9 and self.val_points >= 3


def replay(path: str, max_iters: int | None) -> list[Point]:
    batches = read_batches(path)
    head, first = next(batches)
    ingest = new_ingest(head, format=None, user={"max_iters": max_iters} if max_iters else {})
    state = ingest.state

    def lines() -> Iterator[str]:
        yield from first
        for _, more in batches:
            yield from more

    points: list[Point] = []
    ends: dict[int, float] = {}  # phase → its val loss at its max_iters
    targets, phase = list(FRACTIONS), 0
    for raw in lines():
        seen, evaluated = state.iteration_lines, state.last_eval
        ingest.feed_lines([raw], None)
        mi = max_iters_known(state)
        if len(state.segments) != phase and state.format == "nanochat":
            targets, phase = list(FRACTIONS), len(state.segments)  # a new speedrun phase is a new run
        ev = state.last_eval
        if ev is not evaluated and ev is not None and ev.val_loss is not None and mi and ev.iter >= mi:
            ends[phase] = ev.val_loss
        if state.iteration_lines == seen or state.last is None or mi is None or not targets:
            continue
        if state.last.iter / mi < targets[0]:
            continue
        while targets and state.last.iter / mi >= targets[0]:
            target = targets.pop(0)
        vals = [(e.iter, e.val_loss) for e in state.evals.points if e.val_loss is not None]
        vals = [v for v in vals if v[0] <= state.last.iter]
        points.append(Point(phase, target, state.last.iter, final_loss(state), vals[-1][1] if vals else None,
                            power_law(vals, mi), sum(1 for i, _ in vals if i > 0)))
    return [Point(p.phase, p.fraction, p.iter, p.predicted, p.stays, p.power_law, p.val_points, ends.get(p.phase))
            for p in points]


def fmt(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def errors(points: list[Point], which: str) -> list[float]:
    out = []
    for p in points:
        v = {"trainwatch": p.predicted.p50, "stays": p.stays, "power_law": p.power_law}[which]
        if p.scored and v is not None and p.truth is not None:
            out.append(abs(v - p.truth))
    return out


def inside(points: list[Point]) -> list[bool]:
    return [p.predicted.p10 <= p.truth <= p.predicted.p90 for p in points  # type: ignore[operator]
            if p.scored and p.predicted.p10 is not None and p.predicted.p90 is not None]


def half(name: str, paths: list[str], max_iters: dict[str, int]) -> None:
    print(f"\n### {name} half\n")
    print("| log | schedule | scored points | predicted | trainwatch | it stays | power law | band holds | "
          "no prediction (reason) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    every: list[Point] = []
    for rel in paths:
        path = os.path.normpath(os.path.join(ROOT, rel))
        if not os.path.exists(path):
            print(f"| {os.path.basename(rel)} | not here | | | | | | | |")
            continue
        pts = replay(path, max_iters.get(rel))
        every += pts
        scored = [p for p in pts if p.scored]
        held = inside(pts)
        reasons = sorted({p.predicted.reason for p in scored if p.predicted.reason})
        sched = next((p.predicted.schedule for p in reversed(pts) if p.predicted.schedule), "")
        predicted = sum(p.predicted.p50 is not None for p in scored)
        print(f"| {os.path.basename(rel)} | {sched} | {len(scored)} | {predicted} | "
              f"{fmt(med(errors(pts, 'trainwatch')))} | {fmt(med(errors(pts, 'stays')))} | "
              f"{fmt(med(errors(pts, 'power_law')))} | {f'{sum(held)}/{len(held)}' if held else '—'} | "
              f"{'; '.join(reasons)[:120]} |")
    tw, st, pl, held = errors(every, "trainwatch"), errors(every, "stays"), errors(every, "power_law"), inside(every)
    silent = [p for p in every if p.predicted.p50 is None and not p.predicted.reason]
    scored = [p for p in every if p.scored]
    print(f"\n{name}: {len(scored)} scored points, {len(tw)} with a prediction; median |predicted − real final val| "
          f"trainwatch {fmt(med(tw))}, it stays {fmt(med(st))}, power law {fmt(med(pl))}; the p10–p90 band held the "
          f"truth at {sum(held)}/{len(held)} = {100 * sum(held) / max(1, len(held)):.0f} % of them; "
          f"{len(every)} points in all, {len(silent)} with neither a prediction nor a reason.")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default=os.path.join(ROOT, "bench", "split.toml"))
    ap.add_argument("--half", choices=("tune", "test", "both"), default="both")
    args = ap.parse_args(argv)
    try:
        with open(args.split, "rb") as fh:
            split = tomllib.load(fh)
    except OSError as e:
        print(f"{args.split}: {e.strerror}", file=sys.stderr)
        return 2
    max_iters = split.get("max_iters", {})
    for name in ("tune", "test") if args.half == "both" else (args.half,):
        half(name, split[name]["loss"], max_iters)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
