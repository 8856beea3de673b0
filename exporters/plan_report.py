"""A plan as text and as `trainwatch.plan/1` JSON; and the one line that compares a plan with a run's pace."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any

from monitor.model.plan import Band, Plan
from monitor.snapshot import PlanCheck
from monitor.units import duration, human, printable

SCHEMA = "trainwatch.plan/1"
GIB = 2**30
WIDTH = 110


@dataclass(frozen=True, slots=True)
class Source:
    """Where the plan's numbers came from: a config file (with overrides) or a started run's log."""

    kind: str  # config | log
    path: str
    overrides: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was assumed or found (vocab from meta.pkl, dataset from train.bin…)


def _band(b: Band | None) -> dict[str, float] | None:
    return None if b is None else {"low": b.low, "high": b.high}


def to_dict(p: Plan, src: Source, price_per_kwh: float | None = None) -> dict[str, Any]:
    c, m, t, v = p.config, p.config.model, p.time, p.vram
    gpu = p.gpu
    memory = gpu.memory_gb * GIB if gpu and gpu.memory_gb else None
    return {
        "schema": SCHEMA,
        "source": {"kind": src.kind, "path": src.path, "overrides": list(src.overrides), "notes": list(src.notes)},
        "config": {"n_layer": m.n_layer, "n_head": m.n_head, "n_embd": m.n_embd, "block_size": m.block_size,
                   "vocab_size": m.vocab_size, "bias": m.bias, "batch_size": c.batch_size,
                   "gradient_accumulation_steps": c.gradient_accumulation_steps, "max_iters": c.max_iters,
                   "eval_interval": c.eval_interval, "eval_iters": c.eval_iters, "dtype": c.dtype,
                   "compile": c.compile},
        "tokens": {"per_iter": p.tokens_per_iter, "steps": p.steps, "iteration_0_counts": True,
                   "total": p.tokens_total, "dataset": p.dataset_tokens, "epochs": p.epochs},
        "params": {"nanogpt": p.params, "total": p.params_total},
        "flops": {"per_token_6n": p.flops_per_token_6n, "per_token": p.flops_per_token,
                  "total_6nd": p.flops_total_6nd, "total": p.flops_total},
        "gpu": None if gpu is None else {"name": gpu.name, "count": p.n_gpus, "peak_flops": gpu.peak_flops,
                                         "memory_bytes": memory, "power_w": gpu.power_w, "note": gpu.note},
        "time": {"reason": p.no_time_reason} if t is None else {
            "basis": t.basis, "mfu": _band(t.mfu), "iter_s": _band(t.iter_s), "train_s": _band(t.train_s),
            "warmup_s": _band(t.warmup_s), "eval_s": _band(t.eval_s), "evals": p.evals, "total_s": _band(t.total_s)},
        "energy": {"joules": _band(p.energy_j), "cost": _band(p.cost), "price_per_kwh": price_per_kwh,
                   "power_w": gpu.power_w if gpu else None},
        "vram": {"weights": v.weights, "gradients": v.gradients, "optimizer": v.optimizer,
                 "activations": v.activations, "attention_matrices": v.attention_matrices,
                 "logits": _band(v.logits), "total": _band(v.total),
                 "total_without_flash": _band(v.total_without_flash), "gpu_memory_bytes": memory,
                 "fits": None if memory is None else v.total.high <= memory},
    }


def to_json(p: Plan, src: Source, price_per_kwh: float | None = None) -> str:
    return json.dumps(to_dict(p, src, price_per_kwh), indent=2, allow_nan=False)


def span(b: Band, fmt: Any = duration, sep: str = " – ") -> str:
    """`30h 03m – 50h 09m`; one value when both ends agree."""
    lo, hi = fmt(b.low), fmt(b.high)
    return lo if lo == hi else f"{lo}{sep}{hi}"


def hours(b: Band) -> str:
    """`30–50 h` for long runs (whole hours say it), the exact durations otherwise."""
    if b.low >= 10 * 3600:
        lo, hi = round(b.low / 3600), round(b.high / 3600)
        return f"{lo} h" if lo == hi else f"{lo}–{hi} h"
    return span(b)


def minutes(b: Band) -> str:
    """`1–4 min` for the allowances under an hour."""
    if b.high < 3600 and b.low >= 60:
        return span(b, lambda x: f"{x / 60:.0f}", "–") + " min"
    return span(b)


def hours_minutes(seconds: float) -> str:
    """`55h 24m`: a run's length in the hours people plan in, never in days."""
    if seconds < 3600:
        return duration(seconds)
    h, m = divmod(round(seconds / 60), 60)
    return f"{h}h {m:02d}m"


