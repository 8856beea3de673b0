"""The JSON API's shapes (`trainwatch.api/1`), built from snapshots, and their inverse.

A run in the API is its `trainwatch.report/1` dict (exporters.report: one builder, no second copy of
the shape) plus what a live view needs and the report leaves out: the run's `id`, when the snapshot
was taken, the forecast's finish band, the GPUs' readings, and — for one run — its history, evals and
notes. `snapshot_of` turns such a dict back into the `Snapshot` it came from, so that a remote view
(the TUI on another machine's `serve`) draws exactly what a local one would. The schema is
`exporters/schemas/api-v1.json`; tests pin both directions.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from exporters.report import to_dict
from monitor.snapshot import (
    Energy,
    EvalPoint,
    FinalLoss,
    Forecast,
    GpuProcess,
    GpuSample,
    IterPoint,
    Note,
    PlanCheck,
    Setting,
    Snapshot,
    TimeLimit,
)

SCHEMA = "trainwatch.api/1"
MAX_POINTS = 2000
"""History points in one answer at most: a chart is a few hundred pixels wide, and an answer stays
~100 KB however long the run."""

HISTORY_FIELDS = tuple(f.name for f in fields(IterPoint))
EVAL_FIELDS = tuple(f.name for f in fields(EvalPoint))


def run_id(s: Snapshot) -> str:
    """Stable and URL-safe: the run's name, slugged, and a hash of its log path (two runs may share a name)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", s.run).strip("-.")[:40] or "run"
    return f"{slug}-{hashlib.sha1(s.log.encode(), usedforsecurity=False).hexdigest()[:8]}"


def summary(s: Snapshot) -> dict[str, Any]:
    """One run for the run list and the event stream: the report plus the live view's extras."""
    d = to_dict(s)
    fc = s.forecast
    d["id"] = run_id(s)
    d["taken_at"] = s.taken_at
    d["labels"] = dict(s.labels)
    d["checkpoints"] = s.checkpoints
    d["no_progress"] = s.no_progress
    d["time"].update(finish_p10=fc.finish_p10, finish_p90=fc.finish_p90, stalled_s=fc.stalled_s,
                     expected_gap_s=fc.expected_gap_s, slowdown=fc.slowdown)
    d["energy"]["mean_power_w"] = s.energy.mean_power_w
    d["first_nonfinite"] = list(s.first_nonfinite) if s.first_nonfinite else None
    d["gpus"] = [_gpu(g) for g in s.gpus]
    d["loss"]["final_path"] = [list(p) for p in s.final_loss.path]
    half = s.final_loss_halfway
    d["loss"]["final_at_half"] = None if half is None else {
        "p50": half.p50, "p10": half.p10, "p90": half.p90, "of": half.of, "reason": half.reason,
        "schedule": half.schedule}
    if s.plan is not None:
        d["plan"]["iter_s"] = s.plan.iter_s
    d["last_checkpoint_iter"] = s.last_checkpoint_iter
    d["job_end_at"] = s.job_end_at  # a Slurm job's end (--slurm), and the forecast held against it
    d["time_limit"] = {f.name: getattr(s.time_limit, f.name) for f in fields(TimeLimit)} if s.time_limit else None
    return d


def detail(s: Snapshot, *, since: int | None = None, segment: int = 0, limit: int = MAX_POINTS) -> dict[str, Any]:
    """One run with its history: the points after (`segment`, `since`) when given, thinned to `limit`.

    Points are ordered by (segment, iteration): a resumed run repeats iterations in a later segment,
    so a client passes the segment of the last point it holds and gets everything after it.
    """
    d = summary(s)
    points = s.history if since is None else [p for p in s.history if (p.segment, p.iter) > (segment, since)]
    kept = thin(points, limit)
    d["history"] = {"fields": list(HISTORY_FIELDS), "points": [[getattr(p, f) for f in HISTORY_FIELDS]
                                                               for p in kept],
                    "downsampled": len(kept) < len(points)}
    d["evals"] = {"fields": list(EVAL_FIELDS), "points": [[getattr(e, f) for f in EVAL_FIELDS]
                                                          for e in s.evals]}
    d["notes"] = [{"wall": n.wall, "iter": n.iter, "level": n.level, "text": n.text} for n in s.notes]
    return d


def runs_document(snaps: Iterable[Snapshot]) -> dict[str, Any]:
    return {"schema": SCHEMA, "runs": [summary(s) for s in snaps]}


