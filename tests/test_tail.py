"""The tail against a writer in another process: every line exactly once, in order, whatever the file goes through.

Scenarios are named after the failure they would show (mtail's list: partial line, truncation, rotation,
deletion, permission denied). Each runs with inotify wake-ups and with polling only. With inotify, the
loop waits for an event with no poll timeout before the test's deadline, so a change that sends no
event the tail listens to fails the test instead of being rescued by polling.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import pytest

from monitor.follow.lines import MAX_LINE_BYTES
from monitor.follow.tail import FileTail, TailRead
from monitor.follow.wake import make_waker

HERE = Path(__file__).parent
WRITER = HERE / "writer_proc.py"
POLL_INTERVAL = 0.05
DEADLINE = 20.0
NOBODY = 65534
SEQ = re.compile(r"^seq (\d{6})")


class Writer:
    """tests/writer_proc.py in its own process.

    `send()` hands it commands and returns at once, so the tail reads while the writer writes and must
    be woken to see the lines; `do()` also waits until their effects are on disk.
    """

    def __init__(self, path: Path, *, append: bool = True, start: int = 0) -> None:
        args = [sys.executable, str(WRITER), str(path), "--start", str(start)]
        if not append:
            args.append("--no-append")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._unanswered = 1  # its greeting

    def send(self, *commands: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("".join(c + "\n" for c in commands))
        self.proc.stdin.flush()
        self._unanswered += len(commands)

    def do(self, *commands: str) -> None:
        self.send(*commands)
        self.wait()

    def wait(self) -> None:
        assert self.proc.stdout is not None
        while self._unanswered:
            reply = self.proc.stdout.readline()
            assert reply.startswith("ok "), f"writer failed: {reply!r} (exit {self.proc.poll()})"
            self._unanswered -= 1

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


class Follow:
    """The run loop in miniature: read, and when nothing more is ready, wait for a wake-up."""

    def __init__(self, path: Path, *, poll: bool) -> None:
        self.poll = poll
        self.tail = FileTail(str(path))
        self.waker = make_waker([str(path)], force_poll=poll)
        self.lines: list[str] = []
        self.flags: list[tuple[bool, bool]] = []  # (backfill, reset) of each line's read
        self.resets: list[int] = []  # how many lines had come when a reset was reported
        self.last: TailRead | None = None
        self.reads = 0

    def until(self, done: Callable[[Follow], bool], what: str, *, max_bytes: int | None = None) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            read = self.last = self.tail.read(max_bytes)
            self.reads += 1
            if read.reset:
                self.resets.append(len(self.lines))
            self.lines += read.lines
            self.flags += [(read.backfill, read.reset)] * len(read.lines)
            if done(self):
                return
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {what}; last read {read}, {len(self.lines)} lines"
            if read.pending:
                continue
            if self.poll:
                self.waker.wait(POLL_INTERVAL)
            else:
                assert self.waker.wait(left), f"no file event came while waiting for {what}; last read {read}"

    def seqs(self) -> list[int]:
        return [int(m.group(1)) for m in map(SEQ.match, self.lines) if m]

    def count(self, n: int) -> Callable[[Follow], bool]:
        return lambda f: len(f.seqs()) >= n

    def close(self) -> None:
        self.waker.close()
        self.tail.close()


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def poll(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "out.log"


class Scene:
    """Writers and followers made by one test, all closed at its end."""

    def __init__(self, log: Path, poll: bool) -> None:
        self.log, self.poll = log, poll
        self._made: list[Writer | Follow] = []

    def writer(self, path: Path | None = None, *, append: bool = True, start: int = 0) -> Writer:
        writer = Writer(path or self.log, append=append, start=start)
        self._made.append(writer)
        return writer

    def follow(self, path: Path | None = None) -> Follow:
        follow = Follow(path or self.log, poll=self.poll)
        self._made.append(follow)
        return follow

    def close(self) -> None:
        for thing in self._made:
            thing.close()


@pytest.fixture
def scene(log: Path, poll: bool) -> Iterator[Scene]:
    made = Scene(log, poll)
    yield made
    made.close()


def text(n: int) -> str:
    """The line writer_proc.py writes for sequence number n."""
    return f"seq {n:06d} " + "x" * (n % 41)


def first_half(n: int) -> str:
    """What writer_proc.py's `half` writes of line n."""
    return (text(n) + "\n")[: (len(text(n)) + 1) // 2]


def read_to(size: int) -> Callable[[Follow], bool]:
    """The tail has read the file up to `size` bytes (a held partial line included)."""
    return lambda f: f.last is not None and f.last.size == size and not f.last.pending


def test_bursts_of_appends_arrive_once_in_order(scene: Scene) -> None:
    writer, follow = scene.writer(), scene.follow()
    follow.until(lambda f: f.last is not None, "attach")
    writer.send("lines 3000", "block 2000", "lines 3000")
    follow.until(follow.count(8000), "8000 lines")
    assert follow.seqs() == list(range(8000))
    assert follow.resets == []


def test_partial_line_is_held_until_its_newline(scene: Scene, log: Path) -> None:
    writer, follow = scene.writer(), scene.follow()
    writer.do("lines 5")
    for n in range(5, 25):
        writer.do("half")
        follow.until(read_to(log.stat().st_size), "the half line to be read")
        assert follow.seqs() == list(range(n)), "a half-written line was delivered"
        writer.send("rest")
        follow.until(follow.count(n + 1), f"line {n}")
    assert follow.seqs() == list(range(25))
    assert follow.lines[-1] == text(24)


@pytest.mark.parametrize("append", [True, False], ids=["O_APPEND", "no-O_APPEND"])
@pytest.mark.parametrize("how", ["truncate", "copytruncate"])
def test_truncation_in_place_restarts_from_the_top(scene: Scene, log: Path, how: str, append: bool) -> None:
    # Without O_APPEND (a shell `>`) the writer goes on at its old offset: the file comes back as a
    # run of NUL bytes and then the new lines, and its size passes the old one.
    writer, follow = scene.writer(append=append), scene.follow()
    writer.send("lines 500")
    follow.until(follow.count(500), "the first 500 lines")
    writer.send(how, "lines 700")
    follow.until(follow.count(1200), "the lines after the truncation")
    assert follow.seqs() == list(range(1200))
    assert follow.resets == [500]
    assert not any("\0" in line for line in follow.lines)
    assert log.read_bytes()[:1] == (b"s" if append else b"\0"), "the scenario did not make the file it is named for"
    if how == "copytruncate":
        assert (log.parent / "out.log.1").read_text().count("\n") == 500


def test_attach_to_a_log_that_starts_with_a_nul_hole(scene: Scene, log: Path) -> None:
    # A `>` writer truncated before the tail started: the file begins with a hole of NULs.
    writer = scene.writer(append=False)
    writer.do("block 20000", "truncate", "lines 5")
    assert log.read_bytes()[:1] == b"\0"
    follow = scene.follow()
    follow.until(follow.count(5), "the lines after the hole", max_bytes=64 << 10)
    assert follow.lines == [text(n) for n in range(20000, 20005)]
    assert follow.reads <= 3, "the hole (about 1 MB) was read in 64 KiB slices instead of skipped"


def test_truncation_under_a_held_partial_line(scene: Scene, log: Path) -> None:
    writer, follow = scene.writer(), scene.follow()
    writer.do("lines 3", "half")
    follow.until(read_to(log.stat().st_size), "the half line to be read")
    writer.send("truncate", "lines 3")
    follow.until(follow.count(6), "the lines after the truncation")
    assert follow.lines[3] == first_half(3), "the old content's last words are a line of their own"
    assert follow.seqs() == [0, 1, 2, 4, 5, 6]
    assert follow.resets == [4]


@pytest.mark.parametrize("rotate", [["rename"], ["delete", "create"]], ids=["rename+create", "delete+recreate"])
def test_rotation_reads_the_old_file_to_its_end_then_the_new_one(scene: Scene, rotate: list[str]) -> None:
    # No waiting between the last lines of the old file and the first of the new: the open descriptor
    # still reaches the old file, so nothing written to it may be lost.
    writer, follow = scene.writer(), scene.follow()
    writer.send("lines 10")
    follow.until(follow.count(10), "the tail to attach")
    writer.send("lines 2000", *rotate, "lines 2000")
    follow.until(follow.count(4010), "both files")
    assert follow.seqs() == list(range(4010))
    assert follow.resets == [2010]


def test_deleted_file_waits_then_follows_its_recreation(scene: Scene, log: Path) -> None:
    writer, follow = scene.writer(), scene.follow()
    writer.send("lines 100")
    follow.until(follow.count(100), "the first file")
    writer.send("delete")
    follow.until(lambda f: f.last is not None and f.last.problem is not None, "the deletion to be noticed")
    assert follow.last is not None
    assert (follow.last.problem, follow.last.size, follow.last.mtime) == (f"waiting for {log} to appear", 0, None)
    writer.send("create", "lines 100")
    follow.until(follow.count(200), "the re-created file")
    assert follow.seqs() == list(range(200))
    assert follow.resets == [100]
    assert follow.last.problem is None


def test_file_created_after_the_tail_started(scene: Scene, log: Path) -> None:
    follow = scene.follow()
    follow.until(lambda f: True, "a first read")
    assert follow.last is not None and follow.last.problem == f"waiting for {log} to appear"
    scene.writer().send("lines 1000")
    follow.until(follow.count(1000), "the new file")
    assert follow.seqs() == list(range(1000))
    assert follow.flags == [(False, False)] * 1000, "lines of a file that appeared while following are live"


def test_backfill_in_slices_then_live(scene: Scene) -> None:
    # Lines that arrive while the backfill is being read in slices are live, even when a slice
    # would reach past the size the file had when the tail attached.
    writer = scene.writer()
    writer.do("block 20000")
    follow = scene.follow()
    follow.until(lambda f: f.last is not None, "a first slice", max_bytes=64 << 10)
    writer.send("lines 100")
    follow.until(follow.count(20100), "the backfill and the live lines", max_bytes=64 << 10)
    assert follow.seqs() == list(range(20100))
    assert follow.flags == [(True, False)] * 20000 + [(False, False)] * 100


def test_symlink_followed_and_re_pointed(scene: Scene, tmp_path: Path) -> None:
    # The link and its two targets live in three directories, so the wake-up must follow the link.
    for d in ("links", "a", "b"):
        (tmp_path / d).mkdir()
    link, first, second = tmp_path / "links" / "out.log", tmp_path / "a" / "run.log", tmp_path / "b" / "run.log"
    w1 = scene.writer(first)
    link.symlink_to(first)
    follow = scene.follow(link)
    w1.send("lines 300")
    follow.until(follow.count(300), "the first target")
    w2 = scene.writer(second, start=300)
    staged = tmp_path / "links" / "staged"
    staged.symlink_to(second)
    os.replace(staged, link)
    w2.send("lines 300")
    follow.until(follow.count(600), "the second target")
    w1.do("lines 5")  # the old target is no longer followed
    w2.send("lines 5")
    follow.until(lambda f: len(f.lines) >= 605, "more of the second target")
    assert follow.seqs() == [*range(300), *range(300, 605)]
    assert follow.resets == [300]


def test_invalid_utf8_is_replaced_and_the_lines_around_it_survive(scene: Scene) -> None:
    writer, follow = scene.writer(), scene.follow()
    writer.send("lines 2", "raw c328ff0a", "lines 2")
    follow.until(lambda f: len(f.lines) >= 5, "5 lines")
    assert follow.lines[2] == "\ufffd(\ufffd"
    assert follow.seqs() == [0, 1, 2, 3]


def test_a_100_mb_line_without_newline_costs_bounded_memory(scene: Scene) -> None:
    writer, follow = scene.writer(), scene.follow()
    writer.send("lines 1")
    follow.until(follow.count(1), "the first line")
    tracemalloc.start()
    try:
        writer.send("bigline 100", "raw 0a", "lines 1")
        follow.until(follow.count(2), "the line after the long one")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert follow.seqs() == [0, 1]
    assert follow.lines[1] == "y" * MAX_LINE_BYTES
    assert peak < 24 << 20, f"peak {peak / 2**20:.1f} MiB while reading a 100 MiB line"


def test_flush_partial_gives_the_unterminated_last_line(scene: Scene, log: Path) -> None:
    writer, follow = scene.writer(), scene.follow()
    writer.do("lines 2", "half")
    writer.close()  # the writer is gone: no newline will come
    follow.until(read_to(log.stat().st_size), "everything to be read")
    assert follow.seqs() == [0, 1]
    assert follow.tail.flush_partial() == first_half(2)
    assert follow.tail.flush_partial() is None


def test_permission_denied_says_so_and_retries(poll: bool) -> None:
    # Root reads a mode-000 file anyway, so as root the tail runs in a forked child that has become
    # `nobody`. The directory is made by hand because pytest's tmp_path is private to root.
    base = Path(tempfile.mkdtemp(prefix="trainwatch-perm-"))
    try:
        base.chmod(0o755)
        log = base / "out.log"
        log.write_text("seq 000000 \nseq 000001 x\n")
        log.chmod(0)
        child = _ChildTail(log, poll=poll)
        try:
            first = child.next_read()
            assert first["problem"] == f"permission denied: {log}"
            assert first["lines"] == []
            log.chmod(0o644)
            got = child.next_read()
            assert got["problem"] is None
            assert got["lines"] == ["seq 000000 ", "seq 000001 x"]
        finally:
            child.close()
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(("make", "says"), [
    (lambda p: p.mkdir(), "is a directory, not a log file"),
    (lambda p: os.mkfifo(p), "is not a regular file"),
    (lambda p: p.symlink_to("/dev/null"), "is not a regular file"),
], ids=["directory", "fifo", "device"])
def test_not_a_regular_file_is_a_problem_not_a_hang(log: Path, make: Callable[[Path], None], says: str) -> None:
    make(log)
    with FileTail(str(log)) as tail:
        read = tail.read()
    assert read.lines == [] and read.problem is not None and says in read.problem


# -- a tail in another process, for the permission test ----------------------------------------

class _ChildTail:
    """The follow loop in a forked child that has dropped root, reporting its reads as JSON on a pipe."""

    def __init__(self, log: Path, *, poll: bool) -> None:
        r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into pytest
            try:
                os.close(r)
                if os.geteuid() == 0:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                _report_reads(log, poll, os.fdopen(w, "w"))
            finally:
                os._exit(0)
        os.close(w)
        self.reads: queue.Queue[dict[str, object]] = queue.Queue()
        threading.Thread(target=self._pump, args=(os.fdopen(r),), daemon=True).start()

    def _pump(self, pipe: TextIO) -> None:
        for line in pipe:
            self.reads.put(json.loads(line))

    def next_read(self) -> dict[str, object]:
        try:
            return self.reads.get(timeout=DEADLINE)
        except queue.Empty:
            raise AssertionError("the child tail reported nothing") from None

    def close(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def _report_reads(log: Path, poll: bool, out: TextIO) -> None:
    """Print each read that brought lines or a change of problem."""
    tail = FileTail(str(log))
    waker = make_waker([str(log)], force_poll=poll)
    problem: object = ()  # no first problem equals it, so the first read is always reported
    while True:
        read = tail.read()
        if read.lines or read.problem != problem:
            problem = read.problem
            out.write(json.dumps({"lines": read.lines, "problem": read.problem}) + "\n")
            out.flush()
        if not read.pending:
            waker.wait(POLL_INTERVAL if poll else 10 * DEADLINE)  # with inotify, only an event may wake it
