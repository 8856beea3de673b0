"""The TUI, driven headless with Textual's Pilot: what each panel shows for real and simulated runs, and each key."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import TabbedContent
from tui_data import FIXED_NOW, corpus, from_log, gpus, head, simulated, synthetic
from tui_screen import ready, screen_text, wait_for, widget_text

from exporters.tui import plotdata
from exporters.tui.app import TrainwatchApp, run_tui
from exporters.tui.charts import LossChart, SpeedChart
from exporters.tui.events import EventsPanel, rows
from exporters.tui.gpu_panel import GpuPanel
from exporters.tui.header import RunHeader
from exporters.tui.help import HelpScreen
from exporters.tui.overview import Overview
from exporters.tui.progress import ProgressPanel
from exporters.tui.run_view import RunView
from exporters.tui.stats import StatsPanel
from exporters.tui.terminal import logs_held
from monitor.errors import TrainwatchError
from monitor.snapshot import EvalPoint, IterPoint, Note, Snapshot, TimeLimit

SHAKESPEARE = "char-tmux-pane-capture-ansi-shell-session.log"
OOM = "char-1gpu-xxl-cuda-oom-crash.log"
NAN = "char-termux-android-loss-nan-cut.log"
GPT2_CUT = "gpt2-124m-owt-ddp2-cut-at-iter570.log"


pytestmark = pytest.mark.usefixtures("tui_terminal")


def app_for(*snaps: Snapshot, now: float = FIXED_NOW, **kw: object) -> TrainwatchApp:
    return TrainwatchApp(lambda: snaps, clock=lambda: now, **kw)  # type: ignore[arg-type]


async def shown(app: TrainwatchApp, widget_type: type, size: tuple[int, int] = (120, 40)) -> str:
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        return widget_text(app, app.query_one(widget_type))


# ---- header ---------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_header_names_run_state_gpu_and_freshness() -> None:
    text = await shown(app_for(synthetic()), RunHeader)
    assert "gpt2-124m-owt" in text and " running " in text
    assert "NVIDIA A100-SXM4-80GB ×2" in text
    assert "last progress" not in text  # 3 s of silence is normal: not worth a word
    text = await shown(app_for(synthetic(state="stalled"), now=FIXED_NOW + 600), RunHeader)
    assert "last progress 10m 03s ago" in text


@pytest.mark.asyncio
@pytest.mark.parametrize(("gpu_status", "expected"), [
    (None, "no NVIDIA GPU"),
    ("NVIDIA driver not loaded", "NVIDIA driver not loaded"),
], ids=["default", "sampler-status"])
async def test_no_gpu_is_said_in_header_and_gpu_line(gpu_status: str | None, expected: str) -> None:
    app = app_for(dataclasses.replace(synthetic(), gpus=()), gpu_status=gpu_status)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert expected in widget_text(app, app.query_one(RunHeader))
        assert expected in widget_text(app, app.query_one(GpuPanel))
        assert app.query_one(GpuPanel).region.height == 1  # collapsed to one line


@pytest.mark.asyncio
@pytest.mark.parametrize("state", ["starting", "running", "evaluating", "finished", "crashed", "stalled", "timeout",
                                   "preempted", "cancelled", "node_fail", "out_of_memory"])
async def test_each_state_has_its_own_colour(state: str) -> None:
    app = app_for(synthetic(state=state))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        header = app.query_one(RunHeader)
        segs = [s for s in header.render_lines(header.region.reset_offset)[0] if s.text == f" {state} "]
        assert segs, widget_text(app, header)
        assert segs[0].style is not None and segs[0].style.bgcolor is not None


# ---- progress ---------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_progress_bar_eta_band_and_finish_clock() -> None:
    text = await shown(app_for(synthetic()), ProgressPanel)
    assert "8,350 / 20,000" in text and "41.8 %" in text
    assert "ETA 7h 33m (6h 57m – 8h 23m)" in text
    assert "finishes ~10:53" in text  # 03:20 UTC + 7h 33m
    assert "━" in text and "30 % slower than before" in text


@pytest.mark.asyncio
async def test_finish_after_midnight_says_tomorrow(tmp_path: Path) -> None:
    late = FIXED_NOW + 20 * 3600  # 23:20
    snap = from_log(corpus(GPT2_CUT, tmp_path), now=late)
    assert snap.forecast.eta_s is not None and snap.forecast.eta_s > 3600
    text = await shown(app_for(snap, now=late), ProgressPanel)
    assert "tomorrow" in text and "ETA 8h" in text and "570 / 10,000" in text


@pytest.mark.asyncio
async def test_without_eta_the_reason_is_shown(tmp_path: Path) -> None:
    text = await shown(app_for(from_log(corpus(NAN, tmp_path))), ProgressPanel)
    assert "iter 450 of ?" in text
    assert "max_iters unknown: pass --max-iters" in text


@pytest.mark.asyncio
async def test_crash_shows_the_tracebacks_last_line(tmp_path: Path) -> None:
    app = app_for(from_log(corpus(OOM, tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        assert " crashed " in widget_text(app, app.query_one(RunHeader))
        assert "crashed — OutOfMemoryError: CUDA out of memory" in widget_text(app, app.query_one(ProgressPanel))
        events = widget_text(app, app.query_one(EventsPanel))
        assert "✖ OutOfMemoryError: CUDA out" in events


@pytest.mark.asyncio
async def test_finished_run(tmp_path: Path) -> None:
    text = await shown(app_for(from_log(corpus(SHAKESPEARE, tmp_path))), ProgressPanel)
    assert "5,000 / 5,000  100.0 %" in text and "finished" in text and "after 1m 59s" in text


@pytest.mark.asyncio
async def test_the_example_log_caught_running_and_finished(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "shakespeare-char.log"
    running = from_log(head(example, tmp_path / "running.log", 300), run="shakespeare-char")
    assert running.state in ("running", "evaluating") and running.forecast.eta_s is not None
    text = await shown(app_for(running), ProgressPanel)
    assert f"{running.iter:,} / 5,000" in text and "ETA " in text and " – " in text and "finishes ~" in text
    finished = from_log(example)
    text = await shown(app_for(finished), ProgressPanel)
    assert "5,000 / 5,000  100.0 %" in text and "finished" in text


# ---- charts -----------------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_loss_chart_train_smoothed_val_and_log_key(tmp_path: Path) -> None:
    snap = from_log(corpus(SHAKESPEARE, tmp_path))
    app = app_for(snap)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        chart = app.query_one(LossChart)
        data = chart._data
        assert data is not None
        assert len(data.val.xs) == len(snap.evals) == 21
        assert data.train.xs[0] == 0 and data.train.xs[-1] == 5000
        assert len(data.smooth.xs) == len(data.train.xs)
        text = widget_text(app, chart)
        assert "loss" in text and "val" in text and "smoothed" in text and "5k" in text
        assert "(log scale)" not in text
        await pilot.press("l")
        await wait_for(pilot, lambda: chart.log_scale and "loss (log scale)" in widget_text(app, chart))
        await pilot.press("l")
        await wait_for(pilot, lambda: not chart.log_scale and "(log scale)" not in widget_text(app, chart))


@pytest.mark.asyncio
async def test_speed_chart_keeps_eval_pauses_apart_from_steady_steps(tmp_path: Path) -> None:
    log = simulated(tmp_path, max_iters=600, eval_interval=100, log_interval=10, slowdown_at=0.5,
                    slowdown_factor=1.5)
    snap = from_log(log)
    app = app_for(snap)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        chart = app.query_one(SpeedChart)
        d = chart._data
        assert d is not None and d.top is not None
        assert {100, 200, 300, 400, 500} <= set(d.pauses.xs)  # each eval is a marker, not part of the line
        assert not set(d.steady.xs) & {100.0, 200.0, 300.0}
        assert max(d.pauses.ys) <= d.top  # a long eval is clipped to the top, the steady line keeps its scale
        early = [y for x, y in zip(d.steady.xs, d.steady.ys, strict=True) if x < 250]
        late = [y for x, y in zip(d.steady.xs, d.steady.ys, strict=True) if x > 350]
        assert min(late) > max(early)  # the slowdown shows as a step
        assert "iteration time" in widget_text(app, chart) and "tok/s" in widget_text(app, chart)


def test_charts_draw_a_bounded_number_of_points() -> None:
    long = [IterPoint(i, 3.0 - i * 1e-4, 0.1, i * 0.1, None, False, 0) for i in range(4096)]
    d = plotdata.loss_data(long, [], width=60)
    assert len(d.train.xs) <= 121 and d.train.xs[0] == 0 and d.train.xs[-1] == 4095
    s = plotdata.speed_data(long, width=60, level_s=0.1)
    assert len(s.steady.xs) <= 121


def test_after_a_restart_the_chart_follows_the_current_path() -> None:
    pts = [IterPoint(i, 1.0, 0.1, i, None, False, 0) for i in range(0, 500, 100)]
    pts += [IterPoint(i, 1.0, 0.1, 600 + i, None, False, 1) for i in range(300, 700, 100)]  # resumed at 300
    assert [p.iter for p in plotdata.current_path(pts)] == [0, 100, 200, 300, 400, 500, 600]


@pytest.mark.parametrize(("lo", "hi", "ticks"), [
    (0, 450, [0, 100, 200, 300, 400]),
    (0, 5000, [0, 1000, 2000, 3000, 4000, 5000]),
    (0, 3, [0, 1, 2, 3]),
    (7, 7, [7]),
], ids=["hundreds", "thousands", "tiny", "single"])
def test_iteration_ticks_are_round(lo: float, hi: float, ticks: list[float]) -> None:
    assert plotdata.nice_ticks(lo, hi, 5) == ticks


# ---- stats, GPU, events ----------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_stats_tokens_epochs_flops_mfu_energy_cost() -> None:
    text = await shown(app_for(synthetic()), StatsPanel)
    assert "4.10 G / 9.83 G" in text and "214 k/s" in text
    assert "epochs  0.45 / 1.09" in text
    assert "3.51 EFLOP / 8.41 EFLOP" in text
    assert "29.3 % of peak" in text and "log: 19.0 % (A100)" in text
    assert "3.47 kWh → 9.44 kWh at end" in text
    assert "cost    1.04" in text


@pytest.mark.asyncio
async def test_stats_unknowns_are_dashes_with_a_hint(tmp_path: Path) -> None:
    text = await shown(app_for(from_log(corpus(SHAKESPEARE, tmp_path))), StatsPanel)
    assert "MFU     —  log: 27.0 % (A100)" in text
    assert "— (--dataset-tokens or --data-dir)" in text
    assert "— (no NVML; --power-watts W)" in text
    assert "cost" not in text


@pytest.mark.asyncio
async def test_nan_loss_is_shown_in_red(tmp_path: Path) -> None:
    app = app_for(from_log(corpus(NAN, tmp_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        panel = app.query_one(StatsPanel)
        assert "train nan" in widget_text(app, panel)
        nan = [s for line in panel.render_lines(panel.region.reset_offset) for s in line if s.text == "nan"]
        assert nan and nan[0].style is not None and nan[0].style.color is not None
        assert nan[0].style.color.name.startswith("red") or nan[0].style.color.triplet is not None


@pytest.mark.asyncio
async def test_gpu_panel_one_line_per_gpu() -> None:
    lost = dataclasses.replace(gpus()[0], index=2, lost=True)
    unknown = dataclasses.replace(gpus()[0], index=3, power_w=None, temperature_c=None, utilization=None)
    app = app_for(dataclasses.replace(synthetic(), gpus=(*gpus(), lost, unknown)))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        lines = widget_text(app, app.query_one(GpuPanel)).splitlines()[1:-1]  # inside the border
        assert len(lines) == 4
        assert "391 W" in lines[0] and "61.3/80 GiB" in lines[0] and "97 %" in lines[0] and "67 °C" in lines[0]
        assert "throttled: power cap" in lines[1]
        assert "lost" in lines[2]
        assert "°C" not in lines[3] and " W " not in lines[3] and lines[3].count("—") == 3
        assert lines[3].index("GiB") == lines[0].index("GiB")  # columns stay aligned


def test_events_put_each_checkpoint_after_its_eval_newest_first(tmp_path: Path) -> None:
    # 520 lines: past the eval at iteration 500 and the checkpoint saved after it
    snap = from_log(head(corpus(SHAKESPEARE, tmp_path), tmp_path / "early.log", 520))
    got = [(r.iter, r.kind, r.text[:10]) for r in rows(snap)][:4]
    last_eval = snap.evals[-1].iter
    assert got[0][:2] == (last_eval, "info") and got[0][2].startswith("checkpoint")
    assert got[1][:2] == (last_eval, "eval")


def test_startup_warnings_come_before_the_first_eval() -> None:
    snap = dataclasses.replace(synthetic(), notes=(Note(None, None, "warning", "FutureWarning: x"),),
                               evals=(EvalPoint(0, 11.0, 11.0, None),),
                               history=(IterPoint(0, 11.0, 40.0, 40.0, None, True, 0),))
    assert [r.kind for r in rows(snap)] == ["eval", "warning"]


@pytest.mark.asyncio
async def test_events_panel_shows_evals_checkpoints_and_the_buffering_hint() -> None:
    text = await shown(app_for(synthetic()), EventsPanel)
    assert "◆ eval  train" in text and "checkpoint saved to out-gpt2-124m" in text
    assert "▲ lines arrive in bursts" in text


# ---- live updates, follow, keys ----------------------------------------------------------------------

@pytest.mark.asyncio
async def test_pulls_new_snapshots_and_follow_key_freezes_the_view(tmp_path: Path) -> None:
    log = simulated(tmp_path, max_iters=400, eval_interval=100, log_interval=10)
    later = from_log(log, run="sim")
    early = dataclasses.replace(from_log(head(log, tmp_path / "early.log", 60)), run="sim", log=later.log)
    current: list[Snapshot] = [early]
    calls: list[float] = []

    def source() -> tuple[Snapshot, ...]:
        calls.append(time.monotonic())
        return (current[0],)

    app = TrainwatchApp(source, clock=lambda: FIXED_NOW, refresh_s=0.01)
    async with app.run_test(size=(120, 40)) as pilot:
        progress = app.query_one(ProgressPanel)
        await wait_for(pilot, lambda: f"{early.iter:,} / 400" in widget_text(app, progress))
        await pilot.press("f")
        assert "frozen" in widget_text(app, app.query_one(RunHeader))
        current[0] = later
        n = len(calls)
        await pilot.pause(1.2)  # nothing is pulled while frozen: the view stays
        assert f"{early.iter:,} / 400" in widget_text(app, progress) and len(calls) == n
        await pilot.press("f")
        await wait_for(pilot, lambda: "400 / 400" in widget_text(app, progress))
        assert "frozen" not in widget_text(app, app.query_one(RunHeader))


@pytest.mark.asyncio
async def test_pulls_at_most_twice_a_second() -> None:
    calls: list[float] = []
    snap = synthetic()

    def source() -> tuple[Snapshot, ...]:
        calls.append(time.monotonic())
        return (snap,)

    app = TrainwatchApp(source, clock=lambda: FIXED_NOW, refresh_s=0.01)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: len(calls) >= 2)
        start, before = time.monotonic(), len(calls)
        await pilot.pause(2.0)
        elapsed, pulled = time.monotonic() - start, len(calls) - before
    # 0.01 s was asked for: at 100 pulls/s this would be ~200; a slow machine only pulls less
    assert pulled <= 2 * elapsed + 2


@pytest.mark.asyncio
async def test_waiting_screen_until_the_first_snapshot() -> None:
    current: list[tuple[Snapshot, ...]] = [()]
    app = TrainwatchApp(lambda: current[0], clock=lambda: FIXED_NOW)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "waiting for the log" in screen_text(app))
        current[0] = (synthetic(),)
        await wait_for(pilot, lambda: bool(app.query(RunView)) and "8,350 / 20,000" in screen_text(app))


@pytest.mark.asyncio
async def test_q_quits_with_exit_code_0() -> None:
    app = app_for(synthetic())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


@pytest.mark.asyncio
async def test_question_mark_opens_and_closes_help() -> None:
    app = app_for(synthetic())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen) and "log / linear scale" in screen_text(app))
        assert "follow on/off" in screen_text(app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen))


@pytest.mark.asyncio
async def test_several_runs_tabs_overview_and_keys(tmp_path: Path) -> None:
    snaps = (synthetic(run="alpha"), from_log(corpus(OOM, tmp_path), run="beta"),
             from_log(corpus(NAN, tmp_path), run="gamma"))
    app = app_for(*snaps)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)  # the overview's rows are there: under load the tabs mount over several frames
        tabs = app.query_one(TabbedContent)
        await wait_for(pilot, lambda: tabs.active == "overview")
        table = app.query_one(Overview)
        assert table.row_count == 3
        row = [str(c) for c in table.get_row_at(1)]
        assert row[1] == "beta" and "crashed" in row[2] and "0 / 5,000" in row[3]
        assert "7h 33m" in str(table.get_row_at(0)[4]) and "3.2158 / 3.2618" in str(table.get_row_at(0)[6])
        for key, active in [("2", "run-2"), ("tab", "run-3"), ("tab", "overview"), ("shift+tab", "run-3"),
                            ("0", "overview"), ("1", "run-1"), ("9", "run-1")]:
            await pilot.press(key)
            await wait_for(pilot, lambda active=active: tabs.active == active)  # type: ignore[misc]
        assert len(app.query(RunView)) == 3
        await pilot.press("0")
        await wait_for(pilot, lambda: tabs.active == "overview")
        table.focus()
        table.move_cursor(row=2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: tabs.active == "run-3"
                       and "gamma" in widget_text(app, app.query_one("#run-3").query_one(RunHeader)))


@pytest.mark.asyncio
async def test_slurm_jobs_in_the_overview_and_their_run_views() -> None:
    """A job's user, partition and nodes beside its run's name; the time limit ahead; Slurm's end of a job."""
    job = {"job_id": "12345", "job_name": "gpt2-124m", "user": "alice", "partition": "gpu", "nodes": "g[01-04]"}
    cut = TimeLimit("will", FIXED_NOW + 3600, 3600.0, 7 * 3600.0, 9800, 0.49)
    late = dataclasses.replace(synthetic(run="12345 gpt2-124m"), labels=job, job_end_at=FIXED_NOW + 3600,
                               time_limit=cut)
    ended = dataclasses.replace(synthetic(run="12346 gpt2-350m", state="timeout"),
                                labels={**job, "job_id": "12346"}, last_checkpoint_iter=8000)
    app = app_for(late, ended)
    async with app.run_test(size=(160, 40)) as pilot:
        await ready(pilot)
        table = app.query_one(Overview)
        first = [str(c) for c in table.get_row_at(0)]
        assert first[1] == "12345 gpt2-124m  alice · gpu · g[01-04]" and "will hit the time limit" in first[5]
        assert "timeout" in str(table.get_row_at(1)[2])
        await pilot.press("1")
        await pilot.pause()
        progress = widget_text(app, app.query_one("#run-1").query_one(ProgressPanel))
        assert "job ends 04:20: will hit the time limit" in progress
        await pilot.press("2")
        await pilot.pause()
        progress = widget_text(app, app.query_one("#run-2").query_one(ProgressPanel))
        assert "timeout — Slurm ended the job · last checkpoint at 8,000" in progress


