"""Attaching to a big log: first snapshot, full history, parse rate against grep, and peak memory.

    .venv/bin/python bench/attach_big.py [--sizes-mb 100 500 1000] [--dir /tmp] [--keep] [--profile]

Generates a nanoGPT log of the largest size with the simulator (GPT-2 124M, log_interval 1, evals
every 1,000 iterations with checkpoints, the start-up warnings, and a silent death at about 60 %
of the file followed by a resumed run appending to it), cut at a line end; the smaller sizes are its
prefixes (runs in progress without the resume). For each size, in a fresh child process:
- the first snapshot: `Monitor([spec]).step()` from nothing; checked against the file (config's
  max_iters, the last iteration and its loss, an ETA);
- the full history: `step()` until nothing is left to read; checked the same way, plus the line count;
- peak RSS (VmHWM: ru_maxrss would also count this process's memory at the fork) and RSS after every step;
and in this process, with the file in the page cache, `grep -c '^iter '` on the same file (best of 2).
The files are deleted at the end unless --keep. --profile runs cProfile over the smallest size's full
read and prints where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.daemon.writer import Monitor, RunSpec  # noqa: E402
from monitor.sim.emit import emissions  # noqa: E402
from monitor.sim.scenario import SimConfig  # noqa: E402
from monitor.sim.write import Output  # noqa: E402
from monitor.snapshot import Snapshot  # noqa: E402

BYTES_PER_ITER = 53  # gpt2-124m at log_interval 1, evals and checkpoints included
LAST_ITER = re.compile(rb"^iter (\d+): loss ([\d.]+),", re.M)


def generate(path: Path, size: int) -> None:
    """Simulated lines until `size` bytes, then cut at the last newline: a run in progress, resumed once."""
    planned = int(size / BYTES_PER_ITER * 1.3)  # the file ends before max_iters: the run goes on
    cfg = SimConfig(preset="gpt2-124m", seed=1, log_interval=1, eval_interval=1000, max_iters=planned,
                    resume_at=0.6 / 1.3)
    with open(path, "wb") as fh:
        out = Output(fh.write)
        for n, e in enumerate(emissions(cfg)):
            out.emit(e)
            if n % 4096 == 0 and fh.tell() >= size:
                break
    cut_at_line_end(path, size)


def cut_at_line_end(path: Path, size: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(max(0, size - (1 << 16)))
        block = fh.read(1 << 16)
        fh.truncate(max(0, size - (1 << 16)) + block.rindex(b"\n") + 1)


def prefix(src: Path, dst: Path, size: int) -> None:
    with open(src, "rb") as i, open(dst, "wb") as o:
        left = size
        while left > 0:
            chunk = i.read(min(left, 64 << 20))
            o.write(chunk)
            left -= len(chunk)
    cut_at_line_end(dst, size)


def truth(path: Path) -> dict[str, object]:
    """What a correct snapshot must show, read from the file by other means."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 20)
        fh.seek(max(0, path.stat().st_size - (1 << 20)))
        tail = fh.read()
    last = LAST_ITER.findall(tail)[-1]
    overrides = re.findall(rb"^Overriding: max_iters = (\d+)$", head, re.M)
    lines = int(subprocess.run(["wc", "-l", str(path)], capture_output=True, text=True).stdout.split()[0])
    return {"iter": int(last[0]), "loss": float(last[1]), "max_iters": int(overrides[-1]), "lines": lines}


def grep_seconds(path: Path) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _ in range(2):
        t = time.perf_counter()
        out = subprocess.run(["grep", "-c", "^iter ", str(path)], capture_output=True, text=True, check=True).stdout
        best = min(best, time.perf_counter() - t)
        count = int(out)
    return best, count


# ---- the child: one attach, measured ------------------------------------------------------------

def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith(field + ":")) / 1024


def check(snap: Snapshot, want: dict[str, object]) -> list[str]:
    wrong = []
    for got, key in ((snap.iter, "iter"), (snap.train_loss, "loss"), (snap.max_iters, "max_iters")):
        if got != want[key]:
            wrong.append(f"{key} {got} != {want[key]}")
    if snap.forecast.eta_s is None:
        wrong.append(f"no ETA ({snap.forecast.reason})")
    return wrong


