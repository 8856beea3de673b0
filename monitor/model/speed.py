"""The speed of a run: its level now, how long a departure from its long mean lasts, and a clear trend.

Pure functions of (iteration, seconds per iteration) samples, oldest first (monitor.model.samples).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace

BLOCK = 8
CHANGE_THRESHOLD = 0.15
TREND_T = 6.0
TREND_MIN = 0.05
MAX_BLOCKS = 32  # a segment's samples make at most this many blocks for measuring how long departures last


@dataclass(frozen=True, slots=True)
class Speed:
    """The steady time per iteration: a level, and a trend when the run steadily speeds up or slows down
    (modded-nanogpt's attention-window warm-up, a growing sequence length)."""

    mean: float  # over the window it rests on
    n: int  # samples in that window
    center: float  # mean iteration of the window
    slope: float = 0.0  # seconds per iteration, per iteration
    before: float | None = None  # the level before the latest change, if one was detected
    long: float | None = None  # the segment's mean
    recent: float | None = None  # its latest block's mean
    memory: float = 0.0  # iterations over which a departure from the long mean fades, measured on this run

    def at(self, iteration: float) -> float:
        return self._clamp(self.mean + self.slope * (iteration - self.center))

    def mean_between(self, first: float, last: float) -> float:
        """The mean time per iteration over [first, last]: a clear trend goes on; otherwise the speed is the
        segment's long mean, and today's departure from it (a neighbour job, a quiet spell) fades as this
        run's departures have faded so far: by e^(−k/memory) k iterations ahead."""
        if self.slope or self.long is None or self.recent is None:
            return self.at((first + last) / 2)
        r, m = max(1.0, last - first), self.memory
        held = 1.0 if math.isinf(m) else m / r * -math.expm1(-r / m) if m > 0 else 0.0
        return self.long + held * (self.recent - self.long)

    def _clamp(self, v: float) -> float:
        """A trend is extrapolated at most to half again or two thirds of the level it rests on."""
        return min(max(v, self.mean / 1.5), self.mean * 1.5)


def level(samples: list[tuple[int, float]]) -> Speed:
    """The speed now (the level since the latest sustained change, for the display and the slowdown alert)
    and what the rest of the run will see (see Speed.mean_between)."""
    xs = [s for _, s in samples]
    long, recent, memory = _persistence(samples)
    points = _change_points(xs)
    if not points or _reverts(xs, points):
        # no change, or the speed went back and forth (a neighbour job coming and going)
        return replace(_speed(samples, None), long=long, recent=recent, memory=memory)
    start = points[0]
    return replace(_speed(samples[start:], statistics.fmean(xs[max(0, start - 8 * BLOCK):start])),
                   long=long, recent=recent, memory=memory)


def _persistence(samples: list[tuple[int, float]]) -> tuple[float, float, float]:
    """(long mean, latest block's mean, memory in iterations) of the segment's samples.

    The block means' lag-one autocorrelation ρ says how long a departure lasts here: ~0 on plain noise
    (nothing to carry forward), near 1 after a lasting change; memory = one block ÷ −ln ρ.
    """
    xs = [s for _, s in samples]
    long = statistics.fmean(xs)
    size = max(BLOCK, len(xs) // MAX_BLOCKS)
    nb = len(xs) // size
    if nb < 4:
        return long, long, 0.0
    off = len(xs) - nb * size
    dev = [statistics.fmean(xs[off + i * size:off + (i + 1) * size]) - long for i in range(nb)]
    var = sum(d * d for d in dev)
    rho = sum(a * b for a, b in zip(dev, dev[1:], strict=False)) / var if var > 0 else 0.0
    per_block = (samples[-1][0] - samples[off][0]) / nb
    memory = 0.0 if rho <= 0 else math.inf if rho >= 1 else -per_block / math.log(rho)
    return long, long + dev[-1], memory


def _speed(window: list[tuple[int, float]], before: float | None) -> Speed:
    xs = [s for _, s in window]
    its = [float(i) for i, _ in window]
    mean, center = statistics.fmean(xs), statistics.fmean(its)
    return Speed(mean=mean, n=len(xs), center=center, slope=_trend(its, xs, center, mean), before=before)


def _trend(its: list[float], xs: list[float], cx: float, my: float) -> float:
    """The least-squares slope when it is clear: t ≥ TREND_T, a change of ≥ TREND_MIN across the window,
    and each half of the window slopes the same way by at least a third as much (a step, such as a
    neighbour job arriving, fits a line too, but its halves are flat)."""
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
    if not ((se == 0 or abs(slope) / se >= TREND_T) and span >= TREND_MIN * my):
        return 0.0
    h = n // 2
    for part_i, part_x in ((its[:h], xs[:h]), (its[h:], xs[h:])):
        part = _least_squares(part_i, part_x)
        if part * slope <= 0 or abs(part) < abs(slope) / 3:
            return 0.0
    return slope


def _least_squares(its: list[float], xs: list[float]) -> float:
    cx, my = statistics.fmean(its), statistics.fmean(xs)
    sxx = sum((i - cx) ** 2 for i in its)
    return sum((i - cx) * (x - my) for i, x in zip(its, xs, strict=True)) / sxx if sxx > 0 else 0.0


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