@pytest.mark.asyncio
async def test_one_run_has_no_tabs_and_tab_keys_do_nothing() -> None:
    app = app_for(synthetic())
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot)
        await pilot.press("2", "tab", "0")
        await pilot.pause()
        assert not app.query(TabbedContent) and len(app.query(RunView)) == 1
        assert "next run" not in screen_text(app)  # not offered in the footer


@pytest.mark.asyncio
async def test_alert_toast_from_another_thread() -> None:
    app = app_for(synthetic())
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        thread = threading.Thread(target=app.notify_alert, args=("run stalled", "no progress for 10m", "critical"))
        thread.start()
        thread.join(5)
        await wait_for(pilot, lambda: "no progress for 10m" in screen_text(app))
        assert "run stalled" in screen_text(app)
        assert [n.severity for n in app._notifications] == ["error"]


# ---- layout at the three sizes ------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("size", "hidden"), [
    ((120, 40), set()),
    ((80, 24), {"SpeedChart", "GpuPanel"}),
    ((200, 60), set()),
], ids=["120x40", "80x24", "200x60"])
async def test_one_screen_at_each_size(size: tuple[int, int], hidden: set[str]) -> None:
    app = app_for(synthetic())
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        width, height = size
        for cls in (RunHeader, ProgressPanel, LossChart, SpeedChart, GpuPanel, StatsPanel, EventsPanel):
            w = app.query_one(cls)
            if cls.__name__ in hidden:
                assert not w.display or w.region.area == 0, cls.__name__
                continue
            r = w.region
            assert r.area > 0 and r.right <= width and r.bottom <= height - 1, (cls.__name__, r)  # above the footer
        stats = widget_text(app, app.query_one(StatsPanel))
        assert "loss" in stats and "tokens" in stats and "energy" in stats
        assert "8,350 / 20,000" in screen_text(app)
        if width >= 120:
            events = widget_text(app, app.query_one(EventsPanel))
            assert "checkpoint saved" in events