def measure(path: Path, want: dict[str, object]) -> dict[str, object]:
    base = rss_mb()
    t0 = time.perf_counter()
    mon = Monitor([RunSpec(str(path), "big")])
    mon.step()
    first_s = time.perf_counter() - t0
    first = mon.snapshots()[0]
    first_rss = rss_mb()
    samples = []
    steps = 0
    while mon.busy():
        mon.step()
        steps += 1
        samples.append((mon.followers[0].tail._offset, rss_mb()))
    full_s = time.perf_counter() - t0
    full = mon.snapshots()[0]
    mon.stop()
    wrong_full = check(full, want)
    if full.lines != want["lines"]:
        wrong_full.append(f"lines {full.lines} != {want['lines']}")
    size = path.stat().st_size
    curve = [round(next(r for off, r in samples if off >= q * size)) for q in (0.25, 0.5, 0.75, 1.0)] if samples else []
    return {"first_s": first_s, "first_wrong": check(first, want), "first_rss_mb": first_rss, "full_s": full_s,
            "full_wrong": wrong_full, "steps": steps, "base_rss_mb": base, "rss_curve_mb": curve,
            "peak_rss_mb": rss_mb("VmHWM"),
            "history_points": len(full.history)}


def child(path: Path, want: dict[str, object], profile: bool) -> dict[str, object]:
    cmd = [sys.executable, __file__, "--measure", str(path), "--want", json.dumps(want)]
    if profile:
        cmd.append("--profile")
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 500, 1000])
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--keep", action="store_true", help="keep (and reuse) the generated logs")
    ap.add_argument("--profile", action="store_true", help="cProfile the smallest size's full read")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--want", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.measure:
        want = json.loads(opts.want)
        if opts.profile:
            prof = cProfile.Profile()
            result = prof.runcall(measure, Path(opts.measure), want)
            pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        else:
            result = measure(Path(opts.measure), want)
        print(json.dumps(result))
        return
    sizes = sorted(opts.sizes_mb)
    biggest = Path(opts.dir) / f"trainwatch-attach-{sizes[-1]}mb.log"
    made: list[Path] = []
    try:
        if not biggest.exists():
            t = time.perf_counter()
            generate(biggest, sizes[-1] * 10**6)
            print(f"generated {biggest} ({biggest.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
            made.append(biggest)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        print("| log | first snapshot | full history | MB/s | grep -c | ratio | RSS base / first / peak | RSS at "
              "25/50/75/100 % | checks |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for mb in sizes:
            path = biggest if mb == sizes[-1] else Path(opts.dir) / f"trainwatch-attach-{mb}mb.log"
            if not path.exists():
                prefix(biggest, path, mb * 10**6)
                made.append(path)
            want = truth(path)
            grep_s, grep_n = grep_seconds(path)
            r = child(path, want, opts.profile and mb == sizes[0])
            size = path.stat().st_size / 1e6
            rate = size / float(r["full_s"])  # type: ignore[arg-type]
            checks = "; ".join([*(f"first: {w}" for w in r["first_wrong"]),  # type: ignore[attr-defined]
                                *(f"full: {w}" for w in r["full_wrong"])]) or "all correct"  # type: ignore[attr-defined]
            print(f"| {size:.0f} MB, {want['lines']:,} lines | {r['first_s']:.3f} s | {r['full_s']:.1f} s | "
                  f"{rate:.1f} | {grep_s:.2f} s = {size / grep_s:,.0f} MB/s ({grep_n:,}) | "
                  f"{size / grep_s / rate:.0f}× | {r['base_rss_mb']:.0f} / {r['first_rss_mb']:.0f} / "
                  f"{r['peak_rss_mb']:.0f} MB | {r['rss_curve_mb']} | {checks} |")
    finally:
        if not opts.keep:
            for p in made:
                p.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
