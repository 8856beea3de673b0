"""Alert rules as specifications: sequences of snapshots of real (generated) logs → exactly which alerts, once."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from alert_logs import T0, header, iterations, snap

from monitor.alerts.rules import AlertConfig, AlertMemory, RunMemory, evaluate
from monitor.alerts.store import AlertStore, identify
from monitor.defaults import xdg_dir
from monitor.snapshot import Energy, GpuSample, Snapshot
from monitor.units import clock, duration

CFG = AlertConfig(notify_before_s=30, moved_threshold_s=10, slowdown_for_s=5)
TRACEBACK = ["Traceback (most recent call last):", '  File "train.py", line 300, in <module>',
             "    loss.backward()", "RuntimeError: CUDA error: an illegal memory access was encountered"]


def run_to(upto: int, **kw: object) -> list[str]:
    return header(1000) + iterations(0, upto, **kw)  # type: ignore[arg-type]


def keys(snaps: list[Snapshot], cfg: AlertConfig = CFG, memory: AlertMemory | None = None) -> list[list[str]]:
    """The keys of the alerts each snapshot fires, evaluated in order as a live daemon would."""
    memory = memory or AlertMemory()
    out = []
    for s in snaps:
        memory, alerts = evaluate(memory, [s], s.taken_at, cfg, quiet=False)
        out.append([a.key for a in alerts])
    return out


def _nan_from_300(i: int) -> float:
    return math.nan if i >= 300 else 3.0


def _nan_at_300_only(i: int) -> float:
    return math.nan if 300 <= i <= 310 else 3.0


def _diverging(i: int) -> float:
    """Steady, then a jump for 8 lines, back down for 10, and a second jump."""
    line = i // 10
    return 6.0 if 60 <= line < 68 or line >= 78 else 3.0


def _slow_from_400(i: int) -> float:
    return 100.0 if i < 400 else 250.0


def _throughput(s: Snapshot, ratio: float) -> Snapshot:
    """The snapshot with the forecaster's estimate of throughput against the earlier rate set to `ratio`."""
    return replace(s, forecast=replace(s.forecast, slowdown=1 / ratio))


def _one_spike(i: int) -> float:
    return 9.0 if i == 650 else 3.0


