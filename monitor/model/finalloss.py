"""The final-loss prediction of a run state: its points and schedule handed to monitor.model.lossfit, refitted
only when the state has new points (a republish costs a dictionary look-up)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import cast

from monitor.model.forecast import max_iters_known
from monitor.model.lossfit import Curve, predict
from monitor.model.lrschedule import schedule
from monitor.model.state import RunState
from monitor.snapshot import FinalLoss

REFIT_GROWTH = 0.02
"""Training points alone refit the model once their count grew by this share (a new eval always does)."""


def final_loss(state: RunState) -> FinalLoss:
    of = "bpb" if state.format == "nanochat" else "val"
    last = state.last
    max_iters = max_iters_known(state)
    if last is None:
        return FinalLoss(of=of, reason="waiting for the first iteration")
    if max_iters is None:
        return FinalLoss(of=of, reason="max_iters unknown: pass --max-iters")
    key = (len(state.evals), id(state.last_eval), max_iters, len(state.segments))
    cached = state.memo.get("final_loss")
    if isinstance(cached, tuple) and cached[0] == key and state.iteration_lines < cached[1] * (1 + REFIT_GROWTH) \
            and (state.nonfinite_since is None) == cached[2]:
        return cast(FinalLoss, cached[3])
    result = predict(curve(state, max_iters, of), last.iter)
    state.memo["final_loss"] = (key, state.iteration_lines, state.nonfinite_since is None, result)
    return result


def predicted_at(state: RunState, fraction: float) -> FinalLoss | None:
    """What the prediction was when the run had done `fraction` of max_iters (from the points up to there)."""
    max_iters = max_iters_known(state)
    if max_iters is None:
        return None
    key = (len(state.evals), id(state.last_eval), state.iteration_lines, max_iters, fraction)
    cached = state.memo.get("final_loss_at")
    if isinstance(cached, tuple) and cached[0] == key:
        return cast(FinalLoss, cached[1])
    of = "bpb" if state.format == "nanochat" else "val"
    result = replace(predict(curve(state, max_iters, of), int(fraction * max_iters)), path=())  # the figures only
    state.memo["final_loss_at"] = (key, result)
    return result


def curve(state: RunState, max_iters: int, of: str) -> Curve:
    sched = schedule(state, max_iters)
    train = _tail([(p.iter, p.loss) for p in state.iters.points if p.loss is not None and math.isfinite(p.loss)])
    val = _tail([(e.iter, e.val_loss) for e in state.evals.points if e.val_loss is not None])
    if state.nonfinite_since is not None and state.last is not None and state.last.loss is not None:
        train.append((state.last.iter, state.last.loss))  # the NaN itself: the fit says why there is none
    return Curve(train=train, val=val, max_iters=max_iters, lr=sched.at, known=sched.known,
                 schedule=sched.words, warmup=sched.warmup if math.isfinite(sched.warmup) else 0.0, of=of)


def _tail(points: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    """The points of the current stretch, oldest first: walking back from the newest, a point is kept while
    its iteration is below every kept one (a resume keeps the first process's earlier points; a new
    nanochat phase, whose counter restarts, drops the previous phase's)."""
    out: list[tuple[int, float]] = []
    low = math.inf
    for i, y in reversed(points):
        if i < low:
            out.append((i, y))
            low = i
    out.reverse()
    return out
