"""What a run's lines say about its speed: seconds per iteration, and what its evals took.

On a timestamped log the time comes from the stamps, except inside a buffered burst; without stamps, from
the printed durations. Time that holds an eval or a process's warm-up is no steady sample; an iteration
that was merely slow (a neighbour took the core) is one: the rest of the run will see such too.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.model.state import RunState
from monitor.snapshot import IterPoint

BURST_RATIO = 0.25
"""A line stamped within this share of its own printed step after the line before was delivered with it."""
BURST_LINES = 5  # this many lines delivered together are a buffered burst (as for live reads)
PAUSE_FACTOR = 10.0
"""A step this many times the median is a pause (an eval or save the settings do not foretell), not a slow step."""


@dataclass(frozen=True, slots=True)
class Samples:
    steady: list[tuple[int, float]] = field(default_factory=list)  # (iteration, seconds per iteration), oldest first
    eval_gaps: list[tuple[float, int]] = field(default_factory=list)
    """Stamped stretches that held an eval nanoGPT did not print a duration for: (seconds, iterations)."""


def measure(state: RunState, segment: int) -> Samples:
    """The samples of one segment (one training process) of the run."""
    current = [p for p in state.iters.points if p.segment == segment]
    interval = int(state.number("eval_interval") or 0)
    if state.time_axis == "timestamps":
        found = _stamped(current, interval)
    else:
        found = Samples([(p.iter, p.dt_s) for p in current[1:]
                         if p.dt_s is not None and not _holds_eval(p.iter - 1, p, interval)])
    xs = [s for _, s in found.steady]
    if not xs or (top := max(xs)) <= PAUSE_FACTOR * min(xs) or top <= (cap := PAUSE_FACTOR * statistics.median(xs)):
        return found  # (no step ten times the fastest needs no median: the usual case, and cheap)
    return Samples([(i, s) for i, s in found.steady if s <= cap], found.eval_gaps)


def _holds_eval(after: int, p: IterPoint, interval: int) -> bool:
    """Whether the time from iteration `after` to `p` includes an eval (nanoGPT evaluates at the top of each
    multiple of eval_interval); when the interval is unknown, whether the state took `p` for an eval."""
    return p.iter // interval != after // interval if interval > 0 else p.overhead


def _stamped(pts: list[IterPoint], interval: int) -> Samples:
    """On a timestamped log a line's time is its stamp, unless it came in a burst: a block-buffered stdout
    reaches `ts` 8 KiB at a time, so ~100 lines share one stamp. Inside a burst the printed duration is the
    only timing there is (as for a burst read live), and the gap before a burst's first line spans the whole
    burst before it, so it is no sample. A few lines delivered together late keep their stamped gaps: one
    long, the next short, they average out."""
    out = _timed(zip(pts, pts[1:], strict=False), interval)
    if out is not None:  # every line came on its own (the usual unbuffered log): every gap is timed
        return out
    out = Samples()
    pairs = list(zip(pts, pts[1:], strict=False))
    close = [p.dt_s is not None and p.t - prev.t < BURST_RATIO * p.dt_s for prev, p in pairs]
    starts = [0, *(k for k, c in enumerate(close) if not c and k), len(pairs)]  # reads: lines stamped together
    for a, b in zip(starts, starts[1:], strict=False):
        read = pairs[a:b]
        if len(read) >= BURST_LINES:
            out.steady.extend((p.iter, p.dt_s) for _, p in read[1:]
                              if p.dt_s is not None and not _holds_eval(p.iter - 1, p, interval))
        else:
            timed = _timed(read, interval, check=False)
            assert timed is not None
            out.steady.extend(timed.steady)
            out.eval_gaps.extend(timed.eval_gaps)
    return out


def _timed(pairs: Iterable[tuple[IterPoint, IterPoint]], interval: int, check: bool = True) -> Samples | None:
    """The stamped gaps between lines as steady samples or evals' times; None (with `check`) as soon as a
    line turns out to have come with the one before. (On every new line, for every line: kept lean.)"""
    out = Samples()
    steady, gaps = out.steady, out.eval_gaps
    for prev, p in pairs:
        seconds, dt = p.t - prev.t, p.dt_s
        if check and dt is not None and seconds < BURST_RATIO * dt:
            return None
        if seconds <= 0:
            continue
        if (p.iter // interval == prev.iter // interval) if interval > 0 else not p.overhead:
            steady.append((p.iter, seconds / (p.iter - prev.iter)))
        elif not p.overhead:  # the eval fell on an unprinted iteration: only the stamps saw it
            gaps.append((seconds, p.iter - prev.iter))
    return out
