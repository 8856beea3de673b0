"""The one-shot report of a snapshot: `trainwatch.report/1` JSON, and a compact aligned text table."""

from __future__ import annotations

import json
import math
from typing import Any

from exporters.plan_report import plan_line, verdict_text
from monitor.snapshot import PlanCheck, Snapshot
from monitor.units import clock, duration, human, printable

SCHEMA = "trainwatch.report/1"


def to_dict(s: Snapshot) -> dict[str, Any]:
    fc, fl = s.forecast, s.final_loss
    out = {
        "schema": SCHEMA,
        "log": s.log,
        "run": s.run,
        "format": s.format,
        "state": s.state,
        "progress": {"iter": s.iter, "max_iters": s.max_iters, "max_iters_source": s.max_iters_source,
                     "fraction": s.fraction},
        "loss": {"train": _num(s.train_loss), "val": _num(s.val_loss), "best_val": _num(s.best_val),
                 "final_p50": fl.p50, "final_p10": fl.p10, "final_p90": fl.p90, "final_of": fl.of,
                 "final_reason": fl.reason, "final_schedule": fl.schedule or None, "target": s.target_loss},
        "tokens": {"per_iter": _count(s.tokens_per_iter), "seen": _count(s.tokens_seen),
                   "total": _count(s.tokens_total), "per_second": fc.tokens_per_s, "dataset": _count(s.dataset_tokens),
                   "epochs": s.epochs, "epochs_total": s.epochs_total},
        "compute": {"params": _count(s.params), "flops_per_token": _count(s.flops_per_token),
                    "flops_done": _count(s.flops_done), "flops_total": _count(s.flops_total), "mfu": s.mfu,
                    "mfu_logged": s.mfu_logged,
                    "gpu_peak_flops": s.gpu_peak_flops},
        "time": {"elapsed_s": s.elapsed_s, "iter_s": fc.iter_s, "eval_overhead_s": fc.eval_overhead_s,
                 "evals_left": fc.evals_left, "eta_s": fc.eta_s, "eta_p10_s": fc.eta_p10_s,
                 "eta_p90_s": fc.eta_p90_s, "finish_at": fc.finish_at, "eta_reason": fc.reason,
                 "last_progress_at": s.last_progress_at},
        "energy": {"joules": s.energy.joules, "forecast_joules": s.energy_forecast_j, "source": s.energy.source,
                   "estimated_joules": s.energy.estimated_joules, "cost": s.cost},
        "gpu": {"memory_peak_bytes": s.gpu_memory_peak_bytes, "count": len(s.gpus) or None,
                "names": [g.name for g in s.gpus], "selection": s.gpu_selection},
        "error": {"type": s.error_type, "message": s.error_message},
        "settings": {k: {"value": v.value, "source": v.source} for k, v in s.settings.items()},
        "lines": s.lines,
        "parse_errors": s.parse_errors,
    }
    if s.plan is not None:
        out["plan"] = _plan(s.plan)
    return out


def _plan(c: PlanCheck) -> dict[str, Any]:
    """Present only when a plan was asked for (`--plan-mfu`, `--gpu NAME`)."""
    return {"gpu": c.gpu, "mfu": {"low": c.mfu_low, "high": c.mfu_high},
            "time_s": {"low": c.time_low_s, "high": c.time_high_s},
            "energy_joules": None if c.energy_low_j is None else {"low": c.energy_low_j, "high": c.energy_high_j},
            "needs_s": c.needs_s, "verdict": c.verdict, "message": verdict_text(c)}


def to_json(s: Snapshot) -> str:
    """Strict JSON: a value that is not a finite number is null, and `nonfinite` says what it was."""
    nonfinite: dict[str, str] = {}
    data = _strict(to_dict(s), "", nonfinite)
    if nonfinite:
        data["nonfinite"] = nonfinite
    return json.dumps(data, indent=2, allow_nan=False, default=str)


