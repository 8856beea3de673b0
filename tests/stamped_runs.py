"""Synthetic nanoGPT CPU runs as `python train.py ... 2>&1 | ts '%.s'` writes them, for the forecaster's
constructed cases: each line carries the time `ts` received it, so a backtest knows the real finish.

The loop is nanoGPT's: at every multiple of eval_interval an eval (and a checkpoint save) before the
step, whose time lands in that step's printed `time`; a line every log_interval. Each step takes
`step_s(iteration, seconds since the start)`, which is where a neighbour, a wander or a slowdown goes.
Without -u, stdout reaches `ts` in 8 KiB blocks, stamped when the block is flushed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

T0 = 1_800_000_000.0
BLOCK = 8192

StepTime = Callable[[int, float], float]


@dataclass(frozen=True)
class Run:
    max_iters: int = 2000
    log_interval: int = 10
    eval_interval: int = 250
    eval_iters: int = 50
    eval_s: float = 1.7  # one eval (2 × eval_iters forward passes, a third of a step each) and its checkpoint
    first_save_s: float = 0.0  # what the first checkpoint adds (a new file, cold caches)
    start_s: float = 2.0  # imports, data, model: before iteration 0
    buffered: bool = False
    kill_at: int | None = None  # SIGKILL when this iteration's line is out; a resumed process follows
    restart_s: float = 4.0  # from the kill to the resumed process's first step


def lines(run: Run, step_s: StepTime) -> list[str]:
    """The stamped log of `run`, one string per line."""
    out = _Stdout(run.buffered)
    t = _process(run, step_s, out, first=0, t=T0)
    if run.kill_at is not None:
        out.killed()
        resume_from = run.kill_at // run.eval_interval * run.eval_interval  # the last checkpoint
        _process(run, step_s, out, first=resume_from, t=t + run.restart_s)
    out.exited()
    return out.lines


def _process(run: Run, step_s: StepTime, out: _Stdout, first: int, t: float) -> float:
    out.print(t, "Overriding config with config/train_localchar.py:")
    for key in ("max_iters", "log_interval", "eval_interval", "eval_iters"):
        out.print(t, f"{key} = {getattr(run, key)}")
    out.print(t, "batch_size = 12")
    out.print(t, "block_size = 64")
    out.print(t, "")
    out.print(t, "tokens per iteration will be: 768")
    out.print(t, "Resuming training from out" if first else "Initializing a new model from scratch")
    out.print(t, "number of parameters: 0.80M")
    t += run.start_s
    for i in range(first, run.max_iters + 1):
        dt = 0.0
        if i % run.eval_interval == 0:
            dt += run.eval_s + (run.first_save_s if i == run.eval_interval else 0.0)
            out.print(t + dt, f"step {i}: train loss 2.0000, val loss 2.1000")
        dt += step_s(i, t - T0)
        t += dt
        if i % run.log_interval == 0:
            out.print(t, f"iter {i}: loss 2.0000, time {1000 * dt:.2f}ms, mfu {-100 if i - first < 5 else 1:.2f}%")
        if run.kill_at is not None and first == 0 and i == run.kill_at:
            break
    return t


class _Stdout:
    """What `ts` writes: each line stamped when it reached the pipe, at once or with its 8 KiB block."""

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered
        self.lines: list[str] = []
        self._block: list[str] = []
        self._size = 0
        self._now = T0

    def print(self, t: float, text: str) -> None:
        self._now = t
        if not self.buffered:
            self.lines.append(f"{t:.6f} {text}")
            return
        if self._size + len(text) + 1 > BLOCK:
            self._flush(t)
        self._block.append(text)
        self._size += len(text) + 1

    def killed(self) -> None:
        self._block, self._size = [], 0  # the block dies with the process

    def exited(self) -> None:
        self._flush(self._now)  # the exit flushes what is left

    def _flush(self, t: float) -> None:
        self.lines += [f"{t:.6f} {text}" for text in self._block]
        self._block, self._size = [], 0
