"""The forecaster on constructed runs: each case is a failure mode of simpler ETAs."""

from __future__ import annotations

import random

import pytest
import stamped_runs

from monitor.model.forecast import evals_left, forecast
from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from parsers.nanogpt import DEFAULTS, NanoGptParser

HEADER = ["Overriding config with config/x.py:", "max_iters = {max_iters}", "log_interval = 10",
          "eval_interval = {eval_interval}", ""]


def run(max_iters: int = 5000, eval_interval: int = 500, upto: int = 1000, ms: float = 100.0,
        eval_ms: float = 20_000.0, jitter: float = 0.03, slow_from: int | None = None, factor: float = 1.0,
        seed: int = 1, header: bool = True) -> RunState:
    rng = random.Random(seed)
    lines = [h.format(max_iters=max_iters, eval_interval=eval_interval) for h in HEADER] if header else []
    for i in range(0, upto + 1, 10):
        step = ms * (factor if slow_from is not None and i >= slow_from else 1.0)
        dt = 30_000.0 if i == 0 else step * rng.lognormvariate(0, jitter)
        if i and i % eval_interval == 0:
            lines.append(f"step {i}: train loss 2.0, val loss 2.1")
            dt += eval_ms
        lines.append(f"iter {i}: loss 2.0000, time {dt:.2f}ms, mfu 10.00%")
    ingest = Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS)))
    ingest.feed_lines(lines, None)
    ingest.state.last_wall = 1000.0
    return ingest.state


def test_steady_state_ignores_compile_and_eval_iterations() -> None:
    fc = forecast(run(), now=1000.0)
    assert fc.iter_s == pytest.approx(0.1, rel=0.02)
    assert fc.eval_overhead_s == pytest.approx(20.0, rel=0.05)


def test_eta_counts_remaining_iterations_and_remaining_evals() -> None:
    fc = forecast(run(upto=1000), now=1000.0)
    # 4000 iterations × 0.1 s + evals at 1500, 2000, …, 5000 (8) × 20 s
    assert fc.evals_left == 8
    assert fc.eta_s == pytest.approx(4000 * 0.1 + 8 * 20.0, rel=0.03)
    assert fc.eta_p10_s is not None and fc.eta_p90_s is not None
    assert fc.eta_p10_s < fc.eta_s < fc.eta_p90_s


def test_eta_counts_down_while_no_line_arrives() -> None:
    state = run(upto=1000)
    a, b = forecast(state, now=1000.0), forecast(state, now=1030.0)
    assert a.eta_s is not None and b.eta_s is not None
    assert a.eta_s - b.eta_s == pytest.approx(30.0)
    assert b.finish_at == pytest.approx(a.finish_at)


def test_a_real_slowdown_is_followed() -> None:
    fc = forecast(run(upto=2000, slow_from=1200, factor=1.4), now=1000.0)
    assert fc.iter_s == pytest.approx(0.14, rel=0.03)
    assert fc.slowdown == pytest.approx(1.4, rel=0.05)


def test_noise_alone_is_not_a_change() -> None:
    fc = forecast(run(upto=3000, jitter=0.15, seed=7), now=1000.0)
    assert fc.slowdown is None
    assert fc.iter_s == pytest.approx(0.1 * 1.011, rel=0.03)  # lognormal mean e^(σ²/2)


def test_the_band_narrows_as_the_run_advances() -> None:
    early = forecast(run(upto=500), now=1000.0)
    late = forecast(run(upto=4500), now=1000.0)
    assert early.eta_s and late.eta_s and early.eta_p90_s and late.eta_p90_s and early.eta_p10_s is not None
    assert late.eta_p90_s / late.eta_s < early.eta_p90_s / early.eta_s


def test_resume_uses_only_the_new_process_speed() -> None:
    state = run(upto=2000, ms=100.0)
    ingest = Ingest(NanoGptParser(), state)
    ingest.feed_lines(["Resuming training from out", "step 1500: train loss 2, val loss 2.1",
                       "iter 1500: loss 2.0, time 40000.00ms, mfu -100.00%"]
                      + [f"iter {i}: loss 2.0, time 200.00ms, mfu 10.00%" for i in range(1510, 1700, 10)], None)
    fc = forecast(state, now=1000.0)
    assert fc.iter_s == pytest.approx(0.2, rel=0.01)
    assert state.segments[-1].first_iter == 1500


def test_no_eta_while_warming_up() -> None:
    fc = forecast(run(upto=10), now=1000.0)
    assert fc.eta_s is None and fc.reason is not None and "warming up" in fc.reason


