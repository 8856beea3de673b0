"""Small nanoGPT logs written for the alert tests, and snapshots of them at a chosen `now`.

The logs have no timestamps, so a snapshot's clock is the file's modification time (what a backfill
sees): every file is stamped T0 and `now` is T0 + an offset the test chooses.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from monitor.daemon.load import load
from monitor.model.build import build_snapshot
from monitor.snapshot import Snapshot

T0 = 1_800_000_000.0


def header(max_iters: int, *, log_interval: int = 10, eval_interval: int = 250) -> list[str]:
    return [
        "Overriding config with config/train_test.py:",
        f"max_iters = {max_iters}",
        f"log_interval = {log_interval}",
        f"eval_interval = {eval_interval}",
        "batch_size = 32",
        "block_size = 128",
        "",
        "tokens per iteration will be: 4,096",
        "Initializing a new model from scratch",
        "number of parameters: 0.80M",
    ]


def iterations(first: int, last: int, *, log_interval: int = 10, eval_interval: int = 250,
               dt_ms: Callable[[int], float] = lambda i: 100.0,
               loss: Callable[[int], float] = lambda i: 3.0) -> list[str]:
    """nanoGPT's loop: an eval line before every multiple of eval_interval, an iteration line every log_interval."""
    out = []
    for i in range(first, last + 1):
        evaluating = i % eval_interval == 0
        if evaluating:
            out.append(f"step {i}: train loss {loss(i):.4f}, val loss {loss(i) + 0.05:.4f}")
        if i % log_interval == 0:
            dt = dt_ms(i) * (1 if i else 10) + (2000 if evaluating else 0)
            out.append(f"iter {i}: loss {loss(i):.4f}, time {dt:.2f}ms, mfu 1.00%")
    return out


def snap(path: Path, lines: list[str], offset: float = 0.0, **build: object) -> Snapshot:
    """The snapshot of `lines` written to `path`, last written at T0, seen at T0 + offset."""
    path.write_text("\n".join(lines) + "\n")
    os.utime(path, (T0, T0))
    ingest = load(str(path))
    return build_snapshot(ingest.state, run=path.stem, log=str(path), now=T0 + offset, lines=ingest.lines,
                          **build)  # type: ignore[arg-type]