SCENARIOS: dict[str, tuple[Callable[[Path], list[Snapshot]], list[list[str]]]] = {
    "finishing-soon-then-finished": (lambda p: [
        snap(p, run_to(100)), snap(p, run_to(500)), snap(p, run_to(750)), snap(p, run_to(800)),
        snap(p, run_to(1000)), snap(p, run_to(1000), 60)],
        [[], [], ["finishing"], [], ["finished"], []]),
    "silence-between-lines-does-not-move-the-finish": (lambda p: [snap(p, run_to(750), off) for off in (0, 20, 50)],
                                                        [["finishing"], [], []]),
    "a-hang-does-not-count-down-to-finishing-soon": (lambda p: [snap(p, run_to(700), off) for off in (0, 10, 100)],
                                                     [[], [], ["stalled#1"]]),
    "nan-once": (lambda p: [
        snap(p, run_to(200, loss=_nan_from_300)), snap(p, run_to(310, loss=_nan_from_300)),
        snap(p, run_to(400, loss=_nan_from_300))],
        [[], ["nan"], []]),
    "nan-that-came-and-went-between-two-looks": (lambda p: [
        snap(p, run_to(200, loss=_nan_at_300_only)), snap(p, run_to(400, loss=_nan_at_300_only))],
        [[], ["nan"]]),
    "crashed-with-traceback": (lambda p: [snap(p, run_to(300)), snap(p, run_to(300) + TRACEBACK),
                                          snap(p, run_to(300) + TRACEBACK, 600)],
                               [[], ["crashed#1"], []]),
    "stalled-twice-two-episodes": (lambda p: [
        snap(p, run_to(300)), snap(p, run_to(300), 100), snap(p, run_to(300), 200),
        snap(p, run_to(400)), snap(p, run_to(400), 100)],
        [[], ["stalled#1"], [], [], ["stalled#2"]]),
    "slowdown-after-a-while-of-training": (lambda p: [  # 2.5 s of training per line once slow
        snap(p, run_to(upto, dt_ms=_slow_from_400), off) for upto, off in ((800, 0), (810, 0), (810, 15), (830, 0),
                                                                         (850, 0))],
        [[], [], [], ["slowdown#1"], []]),
    "slowdown-hovering-at-the-threshold-is-one-episode": (lambda p: [
        _throughput(snap(p, run_to(upto, dt_ms=_slow_from_400)), ratio)
        for upto, ratio in ((700, .5), (720, .5), (730, .72), (740, .5), (750, .5), (760, .5), (770, .9), (780, .5),
                            (800, .5))],
        [[], ["slowdown#1"], [], [], [], [], [], [], ["slowdown#2"]]),
    "no-slowdown-at-steady-speed": (lambda p: [snap(p, run_to(500), off) for off in (0, 10)], [[], []]),
    "diverging-two-episodes": (lambda p: [
        snap(p, run_to(up, loss=_diverging)) for up in (590, 640, 670, 700, 770, 810, 820)],
        [[], ["diverging#1"], [], [], ["finishing"], [], ["diverging#2"]]),
    "single-spike-is-not-divergence": (lambda p: [snap(p, run_to(up, loss=_one_spike)) for up in (640, 650, 700)],
                                       [[], [], []]),
    "restart-from-scratch-is-not-divergence": (lambda p: [
        snap(p, run_to(600, loss=lambda i: 2.5)),
        snap(p, run_to(600, loss=lambda i: 2.5) + header(1000) + iterations(0, 100, loss=lambda i: 10.0))],
        [[], []]),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_alert_fires_once(tmp_path: Path, name: str) -> None:
    build, expected = SCENARIOS[name]
    assert keys(build(tmp_path / "run.log")) == expected


def test_milestones_are_off_by_default_and_fire_once_each_when_set(tmp_path: Path) -> None:
    p = tmp_path / "run.log"
    snaps = [snap(p, run_to(up)) for up in (200, 260, 510, 520, 760)]
    assert keys(snaps, replace(CFG, notify_before_s=0)) == [[]] * 5
    assert keys(snaps, replace(CFG, notify_before_s=0, milestones=(0.25, 0.5, 0.75))) == [
        [], ["milestone:25"], ["milestone:50"], [], ["milestone:75"]]


def test_finishing_soon_says_when(tmp_path: Path) -> None:
    s = snap(tmp_path / "run.log", run_to(750))
    [alert] = evaluate(AlertMemory(), [s], s.taken_at, CFG, quiet=False)[1]
    assert (alert.kind, alert.level, alert.run) == ("finishing", "info", "run")
    assert alert.title == f"run: finishing at {clock(s.forecast.finish_at, s.taken_at)}"
    assert f"in {duration(s.forecast.eta_s)}" in alert.body
    assert "Iteration 750 of 1,000." in alert.body


def test_finish_moved_sends_one_correction(tmp_path: Path) -> None:
    s = snap(tmp_path / "run.log", run_to(750))
    fc = s.forecast
    finish, eta, iter_s = fc.finish_at, fc.eta_s, fc.iter_s
    assert finish is not None and eta is not None and iter_s is not None

    def moved(by: float) -> Snapshot:
        """The steady speed changed so that the 250 iterations left take `by` seconds more."""
        return replace(s, forecast=replace(fc, iter_s=iter_s + by / 250, finish_at=finish + by, eta_s=eta + by))

    memory, first = evaluate(AlertMemory(), [s], s.taken_at, CFG, quiet=False)
    assert [a.kind for a in first] == ["finishing"]
    assert keys([moved(5), moved(300), moved(-200), moved(900)], memory=memory) == [[], ["finish-moved"], [], []]
    alert = evaluate(memory, [moved(300)], s.taken_at, CFG, quiet=False)[1][0]
    assert "5m 00s later than" in alert.body and alert.title.startswith("run: finish moved to ")


def test_finished_summary(tmp_path: Path) -> None:
    s = snap(tmp_path / "run.log", run_to(1000), energy=Energy(joules=7.2e6, source="power-flag"), price_per_kwh=0.25)
    [alert] = evaluate(AlertMemory(), [s], s.taken_at, CFG, quiet=False)[1]
    assert (alert.kind, alert.level, alert.title) == ("finished", "success", "run: finished")
    assert alert.body == (f"1,000 iterations in {duration(s.elapsed_s)}; 4.10 M tokens; "
                          "train loss 3.0000, val loss 3.0500; 2.00 kWh, cost 0.50.")


def test_crash_says_the_traceback_last_line_or_that_the_process_exited(tmp_path: Path) -> None:
    s = snap(tmp_path / "run.log", run_to(300) + TRACEBACK)
    [alert] = evaluate(AlertMemory(), [s], s.taken_at, CFG, quiet=False)[1]
    assert alert.title == "run: crashed at iter 300" and alert.level == "failure"
    assert alert.body.startswith("RuntimeError: CUDA error: an illegal memory access was encountered")
    exited = replace(snap(tmp_path / "run.log", run_to(300)), state="crashed")
    [alert] = evaluate(AlertMemory(), [exited], exited.taken_at, CFG, quiet=False)[1]
    assert alert.body == "process exited before max_iters Iteration 300 of 1,000."


def _gpu(utilization: float, throttle: tuple[str, ...] = ()) -> GpuSample:
    return GpuSample(index=0, uuid="GPU-0", name="H100", at=T0, power_w=300.0, energy_j=None,
                     memory_used_bytes=None, memory_total_bytes=None, utilization=utilization,
                     temperature_c=None, sm_clock_mhz=None, throttle=throttle, processes=())


@pytest.mark.parametrize(("gpus", "says"), [
    ((), "(one was expected every 1s)."),
    ((_gpu(0.0),), "GPU idle."),
    ((_gpu(0.97),), "GPU still busy (97 % utilization)."),
], ids=["no-gpu-known", "gpu-idle", "gpu-busy"])
def test_stall_says_how_long_and_what_the_gpu_does(tmp_path: Path, gpus: tuple[GpuSample, ...], says: str) -> None:
    s = snap(tmp_path / "run.log", run_to(300), 100, gpus=gpus)
    [alert] = evaluate(AlertMemory(), [s], s.taken_at, CFG, quiet=False)[1]
    assert alert.title == "run: stalled at iter 300" and alert.level == "warning"
    assert alert.body.startswith("No new iteration for 1m 40s") and alert.body.endswith(says)


def test_slowdown_names_the_throttle_reason(tmp_path: Path) -> None:
    gpus = (_gpu(0.99, ("thermal", "power cap")),)
    s0, s1 = (snap(tmp_path / "run.log", run_to(upto, dt_ms=_slow_from_400), gpus=gpus) for upto in (800, 840))
    memory, _ = evaluate(AlertMemory(), [s0], s0.taken_at, CFG, quiet=False)
    [alert] = evaluate(memory, [s1], s1.taken_at, CFG, quiet=False)[1]
    ratio = round(100 / (s1.forecast.slowdown or 1))
    assert alert.title == f"run: slowed down to {ratio} %"
    assert alert.body.endswith("GPU throttled: power cap, thermal.")


# ---- quiet backfill ------------------------------------------------------------------------------

@pytest.mark.parametrize("lines", [
    run_to(1000),
    run_to(1000, loss=_nan_from_300),
    run_to(300) + TRACEBACK,
    run_to(820, loss=_diverging),
    run_to(800, dt_ms=_slow_from_400),
], ids=["finished", "finished-with-nan", "crashed", "diverging", "slowed-down"])
@pytest.mark.parametrize("offset", [0, 3600], ids=["just-written", "an-hour-old"])
def test_backfill_sends_no_history_and_later_repeats_none(tmp_path: Path, lines: list[str], offset: float) -> None:
    cfg = replace(CFG, notify_before_s=600, milestones=(0.25, 0.5, 0.75))
    s = snap(tmp_path / "run.log", lines, offset)
    memory, alerts = evaluate(AlertMemory(), [s], s.taken_at, cfg, quiet=True)
    assert alerts == []
    assert memory.run(s.log).fired, "the backfill recorded what holds"
    assert keys([s, snap(tmp_path / "run.log", lines, offset + 60)], cfg, memory) == [[], []]


def test_after_a_quiet_backfill_news_still_fires(tmp_path: Path) -> None:
    p = tmp_path / "run.log"
    stalled = snap(p, run_to(300), 100)
    memory, alerts = evaluate(AlertMemory(), [stalled], stalled.taken_at, CFG, quiet=True)
    assert alerts == [] and memory.run(str(p)).active == {"stalled"}
    later = [snap(p, run_to(400)), snap(p, run_to(750)), snap(p, run_to(800), 100), snap(p, run_to(1000))]
    assert keys(later, memory=memory) == [[], ["finishing"], ["stalled#2"], ["finished"]]


def test_evaluate_is_pure(tmp_path: Path) -> None:
    s = snap(tmp_path / "run.log", run_to(1000))
    prev = AlertMemory()
    first = evaluate(prev, [s], s.taken_at, CFG, quiet=False)
    assert evaluate(prev, [s], s.taken_at, CFG, quiet=False) == first
    assert prev == AlertMemory()


def test_runs_are_remembered_apart(tmp_path: Path) -> None:
    a = snap(tmp_path / "a.log", run_to(1000))
    b = snap(tmp_path / "b.log", run_to(1000))
    memory, alerts = evaluate(AlertMemory(), [a], T0, CFG, quiet=False)
    memory, alerts = evaluate(memory, [a, b], T0, CFG, quiet=False)
    assert [(x.run, x.kind) for x in alerts] == [("b", "finished")]


# ---- persistence ---------------------------------------------------------------------------------

def test_state_and_config_dirs_follow_xdg() -> None:
    assert xdg_dir("state", {"XDG_STATE_HOME": "/srv/state"}) == "/srv/state/trainwatch"
    home = os.path.expanduser("~")
    assert xdg_dir("state", {"XDG_STATE_HOME": "relative/ignored"}) == f"{home}/.local/state/trainwatch"
    assert xdg_dir("state", {}) == f"{home}/.local/state/trainwatch"
    assert xdg_dir("config", {"XDG_CONFIG_HOME": "rel", "HOME": "/h"}) == "/h/.config/trainwatch"


def test_saved_memory_is_found_again_while_the_run_grows(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    log.write_text("\n".join(run_to(300)) + "\n")
    mem = RunMemory(frozenset({"finishing", "stalled#1"}), frozenset({"stalled"}), T0 + 30, slow_since=T0)
    AlertStore(str(tmp_path / "state")).save(str(log), mem)
    with log.open("a") as fh:
        fh.write("\n".join(iterations(310, 900)) + "\n")
    assert AlertStore(str(tmp_path / "state")).load(str(log)) == mem.durable()


def _rewrite(log: Path) -> None:
    log.write_text("\n".join(run_to(200, dt_ms=lambda i: 101.0)) + "\n")


def _recreate_same_bytes(log: Path) -> None:
    """A new file (a new inode: the old one still exists while it is written) with the same content."""
    new = log.with_suffix(".new")
    new.write_text(log.read_text())
    os.replace(new, log)


@pytest.mark.parametrize("replace_file", [_rewrite, _recreate_same_bytes],
                         ids=["truncated-and-rewritten", "re-created-same-bytes"])
def test_a_new_run_in_the_same_path_starts_afresh(tmp_path: Path, replace_file: Callable[[Path], object]) -> None:
    log = tmp_path / "run.log"
    log.write_text("\n".join(run_to(300)) + "\n")
    store = AlertStore(str(tmp_path / "state"))
    store.save(str(log), RunMemory(frozenset({"finished"})))
    assert store.load(str(log)) is not None
    replace_file(log)
    assert store.load(str(log)) is None


def test_malformed_state_is_set_aside_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "run.log"
    log.write_text("iter 0: loss 1.0, time 1.0ms\n")
    store = AlertStore(str(tmp_path))
    state = Path(store.file_for(str(log)))
    state.write_text("{not json")
    assert store.load(str(log)) is None
    assert "set aside" in caplog.text and not state.exists()
    assert Path(f"{state}.bad").read_text() == "{not json"
    assert identify(str(tmp_path / "missing.log")) is None


CHILD = """
import sys
sys.path.insert(0, "tests")
from alert_logs import snap
from pathlib import Path
from monitor.alerts.store import AlertStore
from monitor.alerts.rules import AlertConfig, AlertMemory, RunMemory, evaluate
log, state = sys.argv[1], sys.argv[2]
store = AlertStore(state)
lines = Path(log).read_text().splitlines()
s = snap(Path(log), lines, 60)
memory = AlertMemory().with_run(log, store.load(log) or RunMemory())
memory, alerts = evaluate(memory, [s], s.taken_at, AlertConfig(), quiet=False)
print(",".join(a.key for a in alerts))
"""


def test_a_new_process_repeats_nothing(tmp_path: Path) -> None:
    log, state = tmp_path / "run.log", tmp_path / "state"
    s = snap(log, run_to(1000))
    memory, alerts = evaluate(AlertMemory(), [s], s.taken_at, AlertConfig(), quiet=False)
    assert [a.key for a in alerts] == ["finished"]

    def child(state_dir: Path) -> str:
        r = subprocess.run([sys.executable, "-c", CHILD, str(log), str(state_dir)], capture_output=True, text=True,
                           check=True, cwd=Path(__file__).parent.parent, timeout=60)
        return r.stdout.strip()

    assert child(tmp_path / "empty") == "finished", "without the saved state the alert would fire again"
    AlertStore(str(state)).save(str(log), memory.run(str(log)))
    assert json.loads(Path(AlertStore(str(state)).file_for(str(log))).read_text())["memory"]["fired"] == ["finished"]
    assert child(state) == ""
