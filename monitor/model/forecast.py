"""The forecaster: pure functions of a run state and `now`.

Model: the remaining time is (iterations left) × (steady-state time per iteration) + (evals left) ×
(measured overhead per eval). The steady state comes from non-overhead samples of the current
segment: a trimmed mean over a recent window that restarts at a detected change of level, so it
follows throttling or a neighbour job but not single noisy samples. The band widens with the share
of the run still ahead and with how much this run's speed has wandered so far.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import cast

from monitor.model.state import RunState
from monitor.snapshot import Forecast, IterPoint

MIN_SAMPLES = 3
BLOCK = 8
CHANGE_THRESHOLD = 0.15
TREND_T = 6.0
TREND_MIN = 0.05
Z90 = 1.2816  # standard normal quantile for p90
SPREAD_SCALE = 1.25  # calibration of the measured spread (see _relative_sigma)
UNSEEN_CHANGE = 0.08  # relative error per unit of run still ahead, for changes not yet seen
BURST_RATIO = 0.25
"""A line stamped this soon after the previous one, relative to its printed duration, was delivered with it."""
BURST_LINES = 5  # this many lines delivered together are a buffered burst (as for live reads)
MAX_SIGMA = 2.0  # a band of ×13 either way says "unknown"; absurd samples must not overflow exp()
LIVE_WINDOW = 1000
LIVE_MIN_S = 30.0
LIVE_RATIO = (0.7, 1.5)




def steady_samples(state: RunState) -> list[tuple[int, float]]:
    """(iteration, seconds per iteration) from the current segment's steady-state lines, oldest first."""
    pts = state.iters.points
    if not pts:
        return []
    seg = pts[-1].segment
    current = [p for p in pts if p.segment == seg]
    if state.time_axis == "timestamps":
        return _stamped_samples(current)
    return [(p.iter, p.dt_s) for p in current if not p.overhead and p.dt_s is not None]


def _stamped_samples(pts: list[IterPoint]) -> list[tuple[int, float]]:
    """On a timestamped log a line's time is its stamp, unless it came in a burst: a block-buffered stdout
    reaches `ts` 8 KiB at a time, so ~100 lines share one stamp. Inside a burst the printed duration is the
    only timing there is (as for a burst read live), and the gap before a burst's first line spans the whole
    burst before it, so it is no sample. A few lines delivered together late keep their stamped gaps: one
    long, the next short, they average out."""
    out: list[tuple[int, float]] = []
    read: list[tuple[IterPoint, float | None]] = []  # lines stamped together, each with its stamped sample

    def close_read() -> None:
        if len(read) >= BURST_LINES:
            out.extend((p.iter, p.dt_s) for p, _ in read[1:] if not p.overhead and p.dt_s is not None)
        else:
            out.extend((p.iter, s) for p, s in read if s is not None)
        read.clear()

    for prev, p in zip(pts, pts[1:], strict=False):
        stamped = (p.t - prev.t) / (p.iter - prev.iter)
        if p.dt_s is None or stamped >= BURST_RATIO * p.dt_s:
            close_read()
        read.append((p, stamped if not p.overhead and stamped > 0 else None))
    close_read()
    return out


@dataclass(frozen=True, slots=True)
class Speed:
    """The steady time per iteration: a level, and a trend when the run steadily speeds up or slows down
    (modded-nanogpt's attention-window warm-up, a growing sequence length)."""

    mean: float  # over the window it rests on
    n: int  # samples in that window
    center: float  # mean iteration of the window
    slope: float = 0.0  # seconds per iteration, per iteration
    before: float | None = None  # the level before the latest change, if one was detected

    def at(self, iteration: float) -> float:
        return self._clamp(self.mean + self.slope * (iteration - self.center))

    def mean_between(self, first: float, last: float) -> float:
        return self.at((first + last) / 2)

    def _clamp(self, v: float) -> float:
        """A trend is extrapolated at most to half again or two thirds of the level it rests on."""
        return min(max(v, self.mean / 1.5), self.mean * 1.5)


def level(samples: list[tuple[int, float]]) -> Speed:
    """The speed the rest of the run will most likely see.

    With no change, every sample of the segment counts: for a stationary but noisy speed the long
    mean is the best estimate, and a short window only chases noise.
    """
    xs = [s for _, s in samples]
    points = _change_points(xs)
    if not points or _reverts(xs, points):
        # no change, or the speed went back and forth (a neighbour job coming and going): the long
        # mean is the best guess of what the rest of the run will see
        return _speed(samples, None)
    start = points[0]
    return _speed(samples[start:], statistics.fmean(xs[max(0, start - 8 * BLOCK):start]))


def _speed(window: list[tuple[int, float]], before: float | None) -> Speed:
    xs = [s for _, s in window]
    its = [float(i) for i, _ in window]
    mean, center = statistics.fmean(xs), statistics.fmean(its)
    return Speed(mean=mean, n=len(xs), center=center, slope=_trend(its, xs, center, mean), before=before)


def _trend(its: list[float], xs: list[float], cx: float, my: float) -> float:
    """The least-squares slope when it is clear: t ≥ TREND_T and a change of ≥ TREND_MIN across the window."""
    n = len(xs)
    if n < 4 * BLOCK:
        return 0.0
    sxx = sum((i - cx) ** 2 for i in its)
    if sxx <= 0:
        return 0.0
    slope = sum((i - cx) * (x - my) for i, x in zip(its, xs, strict=True)) / sxx
    resid = sum((x - my - slope * (i - cx)) ** 2 for i, x in zip(its, xs, strict=True)) / (n - 2)
    se = math.sqrt(resid / sxx) if resid > 0 else 0.0
    span = abs(slope) * (its[-1] - its[0])
    if (se == 0 or abs(slope) / se >= TREND_T) and span >= TREND_MIN * my:
        return slope
    return 0.0


