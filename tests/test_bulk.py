"""Backfill in bulk gives the state the line-by-line path gives: every field, the thinned history apart."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from monitor.daemon.load import load
from monitor.model import ingest
from monitor.model.build import build_snapshot
from monitor.model.state import RECENT_KEPT, RunState
from monitor.sim.write import SimConfig, write
from monitor.snapshot import Snapshot
from parsers.detect import PARSERS

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT / "bench"))
from parse_speed import generate_noisy  # noqa: E402

SIMULATED = {
    "interval-1": SimConfig(seed=2, log_interval=1, max_iters=3000),
    "interval-10-gpt2": SimConfig(preset="gpt2-124m", seed=3, max_iters=4000),
    "nan": SimConfig(seed=4, log_interval=1, max_iters=2000, nan_at=0.5),
    "resume": SimConfig(seed=5, log_interval=1, max_iters=3000, resume_at=0.6),
    "slowdown": SimConfig(seed=6, log_interval=1, max_iters=3000, slowdown_at=0.3),
    "crash": SimConfig(seed=7, log_interval=1, max_iters=3000, crash_at=0.7),
    "long": SimConfig(seed=8, log_interval=1, max_iters=60000),
}
FORECAST_DERIVED = {"forecast", "energy_forecast_j", "mfu", "history", "final_loss", "final_loss_halfway"}
"""Snapshot fields that rest on the history's points, which bulk keeps fewer of."""


def both(path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[ingest.Ingest, ingest.Ingest]:
    fast = load(path)
    with monkeypatch.context() as m:
        m.setattr(ingest, "BULK_MIN_LINES", 10**12)
        for parser in PARSERS.values():
            m.setattr(parser, "bulk", None, raising=False)
        slow = load(path)
    return fast, slow


def same(a: object, b: object) -> bool:
    """Equal, NaN counting as equal to NaN (a repr spells every float exactly)."""
    return a == b or repr(a) == repr(b)


def compare(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = both(path, monkeypatch)
    assert (fast.lines, fast.parse_errors) == (slow.lines, slow.parse_errors)
    for f in dataclasses.fields(RunState):
        if f.name not in ("iters", "memo"):
            assert same(getattr(fast.state, f.name), getattr(slow.state, f.name)), f.name
    fast_points, slow_points = fast.state.iters.points, slow.state.iters.points
    assert same(fast_points[-RECENT_KEPT:], slow_points[-RECENT_KEPT:])
    by_iter = {(p.segment, p.iter): p for p in slow_points}
    assert all(same(by_iter.get((p.segment, p.iter), p), p) for p in fast_points)  # the points bulk keeps are exact
    snaps = [build_snapshot(i.state, run="r", log=path, now=2e9, lines=i.lines, parse_errors=i.parse_errors)
             for i in (fast, slow)]
    for f in dataclasses.fields(Snapshot):
        if f.name not in FORECAST_DERIVED:
            assert same(getattr(snaps[0], f.name), getattr(snaps[1], f.name)), f.name
    assert snaps[0].forecast.iter_s == pytest.approx(snaps[1].forecast.iter_s, rel=0.02)
    assert snaps[0].forecast.eval_overhead_s == pytest.approx(snaps[1].forecast.eval_overhead_s, rel=1e-9)


@pytest.mark.parametrize("name", list(SIMULATED))
def test_simulated(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"{name}.log"
    write(SIMULATED[name], str(path), instant=True)
    compare(str(path), monkeypatch)


@pytest.mark.parametrize("name", ["nanogpt/char-windows-cli-overrides-log-interval-1.log",
                                  "nanogpt/gpt2-124m-owt-ddp2-linesearch-sigterm.log",
                                  "nanogpt/char-termux-android-loss-nan-cut.log",
                                  "nanogpt/char-tmux-pane-capture-ansi-shell-session.log",
                                  "llmc/gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log",
                                  "llmc/gpt2-124m-nan-loss-slurm-timelimit-midline.log"])
def test_corpus(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    compare(str(CORPUS / name), monkeypatch)


def test_llmc_library_error_takes_the_next_line_in_bulk_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[CUDA ERROR] at file x:` makes the parser read the next line as its message, even a step line."""
    step = "step {0:4d}/19560 | loss 7.{0:06d} (+0.10z)| norm 0.5000 (-0.20z)| lr 1.00e-04 | 400.00 ms | " \
           "30.0% bf16 MFU | 120000 tok/s"
    lines = [step.format(i) for i in range(1, 600)]
    lines.insert(300, "[CUDA ERROR] at file train_gpt2.cu:265:")
    path = tmp_path / "llmc.log"
    path.write_text("| Parameter | Value |\n" + "\n".join(lines) + "\n")
    compare(str(path), monkeypatch)
    notes = load(str(path), format="llmc").state.notes
    assert [n.text for n in notes if n.level == "error"] == [f"CUDAError: {step.format(301)} (at train_gpt2.cu:265)"]


def test_noisy_log_of_issue_18(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Warnings, escapes, garbage, a 5,000-character line and invalid UTF-8 between the iterations."""
    path = tmp_path / "noisy.log"
    generate_noisy(path, 3.0)
    compare(str(path), monkeypatch)
    fast = load(str(path))
    assert fast.state.iteration_lines > 35_000 and fast.parse_errors == 0
    assert sum("UserWarning" in n.text for n in fast.state.notes) > 50


def test_unknown_lines_do_not_end_a_stretch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A line with no event between iterations costs its parse, not the bulk path: the state folds the
    iterations around it in one stretch."""
    lines = [f"iter {i}: loss 2.0000, time 100.00ms, mfu 10.00%" for i in range(4000)]
    for i in range(1, 4000, 7):
        lines[i] += "\nsome tqdm bar \x1b[2K 45%|####"
    path = tmp_path / "noise.log"
    path.write_text("Initializing a new model from scratch\n" + "\n".join(lines) + "\n")
    calls: list[int] = []
    original = RunState._iteration

    def counted(self: RunState, event: object, at: float | None) -> None:
        calls.append(1)
        original(self, event, at)  # type: ignore[arg-type]

    monkeypatch.setattr(RunState, "_iteration", counted)
    fast = load(str(path))
    # one by one: only iteration 0 (the warm-up) and 2000 (nanoGPT's default eval_interval: an eval's)
    assert fast.state.iteration_lines == 4000 and len(calls) == 2
