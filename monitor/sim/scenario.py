"""What a simulated nanoGPT run is: the config (SimConfig) resolved into nanoGPT's settings and the
durations of its parts (Scenario). Pure; `monitor.sim.emit` plays a Scenario out line by line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from monitor.errors import TrainwatchError
from monitor.sim.presets import PRESETS, Preset
from parsers.nanogpt import DEFAULTS
from parsers.pyconfig import parse_assignment

A100_BF16_PEAK = 312e12  # what nanoGPT's estimate_mfu divides by, whatever the hardware
EVAL_FORWARD = 0.45  # an eval batch costs this fraction of a training micro-step (forward only, plus .item() syncs)
CHECKPOINT_BYTES_PER_PARAM = 12  # fp32 weights + AdamW's two moments
SAVE_BYTES_PER_S = 1.5e9
CUDA_WARMUP_S = 1.8  # the first iteration without torch.compile still pays for CUDA context and kernels
STEP_JITTER = 0.012  # lognormal sigma of one iteration's duration (real A100 logs: ~1 %)
EVAL_JITTER = 0.10
HICCUP_P = 0.001  # an iteration that stalls briefly (GC, data loader, a neighbour)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """What to simulate. Iteration fields None mean the preset's value; set ones are printed as
    `Overriding: key = value`, as nanoGPT's configurator does for `--key=value`. Failure points are
    fractions of max_iters."""

    preset: str = "shakespeare-char"
    seed: int = 1
    max_iters: int | None = None
    eval_interval: int | None = None
    log_interval: int | None = None
    iter_ms: float | None = None  # steady-state iteration time; None: from the preset's hardware
    ddp: int | None = None  # ranks; None: the preset's
    crash_at: float | None = None  # CUDA OOM traceback, the process exits
    nan_at: float | None = None  # losses become nan from there on, evals too
    stall_at: float | None = None  # the process hangs: no output for stall_s, or for good when None
    stall_s: float | None = None
    slowdown_at: float | None = None
    slowdown_factor: float = 1.4
    resume_at: float | None = None  # the process dies silently; a resumed one appends to the same log
    resume_delay_s: float = 45.0
    compile: bool | None = None  # torch.compile; None: the preset's (on), whose warm-up delays the first line

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        for name in ("crash_at", "nan_at", "stall_at", "slowdown_at", "resume_at"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} is a fraction of max_iters, between 0 and 1 (got {v})")
        for name in ("max_iters", "eval_interval", "log_interval", "ddp"):
            v = getattr(self, name)
            if v is not None and v < (0 if name == "max_iters" else 1):
                raise ValueError(f"{name} must be positive (got {v})")
        for name in ("iter_ms", "stall_s", "slowdown_factor"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be positive (got {v})")
        resolve(self)  # what only the resolved run can tell: accumulation steps that the ranks cannot share

    def overrides(self) -> tuple[tuple[str, object], ...]:
        pairs = (("max_iters", self.max_iters), ("eval_interval", self.eval_interval),
                 ("log_interval", self.log_interval), ("compile", self.compile))
        return tuple((k, v) for k, v in pairs if v is not None)


@dataclass(frozen=True, slots=True)
class Scenario:
    """The run the config describes, resolved: nanoGPT's settings and the durations of its parts."""

    preset: Preset
    settings: Mapping[str, object]  # nanoGPT's config: train.py defaults, then the config file, then overrides
    overrides: tuple[tuple[str, object], ...]  # the `--key=value` arguments of the simulated command line
    world: int
    tokens_per_iter: int
    params: int  # non-embedding, as nanoGPT prints it
    decayed: tuple[int, int]  # (tensors, parameters)
    nondecayed: tuple[int, int]
    flops_per_iter: float  # per GPU, nanoGPT's estimate
    step_s: float  # steady-state iteration
    eval_s: float  # 2 × eval_iters forward passes
    save_s: float
    warmup_s: float  # compile (or CUDA warm-up) inside each process's first iteration

    def count(self, key: str) -> int:
        return int(self.settings[key])  # type: ignore[call-overload]

    @property
    def max_iters(self) -> int:
        return self.count("max_iters")

    @property
    def eval_interval(self) -> int:
        return self.count("eval_interval")

    @property
    def log_interval(self) -> int:
        return self.count("log_interval")


# train.py defaults nanoGPT's parser does not need but the simulation does.
_MORE_DEFAULTS: dict[str, object] = {"dropout": 0.0, "compile": True}


def resolve(cfg: SimConfig) -> Scenario:
    preset = PRESETS[cfg.preset]
    settings: dict[str, object] = {**DEFAULTS, **_MORE_DEFAULTS}
    for line in preset.config_text.splitlines():
        kv = parse_assignment(line)
        if kv is not None:
            settings[kv[0]] = kv[1]
    settings.update(cfg.overrides())
    world = cfg.ddp or preset.world
    n = {k: int(settings[k]) for k in ("gradient_accumulation_steps", "batch_size", "block_size",  # type: ignore[call-overload]
                                       "n_layer", "n_head", "n_embd", "eval_iters")}
    if n["gradient_accumulation_steps"] % world:
        raise TrainwatchError(f"gradient_accumulation_steps = {n['gradient_accumulation_steps']} is not divisible by "
                         f"{world} ranks (nanoGPT asserts this); use a preset with more accumulation steps")
    ga_rank = n["gradient_accumulation_steps"] // world
    d, layers, block = n["n_embd"], n["n_layer"], n["block_size"]
    vocab = preset.vocab_size or 50304
    params = vocab * d + layers * (12 * d * d + 2 * d) + d  # bias=False; wpe is not counted, wte is (tied)
    flops = (6 * params + 12 * layers * n["n_head"] * (d // n["n_head"]) * block) * block * n["batch_size"] * ga_rank
    step_s = cfg.iter_ms / 1000.0 if cfg.iter_ms else flops / (preset.mfu * A100_BF16_PEAK)
    stored = params + block * d
    return Scenario(
        preset=preset, settings=settings, overrides=cfg.overrides(), world=world,
        tokens_per_iter=ga_rank * world * n["batch_size"] * block, params=params,
        decayed=(2 + 4 * layers, vocab * d + block * d + 12 * layers * d * d),
        nondecayed=(2 * layers + 1, (2 * layers + 1) * d),
        flops_per_iter=flops, step_s=step_s,
        eval_s=2 * n["eval_iters"] * step_s / ga_rank * EVAL_FORWARD,
        save_s=0.05 + stored * CHECKPOINT_BYTES_PER_PARAM / SAVE_BYTES_PER_S,
        warmup_s=preset.compile_s if settings["compile"] else CUDA_WARMUP_S,
    )
