"""Replaying a finished log with a simulated clock: what the forecaster said at each point, and the truth.

The replay runs the same lines → parser → state → forecaster path as live following. Time comes from
the lines' timestamp prefixes when the log has them, else from the clock rebuilt from the printed
iteration times. Two baselines run beside it: linear extrapolation (elapsed ÷ fraction done) and
tqdm's rate EMA (smoothing 0.3, bias-corrected, as tqdm/std.py computes it).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from monitor.model.finalloss import final_loss
from monitor.model.forecast import forecast, max_iters_known
from monitor.model.ingest import Ingest
from monitor.model.lossfit import power_law
from monitor.model.state import RunState

BURST_WINDOW_S = 0.02
"""`ts` stamps the ~100 lines of one 8 KiB block within a millisecond or so; lines written live are further apart."""
FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
LOSS_PREDICTORS = ("trainwatch", "stays", "power_law")  # the final-loss prediction and its two baselines


@dataclass(frozen=True, slots=True)
class Point:
    fraction: float
    at: float
    iter: int
    eta_s: float | None
    predicted_finish: float | None
    p10: float | None
    p90: float | None
    linear_finish: float | None
    tqdm_finish: float | None
    eta_reason: str | None = None  # why the forecaster gave no ETA at this point
    final_loss: float | None = None  # the final val loss predicted here (monitor.model.lossfit)
    final_loss_p10: float | None = None
    final_loss_p90: float | None = None
    final_loss_reason: str | None = None
    final_stays: float | None = None  # baseline: the last val loss so far
    final_power_law: float | None = None  # baseline: a + b·x^−c on the val points so far


@dataclass(frozen=True, slots=True)
class Backtest:
    log: str
    time_source: str  # timestamps | reconstructed
    started_at: float | None
    finished_at: float | None
    max_iters: int | None
    points: tuple[Point, ...]
    final_val: float | None = None  # the real final val loss: the last eval at max_iters or past it

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def errors(self, which: str, from_fraction: float = 0.1) -> list[float]:
        """|predicted − real finish| ÷ run duration, for points at or past `from_fraction`."""
        if not self.duration or self.finished_at is None:
            return []
        out = []
        for p in self.points:
            pred = {"trainwatch": p.predicted_finish, "linear": p.linear_finish, "tqdm": p.tqdm_finish}[which]
            if p.fraction >= from_fraction and pred is not None:
                out.append(abs(pred - self.finished_at) / self.duration)
        return out

    def median_error(self, which: str, from_fraction: float = 0.1) -> float | None:
        errs = self.errors(which, from_fraction)
        return statistics.median(errs) if errs else None

    def loss_errors(self, which: str, from_fraction: float = 0.2) -> list[float]:
        """|predicted − real final val loss| for points at or past `from_fraction` (`which`: LOSS_PREDICTORS)."""
        if self.final_val is None:
            return []
        preds = [(p, {"trainwatch": p.final_loss, "stays": p.final_stays, "power_law": p.final_power_law}[which])
                 for p in self.points if p.fraction >= from_fraction]
        return [abs(v - self.final_val) for _, v in preds if v is not None]

    def median_loss_error(self, which: str, from_fraction: float = 0.2) -> float | None:
        errs = self.loss_errors(which, from_fraction)
        return statistics.median(errs) if errs else None

    def loss_coverage(self, from_fraction: float = 0.2) -> float | None:
        """Share of points whose final-loss p10–p90 band holds the real final val loss."""
        fv = self.final_val
        inside = [p.final_loss_p10 <= fv <= p.final_loss_p90 for p in self.points  # type: ignore[operator]
                  if p.fraction >= from_fraction and p.final_loss_p10 is not None and p.final_loss_p90 is not None]
        return sum(inside) / len(inside) if inside and fv is not None else None

    def coverage(self, from_fraction: float = 0.1) -> float | None:
        """Share of points whose p10–p90 band holds the real finish."""
        inside = [p.p10 <= self.finished_at <= p.p90 for p in self.points  # type: ignore[operator]
                  if p.fraction >= from_fraction and p.p10 is not None and p.p90 is not None]
        return sum(inside) / len(inside) if inside and self.finished_at is not None else None


class _TqdmEma:
    """tqdm's rate estimate: EMAs of Δn and Δt kept separately, smoothing 0.3, bias-corrected."""

    def __init__(self, smoothing: float = 0.3) -> None:
        self.alpha = smoothing
        self.dn = self.dt = 0.0
        self.calls = 0
        self.last: tuple[int, float] | None = None

    def update(self, n: int, t: float) -> None:
        if self.last is not None and n > self.last[0] and t > self.last[1]:
            self.calls += 1
            beta = 1 - self.alpha
            self.dn = self.alpha * (n - self.last[0]) + beta * self.dn
            self.dt = self.alpha * (t - self.last[1]) + beta * self.dt
        self.last = (n, t)

    def remaining(self, left: int) -> float | None:
        if not self.calls or self.dt <= 0:
            return None
        corr = 1 - (1 - self.alpha) ** self.calls
        rate = (self.dn / corr) / (self.dt / corr)
        return left / rate if rate > 0 else None