def kwh(joules: float) -> str:
    x = joules / 3.6e6
    return f"{x:.0f}" if x >= 10 else f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def _gib(x: float) -> str:
    return f"{x / GIB:.2f} GiB"


def _sci(x: float) -> str:
    return f"{x:.3g}".replace("e+", "e")


def iter_time(s: float) -> str:
    return f"{s * 1000:.0f} ms/iter" if s < 1 else f"{s:.1f} s/iter"


def _iter_band(b: Band) -> str:
    """`5.4–9.0 s/iter`."""
    if b.low >= 1:
        return span(b, lambda x: f"{x:.1f}", "–") + " s/iter"
    return span(b, lambda x: f"{x * 1000:.0f}", "–") + " ms/iter" if b.high < 1 else span(b, iter_time)


def tokens(x: float | None) -> str:
    """`10.486 B`, `3.68 B`, `81.9 M`: billions as people say them for tokens."""
    if x is not None and x >= 1e9:
        return f"{x / 1e9:.3g} B" if x < 1e10 else f"{x / 1e9:.4g} B"
    return human(x)


def to_text(p: Plan, src: Source, price_per_kwh: float | None = None) -> str:
    c, m, t = p.config, p.config.model, p.time
    on = f"{p.n_gpus} × {p.gpu.name}" if p.gpu else "no known GPU"
    rows: list[tuple[str, str]] = [
        ("plan", f"{src.path} ({'a started run' if src.kind == 'log' else 'config'}) on {on}"
                 + (f", with {' '.join(src.overrides)}" if src.overrides else "")),
        ("model", f"{m.n_layer} layers × {m.n_head} heads × {m.n_embd}, block {m.block_size:,}, "
                  f"vocab {m.vocab_size:,}, bias {m.bias}, {c.dtype}" + (", compiled" if c.compile else "")),
        ("tokens/iter", f"{p.tokens_per_iter:,} (batch {c.batch_size} × block {m.block_size:,} × "
                        f"gradient accumulation {c.gradient_accumulation_steps})"),
        ("tokens", f"{tokens(p.tokens_total)} in {p.steps:,} iterations (0..{c.max_iters:,}: nanoGPT runs "
                   "iteration 0 too)"),
        ("epochs", f"{p.epochs:.2f} ({tokens(p.dataset_tokens)} dataset tokens)" if p.epochs is not None else
                   "— (give --dataset-tokens N or --data-dir DIR)"),
        ("parameters", f"{p.params / 1e6:.2f} M as nanoGPT counts them (without position embeddings), "
                       f"{p.params_total / 1e6:.2f} M in all"),
        ("FLOPs/token", f"{human(p.flops_per_token_6n)} by 6·N, {human(p.flops_per_token)} with attention "
                        "(6·N + 12·L·H·Q·T)"),
        ("FLOPs", f"{_sci(p.flops_total_6nd)} by 6·N·D, {_sci(p.flops_total)} with attention"),
    ]
    rows += [("note", n) for n in src.notes]
    rows += _time_rows(p)
    rows += _vram_rows(p)
    if p.energy_j is not None and p.gpu is not None:
        cost = f", cost {span(p.cost, lambda x: f'{x:.2f}', '–')} at {price_per_kwh:g}/kWh" if p.cost else ""
        rows.append(("energy", f"{span(p.energy_j, kwh, '–')} kWh at "
                               f"{p.gpu.power_w:.0f} W board power × {p.n_gpus}{cost}"))
    elif t is None:
        rows.append(("energy", f"— ({p.no_time_reason})"))
    width = max(len(k) for k, _ in rows)
    out = []
    for key, text in rows:  # wrapped to fit a terminal: continuation lines under the text, not the key
        for i, line in enumerate(textwrap.wrap(printable(text), WIDTH - width - 2, break_on_hyphens=False)):
            out.append(f"{key if i == 0 else '':<{width}}  {line}")
    return "\n".join(out)


