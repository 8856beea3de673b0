"""The run state: segments on resume, status, provenance, bounded memory."""

from __future__ import annotations

import tracemalloc

import pytest

from monitor.model.history import Thinned
from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from parsers.nanogpt import DEFAULTS, NanoGptParser


def fold(lines: list[str], user: dict[str, object] | None = None) -> RunState:
    ingest = Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS), user=dict(user or {})))
    ingest.feed_lines(lines, None)
    return ingest.state


def iter_line(i: int, ms: float = 100.0, loss: float = 2.0) -> str:
    return f"iter {i}: loss {loss:.4f}, time {ms:.2f}ms, mfu 10.00%"


def test_resume_starts_a_new_segment_and_nothing_double_counts() -> None:
    first = ["Initializing a new model from scratch"] + [iter_line(i) for i in range(0, 310, 10)]
    second = ["Resuming training from out", "step 200: train loss 1.0, val loss 1.1"] + \
        [iter_line(i) for i in range(200, 410, 10)]
    state = fold(["Overriding: max_iters = 400", *first, *second])
    assert [s.mode for s in state.segments] == ["scratch", "resume"]
    assert state.segments[1].first_iter == 200
    assert state.last is not None and state.last.iter == 400
    assert state.status == "finished"
    assert [(s.first_iter, s.last_iter) for s in state.segments] == [(0, 300), (200, 400)]


def test_iterations_falling_back_without_a_banner_is_a_restart() -> None:
    state = fold([iter_line(i) for i in (0, 10, 20, 30)] + [iter_line(i) for i in (0, 10)])
    assert len(state.segments) == 2


def test_duplicate_lines_do_not_advance_the_clock() -> None:
    state = fold([iter_line(0), iter_line(10), iter_line(10), iter_line(20)])
    assert state.iteration_lines == 3


def test_clock_fills_unprinted_iterations_and_counts_evals_once() -> None:
    lines = ["Overriding: eval_interval = 100", iter_line(0, 5000)]
    lines += [iter_line(i, 100) for i in range(10, 100, 10)]
    lines += ["step 100: train loss 1, val loss 1", iter_line(100, 3100)]
    state = fold(lines)
    # iter 0 (5 s) + 9 lines × (100 ms + 9 unprinted × 100 ms) + eval iteration 3.1 s + 9 × 100 ms
    assert abs(state.clock_s - (5.0 + 9 * 1.0 + 3.1 + 0.9)) < 1e-6
    assert len(state.eval_costs) == 1 and abs(state.eval_costs[0] - 3.0) < 1e-6


def test_status_crashed_then_running_again_after_restart() -> None:
    state = fold([iter_line(0), iter_line(10), "Traceback (most recent call last):", "RuntimeError: boom"])
    assert state.status == "crashed" and state.error is not None and state.error.message == "boom"
    state = fold([iter_line(0), iter_line(10), "Traceback (most recent call last):", "RuntimeError: boom",
                  "Resuming training from out", iter_line(0)])
    assert state.status == "running"


def test_root_cause_is_kept_over_the_launcher_error() -> None:
    state = fold([iter_line(0), "Traceback (most recent call last):", "AssertionError",
                  "Traceback (most recent call last):",
                  "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: "])
    assert state.error is not None and state.error.type == "AssertionError"


def test_settings_provenance_user_over_log_over_default() -> None:
    state = fold(["Overriding: max_iters = 300"], user={"eval_interval": 50})
    assert state.setting("max_iters").source == "log"  # type: ignore[union-attr]
    assert state.setting("eval_interval").source == "user"  # type: ignore[union-attr]
    assert state.setting("batch_size").source == "default"  # type: ignore[union-attr]
    state = fold(["Overriding: max_iters = 300"], user={"max_iters": 900})
    assert state.max_iters == 900


def test_nan_run_is_tracked() -> None:
    nan = "iter {}: loss nan, time 1.00ms, mfu 1.00%"
    state = fold([iter_line(0), nan.format(10), nan.format(20)])
    assert state.nonfinite_since == 10


def test_series_stays_bounded_and_keeps_recent_points_exact() -> None:
    s: Thinned[int] = Thinned(capacity=1000)
    for i in range(1_000_000):
        s.append(i)
    assert len(s) < 1000
    assert s.points[-500:] == list(range(1_000_000 - 500, 1_000_000))
    assert s.points[0] < 1000  # the start of the run is still represented


@pytest.mark.slow
def test_state_memory_is_flat_over_a_long_log() -> None:
    tracemalloc.start()
    ingest = Ingest(NanoGptParser(), RunState(defaults=dict(DEFAULTS)))
    ingest.feed_lines([iter_line(i) for i in range(20_000)], None)
    first = tracemalloc.get_traced_memory()[0]
    for chunk in range(20_000, 200_000, 20_000):
        ingest.feed_lines([iter_line(i) for i in range(chunk, chunk + 20_000)], None)
    grown = tracemalloc.get_traced_memory()[0] - first
    tracemalloc.stop()
    assert grown < 2_000_000, f"state grew by {grown} bytes over 180,000 more lines"
