"""What the charts draw, computed from a snapshot's bounded history: pure functions, no Textual.

The history holds up to ~4096 points; a chart is at most a few hundred cells wide, so every series
is bucketed down to about two points per cell before it reaches plotext. That keeps each redraw
cheap and independent of the log's length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.snapshot import EvalPoint, IterPoint


@dataclass(frozen=True, slots=True)
class PlotLine:
    xs: tuple[float, ...] = ()
    ys: tuple[float, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.xs)

    def positive(self) -> PlotLine:
        """Only the points a log-scale axis can show: y > 0, and not below 1e-100 (plotext's ticks overflow
        around extreme exponents, as a property test found; PLOTTABLE bounds the top)."""
        keep = [i for i, y in enumerate(self.ys) if y > 1e-100]
        return PlotLine(tuple(self.xs[i] for i in keep), tuple(self.ys[i] for i in keep))


@dataclass(frozen=True, slots=True)
class LossData:
    train: PlotLine  # the logged losses, bucketed
    smooth: PlotLine  # an exponential moving average of the same
    val: PlotLine  # one marker per eval
    forecast: tuple[PlotLine, PlotLine, PlotLine] = (PlotLine(), PlotLine(), PlotLine())  # predicted val p10, p50, p90


@dataclass(frozen=True, slots=True)
class SpeedData:
    steady: PlotLine  # milliseconds per iteration of ordinary steps, bucketed
    pauses: PlotLine  # iterations that carried an eval, a checkpoint save or warm-up, clipped to `top`
    top: float | None  # upper y limit, so one long eval does not flatten the steady line
    bottom: float  # lower y limit: a little under the fastest steps, so a 10 % slowdown is a visible step
    level_ms: float | None  # the forecaster's steady-state level


def current_path(points: Sequence[IterPoint]) -> list[IterPoint]:
    """The points that led to the latest one: after a restart from an earlier iteration, the
    abandoned stretch beyond the restart point is dropped so the x axis stays monotone."""
    out: list[IterPoint] = []
    floor = math.inf
    for p in reversed(points):
        if p.iter < floor:
            out.append(p)
            floor = p.iter
    out.reverse()
    return out


def bucket(xs: Sequence[float], ys: Sequence[float], n: int) -> PlotLine:
    """At most `n` + 1 points: the first as it is (where the curve starts matters), then each bucket's
    last x and mean y (steady lines keep their level)."""
    if len(xs) <= n:
        return PlotLine(tuple(xs), tuple(ys))
    size = len(xs) / n
    bx: list[float] = [xs[0]]
    by: list[float] = [ys[0]]
    for i in range(n):
        lo, hi = int(i * size), int((i + 1) * size)
        if hi > lo:
            bx.append(xs[hi - 1])
            by.append(math.fsum(ys[lo:hi]) / (hi - lo))
    return PlotLine(tuple(bx), tuple(by))


def ema(ys: Sequence[float], span: float) -> list[float]:
    """Exponential moving average with the usual span ↔ alpha relation (alpha = 2 / (span + 1))."""
    alpha = 2.0 / (max(1.0, span) + 1.0)
    out: list[float] = []
    acc: float | None = None
    for y in ys:
        acc = y if acc is None else acc + alpha * (y - acc)
        out.append(acc)
    return out


PLOTTABLE = 1e100
"""Losses beyond this (a printed 1e308) are left off the chart: plotext's scaling overflows on them, and no
real loss is there (NaN and inf are left off too: the comparisons are false for NaN)."""


def loss_data(history: Sequence[IterPoint], evals: Sequence[EvalPoint], width: int,
              forecast: Sequence[tuple[int, float, float, float]] = ()) -> LossData:
    path = [p for p in current_path(history) if p.loss is not None and abs(p.loss) <= PLOTTABLE]
    xs = [float(p.iter) for p in path]
    ys = [p.loss for p in path if p.loss is not None]
    n = max(8, 2 * width)
    smooth = ema(ys, span=max(5.0, len(ys) / 25))
    last_iter = path[-1].iter if path else math.inf
    val = [(float(e.iter), e.val_loss) for e in evals
           if e.val_loss is not None and abs(e.val_loss) <= PLOTTABLE and e.iter <= last_iter + 1]
    # Evals of an abandoned stretch after a restart would sit beside the current path: keep the latest per iter.
    by_iter = dict(val)
    vx = sorted(by_iter)
    fx = tuple(float(p[0]) for p in forecast)

    def line(k: int) -> PlotLine:
        return PlotLine(fx, tuple(p[k] for p in forecast))

    return LossData(bucket(xs, ys, n), bucket(xs, smooth, n),
                    PlotLine(tuple(vx), tuple(by_iter[x] for x in vx)),
                    (line(1), line(2), line(3)))


def speed_data(history: Sequence[IterPoint], width: int, level_s: float | None) -> SpeedData:
    steady_x: list[float] = []
    steady_y: list[float] = []
    pause_x: list[float] = []
    pause_y: list[float] = []
    prev: IterPoint | None = None
    for p in current_path(history):
        dt = p.dt_s
        if dt is None and prev is not None and p.iter > prev.iter and p.segment == prev.segment:
            dt = (p.t - prev.t) / (p.iter - prev.iter)  # timestamped logs without a printed duration
        prev = p
        if dt is None or not math.isfinite(dt) or dt < 0:
            continue
        (pause_x if p.overhead else steady_x).append(float(p.iter))
        (pause_y if p.overhead else steady_y).append(dt * 1000.0)
    top = _top(steady_y, pause_y)
    if top is not None:
        pause_y = [min(y, top) for y in pause_y]
    steady = bucket(steady_x, steady_y, max(8, 2 * width))
    bottom = 0.0
    if steady and top is not None:
        low = min(steady.ys)
        bottom = max(0.0, low - 0.5 * (top - low))
    return SpeedData(steady, PlotLine(tuple(pause_x), tuple(pause_y)), top, bottom,
                     level_s * 1000.0 if level_s else None)


def _top(steady: list[float], pauses: list[float]) -> float | None:
    """1.5 × the 98th percentile of steady steps: slowdowns show, a 30 s eval does not squash them."""
    if not steady:
        return max(pauses) * 1.05 if pauses else None
    s = sorted(steady)
    return s[min(len(s) - 1, int(0.98 * len(s)))] * 1.5


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick positions (1, 2, 5 × 10^k apart) so an iteration axis reads 0 100 200, not 0 112.5 225."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    step = max(step, 1.0)  # iterations are whole numbers
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) // step) + 1)]


def tick_label(x: float) -> str:
    """`0`, `750`, `12k`, `1.5M`: short enough for a 40-column chart."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"
