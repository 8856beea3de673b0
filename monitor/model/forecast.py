"""The forecaster: pure functions of a run state and `now`.

Model: the remaining time is (iterations left) × (time per iteration ahead) + (evals left) × (what an
eval adds). The time per iteration comes from the current segment's samples (monitor.model.samples):
the segment's long mean, with today's departure from it carried only as long as this run's departures
last, or a clear trend (monitor.model.speed). The band widens with the share of the run still ahead,
more toward slower, and with how much this run's speed has wandered so far.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import cast

from monitor import limits
from monitor.model.samples import measure
from monitor.model.speed import Speed, level
from monitor.model.state import RunState
from monitor.snapshot import Forecast

MIN_SAMPLES = 3
Z90 = 1.2816  # standard normal quantile for p90
SPREAD_SCALE = 1.0  # calibration of the measured spread (see _relative_sigma)
UNSEEN_SLOWDOWN = 0.25  # log-scale spread per unit of run still ahead, for slowdowns not yet seen
UNSEEN_SPEEDUP = 0.1  # … and for speed-ups
MAX_SIGMA = 2.0  # a band of ×13 either way says "unknown"; absurd samples must not overflow exp()
EVAL_PRIOR_WEIGHT = 2  # the eval cost nanoGPT's settings imply counts as this many measured evals
LIVE_WINDOW = 1000
LIVE_MIN_S = 30.0
LIVE_RATIO = (0.7, 1.5)


def live_correction(state: RunState) -> float:
    """How much slower the run really is than its printed durations say, measured on lines seen live.

    nanoGPT's `time` is one iteration's; the `.item()` sync of a logged iteration lands in the next,
    unprinted one, so printed times run 4–7 % fast on real GPUs. Lines that arrived live (unbuffered)
    carry their arrival time: over steady stretches, arrival gaps ÷ rebuilt-clock gaps is the factor.
    A factor far from 1 means the clock is not real time (an accelerated replay): then none is applied.
    """
    if state.time_axis != "reconstructed":
        return 1.0
    wall = clock = 0.0
    pairs = 0
    pts = state.iters.points[-LIVE_WINDOW:]
    for a, b in zip(pts, pts[1:], strict=False):
        if a.wall is None or b.wall is None or b.overhead or b.segment != a.segment or b.t <= a.t:
            continue
        wall += b.wall - a.wall
        clock += b.t - a.t
        pairs += 1
    if pairs < 10 or wall < LIVE_MIN_S or clock <= 0:
        return 1.0
    ratio = wall / clock
    return ratio if LIVE_RATIO[0] <= ratio <= LIVE_RATIO[1] else 1.0


def eval_overhead(state: RunState, iter_s: float, unprinted: float | None = None) -> float:
    """Seconds an eval (with its checkpoint save) adds to its iteration: the median of the evals measured
    and of EVAL_PRIOR_WEIGHT stand-ins for what nanoGPT's eval costs, so that the evals ahead count before
    the first is seen, and one slow eval (the first checkpoint save, a neighbour) does not set the rest.

    nanoGPT evaluates eval_iters batches of each split, forward only: 2 × eval_iters passes of one
    micro-batch, each about a third of a training micro-step (forward and backward).
    """
    seen = list(state.eval_costs) or ([unprinted] if unprinted is not None else [])
    evals, micro = _stated(state, "eval_iters"), _micro_steps(state)
    if evals and evals > 0 and micro is not None:
        seen += [2 * evals * iter_s / (3 * micro)] * EVAL_PRIOR_WEIGHT
    return statistics.median(seen) if seen else 0.0


def _micro_steps(state: RunState) -> float | None:
    """Forward-backward passes per iteration: tokens per iteration ÷ tokens per micro-batch, as nanoGPT prints it."""
    tokens, batch, block, acc = (_stated(state, k) for k in
                                 ("tokens_per_iter", "batch_size", "block_size", "gradient_accumulation_steps"))
    if tokens and batch and block and tokens >= batch * block:
        return tokens / (batch * block)
    return acc if acc and acc >= 1 else None


def _stated(state: RunState, key: str) -> float | None:
    """A number the log or the user gave (the script's defaults are for another model and machine)."""
    s = state.setting(key)
    return state.number(key) if s is not None and s.source != "default" else None


def evals_left(current_iter: int, max_iters: int, eval_interval: int | None) -> int:
    """nanoGPT evaluates at the top of every iteration that is a multiple of eval_interval, max_iters included."""
    if not eval_interval or eval_interval <= 0 or current_iter >= max_iters:
        return 0
    return max_iters // eval_interval - current_iter // eval_interval


def max_iters_known(state: RunState) -> int | None:
    """max_iters when the log or the user states it, or when the log shows the config and the default applies."""
    s = state.setting("max_iters")
    if s is None:
        return None
    if s.source == "default" and not _config_shown(state):
        return None
    return state.max_iters


def _config_shown(state: RunState) -> bool:
    return "config_file" in state.logged or any(
        k not in ("tokens_per_iter", "params", "vocab_size", "fused_adamw") and not k.endswith("_params")
        for k in state.logged)


def forecast(state: RunState, now: float) -> Forecast:
    last = state.last
    tokens_per_iter = state.number("tokens_per_iter")
    if state.error is not None:
        return Forecast(reason=f"{state.status} ({state.error.type})")
    if last is None:
        return Forecast(reason="waiting for the first iteration")
    model = _model(state)
    if model is None:
        return Forecast(reason="warming up: too few steady iterations yet")
    speed, correction = model.speed, model.correction
    iter_s = speed.at(last.iter) * correction
    if not math.isfinite(iter_s) or iter_s <= 0:
        return Forecast(reason="no usable iteration times")
    tokens_per_s = limits.within(tokens_per_iter / iter_s, 0.0, limits.MAX_RATE) if tokens_per_iter else None
    slowdown = speed.mean / speed.before if speed.before else None
    log_interval = max(1, int(state.number("log_interval") or 1))
    overhead = model.eval_s
    gap_s = iter_s * max(1, _median_gap(state) or log_interval)
    silence = now - state.last_wall if state.last_wall is not None else None
    stalled = silence - gap_s if silence is not None and silence > max(5 * gap_s, 60.0) + overhead else None
    base = Forecast(iter_s=iter_s, tokens_per_s=tokens_per_s, eval_overhead_s=overhead or None,
                    expected_gap_s=gap_s, stalled_s=stalled, slowdown=slowdown)
    max_iters = max_iters_known(state)
    if max_iters is None:
        return replace(base, reason="max_iters unknown: pass --max-iters")
    if last.iter >= max_iters:
        return replace(base, eta_s=0.0, eta_p10_s=0.0, eta_p90_s=0.0, evals_left=0,
                        finish_at=state.last_wall, finish_p10=state.last_wall, finish_p90=state.last_wall)
    interval = state.number("eval_interval")
    n_evals = evals_left(last.iter, max_iters, int(interval) if interval else None)
    remaining_iters = max_iters - last.iter
    future_s = speed.mean_between(last.iter + 1, max_iters) * correction
    eta_from_last = remaining_iters * future_s + n_evals * overhead
    if not eta_from_last <= limits.MAX_ETA_S:  # (NaN too) past any plausible run, and any clock's range
        return replace(base, reason="no plausible ETA: over 100 years at this speed")
    since_last = max(0.0, silence) if silence is not None else 0.0
    eta = max(0.0, eta_from_last - since_last)
    faster, slower = _relative_sigma(model, remaining_iters, last.iter - (_segment_first(state) or 0))
    lo = eta_from_last * math.exp(-Z90 * faster) - since_last
    hi = eta_from_last * math.exp(Z90 * slower) - since_last
    lo, hi = max(0.0, lo), max(eta, hi)
    return replace(base, eta_s=eta, eta_p10_s=min(lo, eta), eta_p90_s=hi, evals_left=n_evals,
                    finish_at=now + eta, finish_p10=now + min(lo, eta), finish_p90=now + hi)


@dataclass(frozen=True, slots=True)
class _Model:
    """What the forecast needs from the state's history: rebuilt only when a line changed it, so a
    republish (the ETA counting down, once a second per run) costs next to nothing."""

    speed: Speed
    correction: float
    cv: float  # coefficient of variation of the samples the level rests on
    drift: float  # spread of this run's block means
    eval_s: float  # what an eval adds (see eval_overhead)


def _model(state: RunState) -> _Model | None:
    key = (id(state.last), state.iteration_lines, len(state.segments), state.time_axis)
    cached = state.memo.get("forecast")
    if isinstance(cached, tuple) and cached[0] == key:
        return cast("_Model | None", cached[1])
    model = None
    seg = state.last.segment if state.last else 0
    samples = measure(state, seg)
    if len(samples.steady) < MIN_SAMPLES and seg > 0:
        samples = measure(state, seg - 1)  # just resumed: the process before ran on the same machine
    if len(samples.steady) >= MIN_SAMPLES:
        speed = level(samples.steady)
        xs = [s for _, s in samples.steady]
        window = xs[-speed.n:]
        mean = statistics.fmean(window)
        cv = _pstdev(window, mean) / mean if len(window) > 1 and mean > 0 else 0.0
        per_iter = speed.long or speed.mean
        extra = [seconds - steps * per_iter for seconds, steps in samples.eval_gaps]
        correction = live_correction(state)
        unprinted = max(0.0, statistics.fmean(extra)) if extra else None
        iter_s = speed.at(state.last.iter if state.last else 0) * correction
        model = _Model(speed, correction, cv, _block_drift(xs), eval_overhead(state, iter_s, unprinted))
    state.memo["forecast"] = (key, model)
    return model


def _pstdev(xs: list[float], mean: float) -> float:
    """Population standard deviation in floats (statistics.pstdev works in exact fractions: slow)."""
    return math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs))


