"""Backfill speed: reading a large nanoGPT log on attach, against `grep -c '^iter '` on the same file.

    .venv/bin/python bench/backfill_speed.py [--mb 200] [--path /tmp/trainwatch-backfill.log] [--repeat 3]

Writes (once, then reuses) a nanoGPT-like log of about --mb MB: the config echo, `iter N: loss X, time
Tms, mfu M%` lines and every 250 iterations `step N: train loss …, val loss …` and `saving checkpoint`.
Then, with the file in the page cache, measures
- `grep -c '^iter '` (the floor: a C program that only counts);
- FileTail.read() alone, in 8 MiB slices as the run loop backfills (bytes → decoded, split lines);
- FileTail + monitor.model.ingest.Ingest, the live path's parser and run state (lines → events → state).
Reports the best of --repeat runs (wall clock; the machine is shared) as lines/s and MB/s.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.daemon.load import new_ingest  # noqa: E402
from monitor.follow.tail import FileTail  # noqa: E402

SLICE = 8 << 20  # what monitor/daemon/writer.py's Follower reads per step while backfilling
HEADER = """Overriding config with config/train_gpt2.py:
# config for training GPT-2 (124M)
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8
max_iters = {max_iters}
lr_decay_iters = {max_iters}
eval_interval = 250
eval_iters = 200
log_interval = 1
weight_decay = 1e-1
tokens per iteration will be: 491,520
Initializing a new model from scratch
number of parameters: 123.59M
num decayed parameter tensors: 50, with 124,354,560 parameters
num non-decayed parameter tensors: 25, with 19,200 parameters
using fused AdamW: True
compiling the model... (takes a ~minute)
"""


def generate(path: Path, mb: float, seed: int = 1) -> None:
    """A nanoGPT log of about `mb` MB (about 48 bytes per iteration line), deterministic."""
    rnd = random.Random(seed)
    target = int(mb * 1e6)
    max_iters = target // 47
    with open(path, "w") as f:
        f.write(HEADER.format(max_iters=max_iters))
        written, it, batch = 0, 0, []
        loss = 10.99
        while written < target:
            if it % 250 == 0:
                batch.append(f"step {it}: train loss {loss:.4f}, val loss {loss + 0.03:.4f}\n")
                if it:
                    batch.append("saving checkpoint to out\n")
            loss = max(2.8, loss * 0.99995) + rnd.uniform(-0.05, 0.05)
            ms = 87476.85 if it == 0 else rnd.gauss(310, 6) + (2900 if it % 250 == 0 else 0)
            mfu = -100.0 if it < 5 else 38 + rnd.uniform(-0.5, 0.5)
            batch.append(f"iter {it}: loss {loss:.4f}, time {ms:.2f}ms, mfu {mfu:.2f}%\n")
            it += 1
            if len(batch) >= 10000:
                chunk = "".join(batch)
                f.write(chunk)
                written += len(chunk)
                batch = []
        f.write("".join(batch))


def grep_count(path: Path) -> int:
    out = subprocess.run(["grep", "-c", "^iter ", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout)


def tail_only(path: Path) -> int:
    lines = 0
    with FileTail(str(path)) as tail:
        while True:
            read = tail.read(SLICE)
            lines += len(read.lines)
            if not read.pending:
                return lines


def tail_ingest(path: Path) -> int:
    ingest = None
    with FileTail(str(path)) as tail:
        while True:
            read = tail.read(SLICE)
            if ingest is None:
                ingest = new_ingest("\n".join(read.lines[:200]).encode(), format=None, user=None)
            ingest.feed_lines(read.lines, None)
            if not read.pending:
                assert ingest.state.last is not None
                return ingest.state.iteration_lines


def best(fn: Callable[[Path], int], path: Path, repeat: int) -> tuple[float, float, int]:
    """Best wall and CPU seconds over `repeat` runs, and what the run counted."""
    walls, cpus, count = [], [], 0
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        count = fn(path)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return min(walls), min(cpus), count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0)
    ap.add_argument("--path", type=Path, default=Path("/tmp/trainwatch-backfill.log"))
    ap.add_argument("--repeat", type=int, default=3)
    opts = ap.parse_args()
    if not opts.path.exists() or abs(opts.path.stat().st_size - opts.mb * 1e6) > 1e6:
        t0 = time.perf_counter()
        generate(opts.path, opts.mb)
        print(f"generated {opts.path} in {time.perf_counter() - t0:.1f} s")
    size = opts.path.stat().st_size
    with open(opts.path, "rb") as f:
        all_lines = sum(block.count(b"\n") for block in iter(lambda: f.read(1 << 24), b""))  # also warms the cache
    print(f"{opts.path}: {size / 1e6:.1f} MB, {all_lines:,} lines; best of {opts.repeat}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'':28} {'wall':>8} {'CPU':>8} {'lines/s':>12} {'MB/s':>8}  counted")
    for name, fn, repeat in [
        ("grep -c '^iter '", grep_count, opts.repeat),
        ("FileTail.read()", tail_only, opts.repeat),
        ("FileTail + Ingest", tail_ingest, 1),
    ]:
        wall, cpu, count = best(fn, opts.path, repeat)
        cpu_text = "-" if fn is grep_count else f"{cpu:.2f}s"
        print(f"{name:28} {wall:7.2f}s {cpu_text:>8} {all_lines / wall:12,.0f} {size / 1e6 / wall:8.1f}  {count:,}")


if __name__ == "__main__":
    main()