@pytest.mark.asyncio
async def test_the_room_at_200x60_goes_to_the_charts() -> None:
    heights = {}
    for size in ((120, 40), (200, 60)):
        app = app_for(synthetic())
        async with app.run_test(size=size) as pilot:
            await ready(pilot)
            heights[size] = app.query_one(LossChart).region.height
    assert heights[(200, 60)] >= heights[(120, 40)] + 10


# ---- the entry point ----------------------------------------------------------------------------------

def test_run_tui_needs_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under pytest stdin is not a terminal: a clear error instead of a garbled screen.
    with pytest.raises(TrainwatchError, match="needs a terminal"):
        run_tui(lambda: ())


@pytest.mark.asyncio
async def test_follows_the_real_writer_loop(tmp_path: Path) -> None:
    """The live path: monitor.daemon.writer.Monitor tails a growing file, the app pulls its snapshots."""
    from monitor.daemon.writer import Monitor, RunSpec

    full = simulated(tmp_path, max_iters=300, eval_interval=100, log_interval=10).read_bytes().splitlines(True)
    first = next(i for i, line in enumerate(full) if line.startswith(b"iter "))
    live = tmp_path / "live.log"
    live.write_bytes(b"".join(full[:first + 5]))
    monitor = Monitor([RunSpec(str(live), "live")], poll_interval=0.1, force_poll=True)
    monitor.start()
    try:
        app = TrainwatchApp(monitor.snapshots)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: "live" in screen_text(app) and "40 / 300" in screen_text(app))
            with open(live, "ab") as fh:
                fh.write(b"".join(full[first + 5:]))
            await wait_for(pilot, lambda: "300 / 300" in screen_text(app))
            assert " finished " in widget_text(app, app.query_one(RunHeader))
    finally:
        monitor.stop()


def test_log_lines_are_held_while_the_tui_owns_the_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with logs_held() as held:
            logging.getLogger("x").info("following 1 log")
            logging.getLogger("x").warning("notifier failed: [red]x[/]")
            assert capsys.readouterr().err == ""  # nothing reaches the screen while the app runs
            assert len(held) == 2
        assert capsys.readouterr().err == "WARNING notifier failed: [red]x[/]\n"  # warnings, once it is back
        assert handler in root.handlers
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
