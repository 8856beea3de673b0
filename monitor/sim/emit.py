"""A simulated nanoGPT run: the lines karpathy/nanoGPT's train.py prints, each with its true time.

Pure and deterministic (no clock, no I/O): `emissions(cfg)` yields what the run's processes write and
when, on a simulated clock that starts at 0 when the first process starts; monitor/sim/write.py writes
them to a file live. The loop below mirrors train.py's (see shared/notes/log-formats.md §1): the eval
runs at the top of iteration N and lands in that iteration's `time`, `dt` is measured from the end of
the previous iteration, `running_mfu` is an EMA updated on printed iterations from the 5th local one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from monitor.sim.scenario import A100_BF16_PEAK, EVAL_JITTER, HICCUP_P, STEP_JITTER, SimConfig, resolve
from monitor.sim.text import banner_phases, oom_traceback

OUT, ERR = "out", "err"  # streams of printed lines
EXIT, KILLED, STALLED = "exit", "killed", "stalled"  # markers: a process ends, dies unflushed, hangs for good


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
        self.p = resolve(cfg)
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