def _reverts(xs: list[float], points: list[int]) -> bool:
    """Whether the speed now is back at a level it had before an intervening, different one."""
    bounds = [len(xs), *points, 0]
    levels = [statistics.fmean(xs[b:a]) for a, b in zip(bounds, bounds[1:], strict=False) if a > b]
    now = levels[0]
    return any(abs(old / now - 1) <= CHANGE_THRESHOLD for old in levels[2:])


def _change_points(xs: list[float], most: int = 4) -> list[int]:
    """Every sustained change of level, newest first (at most `most`)."""
    found: list[int] = []
    end = len(xs)
    while len(found) < most:
        cp = _change_point(xs[:end])
        if not cp:
            break
        found.append(cp)
        end = cp
    return found


def _change_point(xs: list[float]) -> int:
    """Index where the latest sustained change of level begins (0: none).

    Works on medians of blocks of BLOCK samples (robust to single spikes). A boundary is a change
    when the mean of all blocks after it differs from the median of the blocks just before it by
    more than CHANGE_THRESHOLD, and the newest blocks still differ the same way (sustained).
    """
    nb = len(xs) // BLOCK
    if nb < 4:
        return 0
    off = len(xs) - nb * BLOCK
    meds = [statistics.median(xs[off + i * BLOCK:off + (i + 1) * BLOCK]) for i in range(nb)]
    newest = statistics.fmean(meds[-2:])
    suffix = 0.0
    best_k, best_shift = 0, 0.0
    for k in range(nb - 1, 1, -1):
        suffix += meds[k]
        if k > nb - 2:
            continue
        left = statistics.median(meds[max(0, k - 8):k])
        after = suffix / (nb - k)
        shift = after / left - 1 if left > 0 else 0.0
        if abs(shift) > CHANGE_THRESHOLD and (newest / left - 1) * shift > (CHANGE_THRESHOLD / 2) * abs(shift):
            if abs(shift) > abs(best_shift):  # the true boundary is where the contrast peaks
                best_k, best_shift = k, shift
        elif best_k:
            break  # past the run of candidate boundaries around the latest change
    return off + best_k * BLOCK if best_k else 0


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
    if last is None:
        return Forecast(reason="waiting for the first iteration")
    if state.error is not None:
        return Forecast(reason=f"{state.status} ({state.error.type})")
    model = _model(state)
    if model is None:
        return Forecast(reason="warming up: too few steady iterations yet")
    speed, correction = model.speed, model.correction
    iter_s = speed.at(last.iter) * correction
    if not math.isfinite(iter_s) or iter_s <= 0:
        return Forecast(reason="no usable iteration times")
    tokens_per_s = tokens_per_iter / iter_s if tokens_per_iter else None
    slowdown = speed.mean / speed.before if speed.before else None
    log_interval = max(1, int(state.number("log_interval") or 1))
    overhead = state.overhead_s / state.overhead_count if state.overhead_count else 0.0
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
    since_last = max(0.0, silence) if silence is not None else 0.0
    eta = max(0.0, eta_from_last - since_last)
    sigma = _relative_sigma(model, remaining_iters, last.iter - (_segment_first(state) or 0))
    lo = eta_from_last * math.exp(-Z90 * sigma) - since_last
    hi = eta_from_last * math.exp(Z90 * sigma) - since_last
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


def _model(state: RunState) -> _Model | None:
    key = (id(state.last), state.iteration_lines, len(state.segments), state.time_axis)
    cached = state.memo.get("forecast")
    if isinstance(cached, tuple) and cached[0] == key:
        return cast("_Model | None", cached[1])
    samples = steady_samples(state)
    model = None
    if len(samples) >= MIN_SAMPLES:
        speed = level(samples)
        xs = [s for _, s in samples]
        window = xs[-speed.n:]
        mean = statistics.fmean(window)
        cv = _pstdev(window, mean) / mean if len(window) > 1 and mean > 0 else 0.0
        model = _Model(speed, live_correction(state), cv, _block_drift(xs))
    state.memo["forecast"] = (key, model)
    return model


def _pstdev(xs: list[float], mean: float) -> float:
    """Population standard deviation in floats (statistics.pstdev works in exact fractions: slow)."""
    return math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / len(xs))


def _relative_sigma(model: _Model, remaining: int, done: int) -> float:
    """Log-scale spread of the remaining time: noise of the mean, drift that grows with the horizon,
    and the risk of changes this run has not shown yet (a neighbour, a kill and resume).

    Drift is measured on this run: the spread of block means of its steady samples, which captures
    slow wandering (thermal, data, neighbours) that per-sample noise does not. The two scales were
    calibrated on real runs so that the p10–p90 band holds the real finish ~80 % of the time
    (bench/forecast_backtest.py).
    """
    noise = model.cv / math.sqrt(max(1, min(remaining, model.speed.n)))
    drift = model.drift
    horizon = remaining / max(1, remaining + done)
    measured = math.sqrt(noise**2 + (drift**2 + 0.02**2) * (0.25 + horizon))
    return min(MAX_SIGMA, math.sqrt((SPREAD_SCALE * measured) ** 2 + (UNSEEN_CHANGE * horizon) ** 2))


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
