"""The five ways the forecaster failed on real runs it was never tuned on (issue 15), as constructed runs.

Each run is written as `python train.py ... 2>&1 | ts '%.s'` would write it (tests/stamped_runs.py) and
replayed the way `trainwatch backtest` replays a log, so the real finish is known at every point.
"""

from __future__ import annotations

import random
import statistics

import pytest
from stamped_runs import Run, StepTime, lines

from monitor.model.backtest import Backtest, replay
from monitor.model.forecast import forecast
from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from parsers.nanogpt import DEFAULTS, NanoGptParser

STEP = 0.05  # seconds per iteration, as on the project's CPU


def backtest(run: Run, step_s: StepTime) -> Backtest:
    return replay(Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS))), lines(run, step_s))


def errors(b: Backtest) -> dict[float, float | None]:
    """Signed error of the predicted finish at each point, as a share of the run's duration."""
    assert b.finished_at is not None and b.duration
    return {p.fraction: None if p.predicted_finish is None else (p.predicted_finish - b.finished_at) / b.duration
            for p in b.points}


def noisy(seed: int, level: StepTime = lambda i, t: 1.0) -> StepTime:
    rng = random.Random(seed)
    return lambda i, t: STEP * level(i, t) * rng.lognormvariate(0, 0.03)


@pytest.mark.parametrize("log_interval", [10, 1])
def test_a_buffered_stamped_run_gets_a_forecast_at_every_point(log_interval: int) -> None:
    """Without -u, 8 KiB of lines reach `ts` at once and share one stamp: inside a burst the printed
    durations time the run, and the gap before a burst's first line (the whole burst before) is no step."""
    b = backtest(Run(max_iters=2500, log_interval=log_interval, buffered=True), noisy(1))
    assert len({p.at for p in b.points}) >= 2  # several bursts, each answering the fractions it passed
    errs = errors(b)
    assert all(e is not None and abs(e) < 0.01 for f, e in errs.items() if f >= 0.1), errs


def wander(seed: int) -> StepTime:
    """±10 % around the same level: a neighbour job taking the core for 10–40 s now and then."""
    rng = random.Random(seed)
    switches, t, slow = [], 0.0, False
    while t < 1000:
        t += rng.uniform(10, 40)
        slow = not slow
        switches.append((t, 1.1 if slow else 0.9))

    def level(i: int, now: float) -> float:
        return next((lv for at, lv in reversed(switches) if at <= now), 0.9)

    return noisy(seed, level)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_wandering_speed_is_not_chased(seed: int) -> None:
    """A 10 % swing that goes back and forth is no change of level, and no trend to extrapolate: once the
    swings have been seen, the forecast stays near the long mean, as linear extrapolation does."""
    b = backtest(Run(max_iters=2500), wander(seed))
    late = {f: e for f, e in errors(b).items() if f >= 0.4}
    assert all(e is not None and abs(e) < 0.05 for e in late.values()), late
    linear = statistics.median(b.errors("linear", 0.4))
    assert statistics.median(abs(e) for e in late.values() if e is not None) <= max(linear, 0.01)


def test_early_evals_are_not_taken_literally() -> None:
    """log_interval 1, an eval of 2 × 100 batches every 100 iterations, and the first eval slowed by the first
    checkpoint save. Before any eval is measured the evals ahead still count (nanoGPT's eval costs about
    2 × eval_iters forward passes, a third of a step each), and one slow eval does not set the rest."""
    eval_s = 2 * 100 * STEP / 3
    b = backtest(Run(max_iters=1500, log_interval=1, eval_interval=100, eval_iters=100, eval_s=eval_s,
                     first_save_s=eval_s), noisy(2))
    errs = errors(b)
    assert all(e is not None and abs(e) < 0.05 for e in errs.values()), errs
    assert all(e is not None and abs(e) < 0.02 for f, e in errs.items() if f >= 0.3), errs


def test_kill_and_resume() -> None:
    """SIGKILL at iteration 1300, a resumed process from the checkpoint at 1200. Right after the resume the
    speed of the process before stands in; after it, the iterations redone and the evals left count."""
    run = Run(max_iters=2400, eval_interval=200, kill_at=1300)
    text = lines(run, noisy(3))
    resumed = next(i for i, ln in enumerate(text) if "Resuming" in ln)
    first_iter = next(i for i in range(resumed, len(text)) if " iter 1200:" in text[i])
    ingest = Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS)))
    ingest.feed_lines(text[:first_iter + 1], None)
    fc = forecast(ingest.state, ingest.state.last_wall or 0.0)
    assert fc.eta_s is not None and fc.iter_s == pytest.approx(STEP, rel=0.05)
    assert fc.evals_left == 6  # 1200 (redone, on its first step), 1400, …, 2400

    b = backtest(run, noisy(3))
    after = {f: e for f, e in errors(b).items() if f >= 0.6}  # the kill was at 54 %
    assert all(e is not None and abs(e) < 0.01 for e in after.values()), after


def test_a_slowdown_not_yet_seen_widens_the_band_with_the_run_ahead() -> None:
    """Nothing foretells a slowdown that starts at 60 % (a neighbour arrives); the band says so: on a run
    that has been steady so far its upper side still allows for one, the more so the more run is ahead, and
    it leans that way (a run rarely speeds up beyond what it has shown)."""
    b = backtest(Run(max_iters=2500), noisy(4, lambda i, t: 1.0 if i < 1500 else 1.6))
    before = [p for p in b.points if 0.1 <= p.fraction <= 0.5]
    above = [(p.p90 - p.predicted_finish) / (p.predicted_finish - p.at) for p in before  # type: ignore[operator]
             if p.p90 is not None and p.predicted_finish is not None]
    below = [(p.predicted_finish - p.p10) / (p.predicted_finish - p.at) for p in before  # type: ignore[operator]
             if p.p10 is not None and p.predicted_finish is not None]
    assert len(above) == len(before) == len(below)
    assert above == sorted(above, reverse=True) and above[0] > 1.5 * above[-1]
    assert all(a > b for a, b in zip(above, below, strict=True))
    assert above[0] > 0.15  # at 10 %, a remaining time 15 % longer is inside the band
