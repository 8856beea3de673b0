"""Backfill in bulk gives the state the line-by-line path gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.daemon.load import load
from monitor.model import ingest
from monitor.model.build import build_snapshot
from monitor.sim.write import SimConfig, write
from monitor.snapshot import Snapshot

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "nanogpt"

SIMULATED = {
    "interval-1": SimConfig(seed=2, log_interval=1, max_iters=3000),
    "interval-10-gpt2": SimConfig(preset="gpt2-124m", seed=3, max_iters=4000),
    "nan": SimConfig(seed=4, log_interval=1, max_iters=2000, nan_at=0.5),
    "resume": SimConfig(seed=5, log_interval=1, max_iters=3000, resume_at=0.6),
    "slowdown": SimConfig(seed=6, log_interval=1, max_iters=3000, slowdown_at=0.3),
    "crash": SimConfig(seed=7, log_interval=1, max_iters=3000, crash_at=0.7),
}


def both(path: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Snapshot, Snapshot, int, int]:
    fast = load(path)
    with monkeypatch.context() as m:
        m.setattr(ingest, "BULK_MIN_LINES", 10**12)
        slow = load(path)
    snaps = [build_snapshot(i.state, run="r", log=path, now=2e9, lines=i.lines, parse_errors=i.parse_errors)
             for i in (fast, slow)]
    return snaps[0], snaps[1], fast.state.iteration_lines, slow.state.iteration_lines


@pytest.mark.parametrize("name", list(SIMULATED))
def test_simulated(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / f"{name}.log"
    write(SIMULATED[name], str(path), instant=True)
    compare(str(path), monkeypatch)


@pytest.mark.parametrize("name", ["char-windows-cli-overrides-log-interval-1.log",
                                  "gpt2-124m-owt-ddp2-linesearch-sigterm.log",
                                  "char-termux-android-loss-nan-cut.log"])
def test_corpus(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    compare(str(CORPUS / name), monkeypatch)


def compare(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow, fast_lines, slow_lines = both(path, monkeypatch)
    assert fast_lines == slow_lines
    for field in ("state", "iter", "train_loss", "val_loss", "best_val", "checkpoints", "lines", "parse_errors",
                  "error_type", "tokens_seen", "max_iters"):
        a, b = getattr(fast, field), getattr(slow, field)
        assert a == b or (a != a and b != b), field  # NaN == NaN here
    assert fast.elapsed_s == pytest.approx(slow.elapsed_s, rel=2e-3)
    assert fast.forecast.iter_s == pytest.approx(slow.forecast.iter_s, rel=0.02)
    assert fast.forecast.eval_overhead_s == pytest.approx(slow.forecast.eval_overhead_s, rel=0.05)
