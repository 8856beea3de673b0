"""Cost of one final-loss fit (monitor.model.lossfit.predict) on a big run: 10,000 training points and 500 val points,
cosine schedule, at 50 % of the run. The budget is 50 ms; the fit runs only when a new point arrives. CPU time is
printed beside wall time: on a shared machine the wall time also counts other processes' turns.
Usage: .venv/bin/python bench/lossfit_speed.py
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.model.lossfit import Curve, predict
from monitor.model.lrschedule import Schedule

MAX_ITERS = 20_000


def main() -> int:
    rng = random.Random(1)
    sched = Schedule("config", "cosine", warmup=200, decay_start=200, decay_end=MAX_ITERS, floor=0.1, shape="cosine")
    now = MAX_ITERS // 2
    train = [(i, 3.0 + 8 * (1 + i / 100) ** -0.5 + rng.gauss(0, 0.05)) for i in range(0, now, now // 10_000)]
    val = [(i, 3.05 + 8 * (1 + i / 100) ** -0.5 + rng.gauss(0, 0.005)) for i in range(0, now, now // 500)]
    curve = Curve(train=train, val=val, max_iters=MAX_ITERS, lr=sched.at, known="config", schedule=sched.words,
                  warmup=sched.warmup)
    times, cpu = [], []
    for _ in range(20):
        t, c = time.perf_counter(), time.process_time()
        result = predict(curve, now)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    print(f"{len(train):,} train + {len(val)} val points, per fit: "
          f"wall median {1000 * statistics.median(times):.1f} ms (max {1000 * max(times):.1f}), "
          f"CPU median {1000 * statistics.median(cpu):.1f} ms; p50 {result.p50:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
