"""What the forecaster costs per publish: `forecast()` with its per-version model rebuilt (a line arrived) and
cached (a republish with no new line), on the state of each log read whole. Process CPU time, best of 5 × 20.

To compare with other code, run this file from a checkout of it: `git archive main | tar -x -C /tmp/main &&
cp bench/forecast_cost.py /tmp/main/bench/ && .venv/bin/python /tmp/main/bench/forecast_cost.py LOG...`.
Usage: .venv/bin/python bench/forecast_cost.py [LOG ...] (default: two real fixtures, one buffered)
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from monitor.daemon.load import load
from monitor.model.forecast import forecast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = [os.path.join(ROOT, "tests", "fixtures", "real", n) for n in ("interval1.log", "buffered-a.log")]


def best(call: Callable[[], object], repeat: int) -> float:
    """The fastest of 5 rounds of `repeat` calls, seconds per call."""
    times = []
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(repeat):
            call()
        times.append((time.process_time() - t0) / repeat)
    return min(times)


def costs(path: str) -> tuple[int, float, float]:
    """(history points, seconds per forecast with the model rebuilt, seconds with it cached)."""
    state = load(path).state
    now = (state.last_wall or 0.0) + 1.0

    def rebuilt() -> object:
        state.memo.clear()
        return forecast(state, now)

    return len(state.iters.points), best(rebuilt, 20), best(lambda: forecast(state, now), 200)


def main(paths: list[str]) -> int:
    for path in paths or DEFAULT:
        points, rebuild, cached = costs(path)
        print(f"{os.path.basename(path)}: {points} points, model rebuilt {rebuild * 1e3:.2f} ms, "
              f"cached {cached * 1e6:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
