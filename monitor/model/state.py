"""The run state: a deterministic fold of parser events, owned by one writer.

`RunState.apply(event, at)` does no I/O and reads no clock; `at` is the line's wall time when known
(a timestamp prefix, or its arrival while following live) and None for lines read on attach.
Every series is bounded (`Thinned`), so memory does not grow with the log.
"""

from __future__ import annotations

import math
import statistics
from bisect import insort
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate

from monitor import limits
from monitor.model.history import Thinned
from monitor.snapshot import EvalPoint, IterPoint, Note, Setting
from parsers.events import Checkpoint, ConfigValue, ErrorEvent, Eval, Event, Iteration, Notice, RunStart

ENDED_BY = {"SlurmTimeLimit": "timeout", "SlurmPreempted": "preempted", "SlurmCancelled": "cancelled",
            "SlurmNodeFail": "node_fail", "SlurmOutOfMemory": "out_of_memory"}
"""Errors that are Slurm ending the job (parsers.base reads them from its output), as the run's state."""

OUTLIER_FACTOR = 3.0
"""An iteration this many times slower than the recent typical one carried an eval, a save or warm-up."""
RECENT_KEPT = 64
"""Of lines folded in bulk, the last this many become history points, as line by line; of the others, the
ones whose iteration is a multiple of a spacing that doubles as the run grows (Thinned thins the same way)."""
BULK_BLOCK = 4096
"""Rows checked and folded at once: a bound on the work redone when a stretch has to stop early."""










@dataclass
class Segment:
    """One training process's stretch of iterations; a resume or a restart begins a new one."""

    index: int
    mode: str  # scratch | resume | pretrained | unknown
    first_iter: int | None = None
    last_iter: int | None = None