def test_unknown_max_iters_says_how_to_fix_it() -> None:
    fc = forecast(run(header=False), now=1000.0)
    assert fc.eta_s is None and fc.reason == "max_iters unknown: pass --max-iters"
    assert fc.iter_s == pytest.approx(0.1, rel=0.05)  # speed is still known


def test_buffered_burst_gives_the_same_forecast_as_a_steady_stream() -> None:
    """Lines that arrive together in one 8 KiB block carry their own durations: timing comes from them."""
    steady, burst = run(upto=1500), run(upto=1500)
    assert forecast(steady, 1000.0).eta_s == pytest.approx(forecast(burst, 1000.0).eta_s)


def test_stall_is_reported_when_silence_outlasts_the_expected_gap() -> None:
    state = run(upto=1000)
    assert forecast(state, now=1000.0 + 30).stalled_s is None
    stalled = forecast(state, now=1000.0 + 600)
    assert stalled.stalled_s is not None and stalled.stalled_s > 500


def test_finished_run_has_zero_eta() -> None:
    fc = forecast(run(max_iters=1000, upto=1000), now=1000.0)
    assert fc.eta_s == 0.0


@pytest.mark.parametrize(("current", "max_iters", "interval", "left"),
                         [(0, 5000, 250, 20), (249, 5000, 250, 20), (250, 5000, 250, 19), (4999, 5000, 250, 1),
                          (5000, 5000, 250, 0), (10, 100, None, 0)])
def test_evals_left(current: int, max_iters: int, interval: int | None, left: int) -> None:
    assert evals_left(current, max_iters, interval) == left


def _live(state_factor: float, arrival_factor: float) -> float:
    """The forecast's iteration time when lines arrived live `arrival_factor` slower than printed."""
    from dataclasses import replace

    state = run(upto=3000)
    pts = state.iters.points
    base = pts[0].t
    state.iters.points = [replace(p, wall=1000.0 + (p.t - base) * arrival_factor) for p in pts]
    fc = forecast(state, now=state.iters.points[-1].wall or 0.0)
    assert fc.iter_s is not None
    return fc.iter_s / (0.1 * state_factor)


@pytest.mark.parametrize(("arrival", "expected"), [(1.05, 1.05), (1.0, 1.0), (5.0, 1.0), (0.2, 1.0)],
                         ids=["sync-lands-in-unprinted-step", "exact", "slowed-replay", "accelerated-replay"])
def test_live_arrivals_correct_printed_times_unless_the_clock_is_not_real(arrival: float, expected: float) -> None:
    assert _live(1.0, arrival) == pytest.approx(expected, rel=0.01)


def _stamped_state(run: stamped_runs.Run, step_s: stamped_runs.StepTime) -> RunState:
    ingest = Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS)))
    ingest.feed_lines(stamped_runs.lines(run, step_s), None)
    return ingest.state


def test_a_stamped_burst_is_timed_by_its_printed_durations() -> None:
    """~100 lines share one stamp: their gaps say nothing, the printed times do (as for a burst read live)."""
    state = _stamped_state(stamped_runs.Run(max_iters=3000, buffered=True), lambda i, t: 0.05)
    assert len({p.t for p in state.iters.points}) < 5
    fc = forecast(state, now=state.last_wall or 0.0)
    assert fc.iter_s == pytest.approx(0.05, rel=0.01)


def test_an_eval_on_an_unprinted_iteration_is_timed_by_the_stamps_around_it() -> None:
    """log_interval 20 and eval_interval 250: most evals fall between two printed lines, outside any `time`."""
    run = stamped_runs.Run(max_iters=4000, log_interval=20, eval_interval=250, eval_s=1.7)
    state = _stamped_state(run, lambda i, t: 0.05)
    state.logged["max_iters"] = 8000  # not finished: an ETA with evals ahead
    fc = forecast(state, now=state.last_wall or 0.0)
    assert fc.iter_s == pytest.approx(0.05, rel=0.01)
    assert fc.eval_overhead_s == pytest.approx(1.7, rel=0.05)


def test_a_slow_step_between_evals_is_speed_not_an_eval() -> None:
    """A neighbour making one step 4× slower is what the rest of the run may see too; it is no eval's cost."""
    state = run(upto=1000, eval_interval=500)
    before = len(state.eval_costs)
    Ingest(NanoGptParser(), state).feed_lines(["iter 1010: loss 2.0, time 400.00ms, mfu 10.00%"], None)
    assert len(state.eval_costs) == before and state.last is not None and state.last.overhead
    assert forecast(state, now=1000.0).iter_s == pytest.approx(0.1 * (1 + 3 / 100), rel=0.02)