def _time_rows(p: Plan) -> list[tuple[str, str]]:
    t, gpu = p.time, p.gpu
    if t is None:
        return [("time", f"— ({p.no_time_reason})")]
    if t.basis == "measured":
        speed = f" at the measured {iter_time(t.iter_s.low)}" if t.iter_s else ""
        mfu = f" (MFU {100 * t.mfu.low:.1f} %)" if t.mfu else ""
        return [("time", f"{hours(t.total_s)} in all{speed}{mfu}")]
    assert t.mfu is not None and t.iter_s is not None and t.warmup_s is not None and t.eval_s is not None
    peak = f"{gpu.peak_flops / 1e12:g} TFLOPS" if gpu else "?"
    rows = [("time", f"{hours(t.total_s)} at MFU {span(t.mfu, lambda x: f'{100 * x:.0f}', '–')} % of {peak} "
                     f"(dense bf16) × {p.n_gpus}"),
            ("", f"{_iter_band(t.iter_s)}; + {minutes(t.warmup_s)} warm-up"
                 + (" (torch.compile)" if p.config.compile else "")
                 + f"; + {minutes(t.eval_s)} for {p.evals} evals of 2 × {p.config.eval_iters} batches")]
    if gpu and gpu.note:
        rows.append(("", f"peak: {gpu.note}"))
    return rows


def _vram_rows(p: Plan) -> list[tuple[str, str]]:
    v, gpu, c = p.vram, p.gpu, p.config
    of = f" of the {gpu.name}'s {gpu.memory_gb:g} GB" if gpu and gpu.memory_gb else ""
    fits = ""
    if gpu and gpu.memory_gb:
        fits = "" if v.total.high <= gpu.memory_gb * GIB else \
            "  DOES NOT FIT: lower batch_size (raise gradient_accumulation_steps to keep tokens/iter)" \
            if v.total.low > gpu.memory_gb * GIB else "  (tight: may not fit)"
    return [
        ("VRAM", f"{span(v.total, _gib)} per GPU{of} (PyTorch's peak reserved; nvidia-smi adds ~0.5 GiB of CUDA "
                 f"context){fits}"),
        ("", f"weights {_gib(v.weights)} + gradients {_gib(v.gradients)} (fp32) + AdamW {_gib(v.optimizer)} + "
             f"activations {_gib(v.activations)} ({c.batch_size} × {c.model.block_size:,} tokens, {c.dtype}"
             + (", torch.compile" if c.compile else ", eager") + f") + logits {span(v.logits, _gib)}"),
        ("", f"without flash attention: {span(v.total_without_flash, _gib)} (+ {_gib(v.attention_matrices)} of "
             "attention scores)"),
    ]


def plan_line(c: PlanCheck) -> str:
    """The verdict, then what the plan assumed and the energy it planned."""
    assumed = f"MFU {span(Band(c.mfu_low, c.mfu_high), lambda x: f'{100 * x:.0f}', '–')} %" + \
        (f" on {c.gpu}" if c.gpu else "")
    energy = "" if c.energy_low_j is None or c.energy_high_j is None else \
        f", {span(Band(c.energy_low_j, c.energy_high_j), kwh, '–')} kWh"
    return f"{verdict_text(c)} (plan: {assumed}{energy})"


def verdict_text(c: PlanCheck) -> str:
    """`at 3.9 s/iter this run needs 21h 40m, not 15–20 h`: the plan beside what the pace says."""
    planned = hours(Band(c.time_low_s, c.time_high_s))
    if c.needs_s is None:
        return f"planned {planned}; not enough progress to compare yet"
    pace = f"at {iter_time(c.iter_s)} " if c.iter_s else ""
    needs = hours_minutes(c.needs_s)
    if c.verdict == "slower":
        return f"{pace}this run needs {needs}, not {planned}: slower than planned"
    if c.verdict == "faster":
        return f"{pace}this run needs {needs}, less than the planned {planned}"
    return f"on plan: {pace}this run needs {needs}, within the planned {planned}"
