"""Parse speed of `trainwatch report LOG --json` on noisy and real logs, against grep on the same file.

    .venv/bin/python bench/parse_speed.py [--mb 224] [--dir /tmp/trainwatch-parse] [--formats …] [--repeat 2]

Writes (once, then reuses) in --dir:
- `noisy.log`: the log of issue 18, deterministic: nanoGPT with log_interval 1 (~75 bytes an iteration,
  3,000,000 iterations at 224 MB), an eval and a checkpoint every 2,000 iterations, and about one line in
  50 something else, in turn: a torch UserWarning, ANSI escapes around markup-like text, a malformed
  `iter garbage:` line, a 5,000-character line, a line of invalid UTF-8 holding a NUL byte;
- `corpus-FORMAT.log`: every corpus log of that format (../shared/corpus/FORMAT/*.log) concatenated, over and
  over, to at least 100 MB.
For each: `trainwatch report LOG --json` in a child process, page cache warm: wall time, CPU time (user +
system, one core), peak RSS (the child's ru_maxrss from wait4), MB/s on both clocks; `grep -c` of the format's
progress lines on the same file (best of 3), and the ratio. Best of --repeat runs.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
FORMATS = {"nanogpt": "^iter ", "llmc": "^step ", "modded-nanogpt": "^step:", "nanochat": "^step ",
           "hf-trainer": "it/s]"}
HEADER = """Overriding config with config/train_gpt2.py:
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 40
max_iters = {max_iters}
eval_interval = 2000
log_interval = 1
tokens per iteration will be: 491,520
Initializing a new model from scratch
number of parameters: 123.59M
compiling the model... (takes a ~minute)
"""
NOISE = [
    "/usr/lib/python3/site-packages/torch/_inductor/compile_fx.py:150: UserWarning: TensorFloat32 tensor cores "
    "for float32 matrix multiplication available but not enabled. Consider setting "
    "`torch.set_float32_matmul_precision('high')` for better performance.\n",
    "\x1b[1m\x1b[31m[bold red]wandb[/bold red]\x1b[0m: \x1b[33m[link=file:///x]\x1b[0m syncing run [i]gpt2[/i]\n",
    "iter garbage: loss ???, time ms\n",
    "x" * 5000 + "\n",
]
BAD_UTF8 = b"\xff\xfe rank 3 \x00 \xc3\x28 \xed\xa0\x80 bytes\n"


def generate_noisy(path: Path, mb: float, seed: int = 18) -> None:
    rnd = random.Random(seed)
    target = int(mb * 1e6)
    max_iters = int(target / 74.7)
    with open(path, "wb") as f:
        f.write(HEADER.format(max_iters=max_iters).encode())
        written, it, noise, batch = 0, 0, 0, []
        loss = 10.99
        while written < target:
            if it % 2000 == 0:
                batch.append(f"step {it}: train loss {loss:.4f}, val loss {loss + 0.03:.4f}\n".encode())
                if it:
                    batch.append(b"saving checkpoint to out\n")
            loss = max(2.8, loss * 0.999998) + rnd.uniform(-0.05, 0.05)
            ms = 87476.85 if it == 0 else rnd.gauss(310, 6) + (2900 if it % 2000 == 0 else 0)
            mfu = -100.0 if it < 5 else 38 + rnd.uniform(-0.5, 0.5)
            batch.append(f"iter {it}: loss {loss:.4f}, time {ms:.2f}ms, mfu {mfu:.2f}%\n".encode())
            if rnd.random() < 1 / 49:
                batch.append(BAD_UTF8 if noise % 5 == 4 else NOISE[noise % 5].encode())
                noise += 1
            it += 1
            if len(batch) >= 10000:
                chunk = b"".join(batch)
                f.write(chunk)
                written += len(chunk)
                batch = []
        f.write(b"".join(batch))


def concatenate(fmt: str, path: Path, mb: float = 100.0) -> None:
    logs = []
    for p in sorted((CORPUS / fmt).glob("*.log")):
        data = p.read_bytes()
        logs.append(data if data.endswith(b"\n") else data + b"\n")
    one = b"".join(logs)
    with open(path, "wb") as f:
        for _ in range(-(-int(mb * 1e6) // len(one))):
            f.write(one)


def report(path: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (bytes) of `trainwatch report PATH --json`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "report", str(path), "--json"], cwd=ROOT,
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, f"report exited {proc.returncode}"
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def grep(pattern: str, path: Path) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        # captured, not sent to /dev/null: there GNU grep stops at the first match
        subprocess.run(["grep", "-c", pattern, str(path)], capture_output=True, check=False)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=224.0, help="size of the noisy log")
    ap.add_argument("--dir", type=Path, default=Path("/tmp/trainwatch-parse"))
    ap.add_argument("--formats", nargs="*", default=list(FORMATS), help="corpus formats (none: the noisy log only)")
    ap.add_argument("--repeat", type=int, default=2)
    opts = ap.parse_args()
    opts.dir.mkdir(parents=True, exist_ok=True)
    logs: list[tuple[str, Path, str]] = []
    noisy = opts.dir / "noisy.log"
    if not noisy.exists() or abs(noisy.stat().st_size - opts.mb * 1e6) > 1e6:
        generate_noisy(noisy, opts.mb)
    logs.append(("noisy nanoGPT", noisy, "^iter "))
    for fmt in opts.formats:
        path = opts.dir / f"corpus-{fmt}.log"
        if not path.exists():
            concatenate(fmt, path)
        logs.append((f"corpus {fmt}", path, FORMATS[fmt]))
    print(f"load average {os.getloadavg()[0]:.2f}; best of {opts.repeat}")
    print(f"{'log':24} {'MB':>6} {'wall':>7} {'CPU':>7} {'MB/s wall':>9} {'MB/s CPU':>8} {'RSS MB':>6} "
          f"{'grep':>6} {'× grep':>6}")
    for name, path, pattern in logs:
        size = path.stat().st_size / 1e6
        with open(path, "rb") as f:  # into the page cache
            while f.read(1 << 24):
                pass
        runs = [report(path) for _ in range(opts.repeat)]
        wall, cpu, rss = min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)
        g = grep(pattern, path)
        print(f"{name:24} {size:6.1f} {wall:6.2f}s {cpu:6.2f}s {size / wall:9.1f} {size / cpu:8.1f} "
              f"{rss / 1e6:6.0f} {g:5.2f}s {wall / g:6.1f}")


if __name__ == "__main__":
    main()
