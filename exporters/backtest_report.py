"""Rendering a backtest: `trainwatch.backtest/1` JSON and a text table with the baselines beside it."""

from __future__ import annotations

import json
from typing import Any

from monitor.model.backtest import Backtest
from monitor.units import duration, printable

SCHEMA = "trainwatch.backtest/1"


def to_dict(b: Backtest) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "log": b.log,
        "time_source": b.time_source,
        "started_at": b.started_at,
        "finished_at": b.finished_at,
        "max_iters": b.max_iters,
        "points": [{"fraction": p.fraction, "at": p.at, "iter": p.iter, "eta_s": p.eta_s,
                    "predicted_finish": p.predicted_finish, "p10": p.p10, "p90": p.p90, "eta_reason": p.eta_reason,
                    "baselines": {"linear": p.linear_finish, "tqdm": p.tqdm_finish}} for p in b.points],
        "summary": {
            "median_abs_error_ratio": {w: b.median_error(w) for w in ("trainwatch", "linear", "tqdm")},
            "band_coverage": b.coverage(),
        },
    }


def to_json(b: Backtest) -> str:
    return json.dumps(to_dict(b), indent=2)


def to_text(b: Backtest) -> str:
    if not b.points:
        return f"{printable(b.log)}: nothing to backtest (no iterations past 5 % of a known max_iters)"
    dur = b.duration or 0.0
    head = (f"{printable(b.log)}: {duration(dur)} run, time from {b.time_source}; "
            f"error = |predicted − real finish| as % of the run's duration")
    rows = [f"{'at':>5} {'iter':>8} {'trainwatch':>11} {'p10–p90 holds':>14} {'linear':>8} {'tqdm':>8}"]
    for p in b.points:
        ours = _err(p.predicted_finish, b) if p.eta_reason is None else "none"
        why = f"  no forecast: {printable(p.eta_reason)}" if p.eta_reason is not None else ""
        rows.append(f"{p.fraction:>5.0%} {p.iter:>8} {ours:>11} "
                    f"{_inside(p, b):>14} {_err(p.linear_finish, b):>8} {_err(p.tqdm_finish, b):>8}{why}")
    cov = b.coverage()
    summary = ("median error from 10 %: " + ", ".join(
        f"{w} {_pct(b.median_error(w))}" for w in ("trainwatch", "linear", "tqdm"))
        + f"; band holds the truth at {_pct(cov)} of points")
    return "\n".join([head, *rows, summary])


def _err(pred: float | None, b: Backtest) -> str:
    if pred is None or b.finished_at is None or not b.duration:
        return "—"
    return f"{100 * (pred - b.finished_at) / b.duration:+.1f}%"


def _inside(p: object, b: Backtest) -> str:
    lo, hi = getattr(p, "p10", None), getattr(p, "p90", None)
    if lo is None or hi is None or b.finished_at is None:
        return "—"
    return "yes" if lo <= b.finished_at <= hi else "no"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"
