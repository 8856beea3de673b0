"""`trainwatch backtest`: the replay, its schema, its baselines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import stamped_runs

from monitor.model.backtest import FRACTIONS, _TqdmEma
from monitor.sim.write import SimConfig, write

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT / "tests" / "fixtures" / "real"


def backtest(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "backtest", *args, "--json"], capture_output=True,
                         text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def test_a_real_timestamped_run(tmp_path: Path) -> None:
    doc = backtest(str(REAL / "plain.log"))
    assert doc["schema"] == "trainwatch.backtest/1" and doc["time_source"] == "timestamps"
    assert [p["fraction"] for p in doc["points"]] == list(FRACTIONS)
    for p in doc["points"]:
        assert {"fraction", "at", "iter", "eta_s", "predicted_finish", "p10", "p90"} <= p.keys()
        assert p["iter"] >= p["fraction"] * doc["max_iters"]
        assert p["p10"] <= p["predicted_finish"] <= p["p90"]
    assert doc["finished_at"] > doc["started_at"]
    assert doc["summary"]["median_abs_error_ratio"]["trainwatch"] < 0.05


def test_without_timestamps_the_clock_is_rebuilt_from_printed_times() -> None:
    doc = backtest(str(ROOT / "examples" / "shakespeare-char.log"))
    assert doc["time_source"] == "reconstructed"
    assert doc["started_at"] == pytest.approx(0.0, abs=60)  # rebuilt clock starts at the first iteration


def test_simulated_slowdown_is_followed_and_beats_the_baselines(tmp_path: Path) -> None:
    log = tmp_path / "slow.log"
    write(SimConfig(seed=4, slowdown_at=0.4, slowdown_factor=1.4), str(log), instant=True, timestamps=True,
          start_time=1.7e9)
    doc = backtest(str(log))
    late = [p for p in doc["points"] if p["fraction"] >= 0.6]
    err = [abs(p["predicted_finish"] - doc["finished_at"]) / (doc["finished_at"] - doc["started_at"]) for p in late]
    assert max(err) < 0.03
    medians = doc["summary"]["median_abs_error_ratio"]
    assert medians["trainwatch"] < min(medians["linear"], medians["tqdm"]) / 2


def test_tqdm_baseline_matches_tqdms_own_arithmetic() -> None:
    ema = _TqdmEma(smoothing=0.3)
    for n, t in [(0, 0.0), (10, 1.0), (20, 2.0), (30, 5.0)]:
        ema.update(n, t)
    # tqdm: EMA of Δn and Δt separately (α = 0.3), each divided by 1 − 0.7^calls
    dn = dt = 0.0
    for d_n, d_t in [(10, 1.0), (10, 1.0), (10, 3.0)]:
        dn, dt = 0.3 * d_n + 0.7 * dn, 0.3 * d_t + 0.7 * dt
    assert ema.remaining(100) == pytest.approx(100 / (dn / dt))


def test_nothing_to_backtest_is_said_plainly(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("iter 0: loss 1.0, time 1.00ms, mfu 1.00%\n")
    out = subprocess.run([sys.executable, "-m", "monitor.cli", "backtest", str(log)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and "nothing to backtest" in out.stdout


def test_a_point_without_a_forecast_says_why(tmp_path: Path) -> None:
    log = tmp_path / "short.log"
    log.write_text("\n".join(stamped_runs.lines(stamped_runs.Run(max_iters=200), lambda i, t: 0.05)) + "\n")
    first = backtest(str(log))["points"][0]
    assert first["eta_s"] is None and first["eta_reason"] == "warming up: too few steady iterations yet"
    text = subprocess.run([sys.executable, "-m", "monitor.cli", "backtest", str(log)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    row = text.splitlines()[2]
    assert row.split()[:3] == ["5%", "10", "none"]
    assert row.endswith("no forecast: warming up: too few steady iterations yet")


def test_a_stamped_burst_is_replayed_as_one_read() -> None:
    """`ts` stamps a block-buffered stdout's ~100 lines with one time: a live reader gets them together, so the
    forecaster is asked after the whole burst, and every fraction it passed is answered then."""
    from monitor.model.backtest import replay
    from monitor.model.ingest import Ingest
    from monitor.model.state import RunState
    from parsers.nanogpt import DEFAULTS, NanoGptParser

    lines = stamped_runs.lines(stamped_runs.Run(max_iters=2000, buffered=True), lambda i, t: 0.05)
    result = replay(Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS))), lines)
    bursts = sorted({float(ln.split(" ", 1)[0]) for ln in lines})
    assert len(bursts) == 2 and [p.fraction for p in result.points] == list(FRACTIONS)
    assert {p.at for p in result.points} == set(bursts)
    assert all(p.iter >= p.fraction * 2000 for p in result.points)
