"""Snapshots for the TUI tests.

Two kinds: real ones (a corpus log or a simulated run, through load → state → snapshot.build, the
same path the live loop takes), and one synthetic run built by hand with every panel filled (two
GPUs, energy, cost, a slowdown, the buffering hint). The SVG snapshots and docs/screenshot.svg use
the synthetic one, so they change only when the TUI changes, not when the forecaster is retuned.

`PYTHONPATH=. .venv/bin/python tests/tui_data.py docs/screenshot.svg` rewrites the README screenshot.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

from monitor.daemon.load import load
from monitor.model import compute
from monitor.model.build import build_snapshot
from monitor.sim.scenario import SimConfig
from monitor.sim.write import write
from monitor.snapshot import (
    Energy,
    EvalPoint,
    FinalLoss,
    Forecast,
    GpuProcess,
    GpuSample,
    IterPoint,
    Note,
    Setting,
    Snapshot,
)

FIXED_NOW = 1_764_300_000.0  # Fri 28 Nov 2025 03:20 UTC; tests pin TZ=UTC so clock times are fixed
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "nanogpt"
GiB = 1024**3


def use_utc() -> None:
    """monitor.units.clock prints local time: pin the zone so `finishes ~09:40 tomorrow` is reproducible."""
    os.environ["TZ"] = "UTC"
    time.tzset()


def from_log(path: Path | str, *, run: str | None = None, now: float = FIXED_NOW, silent_s: float = 5.0,
             max_bytes: int | None = None) -> Snapshot:
    """A snapshot of a log as it is, taken at `now`; the last line was written `silent_s` before."""
    ingest = load(str(path), max_bytes=max_bytes)
    if ingest.state.time_axis != "timestamps":
        ingest.state.last_wall = now - silent_s  # instead of the file's mtime, which varies
    return build_snapshot(ingest.state, run=run or Path(path).stem, log=str(path), now=now, lines=ingest.lines,
                 parse_errors=ingest.parse_errors)


def simulated(tmp: Path, name: str = "sim", **cfg: object) -> Path:
    """A whole simulated nanoGPT log, written at once (same seed and options, same bytes)."""
    path = tmp / f"{name}.log"
    write(SimConfig(**cfg), str(path), instant=True)  # type: ignore[arg-type]
    return path


def head(src: Path, dst: Path, lines: int) -> Path:
    """The first `lines` lines of a log: a run caught while it is still going."""
    with open(src, "rb") as fh, open(dst, "wb") as out:
        for i, line in enumerate(fh):
            if i >= lines:
                break
            out.write(line)
    return dst


def corpus(name: str, tmp: Path) -> Path:
    src = CORPUS / name
    if not src.exists():
        raise FileNotFoundError(f"corpus log not found: {src}")
    return Path(shutil.copy(src, tmp / name))


def gpus(now: float = FIXED_NOW) -> tuple[GpuSample, ...]:
    def gpu(i: int, power: float, used: float, util: float, temp: float, throttle: tuple[str, ...]) -> GpuSample:
        return GpuSample(index=i, uuid=f"GPU-0000000{i}-feed-beef-cafe-00000000000{i}", name="NVIDIA A100-SXM4-80GB",
                         at=now, power_w=power, energy_j=5.9e6 + i * 1e5, memory_used_bytes=int(used * GiB),
                         memory_total_bytes=80 * GiB, utilization=util, temperature_c=temp, sm_clock_mhz=1410.0,
                         throttle=throttle, processes=(GpuProcess(4242 + i, int((used - 0.5) * GiB)),))
    return (gpu(0, 391.0, 61.3, 0.97, 67.0, ()), gpu(1, 398.0, 61.1, 0.98, 71.0, ("power cap",)))


def synthetic(now: float = FIXED_NOW, *, run: str = "gpt2-124m-owt", state: str = "running") -> Snapshot:
    """GPT-2 124M on 2 × A100, iteration 8,350 of 20,000, slowed by 30 % since iteration 7,000."""
    rng = random.Random(5)
    tokens_per_iter, max_iters, last_iter = 491_520, 20_000, 8_350
    iter_s, eval_s = 1.77, 18.0
    fpt = compute.flops_per_token(123.69e6, 12, 12, 768, 1024)
    assert fpt is not None
    history: list[IterPoint] = []
    evals: list[EvalPoint] = []
    notes: list[Note] = [Note(None, None, "info", "compiling the model... (takes a ~minute)")]
    t = 0.0
    for i in range(0, last_iter + 1, 10):
        base = iter_s * (1.3 if i >= 7000 else 1.0)
        dt = base * (1 + rng.gauss(0, 0.025))
        overhead = i % 500 == 0
        if i == 0:
            dt += 45.0  # torch.compile
        elif overhead:
            dt += eval_s
        t += dt + 9 * base
        loss = 2.9 + 8.1 * math.exp(-i / 180) + 0.9 * (1 + i / 2000) ** -0.6 + rng.gauss(0, 0.04)
        if overhead:
            val = loss + 0.06 + rng.gauss(0, 0.01)
            evals.append(EvalPoint(i, loss - 0.01, val, None))
            if i:
                notes.append(Note(None, i - 10, "info", "checkpoint saved to out-gpt2-124m"))
        history.append(IterPoint(i, loss, dt, t, None, overhead, 0, None, 0.19))
        if i == 7020:
            notes.append(Note(None, i, "warning", "lines arrive in bursts: the training process's stdout is "
                              "block-buffered; start it with `python -u` or PYTHONUNBUFFERED=1 to see progress "
                              "as it happens"))
    tokens_per_s = tokens_per_iter / (iter_s * 1.3)
    eta = (max_iters - last_iter) * iter_s * 1.3 + 24 * eval_s
    elapsed = history[-1].t
    power = 789.0
    best = min(e.val_loss for e in evals if e.val_loss is not None)
    fc = Forecast(iter_s=iter_s * 1.3, eval_overhead_s=eval_s, evals_left=24, eta_s=eta, eta_p10_s=eta * 0.92,
                  eta_p90_s=eta * 1.11, finish_at=now + eta, finish_p10=now + eta * 0.92, finish_p90=now + eta * 1.11,
                  tokens_per_s=tokens_per_s, expected_gap_s=iter_s * 13, slowdown=1.3)
    seen, total = (last_iter + 1) * tokens_per_iter, (max_iters + 1) * tokens_per_iter
    path = []
    for k in range(25):  # the predicted val path: the curve's own continuation, a cosine's end drop, a widening band
        i = last_iter + (max_iters - last_iter) * k // 24
        mid = 2.96 + 0.9 * (1 + i / 2000) ** -0.6 - 0.12 * (k / 24) ** 2
        path.append((i, mid - 0.01 - 0.03 * k / 24, mid, mid + 0.01 + 0.03 * k / 24))
    final = FinalLoss(p50=path[-1][2], p10=path[-1][1], p90=path[-1][3], of="val",
                      schedule="cosine to 0.1× at iter 20,000 (config)", path=tuple(path))
    return Snapshot(
        run=run, log=f"/runs/{run}/train.log", format="nanogpt", taken_at=now, state=state, iter=last_iter,
        max_iters=max_iters, max_iters_source="log", fraction=(last_iter + 1) / (max_iters + 1),
        train_loss=history[-1].loss, val_loss=evals[-1].val_loss, best_val=best,
        tokens_per_iter=tokens_per_iter, tokens_seen=seen, tokens_total=total, dataset_tokens=9.035e9,
        params=123.69e6, flops_per_token=fpt, flops_done=seen * fpt, flops_total=total * fpt,
        mfu=tokens_per_s * fpt / (2 * 312e12), mfu_logged=history[-1].mfu, gpu_peak_flops=312e12,
        elapsed_s=elapsed, last_progress_at=now - 3, forecast=fc,
        energy=Energy(joules=power * elapsed, source="nvml-counter", mean_power_w=power),
        energy_forecast_j=power * (elapsed + eta), cost=power * elapsed / 3.6e6 * 0.30, checkpoints=len(evals) - 1,
        error_type=None, error_message=None, lines=9_412, parse_errors=0,
        settings={"max_iters": Setting(max_iters, "log")}, history=tuple(history), evals=tuple(evals),
        notes=tuple(notes), gpus=gpus(now), final_loss=final)


async def save_screenshot(path: str, size: tuple[int, int] = (120, 40)) -> None:
    from exporters.tui.app import TrainwatchApp

    snap = synthetic()
    app = TrainwatchApp(lambda: (snap,), clock=lambda: FIXED_NOW)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        app.save_screenshot(os.path.basename(path), os.path.dirname(path) or ".")


if __name__ == "__main__":
    os.environ.pop("NO_COLOR", None)
    use_utc()
    asyncio.run(save_screenshot(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.svg"))
