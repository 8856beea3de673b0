"""Backtest the forecaster on real runs, the tuning and the test half apart, and print the tables for bench/README.md.

The halves are fixed in bench/split.toml, made before the forecaster was tuned on the new runs: tune on [tune]
only; the [test] half is run to report it, never to change the forecaster. Simulated runs (a slowdown, a resume,
a long GPT-2 run; timestamped, in neither half) are a third table. Each log is replayed through the same lines →
parser → state → forecaster path as live (`trainwatch backtest`), with linear extrapolation and tqdm's EMA beside.
Usage: .venv/bin/python bench/forecast_backtest.py [--half tune|test|sim ...] [LOG ...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.daemon.load import new_ingest
from monitor.follow.read import read_batches
from monitor.model.backtest import Backtest, replay
from monitor.sim.write import SimConfig, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPLIT = os.path.join(ROOT, "bench", "split.toml")
METHODS = ("trainwatch", "linear", "tqdm")
FROM = 0.1  # the targets count points from 10 % progress on
LONG_S = 120.0  # a finished run longer than this must get a forecast at every point
SIMULATED = {
    "sim-shakespeare": SimConfig(seed=3),
    "sim-slowdown-x1.4-at-40%": SimConfig(seed=4, slowdown_at=0.4, slowdown_factor=1.4),
    "sim-resume-at-50%": SimConfig(seed=5, resume_at=0.5),
    "sim-gpt2-124m-2000-iters": SimConfig(preset="gpt2-124m", seed=6, max_iters=2000),
}


def split(path: str = SPLIT) -> tuple[dict[str, list[str]], dict[str, int]]:
    """{half: logs} for the forecaster, and the max_iters to pass for logs that do not print it."""
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    halves = {half: [os.path.normpath(os.path.join(ROOT, p)) for p in doc[half]["forecast"]]
              for half in ("tune", "test")}
    given = {os.path.normpath(os.path.join(ROOT, p)): int(v) for p, v in doc.get("max_iters", {}).items()}
    return halves, given


def simulated(tmp: str) -> list[str]:
    paths = []
    for name, cfg in SIMULATED.items():
        path = os.path.join(tmp, f"{name}.log")
        write(cfg, path, instant=True, timestamps=True, start_time=1.7e9)
        paths.append(path)
    return paths


def backtest(path: str, max_iters: int | None = None) -> Backtest:
    batches = read_batches(path)
    head, first = next(batches)

    def lines() -> Iterator[str]:
        yield from first
        for _, more in batches:
            yield from more

    user: dict[str, object] = {"max_iters": max_iters} if max_iters else {}
    return replay(new_ingest(head, format=None, user=user), lines(), log=path)


@dataclass(frozen=True)
class Tally:
    """The figures the targets are about, over some points from 10 % on."""

    points: int
    without: int  # points with no forecast
    errors: dict[str, list[float]]  # |predicted − real finish| ÷ duration, per method
    inside: list[bool]  # the band held the real finish

    @staticmethod
    def of(results: list[Backtest]) -> Tally:
        pts = [(r, p) for r in results for p in r.points if p.fraction >= FROM and r.duration]
        inside = [p.p10 <= r.finished_at <= p.p90 for r, p in pts  # type: ignore[operator]
                  if p.p10 is not None and p.p90 is not None]
        return Tally(points=len(pts), without=sum(p.predicted_finish is None for _, p in pts),
                     errors={w: [e for r in results for e in r.errors(w, FROM)] for w in METHODS},
                     inside=inside)

    def median(self, which: str) -> float | None:
        return statistics.median(self.errors[which]) if self.errors[which] else None

    def coverage(self) -> float | None:
        return sum(self.inside) / len(self.inside) if self.inside else None


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def table(title: str, results: list[Backtest]) -> list[str]:
    out = [f"### {title}", "",
           "| log | time from | run | points without forecast | trainwatch | linear | tqdm | band holds truth |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        t = Tally.of([r])
        out.append(f"| {os.path.basename(r.log)} | {r.time_source} | {_minutes(r.duration)} | {t.without} of {t.points}"
                   f" | {pct(t.median('trainwatch'))} | {pct(t.median('linear'))} | {pct(t.median('tqdm'))}"
                   f" | {pct(t.coverage())} |")
    t = Tally.of(results)
    tw, better = t.median("trainwatch"), min((m for m in (t.median("linear"), t.median("tqdm")) if m is not None),
                                               default=None)
    long_runs = [r for r in results if r.duration and r.duration > LONG_S]
    gaps = [os.path.basename(r.log) for r in long_runs if Tally.of([r]).without]
    real = [r for r in results if os.sep + os.path.join("fixtures", "real") + os.sep in r.log]
    tr = Tally.of(real)
    out += ["", f"All {t.points} points from 10 % on, {len(results)} logs: median |error| trainwatch {pct(tw)}, "
            f"linear {pct(t.median('linear'))}, tqdm {pct(t.median('tqdm'))}; the p10–p90 band held the real finish "
            f"at {pct(t.coverage())} of them; {t.without} points without a forecast."
            + (f" The {len(real)} real CPU runs alone ({tr.points} points): trainwatch {pct(tr.median('trainwatch'))}, "
               f"linear {pct(tr.median('linear'))}, tqdm {pct(tr.median('tqdm'))}, band {pct(tr.coverage())}."
               if real and len(real) < len(results) else ""), "",
            f"Targets: median ≤ 2 %: {_check(tw is not None and tw <= 0.02)}; ≤ ½ of the better baseline "
            f"({pct(better)}): {_check(tw is not None and better is not None and tw <= better / 2)}; band 75–85 %: "
            f"{_check(t.coverage() is not None and 0.75 <= t.coverage() <= 0.85)}; "  # type: ignore[operator]
            f"a forecast at every point of the {len(long_runs)} finished runs > 2 min: "
            + (_check(True) if not gaps else f"{_check(False)} ({', '.join(gaps)})"), ""]
    return out


def _check(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", action="append", choices=("tune", "test", "sim"),
                    help="which tables (default: all three); tune on `tune` only")
    ap.add_argument("logs", nargs="*", help="backtest these logs instead (one table)")
    args = ap.parse_args(argv)
    halves, given = split()
    if args.logs:
        paths = [os.path.normpath(os.path.abspath(p)) for p in args.logs]
        print("\n".join(table("Logs", [backtest(p, given.get(p)) for p in paths])))
        return 0
    titles = {"tune": "Tuning half", "test": "Test half (never tuned on)", "sim": "Simulated (in neither half)"}
    with tempfile.TemporaryDirectory() as tmp:
        for half in args.half or ["tune", "test", "sim"]:
            paths = simulated(tmp) if half == "sim" else halves[half]
            missing = [p for p in paths if not os.path.exists(p)]
            print("\n".join(table(titles[half], [backtest(p, given.get(p)) for p in paths if p not in missing])))
            if missing:
                print(f"Missing, left out: {', '.join(os.path.relpath(p, ROOT) for p in missing)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
