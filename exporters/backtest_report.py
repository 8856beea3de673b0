"""Rendering a backtest: `trainwatch.backtest/1` JSON and a text table with the baselines beside it."""

from __future__ import annotations

import json
from typing import Any

from monitor.model.backtest import LOSS_PREDICTORS, Backtest
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
        "final_val": b.final_val,
        "points": [{"fraction": p.fraction, "at": p.at, "iter": p.iter, "eta_s": p.eta_s,
                    "predicted_finish": p.predicted_finish, "p10": p.p10, "p90": p.p90, "eta_reason": p.eta_reason,
                    "baselines": {"linear": p.linear_finish, "tqdm": p.tqdm_finish},
                    "final_loss": p.final_loss, "final_loss_p10": p.final_loss_p10,
                    "final_loss_p90": p.final_loss_p90, "final_loss_reason": p.final_loss_reason,
                    "final_loss_baselines": {"stays": p.final_stays, "power_law": p.final_power_law}}
                   for p in b.points],
        "summary": {
            "median_abs_error_ratio": {w: b.median_error(w) for w in ("trainwatch", "linear", "tqdm")},
            "band_coverage": b.coverage(),
            "final_loss_median_abs_error": {w: b.median_loss_error(w) for w in LOSS_PREDICTORS},
            "final_loss_band_coverage": b.loss_coverage(),
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
    return "\n".join([head, *rows, summary, "", _loss_table(b)])


def _loss_table(b: Backtest) -> str:
    """The final-loss prediction at each point, its error beside the two baselines."""
    if b.final_val is None:
        return "final val loss: the log has no validation loss at max_iters, so nothing to compare against"
    rows = [f"final val loss {b.final_val:.4f}; error = predicted − real",
            f"{'at':>5} {'predicted':>10} {'error':>8} {'p10–p90 holds':>14} {'it stays':>9} {'power law':>10}"]
    for p in b.points:
        if p.final_loss is None:
            rows.append(f"{p.fraction:>5.0%} {'—':>10} {'':>8} {'':>14} {_lerr(p.final_stays, b):>9} "
                        f"{_lerr(p.final_power_law, b):>10}  ({printable(p.final_loss_reason or '')})")
            continue
        holds = "yes" if p.final_loss_p10 is not None and p.final_loss_p90 is not None and \
            p.final_loss_p10 <= b.final_val <= p.final_loss_p90 else "no"
        rows.append(f"{p.fraction:>5.0%} {p.final_loss:>10.4f} {_lerr(p.final_loss, b):>8} {holds:>14} "
                    f"{_lerr(p.final_stays, b):>9} {_lerr(p.final_power_law, b):>10}")
    med = {w: b.median_loss_error(w) for w in LOSS_PREDICTORS}
    rows.append("median |error| from 20 %: " + ", ".join(
        f"{w} {'—' if v is None else f'{v:.4f}'}" for w, v in med.items())
        + f"; band holds the truth at {_pct(b.loss_coverage())} of points")
    return "\n".join(rows)


def _lerr(pred: float | None, b: Backtest) -> str:
    return "—" if pred is None or b.final_val is None else f"{pred - b.final_val:+.4f}"


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
