"""Backtest the forecaster on real runs and print the table for bench/README.md.

Logs: the real CPU runs in tests/fixtures/real (timestamped with `ts '%.s'`), modded-nanogpt records from
../shared/corpus (their cumulative train_time is the truth), nanoGPT corpus logs (clock rebuilt from their
printed times), and simulated runs with timestamps (a slowdown, a resume, a long GPT-2 run).
Usage: .venv/bin/python bench/forecast_backtest.py [LOG...]
"""

from __future__ import annotations

import glob
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.daemon.load import new_ingest
from monitor.follow.read import read_batches
from monitor.model.backtest import Backtest, replay
from monitor.sim.write import SimConfig, write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")
SIMULATED = {
    "sim-shakespeare": SimConfig(seed=3),
    "sim-slowdown-x1.4-at-40%": SimConfig(seed=4, slowdown_at=0.4, slowdown_factor=1.4),
    "sim-resume-at-50%": SimConfig(seed=5, resume_at=0.5),
    "sim-gpt2-124m-2000-iters": SimConfig(preset="gpt2-124m", seed=6, max_iters=2000),
}


def logs(tmp: str) -> list[str]:
    found = sorted(glob.glob(os.path.join(ROOT, "tests", "fixtures", "real", "*.log")))
    found += sorted(glob.glob(os.path.join(CORPUS, "modded-nanogpt", "*.log")))
    found += [os.path.join(CORPUS, "nanogpt", n) for n in (
        "char-windows-cli-overrides-log-interval-1.log", "char-tmux-pane-capture-ansi-shell-session.log",
        "tinystories-51m-nohup-wandb-stderr-reordered.log")]
    for name, cfg in SIMULATED.items():
        path = os.path.join(tmp, f"{name}.log")
        write(cfg, path, instant=True, timestamps=True, start_time=1.7e9)
        found.append(path)
    return [p for p in found if os.path.exists(p)]


def backtest(path: str) -> Backtest:
    batches = read_batches(path)
    head, first = next(batches)

    def lines() -> Iterator[str]:
        yield from first
        for _, more in batches:
            yield from more

    return replay(new_ingest(head, format=None, user={}), lines(), log=path)


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f} %"


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        paths = argv or logs(tmp)
        print("| log | time from | trainwatch | linear | tqdm | band holds truth |")
        print("| --- | --- | --- | --- | --- | --- |")
        results = [backtest(p) for p in paths]
    inside: list[bool] = []
    for r in results:
        inside += [p.p10 <= r.finished_at <= p.p90 for p in r.points  # type: ignore[operator]
                   if p.fraction >= 0.1 and p.p10 is not None and p.p90 is not None and r.finished_at]
        print(f"| {os.path.basename(r.log)} | {r.time_source} | {pct(r.median_error('trainwatch'))} | "
              f"{pct(r.median_error('linear'))} | {pct(r.median_error('tqdm'))} | {pct(r.coverage())} |")
    tw = [e for r in results for e in r.errors("trainwatch")]
    lin = [e for r in results for e in r.errors("linear")]
    tq = [e for r in results for e in r.errors("tqdm")]
    print(f"\nAll points from 10 % on ({len(tw)}): median |error| trainwatch {pct(statistics.median(tw))}, "
          f"linear {pct(statistics.median(lin))}, tqdm {pct(statistics.median(tq))}; "
          f"the p10–p90 band held the real finish at {pct(sum(inside) / len(inside))} of them.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