def thin(points: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` points, evenly spaced, always keeping the last (the current value)."""
    n = len(points)
    if n <= limit:
        return list(points)
    if limit <= 1:
        return list(points[-limit:]) if limit else []
    step = (n - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


def dumps(doc: object) -> bytes:
    """Compact, strict JSON: a NaN or infinite float is carried as the string "nan"/"inf" (as the report
    does for losses), never as a bare NaN token that strict parsers refuse."""
    return json.dumps(_finite(doc), separators=(",", ":"), allow_nan=False, default=str).encode()


def _finite(v: object) -> object:
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _gpu(g: GpuSample) -> dict[str, Any]:
    return {"index": g.index, "uuid": g.uuid, "name": g.name, "at": g.at, "power_w": g.power_w,
            "energy_j": g.energy_j, "memory_used_bytes": g.memory_used_bytes,
            "memory_total_bytes": g.memory_total_bytes, "utilization": g.utilization,
            "temperature_c": g.temperature_c, "sm_clock_mhz": g.sm_clock_mhz, "throttle": list(g.throttle),
            "processes": [{"pid": p.pid, "used_memory_bytes": p.used_memory_bytes} for p in g.processes],
            "lost": g.lost}


# ---- the inverse ----------------------------------------------------------------------------------

SNAPSHOT_PATHS: dict[str, tuple[str, ...]] = {
    "run": ("run",), "log": ("log",), "format": ("format",), "taken_at": ("taken_at",), "state": ("state",),
    "iter": ("progress", "iter"), "max_iters": ("progress", "max_iters"),
    "max_iters_source": ("progress", "max_iters_source"), "fraction": ("progress", "fraction"),
    "train_loss": ("loss", "train"), "val_loss": ("loss", "val"), "best_val": ("loss", "best_val"),
    "tokens_per_iter": ("tokens", "per_iter"), "tokens_seen": ("tokens", "seen"), "tokens_total": ("tokens", "total"),
    "dataset_tokens": ("tokens", "dataset"), "params": ("compute", "params"),
    "flops_per_token": ("compute", "flops_per_token"), "flops_done": ("compute", "flops_done"),
    "flops_total": ("compute", "flops_total"), "mfu": ("compute", "mfu"), "mfu_logged": ("compute", "mfu_logged"),
    "gpu_peak_flops": ("compute", "gpu_peak_flops"), "elapsed_s": ("time", "elapsed_s"),
    "last_progress_at": ("time", "last_progress_at"), "energy_forecast_j": ("energy", "forecast_joules"),
    "cost": ("energy", "cost"), "checkpoints": ("checkpoints",), "error_type": ("error", "type"),
    "error_message": ("error", "message"), "lines": ("lines",), "parse_errors": ("parse_errors",),
    "gpu_memory_peak_bytes": ("gpu", "memory_peak_bytes"), "gpu_selection": ("gpu", "selection"),
    "last_checkpoint_iter": ("last_checkpoint_iter",), "job_end_at": ("job_end_at",),
    "target_loss": ("loss", "target"),
    "no_progress": ("no_progress",),
}
"""Where each plain Snapshot field lives in a run's dict; the structured ones are read in `snapshot_of`.
A test checks that every Snapshot field is read: a field added to the snapshot fails it until the
remote view gets it too."""

FORECAST_PATHS: dict[str, tuple[str, ...]] = {
    "iter_s": ("time", "iter_s"), "eval_overhead_s": ("time", "eval_overhead_s"),
    "evals_left": ("time", "evals_left"), "eta_s": ("time", "eta_s"), "eta_p10_s": ("time", "eta_p10_s"),
    "eta_p90_s": ("time", "eta_p90_s"), "finish_at": ("time", "finish_at"), "finish_p10": ("time", "finish_p10"),
    "finish_p90": ("time", "finish_p90"), "tokens_per_s": ("tokens", "per_second"),
    "reason": ("time", "eta_reason"), "stalled_s": ("time", "stalled_s"),
    "expected_gap_s": ("time", "expected_gap_s"), "slowdown": ("time", "slowdown"),
}
STRUCTURED = frozenset({"forecast", "energy", "settings", "history", "evals", "notes", "gpus", "first_nonfinite",
                        "labels", "plan", "time_limit", "final_loss", "final_loss_halfway"})
LOCAL_ONLY = frozenset({"problem", "source"})  # the receiving side's own: why its view may be out of date, and
# a path as the serving machine's OS has it (its printable `log` is carried)


class ShapeError(ValueError):
    """A run's dict that is not `trainwatch.api/1` (another program on that port, another version)."""


def snapshot_of(d: Mapping[str, Any]) -> Snapshot:
    """The Snapshot a run's dict (summary or detail) was built from; a summary has no history."""
    try:
        plain = {name: _back(Snapshot, name, _at(d, path)) for name, path in SNAPSHOT_PATHS.items()}
        e = d["energy"]
        history = d.get("history") or {"fields": [], "points": []}
        evals = d.get("evals") or {"fields": [], "points": []}
        nonfinite = d.get("first_nonfinite")
        return Snapshot(
            **plain,
            forecast=Forecast(**{k: _back(Forecast, k, _at(d, p)) for k, p in FORECAST_PATHS.items()}),
            energy=Energy(joules=e["joules"], source=e["source"], estimated_joules=e["estimated_joules"],
                          mean_power_w=e.get("mean_power_w")),
            settings={k: Setting(v["value"], v["source"]) for k, v in d["settings"].items()},
            history=tuple(IterPoint(**_row(IterPoint, history, p)) for p in history["points"]),
            evals=tuple(EvalPoint(**_row(EvalPoint, evals, p)) for p in evals["points"]),
            notes=tuple(Note(n["wall"], n["iter"], n["level"], n["text"]) for n in d.get("notes") or ()),
            gpus=tuple(_gpu_back(g) for g in d.get("gpus") or ()),
            first_nonfinite=(int(nonfinite[0]), float(nonfinite[1])) if nonfinite else None,
            labels={str(k): str(v) for k, v in (d.get("labels") or {}).items()},
            plan=_plan_back(d["plan"]) if d.get("plan") else None,
            time_limit=TimeLimit(**d["time_limit"]) if d.get("time_limit") else None,
            final_loss=_final_back(d["loss"]),
            final_loss_halfway=_half_back(d["loss"].get("final_at_half")),
        )
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ShapeError(f"not a trainwatch.api/1 run: {type(e).__name__}: {e}") from None


def _at(d: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = d[key]
    return d


_FLOAT_FIELDS: dict[type, frozenset[str]] = {cls: frozenset(f.name for f in fields(cls) if "float" in str(f.type))
                 for cls in (Snapshot, Forecast, IterPoint, EvalPoint)}


def _back(cls: type, name: str, v: Any) -> Any:
    """"nan"/"inf" in a float field were floats (JSON has no token for them); elsewhere they are text."""
    if isinstance(v, str) and name in _FLOAT_FIELDS[cls]:
        return float(v)
    return v


def _row(cls: type, table: Mapping[str, Any], values: Sequence[Any]) -> dict[str, Any]:
    return {f: _back(cls, f, v) for f, v in zip(table["fields"], values, strict=True)}


def _final_back(loss: Mapping[str, Any]) -> FinalLoss:
    path = tuple((int(p[0]), float(p[1]), float(p[2]), float(p[3])) for p in loss.get("final_path") or ())
    return FinalLoss(p50=loss["final_p50"], p10=loss["final_p10"], p90=loss["final_p90"], of=loss["final_of"],
                     reason=loss["final_reason"], schedule=loss["final_schedule"] or "", path=path)


def _half_back(h: Mapping[str, Any] | None) -> FinalLoss | None:
    if h is None:
        return None
    return FinalLoss(p50=h["p50"], p10=h["p10"], p90=h["p90"], of=h["of"], reason=h["reason"],
                     schedule=h["schedule"] or "")


def _plan_back(p: Mapping[str, Any]) -> PlanCheck:
    energy = p["energy_joules"] or {"low": None, "high": None}
    return PlanCheck(gpu=p["gpu"], mfu_low=p["mfu"]["low"], mfu_high=p["mfu"]["high"], time_low_s=p["time_s"]["low"],
                     time_high_s=p["time_s"]["high"], energy_low_j=energy["low"], energy_high_j=energy["high"],
                     needs_s=p["needs_s"], iter_s=p.get("iter_s"), verdict=p["verdict"])


def _gpu_back(g: Mapping[str, Any]) -> GpuSample:
    return GpuSample(index=g["index"], uuid=g["uuid"], name=g["name"], at=g["at"], power_w=g["power_w"],
                     energy_j=g["energy_j"], memory_used_bytes=g["memory_used_bytes"],
                     memory_total_bytes=g["memory_total_bytes"], utilization=g["utilization"],
                     temperature_c=g["temperature_c"], sm_clock_mhz=g["sm_clock_mhz"],
                     throttle=tuple(g["throttle"]),
                     processes=tuple(GpuProcess(p["pid"], p["used_memory_bytes"]) for p in g["processes"]),
                     lost=bool(g["lost"]))