def replay(ingest: Ingest, lines: Iterable[str], log: str = "") -> Backtest:
    """Feed `lines` as a live reader would have read them; at each fraction crossing, ask the forecaster
    and the baselines."""
    state = ingest.state
    tq = _TqdmEma()
    targets = list(FRACTIONS)
    points: list[Point] = []
    start: float | None = None
    last_t: float | None = None
    reads = _reads(ingest, lines)
    for group in reads:
        before = state.iteration_lines
        ingest.feed_lines(group, None)
        if state.iteration_lines == before or state.last is None:
            continue
        stamped = state.time_axis == "timestamps"
        t = state.last_wall if stamped else state.clock_s
        if t is None:
            continue
        if not stamped:
            state.last_wall = t
        if start is None:
            # Training starts at the first iteration line less the printed time so far (that iteration's own
            # duration, or a whole buffered burst's), or at the first stamped line when that came earlier.
            start = t - state.clock_s if not stamped else min(state.first_wall or t, t - state.clock_s)
        last_t = t
        tq.update(state.last.iter, t)
        mi = max_iters_known(state)
        if mi is None:
            continue
        frac = state.last.iter / mi if mi else 0.0
        if targets and frac >= targets[0]:
            points += _answers(state, t, start, frac, targets, tq.remaining(mi - state.last.iter))
        if frac >= 1.0:
            break  # the run is done; what a log holds after it (nanochat's next phase) is another run's
    mi = max_iters_known(state)
    return Backtest(log=log, time_source=state.time_axis, started_at=start, finished_at=last_t, max_iters=mi,
                    points=tuple(points), final_val=_final_val(ingest, reads, mi))


def _final_val(ingest: Ingest, reads: Iterator[list[str]], max_iters: int | None) -> float | None:
    """The run's real final val loss: its eval at max_iters, which llm.c and modded-nanogpt print after the
    last step's line (so the lines up to the next iteration line, another phase's, are read for it)."""
    state = ingest.state
    for group in reads:
        if max_iters is None or _final_eval(state, max_iters) is not None:
            break
        before = state.iteration_lines
        ingest.feed_lines(group, None)
        if state.iteration_lines != before:
            break
    return _final_eval(state, max_iters) if max_iters is not None else None


def _final_eval(state: RunState, max_iters: int) -> float | None:
    end = state.last_eval
    return end.val_loss if end is not None and end.iter >= max_iters else None


def _answers(state: RunState, t: float, start: float, frac: float, targets: list[float],
             tq_rem: float | None) -> list[Point]:
    """What each method said at `t` for every target fraction the run has now passed (a burst can pass several)."""
    fc = forecast(state, t)
    linear = start + (t - start) / frac if frac > 0 else None
    fl = final_loss(state)
    vals = [(e.iter, e.val_loss) for e in state.evals.points if e.val_loss is not None]
    mi = max_iters_known(state)
    plain = power_law(vals, mi) if mi is not None else None
    out = []
    while targets and frac >= targets[0]:
        out.append(Point(fraction=targets.pop(0), at=t, iter=state.last.iter if state.last else 0, eta_s=fc.eta_s,
                         predicted_finish=fc.finish_at, p10=fc.finish_p10, p90=fc.finish_p90, linear_finish=linear,
                         tqdm_finish=t + tq_rem if tq_rem is not None else None,
                         eta_reason=fc.reason if fc.eta_s is None else None,
                         final_loss=fl.p50, final_loss_p10=fl.p10, final_loss_p90=fl.p90, final_loss_reason=fl.reason,
                         final_stays=vals[-1][1] if vals else None, final_power_law=plain))
    return out


def _reads(ingest: Ingest, lines: Iterable[str]) -> Iterator[list[str]]:
    """The lines a live reader would have got at once: one at a time, but a stamped burst (lines stamped
    within BURST_WINDOW_S of its first, as `ts` stamps a block-buffered stdout) all together."""
    group: list[str] = []
    first: float | None = None
    for raw in lines:
        at = ingest.stamp_of(raw)
        same_read = first is not None and (at is None or at - first <= BURST_WINDOW_S)
        if group and not same_read:
            yield group
            group, first = [], None
        group.append(raw)
        if first is None:
            first = at
    if group:
        yield group