def _relative_sigma(model: _Model, remaining: int, done: int) -> tuple[float, float]:
    """Log-scale spreads of the remaining time, (faster, slower): noise of the mean, drift that grows with
    the horizon, and the risk of changes this run has not shown yet, which grows with the share of the
    run still ahead. That risk is lopsided: a neighbour arriving, a kill and resume or throttling slow a
    run down, and little speeds one up that the past did not show.

    Drift is measured on this run: the spread of block means of its steady samples, which captures
    slow wandering (thermal, data, neighbours) that per-sample noise does not. The scales were
    calibrated on the tuning half of bench/split.toml so that the p10–p90 band holds the real finish
    ~80 % of the time (bench/forecast_backtest.py).
    """
    noise = model.cv / math.sqrt(max(1, min(remaining, model.speed.n)))
    drift = model.drift
    horizon = remaining / max(1, remaining + done)
    measured = SPREAD_SCALE * math.sqrt(noise**2 + (drift**2 + 0.02**2) * (0.25 + horizon))
    return (min(MAX_SIGMA, math.hypot(measured, UNSEEN_SPEEDUP * horizon)),
            min(MAX_SIGMA, math.hypot(measured, UNSEEN_SLOWDOWN * horizon)))


def _block_drift(samples: list[float], blocks: int = 8) -> float:
    if len(samples) < 2 * blocks:
        return 0.05
    size = len(samples) // blocks
    means = [statistics.fmean(samples[i * size:(i + 1) * size]) for i in range(blocks)]
    m = statistics.fmean(means)
    return _pstdev(means, m) / m if m > 0 else 0.05


def _median_gap(state: RunState) -> int | None:
    pts = state.iters.points[-21:]
    gaps = [b.iter - a.iter for a, b in zip(pts, pts[1:], strict=False) if b.iter > a.iter]
    return int(statistics.median(gaps)) if gaps else None


def _segment_first(state: RunState) -> int | None:
    return state.segments[-1].first_iter if state.segments else None