def _strict(value: Any, path: str, nonfinite: dict[str, str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        nonfinite[path] = str(value)
        return None
    if isinstance(value, dict):
        return {k: _strict(v, f"{path}.{k}" if path else str(k), nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(value)]
    return value


def _count(v: float | None) -> int | None:
    """A count (tokens, parameters, FLOPs) is a whole number in JSON, however the state carried it."""
    return round(v) if v is not None and math.isfinite(v) else None


def _num(v: float | None) -> float | str | None:
    """JSON has no NaN: a NaN loss is reported as the string "nan" rather than dropped."""
    if v is not None and not math.isfinite(v):
        return str(v)
    return v


def to_text(s: Snapshot) -> str:
    fc = s.forecast
    rows: list[tuple[str, str]] = [
        ("run", f"{s.run}  ({s.format}, {s.log})"),
        ("state", s.state + (f" — {s.error_type}: {s.error_message}" if s.error_type else "")),
        ("progress", _progress(s)),
        ("loss", f"train {_f(s.train_loss)}   val {_f(s.val_loss)}   best val {_f(s.best_val)}"),
        ("final loss", _final(s)),
        ("tokens/iter", _tokens_per_iter(s)),
        ("tokens", f"{human(s.tokens_seen)} seen of {human(s.tokens_total)}"
                   + (f"   {human(fc.tokens_per_s)}/s" if fc.tokens_per_s else "")),
        ("epochs", _epochs(s)),
        ("parameters", human(s.params) + _src(s, "params")),
        ("FLOPs/token", human(s.flops_per_token)),
        ("compute", f"{human(s.flops_done, 'FLOP')} done of {human(s.flops_total, 'FLOP')}"),
        ("MFU", _mfu(s)),
        ("time", f"{duration(s.elapsed_s)} so far, {_iter_time(fc.iter_s)} per iteration (steady)"
                 + (f", +{fc.eval_overhead_s:.1f}s per eval" if fc.eval_overhead_s else "")),
        ("ETA", _eta(s)),
        ("energy", _energy(s)),
        ("checkpoints", str(s.checkpoints)),
    ]
    if s.plan is not None:
        rows.append(("plan", plan_line(s.plan)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {printable(v)}" for k, v in rows)


def _final(s: Snapshot) -> str:
    fl = s.final_loss
    if s.state == "finished" and s.val_loss is not None:
        half = s.final_loss_halfway
        said = f"   (predicted at 50 %: {half.p50:.2f}, {half.p10:.2f}–{half.p90:.2f})" \
            if half and half.p50 is not None and half.p10 is not None and half.p90 is not None else ""
        return f"{fl.of} {s.val_loss:.4f} reached{said}"
    text = fl.line() if fl.p50 is not None else f"— ({fl.reason})"
    return text + (f"   ({fl.schedule})" if fl.schedule and fl.p50 is not None else "")


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def _src(s: Snapshot, key: str) -> str:
    setting = s.settings.get(key)
    return f" ({setting.source})" if setting and setting.source != "log" else ""


def _progress(s: Snapshot) -> str:
    if s.iter is None:
        return "no iteration yet"
    if s.max_iters is None:
        return f"iter {s.iter} of ? (max_iters unknown: pass --max-iters)"
    return f"iter {s.iter:,} of {s.max_iters:,} ({100 * (s.fraction or 0):.1f} %){_src(s, 'max_iters')}"


def _tokens_per_iter(s: Snapshot) -> str:
    return "—" if s.tokens_per_iter is None else f"{s.tokens_per_iter:,.0f}{_src(s, 'tokens_per_iter')}"


def _epochs(s: Snapshot) -> str:
    if s.epochs is None:
        return "— (pass --dataset-tokens N or --data-dir DIR)"
    return f"{s.epochs:.2f} so far of {s.epochs_total:.2f} ({human(s.dataset_tokens)} dataset tokens)" \
        if s.epochs_total is not None else f"{s.epochs:.2f}"


def _mfu(s: Snapshot) -> str:
    real = "—" if s.mfu is None else f"{100 * s.mfu:.1f} % of the GPU's peak"
    logged = "" if s.mfu_logged is None else f"   (log says {100 * s.mfu_logged:.2f} %, against an A100's 312 TFLOPS)"
    return real + logged


def _iter_time(v: float | None) -> str:
    if v is None:
        return "—"
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def _eta(s: Snapshot) -> str:
    fc = s.forecast
    if s.state in ("finished", "crashed"):
        return s.state  # a run that crashed before its first iteration is not waiting for one
    if fc.eta_s is None:
        return f"— ({fc.reason})" if fc.reason else "—"
    return (f"{duration(fc.eta_s)} ({duration(fc.eta_p10_s)} – {duration(fc.eta_p90_s)}), "
            f"finishes ~{clock(fc.finish_at, s.taken_at)}")


def _energy(s: Snapshot) -> str:
    e = s.energy
    if e.joules is None:
        return "— (no NVML; pass --power-watts W for an estimate)"
    text = f"{e.joules / 3.6e6:.3f} kWh ({e.source})"
    if s.energy_forecast_j is not None:
        text += f", {s.energy_forecast_j / 3.6e6:.3f} kWh at the finish"
    if s.cost is not None:
        text += f", cost {s.cost:.2f}"
    return text
