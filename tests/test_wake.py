"""The wake-up: which changes wake the follow loop, which do not, and the fallback to polling.

Every change is made by another process (`sh -c ...`). "Does not wake" is checked by a short wait that
must time out; "wakes" by a long one that must not.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.follow import wake
from monitor.follow.wake import Waker, make_waker

LONG = 10.0  # a wake-up must come well before this
QUIET = 0.3  # no wake-up may come within this


def sh(script: str, *args: Path) -> None:
    subprocess.run(["sh", "-c", script, "sh", *map(str, args)], check=True)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "out.log"
    path.write_text("seq 000000\n")
    return path


@pytest.fixture
def waker(log: Path) -> Iterator[Waker]:
    w = make_waker([str(log)])
    assert w.wait(0), "a new watch reports once, for changes made before it existed"
    yield w
    w.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_inotify_on_linux_and_polling_when_forced() -> None:
    w, p = make_waker(), make_waker(force_poll=True)
    try:
        assert (w.mode, p.mode) == ("inotify", "polling")
    finally:
        w.close()
        p.close()


@pytest.mark.parametrize("change", [
    'echo "seq 000001" >> "$1"',
    ': > "$1"',
    'chmod 600 "$1"',
    'rm "$1"',
    'echo new > "$1.tmp" && mv "$1.tmp" "$1"',
    'mv "$1" "$1.1" && echo new > "$1"',
], ids=["append", "truncate", "chmod", "delete", "replace", "rotate"])
def test_a_change_to_the_file_wakes_the_wait(waker: Waker, log: Path, change: str) -> None:
    sh(change, log)
    assert waker.wait(LONG)


def test_several_files_in_several_directories(tmp_path: Path) -> None:
    logs = [tmp_path / "a" / "run.log", tmp_path / "b" / "run.log", tmp_path / "b" / "other.log"]
    for p in logs:
        p.parent.mkdir(exist_ok=True)
        p.write_text("")
    w = make_waker(map(str, logs))
    try:
        w.wait(0)
        for p in logs:
            sh('echo "seq 000001" >> "$1"', p)
            assert w.wait(LONG), p
    finally:
        w.close()


def test_other_files_in_the_directory_do_not_wake_it(waker: Waker, log: Path) -> None:
    sh('for i in 1 2 3; do echo x >> "$1"; done; echo y > "$2"', log.parent / "ckpt.pt", log.parent / "other.log")
    assert not waker.wait(QUIET)
    sh('echo "seq 000001" >> "$1"', log)
    assert waker.wait(LONG)


def test_a_file_in_a_directory_made_later(tmp_path: Path) -> None:
    # The directory does not exist when the path is added; the watch comes once it does, and the
    # change made before the watch existed still wakes the wait.
    log = tmp_path / "out" / "train.log"
    w = make_waker([str(log)])
    try:
        assert not w.wait(QUIET)
        sh('mkdir "$1" && echo "seq 000000" > "$2"', log.parent, log)
        assert w.wait(LONG)
        sh('echo "seq 000001" >> "$1"', log)
        assert w.wait(LONG)
    finally:
        w.close()


def test_directory_deleted_and_made_again(waker: Waker, log: Path) -> None:
    sh('rm -r "$1" && mkdir "$1" && echo "seq 000000" > "$2"', log.parent, log)
    assert waker.wait(LONG)
    waker.wait(0)  # the new directory's watch reports once
    sh('echo "seq 000001" >> "$1"', log)
    assert waker.wait(LONG)


def settle(w: Waker) -> None:
    """Take the wake-ups already on their way (a loaded machine delivers some late) until one QUIET passes."""
    deadline = time.monotonic() + LONG
    while w.wait(QUIET):
        assert time.monotonic() < deadline, "the waker never went quiet"


def test_re_pointed_symlink_moves_the_watch(tmp_path: Path) -> None:
    for d in ("links", "a", "b"):
        (tmp_path / d).mkdir()
    link, first, second = tmp_path / "links" / "out.log", tmp_path / "a" / "x.log", tmp_path / "b" / "y.log"
    first.write_text("")
    second.write_text("")
    link.symlink_to(first)
    w = make_waker([str(link)])
    try:
        w.wait(0)
        sh('echo 1 >> "$1"', first)
        assert w.wait(LONG), "a write to the link's target"
        sh('ln -s "$1" "$2.new" && mv -T "$2.new" "$2"', second, link)
        assert w.wait(LONG), "the link re-pointed"
        settle(w)  # the new target's directory is watched from here on, and says so once (late, under load)
        sh('echo 2 >> "$1"', first)
        assert not w.wait(QUIET), "the old target no longer concerns us"
        sh('echo 2 >> "$1"', second)
        assert w.wait(LONG), "a write to the new target"
    finally:
        w.close()


def test_removed_path_no_longer_wakes(waker: Waker, log: Path) -> None:
    waker.remove(str(log))
    sh('echo "seq 000001" >> "$1"', log)
    assert not waker.wait(QUIET)


def test_close_releases_a_blocked_wait_and_the_observer_thread(log: Path) -> None:
    before = threading.active_count()
    w = make_waker([str(log)])
    w.wait(0)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(w.wait(3600)))
    waiter.start()
    w.close()
    waiter.join(LONG)
    assert results == [False]
    assert threading.active_count() == before


def test_polling_mode_only_times_out(log: Path) -> None:
    w = make_waker([str(log)], force_poll=True)
    try:
        sh('echo "seq 000001" >> "$1"', log)
        assert not w.wait(0.05)
    finally:
        w.close()


def test_falls_back_to_polling_when_inotify_cannot_start(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_inotify() -> None:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(wake, "Observer", no_inotify)
    w = make_waker([str(log)])
    try:
        assert w.mode == "polling"
        assert not w.wait(0.05)
    finally:
        w.close()
