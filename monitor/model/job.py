"""A run inside a batch job (Slurm): what the scheduler's word on the job means for the run. Pure.

Two things: the job's end state becomes the run's (a job killed at its time limit is `timeout`, not
`crashed`), and the forecast finish is held against the job's end, so a run the time limit will cut
is known hours before it happens.
"""

from __future__ import annotations

from monitor.snapshot import Forecast, TimeLimit

SLURM_STATES = {"TIMEOUT": "timeout", "DEADLINE": "timeout", "PREEMPTED": "preempted", "CANCELLED": "cancelled",
                "NODE_FAIL": "node_fail", "BOOT_FAIL": "node_fail", "OUT_OF_MEMORY": "out_of_memory",
                "FAILED": "crashed"}
"""How Slurm says a job ended → the run's state. Slurm's other words (RUNNING, COMPLETED…) leave the
log's own state: a job that completed ran its script to the end, whether the training finished or not."""

LIVE = frozenset({"starting", "running", "evaluating", "stalled"})


def run_state(log_state: str, slurm_state: str | None) -> str:
    """The run's state: Slurm's end of the job wins over the log, unless the log says it finished (a job
    cancelled or timed out after its training ended lost nothing)."""
    ended = SLURM_STATES.get(slurm_state or "")
    if ended is None or log_state == "finished":
        return log_state
    return ended


def time_limit(fc: Forecast, *, state: str, iter_: int | None, max_iters: int | None, job_end_at: float | None,
               now: float) -> TimeLimit | None:
    """The verdict while the run is live and its job has an end: "will" hit the time limit when even the
    early (p10) finish is past it, "may" when only the late (p90) one is; None when it finishes in time."""
    if state not in LIVE or job_end_at is None or fc.finish_p90 is None or fc.finish_p90 <= job_end_at:
        return None
    verdict = "will" if fc.finish_p10 is not None and fc.finish_p10 > job_end_at else "may"
    left = max(0.0, job_end_at - now)
    at_end = fraction = None
    if iter_ is not None and max_iters and fc.eta_s:
        at_end = int(iter_ + (max_iters - iter_) * min(1.0, left / fc.eta_s))
        fraction = at_end / max_iters
    return TimeLimit(verdict=verdict, job_end_at=job_end_at, left_s=left, needs_s=fc.eta_s, iter_at_end=at_end,
                     fraction_at_end=fraction)
