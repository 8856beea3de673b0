"""The run's learning-rate schedule, as a multiplier of its peak: from the config the log echoes, the lr
column it prints, or the script's known shape; and how sure that is (the final-loss band widens with doubt).

nanoGPT: linear warm-up, cosine to min_lr at lr_decay_iters (or constant with decay_lr=False). llm.c: the
config table (scheduler, warm-up, final fraction) and the lr on every step. nanochat: lrm on every step,
constant then a linear warm-down over the last 20 % to 0. modded-nanogpt: constant then a linear cooldown to
0.1 over the last part of the run, whose length its script fixes and the log (without the script) does not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.model.forecast import max_iters_known
from monitor.model.state import RunState

NANOCHAT_WARMDOWN = 0.2  # nanochat base_train/mid_train: warmdown_ratio 0.2, final_lr_frac 0.0
MODDED_COOLDOWN = 0.4  # modded-nanogpt records of 2025 (cooldown_frac 0.4; later records 0.45–0.7), to 0.1
MODDED_FLOOR = 0.1


@dataclass(frozen=True, slots=True)
class Schedule:
    """Multiplier of the peak lr at each iteration: a linear warm-up to 1 over `warmup` iterations, 1 until
    `decay_start`, then `shape` (cosine | linear) down to `floor` at `decay_end`, `floor` after.

    `known`: config (stated by the log) | log (read off its lr column) | assumed (the script's usual shape,
    not confirmed by the log) | unknown (nothing known: constant assumed)."""

    known: str
    words: str
    warmup: float = 0.0
    decay_start: float = math.inf
    decay_end: float = math.inf
    floor: float = 1.0
    shape: str = "linear"

    def at(self, it: float) -> float:
        if it < self.warmup:
            return (it + 1) / (self.warmup + 1)
        if it <= self.decay_start:
            return 1.0
        if it >= self.decay_end:
            return self.floor
        r = (it - self.decay_start) / (self.decay_end - self.decay_start)
        coeff = 0.5 * (1 + math.cos(math.pi * r)) if self.shape == "cosine" else 1 - r
        return self.floor + coeff * (1 - self.floor)


UNKNOWN = Schedule("unknown", "learning-rate schedule unknown (constant assumed)")


def schedule(state: RunState, max_iters: int) -> Schedule:
    """The schedule of the run in `state`, which ends at `max_iters`."""
    if state.format == "nanogpt":
        return _nanogpt(state)
    if state.format == "llmc":
        return _llmc(state, max_iters)
    if state.format == "nanochat":
        return _warmdown(state, max_iters, NANOCHAT_WARMDOWN, 0.0, "nanochat")
    if state.format == "modded":
        return Schedule("assumed", f"modded-nanogpt's cooldown over the last {MODDED_COOLDOWN:.0%} assumed",
                        decay_start=max_iters * (1 - MODDED_COOLDOWN), decay_end=max_iters, floor=MODDED_FLOOR)
    return UNKNOWN


def _nanogpt(state: RunState) -> Schedule:
    lr, decay, mi = state.setting("learning_rate"), state.setting("decay_lr"), state.setting("max_iters")
    shown = mi is not None and (mi.source == "log" or (mi.source == "default" and max_iters_known(state) is not None))
    if lr is None or (lr.source != "log" and not shown):
        return UNKNOWN  # no config in the log: train.py's defaults may not be what ran
    if decay is not None and decay.value is False:
        return Schedule("config", "constant learning rate (decay_lr=False)", warmup=0.0)
    peak = state.number("learning_rate") or 0.0
    warmup = state.number("warmup_iters") or 0.0
    end = state.number("lr_decay_iters") or math.inf
    floor = (state.number("min_lr") or 0.0) / peak if peak > 0 else 0.0
    return Schedule("config", f"cosine to {floor:.2g}× at iter {end:,.0f} (config)", warmup=warmup,
                    decay_start=warmup, decay_end=end, floor=min(1.0, floor), shape="cosine")


def _llmc(state: RunState, max_iters: int) -> Schedule:
    kind = state.setting("lr_scheduler")
    if kind is not None and kind.value in ("cosine", "linear", "constant"):
        warmup = state.number("warmup_iters") or 0.0
        frac = state.number("final_lr_frac")
        floor = 1.0 if frac is None or kind.value == "constant" else min(1.0, max(0.0, frac))
        return Schedule("config", f"{kind.value} to {floor:.2g}× (config)", warmup=warmup, decay_start=warmup,
                        decay_end=max_iters, floor=floor, shape=str(kind.value))
    return _cosine_from_column(state, max_iters)


def _column(state: RunState) -> list[tuple[int, float]]:
    """(iteration, printed lr) of the current stretch of the run."""
    seg = state.iters.points[-1].segment if state.iters.points else -1
    return [(p.iter, p.lr) for p in state.iters.points if p.lr is not None and p.segment == seg]


def _cosine_from_column(state: RunState, max_iters: int) -> Schedule:
    """llm.c's default: warm-up then cosine to an unstated floor, solved from the lr printed now."""
    col = _column(state)
    if not col:
        return UNKNOWN
    peak_at, peak = max(col, key=lambda c: c[1])
    if peak <= 0:
        return UNKNOWN
    it, now = col[-1]
    r = (it - peak_at) / (max_iters - peak_at) if max_iters > peak_at else 0.0
    coeff = 0.5 * (1 + math.cos(math.pi * min(1.0, r)))
    if coeff > 0.95:  # too early to tell where it ends
        return Schedule("assumed", "cosine to 0 assumed (lr column)", warmup=peak_at, decay_start=peak_at,
                        decay_end=max_iters, floor=0.0, shape="cosine")
    floor = min(1.0, max(0.0, (now / peak - coeff) / (1 - coeff)))
    return Schedule("log", f"cosine to {floor:.2g}× (lr column)", warmup=peak_at, decay_start=peak_at,
                    decay_end=max_iters, floor=floor, shape="cosine")


def _warmdown(state: RunState, max_iters: int, share: float, floor: float, who: str) -> Schedule:
    """Constant, then linear to `floor` at the end: where the decay began when the column shows it."""
    col = _column(state)
    if not col:
        return UNKNOWN
    peak = max(c[1] for c in col)
    top = next(k for k, c in enumerate(col) if c[1] == peak)  # past any warm-up
    start = next((i for i, v in col[top:] if v < peak * 0.995), None)
    if start is not None:
        return Schedule("log", f"linear warm-down from iter {start:,} (lr column)", decay_start=start - 1,
                        decay_end=max_iters, floor=floor)
    return Schedule("assumed", f"{who}'s warm-down over the last {share:.0%} assumed",
                    decay_start=max_iters * (1 - share), decay_end=max_iters, floor=floor)
