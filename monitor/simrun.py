"""A simulated nanoGPT run: the lines karpathy/nanoGPT's train.py prints, each with its true time.

Pure and deterministic (no clock, no I/O): `emissions(cfg)` yields what the run's processes write and
when, on a simulated clock that starts at 0 when the first process starts; monitor/simulate.py writes
them to a file live. The loop below mirrors train.py's (see shared/notes/log-formats.md §1): the eval
runs at the top of iteration N and lands in that iteration's `time`, `dt` is measured from the end of
the previous iteration, `running_mfu` is an EMA updated on printed iterations from the 5th local one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass

from monitor.simpresets import PRESETS, Preset
from monitor.simtext import banner_phases, oom_traceback
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

OUT, ERR = "out", "err"  # streams of printed lines
EXIT, KILLED, STALLED = "exit", "killed", "stalled"  # markers: a process ends, dies unflushed, hangs for good


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
        plan(self)  # what only the resolved run can tell: accumulation steps that the ranks cannot share

    def overrides(self) -> tuple[tuple[str, object], ...]:
        pairs = (("max_iters", self.max_iters), ("eval_interval", self.eval_interval),
                 ("log_interval", self.log_interval))
        return tuple((k, v) for k, v in pairs if v is not None)


@dataclass(frozen=True, slots=True)
class Plan:
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


def plan(cfg: SimConfig) -> Plan:
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
        raise ValueError(f"gradient_accumulation_steps = {n['gradient_accumulation_steps']} is not divisible by "
                         f"{world} ranks (nanoGPT asserts this); use a preset with more accumulation steps")
    ga_rank = n["gradient_accumulation_steps"] // world
    d, layers, block = n["n_embd"], n["n_layer"], n["block_size"]
    vocab = preset.vocab_size or 50304
    params = vocab * d + layers * (12 * d * d + 2 * d) + d  # bias=False; wpe is not counted, wte is (tied)
    flops = (6 * params + 12 * layers * n["n_head"] * (d // n["n_head"]) * block) * block * n["batch_size"] * ga_rank
    step_s = cfg.iter_ms / 1000.0 if cfg.iter_ms else flops / (preset.mfu * A100_BF16_PEAK)
    stored = params + block * d
    return Plan(
        preset=preset, settings=settings, overrides=cfg.overrides(), world=world,
        tokens_per_iter=ga_rank * world * n["batch_size"] * block, params=params,
        decayed=(2 + 4 * layers, vocab * d + block * d + 12 * layers * d * d),
        nondecayed=(2 * layers + 1, (2 * layers + 1) * d),
        flops_per_iter=flops, step_s=step_s,
        eval_s=2 * n["eval_iters"] * step_s / ga_rank * EVAL_FORWARD,
        save_s=0.05 + stored * CHECKPOINT_BYTES_PER_PARAM / SAVE_BYTES_PER_S,
        warmup_s=preset.compile_s if settings["compile"] else CUDA_WARMUP_S,
    )


@dataclass(frozen=True, slots=True)
class Emission:
    """One physical line (no newline) a process writes at simulated time `t`, on `stream` (OUT or ERR);
    or a marker (EXIT, KILLED, STALLED) with empty text that says what the process did then."""

    t: float
    text: str
    stream: str = OUT


def generate(cfg: SimConfig) -> Iterator[tuple[float, str]]:
    """(simulated seconds since the start, line) for every line the run writes, in order."""
    for e in emissions(cfg):
        if e.stream in (OUT, ERR):
            yield e.t, e.text


def emissions(cfg: SimConfig) -> Iterator[Emission]:
    return _Sim(cfg).run()


def _at(fraction: float | None, max_iters: int) -> int | None:
    return None if fraction is None else int(round(fraction * max_iters))


class _Sim:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.p = plan(cfg)
        self.rng = random.Random(cfg.seed)
        self.t = 0.0
        self.best_val = 1e9
        self.checkpoint: tuple[int, float] | None = None  # (iteration, best_val_loss) saved in ckpt.pt
        mi = self.p.max_iters
        self.crash_iter = _at(cfg.crash_at, mi)
        self.stall_iter = _at(cfg.stall_at, mi)  # None once it has happened
        self.resume_iter = _at(cfg.resume_at, mi)  # None once it has happened
        self.slow_iter = _at(cfg.slowdown_at, mi)
        self.nan_iter = _at(cfg.nan_at, mi)

    def run(self) -> Iterator[Emission]:
        mode, start = "scratch", 0
        while (yield from self._process(mode, start)) == KILLED:
            self.t += self.cfg.resume_delay_s
            self.resume_iter = None
            if self.checkpoint is None:  # died before any checkpoint: the person starts over
                mode, start, self.best_val = "scratch", 0, 1e9
            else:
                mode, (start, self.best_val) = "resume", self.checkpoint

    def _process(self, mode: str, start: int) -> Generator[Emission, None, str]:
        p = self.p
        for dt, stream, lines in banner_phases(p, mode, self.rng):
            self.t += dt
            for text in lines:
                yield Emission(self.t, text, stream)
        it, local, running_mfu = start, 0, -1.0
        while True:
            if it == self.resume_iter:
                yield Emission(self.t, "", KILLED)
                return KILLED
            began = self.t
            warmup = p.warmup_s if local == 0 else 0.0
            if it % p.eval_interval == 0:
                self.t += warmup / 2 + p.eval_s * self._jitter(EVAL_JITTER)  # the eval graph compiles first
                warmup /= 2
                yield from self._eval(it)
            if it == self.crash_iter:
                self.t += warmup + 0.3 * p.step_s
                for line in oom_traceback(p):
                    yield Emission(self.t, line, ERR)
                yield Emission(self.t, "", EXIT)
                return EXIT
            if it == self.stall_iter:
                self.stall_iter = None
                if self.cfg.stall_s is None:
                    yield Emission(self.t, "", STALLED)
                    return STALLED
                self.t += self.cfg.stall_s
            self.t += warmup + self._step_s(it, local)
            if it % p.log_interval == 0:
                dt = self.t - began
                if local >= 5:
                    mfu = p.flops_per_iter / dt / A100_BF16_PEAK
                    running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
                yield Emission(self.t, f"iter {it}: loss {self._batch_loss(it):.4f}, time {dt * 1000:.2f}ms, "
                                       f"mfu {running_mfu * 100:.2f}%")
            it, local = it + 1, local + 1
            if it > p.max_iters:
                yield Emission(self.t, "", EXIT)
                return EXIT

    def _eval(self, it: int) -> Iterator[Emission]:
        p, curve = self.p, self.p.preset.loss
        if self._is_nan(it):
            train = val = math.nan
        else:
            train = curve.train(it) * (1 + 0.002 * self.rng.gauss(0, 1))
            val = (curve.train(it) + curve.val_gap(it)) * (1 + 0.002 * self.rng.gauss(0, 1))
        yield Emission(self.t, f"step {it}: train loss {train:.4f}, val loss {val:.4f}")
        if val < self.best_val or p.settings["always_save_checkpoint"]:
            self.best_val = val
            if it > 0:
                yield Emission(self.t, f"saving checkpoint to {p.settings['out_dir']}")
                self.t += p.save_s * self._jitter(EVAL_JITTER)
                self.checkpoint = (it, self.best_val)

    def _batch_loss(self, it: int) -> float:
        if self._is_nan(it):
            return math.nan
        curve = self.p.preset.loss
        dropout = float(self.p.settings["dropout"])  # type: ignore[arg-type]
        return curve.batch(it, dropout) * (1 + curve.batch_noise * self.rng.gauss(0, 1))

    def _step_s(self, it: int, local: int) -> float:
        slow = self.cfg.slowdown_factor if self.slow_iter is not None and it >= self.slow_iter else 1.0
        settle = 3.0 if local == 1 else 1.5 if local == 2 else 1.0  # the steps right after compilation
        hiccup = self.rng.uniform(1.5, 4.0) if self.rng.random() < HICCUP_P else 1.0
        return self.p.step_s * slow * settle * hiccup * self._jitter(STEP_JITTER)

    def _jitter(self, sigma: float) -> float:
        return math.exp(sigma * self.rng.gauss(0, 1))

    def _is_nan(self, it: int) -> bool:
        return self.nan_iter is not None and it >= self.nan_iter
