"""The writer loop against real files written by another process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.daemon.writer import BUFFERING_HINT, Monitor, RunSpec

WRITER = textwrap.dedent("""
    import sys, time
    n, pause = int(sys.argv[1]), float(sys.argv[2])
    print("Overriding config with config/x.py:")
    print("max_iters = %d" % n)
    print("log_interval = 1")
    print("")
    print("tokens per iteration will be: 1,000")
    for i in range(n + 1):
        print("iter %d: loss 2.0000, time 250.00ms, mfu 10.00%%" % i)
        time.sleep(pause)
""")


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def start_writer(tmp_path: Path, n: int, pause: float, unbuffered: bool) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    log = tmp_path / "out.log"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    cmd = [sys.executable, *(["-u"] if unbuffered else []), str(script), str(n), str(pause)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, env=env)
    return proc, log


@pytest.mark.parametrize("force_poll", [False, True], ids=["inotify", "polling"])
def test_follows_a_live_run_to_the_end(tmp_path: Path, force_poll: bool) -> None:
    proc, log = start_writer(tmp_path, 200, 0.005, unbuffered=True)
    mon = Monitor([RunSpec(str(log), "run")], poll_interval=0.1, force_poll=force_poll)
    mon.start()
    try:
        wait_for(lambda: bool(mon.snapshots()) and mon.snapshots()[0].state == "finished")
        snap = mon.snapshots()[0]
        assert snap.iter == 200 and snap.tokens_seen == 201_000
        assert snap.lines >= 205
    finally:
        mon.stop()
        proc.wait(10)


def test_a_block_buffered_writer_is_detected_and_the_user_told_once(tmp_path: Path) -> None:
    proc, log = start_writer(tmp_path, 3000, 0.0005, unbuffered=False)
    mon = Monitor([RunSpec(str(log), "run")], poll_interval=0.05)
    mon.start()
    try:
        wait_for(lambda: bool(mon.snapshots()) and mon.snapshots()[0].state == "finished", timeout=60)
        hints = [n for n in mon.snapshots()[0].notes if n.text == BUFFERING_HINT]
        assert len(hints) == 1
    finally:
        mon.stop()
        proc.wait(10)


def test_a_missing_file_is_a_problem_not_an_error_and_is_picked_up_later(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    mon = Monitor([RunSpec(str(log), "run")], poll_interval=0.05)
    mon.start()
    try:
        wait_for(lambda: bool(mon.snapshots()) and mon.followers[0].problem is not None)
        assert mon.snapshots()[0].state == "starting"
        log.write_text("max_iters = 1\niter 0: loss 1.0, time 1.00ms, mfu 1.00%\n")
        wait_for(lambda: mon.snapshots()[0].iter == 0)
    finally:
        mon.stop()


def test_listeners_see_every_publish_and_a_failing_listener_does_not_stop_the_loop(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("iter 0: loss 1.0, time 1.00ms, mfu 1.00%\n")
    seen: list[int] = []
    mon = Monitor([RunSpec(str(log), "run")], poll_interval=0.05)
    mon.subscribe(lambda snaps: (_ for _ in ()).throw(RuntimeError("view bug")))
    mon.subscribe(lambda snaps: seen.append(snaps[0].iter or 0))
    mon.start()
    try:
        with log.open("a") as fh:
            fh.write("iter 10: loss 1.0, time 1.00ms, mfu 1.00%\n")
        wait_for(lambda: 10 in seen)
    finally:
        mon.stop()


def test_a_big_log_shows_its_head_and_tail_before_it_is_read_whole(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.daemon import preview
    from monitor.sim.write import SimConfig, write

    log = tmp_path / "big.log"
    write(SimConfig(seed=1, log_interval=1, max_iters=20000), str(log), instant=True)
    monkeypatch.setattr(preview, "PREVIEW_ABOVE", 64 << 10)
    monkeypatch.setattr(preview, "HEAD", 16 << 10)
    monkeypatch.setattr(preview, "TAIL", 64 << 10)
    mon = Monitor([RunSpec(str(log), "big")])
    mon.followers[0].backfill_slice = 64 << 10  # read in many slices, as a 1 GB log would be
    mon.step()
    first = mon.snapshots()[0]
    assert mon.followers[0].backfilling, "the whole log is not read yet"
    assert first.iter == 20000 and first.max_iters == 20000 and first.forecast.iter_s is not None
    while mon.followers[0].backfilling:
        mon.step()
    full = mon.snapshots()[0]
    assert full.iter == first.iter and full.train_loss == first.train_loss
    assert full.lines > first.lines
    mon.stop()


def _lines(first: int, last: int) -> str:
    return "".join(f"iter {i}: loss 1.0, time 10.00ms, mfu 1.00%\n" for i in range(first, last + 1, 10))


@pytest.mark.parametrize(("new_content", "last", "max_iters"), [
    (_lines(510, 600), 600, 1000),  # copytruncate of the running job: it goes on where it was
    ("Overriding config with config/x.py:\nmax_iters = 100\n" + _lines(0, 50), 50, 100),  # a new run, same path
    (_lines(0, 50), 50, None),  # iterations fall back: a restart, whose log states no max_iters
], ids=["copytruncate-continues", "new-run-banner", "iterations-fall-back"])
def test_after_a_truncation_the_state_continues_or_restarts(tmp_path: Path, new_content: str, last: int,
                                                            max_iters: int | None) -> None:
    log = tmp_path / "out.log"
    log.write_text("Overriding: max_iters = 1000\n" + _lines(0, 500))
    mon = Monitor([RunSpec(str(log), "run")], poll_interval=0.05)
    mon.step()
    assert mon.snapshots()[0].iter == 500
    log.write_text("")  # truncated in place (the tail sees the size fall)
    mon.step()
    with log.open("a") as fh:
        fh.write(new_content)
    mon.step()
    mon.step()
    snap = mon.snapshots()[0]
    assert (snap.iter, snap.max_iters) == (last, max_iters)
    mon.stop()


def test_a_last_line_without_newline_is_read_once_the_file_has_been_quiet(tmp_path: Path) -> None:
    log = tmp_path / "wandb-output.log"
    log.write_text("Overriding: max_iters = 10\niter 0: loss 1.0, time 1.00ms, mfu 1.00%\n"
                   "iter 10: loss 0.5, time 1.00ms, mfu 1.00%")  # no trailing newline
    old = time.time() - 3600
    os.utime(log, (old, old))
    mon = Monitor([RunSpec(str(log), "w")], poll_interval=0.05)
    mon.step()
    mon.step()
    snap = mon.snapshots()[0]
    assert (snap.iter, snap.state) == (10, "finished")
    mon.stop()
