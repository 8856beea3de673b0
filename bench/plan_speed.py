"""How long `trainwatch plan` takes, end to end, as a user runs it (the installed `trainwatch` script).

    .venv/bin/python bench/plan_speed.py [--repeat 20]

Times a new process each run (interpreter start + imports + plan + print), for the founding example's
config and for the log of a started run (a 66 KB corpus log, read through report's ingest path), and the
same with `python -X importtime` to name the slowest imports. Target: under 0.3 s from a config.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).parent / "trainwatch"
CASES = {
    "config": [str(ROOT / "examples" / "train_fineweb_4070.py"), "--gpu", "RTX 4070", "--dataset-tokens", "3.68e9"],
    "log": [str(ROOT.parent / "shared" / "corpus" / "nanogpt" / "gpt2-124m-owt-ddp2-linesearch-sigterm.log"),
            "--gpus", "2", "--gpu", "A100 40GB"],
}


def timed(cmd: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run: on a loaded machine the CPU time is the figure that travels."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(runs: list[tuple[float, float]]) -> str:
    wall, cpu = [w for w, _ in runs], [c for _, c in runs]
    return (f"wall median {statistics.median(wall) * 1000:.0f} ms (best {min(wall) * 1000:.0f}), "
            f"CPU median {statistics.median(cpu) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    cmd0 = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "monitor.cli"]
    print(f"python -c pass: {summary([timed([sys.executable, '-c', 'pass']) for _ in range(args.repeat)])}")
    for name, extra in CASES.items():
        runs = [timed([*cmd0, "plan", *extra]) for _ in range(args.repeat)]
        print(f"plan from a {name}: {summary(runs)} ({args.repeat} runs)")
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "monitor.cli", "plan", *CASES["config"]],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    rows = [ln.split("|") for ln in out.stderr.splitlines() if ln.startswith("import time:") and "|" in ln]
    top = sorted(((int(r[1]), r[2].strip()) for r in rows if r[1].strip().isdigit()), reverse=True)[:5]
    print("largest cumulative imports (µs): " + ", ".join(f"{name} {us:,}" for us, name in top))


if __name__ == "__main__":
    main()
