"""Alert rules: pure, edge-triggered functions of snapshots, `now`, and what already fired.

A condition (finishing soon, finished, crashed, stalled, NaN, diverging, slowed down, a milestone, a
Slurm job's time limit ahead or its end)
becomes an alert once per run, or once per episode for the conditions that can end and come back:
a stall that ends and starts again is news again, a second NaN is not. What fired lives in an
immutable `AlertMemory` that the caller keeps, persists (monitor/alerts/store.py) and hands back, so
nothing here reads a clock or a file, and the same inputs always give the same alerts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from monitor import defaults
from monitor.snapshot import ENDED_STATES, JOB_END_STATES, Alert, GpuSample, Snapshot
from monitor.units import clock, duration, human

EPISODIC = frozenset({"crashed", "stalled", "diverging", "slowdown"})
"""Kinds that fire again after their condition has ended and come back; every other kind fires once per run."""

LIVE = frozenset({"running", "evaluating"})
MESSAGE_CHARS = 300  # a traceback's last line can carry a whole tensor repr




@dataclass(frozen=True, slots=True)
class AlertConfig:
    notify_before_s: float = defaults.NOTIFY_BEFORE_S  # "finishing soon" once the expected finish is this close
    moved_threshold_s: float = 120.0  # one corrected notice when the finish then moves by more than this
    milestones: tuple[float, ...] = ()  # fractions of max_iters, e.g. (0.25, 0.5, 0.75)
    slowdown_ratio: float = 0.7  # throughput below this share of the run's earlier steady rate ...
    slowdown_for_s: float = 120.0  # ... for this long, on the run's own clock
    diverge_factor: float = 1.5  # loss above this multiple of its recent median ...
    diverge_lines: int = 5  # ... on this many consecutive log lines ...
    diverge_window: int = 50  # ... where the median is over this many lines before them


@dataclass(frozen=True, slots=True)
class RunMemory:
    """What fired for one run. The first three fields are durable (persisted); the rest is bookkeeping
    that a restarted daemon can rebuild without repeating anything."""

    fired: frozenset[str] = frozenset()  # alert keys sent, or recorded by a quiet backfill
    active: frozenset[str] = frozenset()  # episodic kinds whose condition held at the last evaluation
    finish_announced: float | None = None  # the finish the last finishing notice stated, on the run's clock
    slow_since: float | None = None  # the run's elapsed_s when its throughput fell below the ratio

    def durable(self) -> RunMemory:
        return RunMemory(self.fired, self.active, self.finish_announced)


@dataclass(frozen=True, slots=True)
class AlertMemory:
    runs: Mapping[str, RunMemory] = field(default_factory=dict)  # by log path; never mutated, only replaced

    def run(self, log: str) -> RunMemory:
        return self.runs.get(log, RunMemory())

    def with_run(self, log: str, memory: RunMemory) -> AlertMemory:
        return AlertMemory({**self.runs, log: memory})


@dataclass(frozen=True, slots=True)
class _Finding:
    """A condition that holds now; `_fire` decides whether it is news."""

    kind: str
    key: str  # for episodic kinds, `_fire` numbers the episode instead
    title: str
    body: str
    level: str


def evaluate(prev: AlertMemory, snapshots: Sequence[Snapshot], now: float, cfg: AlertConfig, *,
             quiet: bool) -> tuple[AlertMemory, list[Alert]]:
    """The alerts that `snapshots` make news, and the memory updated with them.

    `quiet` (the backfill read on attach) records every condition that holds as already fired and
    returns no alerts: attaching to an old or finished log must not replay its history.
    """
    runs = dict(prev.runs)
    alerts: list[Alert] = []
    for snap in snapshots:
        mem = _observe(prev.run(snap.key), snap, cfg, quiet)
        found = [f for rule in RULES for f in rule(snap, mem, now, cfg)]
        mem, new = _fire(mem, found, snap, now, quiet)
        runs[snap.key] = mem
        alerts += new
    return AlertMemory(runs), alerts


def _observe(m: RunMemory, s: Snapshot, cfg: AlertConfig, quiet: bool) -> RunMemory:
    """Since when the run has been slow, on its own clock (`elapsed_s`): a stall is not slow training,
    and a replayed or accelerated log behaves as the real run would. A backfill cannot tell how long
    a slowdown it finds has lasted, so a quiet pass counts it as long enough: history, not news."""
    if not _slow(s, m, cfg) or s.elapsed_s is None:
        return replace(m, slow_since=None)
    if m.slow_since is not None:
        return m
    return replace(m, slow_since=s.elapsed_s - cfg.slowdown_for_s if quiet else s.elapsed_s)


def _fire(m: RunMemory, found: list[_Finding], s: Snapshot, now: float,
          quiet: bool) -> tuple[RunMemory, list[Alert]]:
    fired, alerts, announced = set(m.fired), [], m.finish_announced
    for f in found:
        key = f.key
        if f.kind in EPISODIC:
            if f.kind in m.active:
                continue  # the same episode, already told
            key = f"{f.kind}#{1 + sum(k.startswith(f.kind + '#') for k in fired)}"
        if key in fired:
            continue
        fired.add(key)
        if f.kind in ("finishing", "finish-moved"):
            announced = _finish_on_run_clock(s)
        if not quiet:
            alerts.append(Alert(s.run, f.kind, f.title, f.body, f.level, key, now))
    active = frozenset(f.kind for f in found if f.kind in EPISODIC)
    return replace(m, fired=frozenset(fired), active=active, finish_announced=announced), alerts


# ---- the rules: each yields a finding while its condition holds --------------------------------

Rule = Callable[[Snapshot, RunMemory, float, AlertConfig], Iterator[_Finding]]


def _crashed(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    if s.state != "crashed":
        return
    if s.error_type:
        body = f"{s.error_type}: {s.error_message}" if s.error_message else s.error_type
    else:
        body = "process exited before max_iters"
    yield _Finding("crashed", "crashed", f"{s.run}: crashed{_at_iter(s)}", _clip(body) + _progress(s), "failure")


def _finished(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    if s.state != "finished":
        return
    parts = [f"{s.iter:,} iterations" + (f" in {duration(s.elapsed_s)}" if s.elapsed_s else "")]
    if s.tokens_seen:
        parts.append(f"{human(s.tokens_seen)} tokens")
    losses = [f"{name} loss {v:.4f}" for name, v in (("train", s.train_loss), ("val", s.val_loss)) if v is not None]
    if losses:
        best = f" (best val {s.best_val:.4f})" if s.best_val is not None and s.best_val != s.val_loss else ""
        parts.append(", ".join(losses) + best)
    half = s.final_loss_halfway
    if half is not None and half.p50 is not None and half.p10 is not None and half.p90 is not None:
        parts.append(f"at 50 % the predicted final {half.of} was {half.p50:.4f} ({half.p10:.4f}–{half.p90:.4f})")
    if s.energy.joules is not None:
        parts.append(f"{s.energy.joules / 3.6e6:.2f} kWh" + (f", cost {s.cost:.2f}" if s.cost is not None else ""))
    yield _Finding("finished", "finished", f"{s.run}: finished", "; ".join(parts) + ".", "success")


def _stalled(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """The forecaster owns what "stalled" means (silence beyond k× the expected gap between lines),
    so the alert fires exactly when every view shows the state."""
    fc = s.forecast
    if s.state != "stalled" or fc.stalled_s is None or fc.expected_gap_s is None:
        return
    body = (f"No new iteration for {duration(fc.stalled_s + fc.expected_gap_s)} "
            f"(one was expected every {duration(fc.expected_gap_s)}).{_gpu_activity(s)}")
    yield _Finding("stalled", "stalled", f"{s.run}: stalled{_at_iter(s)}", body, "warning")


def _nan(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """The first NaN/inf the state saw, so one that came and went between two publishes counts too;
    once it fired there is nothing more to look for."""
    if "nan" in m.fired:
        return
    bad: tuple[int | None, float] | None = s.first_nonfinite
    if bad is None and s.train_loss is not None and not math.isfinite(s.train_loss):
        bad = (s.iter, s.train_loss)
    if bad is not None:
        it, loss = bad
        where = f" at iter {it:,}" if it is not None else ""
        yield _Finding("nan", "nan", f"{s.run}: loss is {loss}", f"The training loss became {loss}{where}.",
                       "failure")


def _diverging(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """All of the last few losses far above the median of the lines before them. Once an episode is
    on, it stays on while any of them is still high, so a loss hovering at the line fires once."""
    if not s.history:
        return
    n = cfg.diverge_lines
    seg = s.history[-1].segment  # a restart from scratch in the same file is not a divergence
    losses = [p.loss for p in s.history[-4 * (n + cfg.diverge_window):]
              if p.segment == seg and p.loss is not None and math.isfinite(p.loss)]
    before, recent = losses[-(n + cfg.diverge_window):-n], losses[-n:]
    if len(recent) < n or len(before) < max(n, 10):
        return
    base = statistics.median(before)
    if base <= 0:
        return
    high = [x > cfg.diverge_factor * base for x in recent]
    if all(high) or ("diverging" in m.active and any(high)):
        body = (f"Loss {recent[-1]:.4f} at iter {s.history[-1].iter:,}: the last {n} log lines are "
                f"{min(recent) / base:.1f}× or more its recent median {base:.4f}.")
        yield _Finding("diverging", "diverging", f"{s.run}: loss diverging", body, "warning")


def _slowdown(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    ratio = _slow(s, m, cfg)
    lasted = s.elapsed_s - m.slow_since if s.elapsed_s is not None and m.slow_since is not None else None
    if ratio is None or lasted is None or lasted < cfg.slowdown_for_s:
        return
    iter_s = s.forecast.iter_s
    body = (f"Throughput is {100 * ratio:.0f} % of this run's earlier steady rate"
            + (f" ({iter_s:.3g} s per iteration)" if iter_s else "") + "." + _throttle(s))
    yield _Finding("slowdown", "slowdown", f"{s.run}: slowed down to {100 * ratio:.0f} %", body, "warning")


def _finishing(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """Fires on the first log line whose forecast is within the lead time (so within one log interval
    of it): the time left from the last line, not the countdown, which a hang would also run down."""
    fc, left = s.forecast, _left_on_run_clock(s)
    if s.state not in LIVE or fc.finish_at is None or left is None or left > cfg.notify_before_s or _cut(s):
        return
    yield _Finding("finishing", "finishing", f"{s.run}: finishing at {clock(fc.finish_at, now)}",
                   f"Expected to finish at {_when(s, now)}.{_progress(s)}", "info")


def _finish_moved(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    fc, was, will = s.forecast, m.finish_announced, _finish_on_run_clock(s)
    if (s.state not in LIVE or was is None or will is None or fc.finish_at is None or "finishing" not in m.fired
            or _cut(s)):
        return
    moved = will - was
    if abs(moved) <= cfg.moved_threshold_s:
        return
    direction = "later" if moved > 0 else "earlier"
    yield _Finding("finish-moved", "finish-moved", f"{s.run}: finish moved to {clock(fc.finish_at, now)}",
                   f"Now expected at {_when(s, now)}: {duration(abs(moved))} {direction} than the "
                   f"{clock(fc.finish_at - moved, now)} announced.{_progress(s)}", "info")


def _milestones(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    if s.fraction is None or s.state == "finished":
        return
    for mark in sorted(cfg.milestones):
        if s.fraction >= mark:
            yield _Finding("milestone", f"milestone:{100 * mark:g}", f"{s.run}: {100 * mark:g} % done",
                           (f"Expected to finish at {_when(s, now)}." if s.forecast.finish_at else "")
                           + _progress(s), "info")


def _time_limit(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """Once per verdict: "may hit" (only the late finish is past the job's end), then "will hit" if even
    the early one is (monitor/model/job.py)."""
    tl = s.time_limit
    if tl is None:
        return
    yield _Finding("time-limit", f"time-limit:{tl.verdict}", f"{s.run}: {tl.verdict} hit its time limit",
                   time_limit_text(s) + ".", "warning" if tl.verdict == "will" else "info")


def time_limit_text(s: Snapshot) -> str:
    """`job 12345 (gpt2-124m) will hit its time limit at about iteration 16,400 of 20,000 (82 %), in 3h 10m;
    the last checkpoint was at 16,000; it needs about 4h 20m more`: what the note and the notification say."""
    tl = s.time_limit
    if tl is None:
        return ""
    job = s.labels.get("job_id")
    who = f"job {job} ({s.labels.get('job_name', s.run)})" if job else s.run
    text = f"{who} {tl.verdict} hit its time limit"
    if tl.iter_at_end is not None and s.max_iters and tl.fraction_at_end is not None:
        text += f" at about iteration {_round(tl.iter_at_end):,} of {s.max_iters:,} ({100 * tl.fraction_at_end:.0f} %)"
    text += f", in {duration(tl.left_s)}"
    if s.last_checkpoint_iter is not None:
        text += f"; the last checkpoint was at {s.last_checkpoint_iter:,}"
    else:
        text += "; no checkpoint was saved yet"
    if tl.needs_s is not None:
        text += f"; it needs about {duration(tl.needs_s)} more"
    return text


def _round(it: int) -> int:
    """An estimate, shown as one: 16,437 → 16,400."""
    return it if it < 1000 else int(round(it, -2))


JOB_ENDINGS = {"timeout": "hit its time limit", "preempted": "was preempted", "cancelled": "was cancelled",
               "node_fail": "lost its node", "out_of_memory": "ran out of memory"}


def _job_ended(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """Slurm ended the run's job before the run finished: said as Slurm said it, not as a crash."""
    if s.state not in JOB_END_STATES:
        return
    job = s.labels.get("job_id")
    what = f"job {job} ({s.labels.get('job_name', s.run)})" if job else s.run
    ckpt = (f" The last checkpoint was at {s.last_checkpoint_iter:,}." if s.last_checkpoint_iter is not None
            else " No checkpoint was saved.")
    yield _Finding("job-ended", f"job-ended:{s.state}", f"{s.run}: {JOB_ENDINGS[s.state]}{_at_iter(s)}",
                   f"Slurm ended {what}: {s.state}.{_progress(s)}{ckpt}", "failure")


def _target(s: Snapshot, m: RunMemory, now: float, cfg: AlertConfig) -> Iterator[_Finding]:
    """Once when even the optimistic end of the predicted band (p10) is above the user's target, and once
    more only if the band comes back within reach."""
    fl, target = s.final_loss, s.target_loss
    if target is None or s.state not in LIVE or fl.p50 is None or fl.p10 is None or fl.p90 is None:
        return
    band = f"{fl.p50:.2f} ({fl.p10:.2f}–{fl.p90:.2f})"
    if fl.p10 > target:
        yield _Finding("target", "target-missed", f"{s.run}: likely to end above your target {target:g}",
                       f"The run will most likely end at {band}, above your target {target:g}.{_progress(s)}",
                       "warning")
    elif "target-missed" in m.fired:
        yield _Finding("target", "target-in-reach", f"{s.run}: your target {target:g} is within reach again",
                       f"The run will most likely end at {band}: your target {target:g} is within the band."
                       f"{_progress(s)}", "info")


RULES: tuple[Rule, ...] = (_crashed, _finished, _stalled, _nan, _diverging, _slowdown, _finishing, _finish_moved,
                           _milestones, _time_limit, _job_ended, _target)


# ---- helpers -------------------------------------------------------------------------------------

def _slow(s: Snapshot, m: RunMemory, cfg: AlertConfig) -> float | None:
    """Throughput as a share of the run's earlier steady rate, while the run counts as slowed down.

    The estimate of the earlier rate wanders (±0.1 on real logs) as the change point is re-estimated,
    so an episode, once on, lasts until throughput is back halfway to the earlier rate: a ratio
    hovering at the threshold must not make a new episode of every crossing.
    """
    slowdown = s.forecast.slowdown  # current seconds per iteration ÷ the earlier level
    if s.state in ENDED_STATES or not slowdown or slowdown <= 0:
        return None
    ratio = 1 / slowdown
    limit = (1 + cfg.slowdown_ratio) / 2 if "slowdown" in m.active else cfg.slowdown_ratio
    return ratio if ratio < limit else None


def _left_on_run_clock(s: Snapshot) -> float | None:
    """Training time left after the last line: the forecaster's model (monitor/model/forecast.py) without
    its countdown of the silence since then. It depends on the log alone, so it is steady between
    lines and meaningful for a replayed or accelerated log, where "now + ETA" would mix the wall
    clock with the log's clock."""
    fc = s.forecast
    if fc.iter_s is None or s.iter is None or s.max_iters is None:
        return None
    return max(0, s.max_iters - s.iter) * fc.iter_s + (fc.evals_left or 0) * (fc.eval_overhead_s or 0.0)


def _finish_on_run_clock(s: Snapshot) -> float | None:
    """Where the run's own clock (elapsed training time) will stand at the finish."""
    left = _left_on_run_clock(s)
    return s.elapsed_s + left if s.elapsed_s is not None and left is not None else None


def _cut(s: Snapshot) -> bool:
    """The job's time limit will end the run first: a finish time would be news that is not true."""
    return s.time_limit is not None and s.time_limit.verdict == "will"


def _at_iter(s: Snapshot) -> str:
    return f" at iter {s.iter:,}" if s.iter is not None else ""


def _progress(s: Snapshot) -> str:
    if s.iter is None or s.max_iters is None:
        return ""
    return f" Iteration {s.iter:,} of {s.max_iters:,}."


def _when(s: Snapshot, now: float) -> str:
    fc = s.forecast
    text = f"{clock(fc.finish_at, now)} (in {duration(fc.eta_s)}"
    if fc.finish_p10 is not None and fc.finish_p90 is not None:
        text += f"; likely {clock(fc.finish_p10, now)}–{clock(fc.finish_p90, now)}"
    return text + ")"


def _gpus(s: Snapshot) -> list[GpuSample]:
    return [g for g in s.gpus if isinstance(g, GpuSample) and not g.lost]


def _gpu_activity(s: Snapshot) -> str:
    """Idle GPUs point at a dead or hung host process; busy ones at a hung collective or a long eval."""
    util = [g.utilization for g in _gpus(s) if g.utilization is not None]
    if not util:
        return ""
    peak = max(util)
    return " GPU idle." if peak < 0.05 else f" GPU still busy ({100 * peak:.0f} % utilization)."


def _throttle(s: Snapshot) -> str:
    reasons = sorted({r for g in _gpus(s) for r in g.throttle})
    return f" GPU throttled: {', '.join(reasons)}." if reasons else ""


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"