@dataclass
class RunState:
    format: str = "nanogpt"
    zero_based: bool = False  # the format's `iter N` is step N+1 (its parser says so)
    formats: tuple[str, ...] = ()  # the formats lines are tried as (all of them when none was detected)
    events: int = 0  # events read from the log: none means no line of any format tried was recognised
    defaults: dict[str, object] = field(default_factory=dict)
    user: dict[str, object] = field(default_factory=dict)
    logged: dict[str, object] = field(default_factory=dict)
    iters: Thinned[IterPoint] = field(default_factory=Thinned)
    evals: Thinned[EvalPoint] = field(default_factory=lambda: Thinned(capacity=1024))
    notes: deque[Note] = field(default_factory=lambda: deque(maxlen=200))
    segments: list[Segment] = field(default_factory=list)
    time_axis: str = "reconstructed"  # reconstructed (sum of printed durations) | timestamps
    clock_s: float = 0.0  # reconstructed training time so far
    last: IterPoint | None = None
    first_wall: float | None = None
    last_wall: float | None = None  # wall time of the last line of any kind, when known
    best_val: float | None = None
    last_eval: EvalPoint | None = None
    checkpoints: int = 0
    last_checkpoint_iter: int | None = None  # the iteration the last checkpoint holds
    error: ErrorEvent | None = None  # the first error after the last progress: the root cause
    evaluating: bool = False  # an eval line came and its iteration line has not yet
    iteration_lines: int = 0
    eval_costs: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    """The latest evals' (and checkpoints') time beyond a typical step, oldest first."""
    nonfinite_since: int | None = None  # first iteration of the current run of NaN/inf losses
    first_nonfinite: tuple[int, float] | None = None  # the first NaN/inf loss ever seen: (iteration, loss)
    recent_dt: deque[float] = field(default_factory=lambda: deque(maxlen=21))  # steady durations, newest last
    memo: dict[str, object] = field(default_factory=dict, repr=False, compare=False)
    """Derived values keyed by the state's version (the forecaster's model): no state of its own."""

    # ---- settings -------------------------------------------------------------------------
    def setting(self, key: str) -> Setting | None:
        """A value with its provenance: the user's flags win over the log, the log over defaults."""
        for source, values in (("user", self.user), ("log", self.logged), ("default", self.defaults)):
            if key in values:
                return Setting(values[key], source)
        return None

    def number(self, key: str) -> float | None:
        """The setting as a number a run can have (monitor.limits), else None: every piece of arithmetic
        on a log's values goes through here, so none of them meets an inf, a zero divisor or a 10**400."""
        s = self.setting(key)
        return limits.sane(key, s.value) if s is not None else None

    @property
    def max_iters(self) -> int | None:
        v = self.number("max_iters")
        return int(v) if v is not None else None

    @property
    def status(self) -> str:
        if self.error is not None:
            return ENDED_BY.get(self.error.type, "crashed")
        if self.last is None:
            return "starting"
        mi = self.max_iters
        if mi is not None and self.last.iter >= mi:
            return "finished"
        return "running"

    def _checkpointed_iter(self) -> int | None:
        """nanoGPT saves right after an eval, before that iteration's line: the eval's iteration then."""
        if self.last_eval is not None and (self.last is None or self.last_eval.iter >= self.last.iter):
            return self.last_eval.iter
        return self.last.iter if self.last is not None else None

    def typical_dt(self) -> float | None:
        return statistics.median(self.recent_dt) if self.recent_dt else None

    # ---- the fold -------------------------------------------------------------------------
    def apply(self, event: Event, at: float | None = None) -> None:
        self.events += 1
        if at is not None:
            self.last_wall = at if self.last_wall is None else max(self.last_wall, at)
            if self.first_wall is None:
                self.first_wall = at
        if isinstance(event, Iteration):
            self._iteration(_plausible(event), at)
        elif isinstance(event, Eval):
            self._eval(event, at)
        elif isinstance(event, ConfigValue):
            self.logged[event.key] = event.value
        elif isinstance(event, Checkpoint):
            self.checkpoints += 1
            self.last_checkpoint_iter = self._checkpointed_iter()
            self._note(at, "info", f"checkpoint saved to {event.path}")
        elif isinstance(event, RunStart):
            self._run_start(event, at)
        elif isinstance(event, ErrorEvent):
            if self.error is None:
                self.error = event
            self._note(at, "error", f"{event.type}: {event.message}" if event.message else event.type)
        elif isinstance(event, Notice):
            self._note(at, event.level, event.text)

    def anchor(self, wall: float) -> None:
        """Lines read on attach carry no time; the file's modification time is when the last was written."""
        if self.last_wall is None:
            self.last_wall = wall

    def use_format(self, name: str, defaults: Mapping[str, object], zero_based: bool) -> None:
        """The log reads as another format from here on (an AutoParser switched): its defaults and steps."""
        self.format, self.defaults, self.zero_based = name, dict(defaults), zero_based

    def use_timestamps(self) -> None:
        """The file's lines carry timestamps: measure time from them instead of printed durations."""
        self.time_axis = "timestamps"

    def _note(self, at: float | None, level: str, text: str) -> None:
        self.notes.append(Note(at, self.last.iter if self.last else None, level, text))

    def _run_start(self, event: RunStart, at: float | None) -> None:
        # DDP ranks each print the banner; only a banner after progress means a new process.
        if self.segments and self.segments[-1].first_iter is None:
            self.segments[-1].mode = event.mode
            return
        self.segments.append(Segment(len(self.segments), event.mode))
        if self.last is not None:
            self.error = None  # a new process after a crash: the run goes on
            self._note(at, "info", "training restarted" + (f" ({event.mode} {event.detail})".rstrip()))

    def _eval(self, event: Eval, at: float | None) -> None:
        point = EvalPoint(event.iter, _finite(event.train_loss), _finite(event.val_loss), at)
        self.evals.append(point)
        self.last_eval = point
        self.evaluating = True
        if point.val_loss is not None and (self.best_val is None or point.val_loss < self.best_val):
            self.best_val = point.val_loss

    def _iteration(self, event: Iteration, at: float | None) -> None:
        prev = self.last
        if not self.segments or (prev is not None and event.iter < prev.iter and prev.segment == len(self.segments) - 1
                                 and self.segments[-1].first_iter is not None):
            # Iterations fell back with no banner in between (a restart into the same file).
            self.segments.append(Segment(len(self.segments), "unknown" if self.segments else "scratch"))
        seg = self.segments[-1]
        if event.max_iters is not None:
            self.logged["max_iters"] = event.max_iters
        same_segment = prev is not None and prev.segment == seg.index and seg.first_iter is not None
        gap = event.iter - prev.iter if same_segment and prev is not None else 1
        if gap <= 0:
            if gap == 0 and prev is not None and event.loss is not None and event.loss != prev.loss:
                # the same step again with its loss (HF prints the bar, then the loss dict)
                self.last = replace(prev, loss=event.loss)
                self.iters.points[-1] = self.last
            return  # otherwise a duplicate line (DDP ranks, a re-read) adds nothing
        warmup = not same_segment or event.iter == 0  # compile and the first eval: not an eval's cost
        overhead = self._is_overhead(event, first_in_segment=not same_segment)
        typical = self.typical_dt()
        dt = event.dt_s
        if event.train_time_s is not None:
            # The script's own cumulative training clock is the truth (modded-nanogpt, nanochat).
            self.clock_s = event.train_time_s
            if dt is not None and not overhead:
                self.recent_dt.append(dt)
        elif dt is not None:
            filler = (gap - 1) * (typical if typical is not None else dt)
            self.clock_s += dt + filler
            if overhead and not warmup and typical is not None and dt > typical and self._at_eval(event.iter):
                self.eval_costs.append(dt - typical)
            elif not overhead:
                self.recent_dt.append(dt)
        t = at if self.time_axis == "timestamps" and at is not None else self.clock_s
        self.error = None if self.error is not None and event.iter > (prev.iter if prev else -1) else self.error
        point = IterPoint(event.iter, event.loss, dt, t, at, overhead, seg.index, event.tokens_per_s, event.mfu,
                          event.lr)
        self.iters.append(point)
        self.last = point
        self.iteration_lines += 1
        self.evaluating = False
        if seg.first_iter is None:
            seg.first_iter = event.iter
        seg.last_iter = event.iter
        if event.loss is not None and not math.isfinite(event.loss):
            if self.nonfinite_since is None:
                self.nonfinite_since = event.iter
            if self.first_nonfinite is None:
                self.first_nonfinite = (event.iter, event.loss)
        else:
            self.nonfinite_since = None

    def extend_iterations(self, iters: Sequence[int], dts: Sequence[float], event: Callable[[int], Iteration],
                          dense_from: int | None = None) -> None:
        """Fold consecutive iteration lines read on attach (no time of their own, finite losses, `dts[j]` ≥ 0
        the j-th line's duration in seconds, `event(j)` its event) as `apply` folds them one by one.

        Stretches of ordinary steps, whose every effect on the state is a sum or a last value, go in one
        step: the clock by `accumulate` (the same additions in the same order), and only some of their points
        into the history (all from row `dense_from` on, default the last RECENT_KEPT; evenly spaced ones
        before). Any other line (an eval's iteration, a possible outlier, the first of a segment, a gap
        that is not one iteration) goes through `apply`, so the state is the one the line path gives,
        its history apart."""
        n, j = len(iters), 0
        dense = n - RECENT_KEPT if dense_from is None else dense_from
        while j < n:
            k = self._ordinary_stretch(iters, dts, j, min(n, j + BULK_BLOCK))
            if k > j:
                self._fold_stretch(iters, dts, event, j, k, dense)
                j = k
            else:
                self.apply(event(j))
                j += 1

    def _ordinary_stretch(self, iters: Sequence[int], dts: Sequence[float], j: int, end: int) -> int:
        """How far from row j the rows are ordinary steps the same number of iterations apart (j when row j
        is not one).

        A duration at most OUTLIER_FACTOR × the smallest one around is surely not an outlier: every median
        the line path would take over the recent durations is at least that smallest one."""
        prev, seg = self.last, self.segments[-1] if self.segments else None
        if prev is None or seg is None or prev.segment != seg.index or seg.first_iter is None:
            return j
        first = iters[j]
        step = first - prev.iter
        if step <= 0:
            return j
        interval = int(self.number("eval_interval") or 0)
        if interval > 0:  # the next eval's iteration is not ordinary
            m = -(-first // interval) * interval
            for _ in range(step):  # the multiples' offsets from `first`, modulo step, repeat within `step`
                if (m - first) % step == 0:
                    end = min(end, j + (m - first) // step)
                    break
                m += interval
        if end <= j:
            return j
        if list(iters[j:end]) != list(range(first, first + step * (end - j), step)):
            end = j + next(i for i, it in enumerate(iters[j:end]) if it != first + step * i)
        window = dts[j:end]
        if max(window) > OUTLIER_FACTOR * min(min(window), min(self.recent_dt, default=math.inf)):
            end = j + next((i for i, (d, typical) in enumerate(zip(window, self._typicals(window), strict=True))
                            if typical and d > OUTLIER_FACTOR * typical), len(window))  # judged one by one
        return end

    def _fold_stretch(self, iters: Sequence[int], dts: Sequence[float], event: Callable[[int], Iteration],
                      j: int, k: int, dense: int) -> None:
        seg = self.segments[-1]
        step = iters[j] - self.last.iter if self.last is not None else 1
        # `clock_s += dt + filler` line by line, in the same order
        times = list(accumulate(dts[j:k] if step == 1 else self._filled(dts[j:k], step), initial=self.clock_s))
        spacing = max(1, (1 << (self.iteration_lines // self.iters.capacity).bit_length()) // step)
        kept = [*range(j + (-(iters[j] // step)) % spacing, min(k, dense), spacing), *range(max(j, dense), k)]
        if not kept or kept[-1] != k - 1:
            kept.append(k - 1)  # the last line is the state's `last`, in the history as line by line
        for i in kept:
            e = event(i)
            self.iters.append(IterPoint(e.iter, e.loss, e.dt_s, times[i - j + 1], None, False, seg.index,
                                        e.tokens_per_s, e.mfu, e.lr))
        if e.max_iters is not None:  # every line states it: the last one's stays
            self.logged["max_iters"] = e.max_iters
        self.last = self.iters.points[-1]
        self.clock_s = times[-1]
        self.recent_dt.extend(dts[max(j, k - (self.recent_dt.maxlen or k)):k])
        self.iteration_lines += k - j
        self.events += k - j
        self.evaluating = False
        self.error = None
        self.nonfinite_since = None
        seg.last_iter = e.iter

    def _filled(self, dts: Sequence[float], step: int) -> list[float]:
        """Each duration plus the unprinted iterations before it at the typical duration of the moment,
        as `_iteration` adds them."""
        return [d + (step - 1) * (d if typical is None else typical)
                for d, typical in zip(dts, self._typicals(dts), strict=True)]

    def _typicals(self, dts: Sequence[float]) -> Iterator[float | None]:
        """For each of `dts` (ordinary steps, each appended to `recent_dt` in turn), what `typical_dt()`
        gives just before it: the window's median, kept sorted instead of sorted anew."""
        window = deque(self.recent_dt, maxlen=self.recent_dt.maxlen)
        ordered = sorted(window)
        for d in dts:
            n = len(ordered)
            yield (ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2) if n else None
            if len(window) == window.maxlen:
                ordered.remove(window[0])
            window.append(d)
            insort(ordered, d)

    def _is_overhead(self, event: Iteration, first_in_segment: bool) -> bool:
        if first_in_segment or event.iter == 0:
            return True  # compile / warm-up, and a resumed process's first eval
        interval = self.number("eval_interval")
        if interval and interval > 0 and event.iter % int(interval) == 0:
            return True
        typical = self.typical_dt()
        return bool(event.dt_s is not None and typical and event.dt_s > OUTLIER_FACTOR * typical)

    def _at_eval(self, iteration: int) -> bool:
        """Whether an eval ran in this iteration: its eval line came just before (in a log that prints them),
        or it is a multiple of eval_interval. A slow step between evals (a neighbour took the core) is no
        eval's cost, so it does not count toward the overhead each eval adds."""
        if self.last_eval is not None:
            return self.evaluating
        interval = self.number("eval_interval")
        return not interval or interval <= 0 or iteration % int(interval) == 0


def _plausible(event: Iteration) -> Iteration:
    """The line's numbers that no step can have become unknown; the loss is kept as printed (a NaN or inf
    loss is a fact the alerts report)."""
    dt = limits.within(event.dt_s, 0.0, limits.MAX_STEP_S)
    if dt is not None and 0 < dt < limits.MIN_STEP_S:
        dt = None
    train = limits.within(event.train_time_s, 0.0, limits.MAX_TRAIN_TIME_S)
    rate = limits.within(event.tokens_per_s, 0.0, limits.MAX_RATE)
    mfu = limits.within(event.mfu, 0.0, 100.0)
    mi = event.max_iters if event.max_iters is not None and 0 <= event.max_iters <= limits.MAX_ITER else None
    if (dt, train, rate, mfu, mi) == (event.dt_s, event.train_time_s, event.tokens_per_s, event.mfu, event.max_iters):
        return event
    return replace(event, dt_s=dt, train_time_s=train, tokens_per_s=rate, mfu=mfu, max_iters=mi)


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None
