"""Following one log file by its path: offsets, partial lines, truncation, rotation, deletion, re-creation.

The tail never blocks and never raises for a problem with the file: each `read()` looks at the path
again, reads what is new up to the end of the file, and says in `problem` what is wrong, if anything.
It is driven by a loop that calls `read()` after every wake-up *and* after every poll timeout, because
file events merge under load and never arrive at all on NFS/Lustre/overlay (see monitor/follow/wake.py).

How each change to the file is recognised (mtail's checklist, components.md §3 and §9):
- appends: the size grew; read from the offset to the size seen at the start of the read.
- truncation in place (`> out.log`, `os.truncate`, logrotate copytruncate): the size fell below the
  offset, *or* the bytes just before the offset are no longer the bytes read there. The second check
  catches a writer that opened its log without O_APPEND (a shell `>`): after the truncation it keeps
  writing at its old offset, so the file comes back as a run of NUL bytes followed by new lines and its
  size can pass the old offset, which a size check alone reads as an ordinary append. NUL bytes are
  dropped when read, and large NUL holes are skipped with SEEK_DATA.
- rotation (logrotate `create`: rename, then a new file), deletion and re-creation, a symlink pointed
  elsewhere: the path names another inode, or none. The open descriptor still reaches the old file, so
  it is read to its end first (nothing lost), then the new file is read from offset 0.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from monitor.follow.lines import LineSplitter

FINGERPRINT = 64
"""Bytes kept from just before the read offset; if the file no longer holds them, it was truncated."""


@dataclass(frozen=True, slots=True)
class TailRead:
    """What one `FileTail.read()` found."""

    lines: list[str]
    """Complete lines in order, decoded (invalid UTF-8 replaced), each capped by LineSplitter."""
    backfill: bool
    """These lines were already in the file when the tail started (read on attach), not live arrivals."""
    reset: bool
    """The file was truncated or replaced since the last read: these lines start new content."""
    problem: str | None
    """One line saying what is wrong right now (missing file, permission), else None."""
    size: int
    """Size of the file followed, 0 when there is none."""
    mtime: float | None
    """Its modification time (unix seconds), None when there is none."""
    pending: bool = False
    """More is ready to read now (a `max_bytes` slice, the end of the backfill, or the old file of a
    rotation was just finished): call `read()` again without waiting for a wake-up."""
    missing: bool = False
    """The problem is only that the file does not exist (yet): waiting, not failing."""


class FileTail:
    """One log file followed by path, from its first byte; owned by one thread."""

    def __init__(self, path: str, *, chunk: int = 1 << 20) -> None:
        self.path = path
        self._chunk = chunk
        self._splitter = LineSplitter()
        self._fd: int | None = None
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._st: os.stat_result | None = None  # latest stat of the file followed
        self._seen: tuple[int, int] = (-1, -1)  # (size, mtime_ns) when the truncation check last ran
        self._offset = 0
        self._tail = b""  # the file's bytes just before _offset (at most FINGERPRINT of them)
        self._backfill_end = 0  # bytes below this offset were there when the tail started
        self._existed_at_start: bool | None = None  # did the first look find the file?
        self._had_content = False  # a file was followed before: the next one is new content
        self._reset = False  # a reset to report with the next read
        self._missing = False  # the last open failed because there is no file

    def read(self, max_bytes: int | None = None) -> TailRead:
        """New complete lines since the last read, up to the end of the file (or `max_bytes` of it)."""
        lines: list[str] = []
        if self._fd is not None and self._replaced():
            backfill = self._offset < self._backfill_end
            if self._consume(lines, max_bytes, os.fstat(self._fd)):
                return self._result(lines, backfill, pending=True)
            self._retire_partial(lines)
            self.close()
            if lines:  # the old file's last lines must not be reported under the new file's reset
                return self._result(lines, backfill, pending=True)
        if self._fd is None:
            problem = self._open()
            if problem is not None:
                return self._result(lines, False, problem=problem)
        elif self._truncated():
            self._retire_partial(lines)
            self._restart()
            if lines:  # as above: the reset goes with the next read
                return self._result(lines, False, pending=True)
        assert self._st is not None
        reset, self._reset = self._reset, False
        backfill = self._offset < self._backfill_end
        more = self._consume(lines, max_bytes, self._st)
        return self._result(lines, backfill, reset=reset, pending=more)

    def flush_partial(self) -> str | None:
        """The held unterminated last line, for when its writer is gone and no newline will come."""
        return self._splitter.flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the file behind the path --------------------------------------------------------------

    def _open(self) -> str | None:
        """Open the file the path names now; a one-line problem if it cannot be followed."""
        self._st = None
        try:
            st = os.stat(self.path)
        except OSError as e:
            self._first_look(not isinstance(e, FileNotFoundError))
            self._missing = isinstance(e, FileNotFoundError)
            return _problem(self.path, e)
        self._missing = False
        self._first_look(True)
        if not stat.S_ISREG(st.st_mode):
            return _not_regular(self.path, st.st_mode)
        self._st = st  # a file we may not open still has a size and a time worth showing
        try:
            # O_NONBLOCK: if a FIFO replaced the file since the stat, opening it must not hang
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            return _problem(self.path, e)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            self._st = None
            return _not_regular(self.path, st.st_mode)
        self._fd, self._st = fd, st
        self._ident = (st.st_dev, st.st_ino)
        self._offset, self._tail, self._seen = 0, b"", (st.st_size, st.st_mtime_ns)
        self._backfill_end = st.st_size if self._existed_at_start and not self._had_content else 0
        self._reset = self._had_content
        self._had_content = True
        return None

    def _first_look(self, exists: bool) -> None:
        if self._existed_at_start is None:
            self._existed_at_start = exists

    def _replaced(self) -> bool:
        """The path names no file now, or another one (rotation, re-creation, a re-pointed symlink)."""
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            return True
        except OSError:
            return False  # the path cannot be looked at (a directory's permissions): keep the open file
        return (st.st_dev, st.st_ino) != self._ident

    def _truncated(self) -> bool:
        assert self._fd is not None
        st = self._st = os.fstat(self._fd)
        if st.st_size < self._offset:
            return True
        seen = (st.st_size, st.st_mtime_ns)
        if seen == self._seen or not self._tail:
            return False
        if os.pread(self._fd, len(self._tail), self._offset - len(self._tail)) != self._tail:
            return True
        self._seen = seen
        return False

    def _restart(self) -> None:
        """Read the same file again from its start: it now holds new content."""
        self._offset, self._tail, self._backfill_end = 0, b"", 0
        self._reset = True

    def _retire_partial(self, lines: list[str]) -> None:
        """The old content is over: its unterminated last line is a line of its own."""
        last = self._splitter.flush()
        if last is not None:
            lines.append(last)

    # -- reading -------------------------------------------------------------------------------

    def _consume(self, lines: list[str], max_bytes: int | None, st: os.stat_result) -> bool:
        """Read from the offset up to the size in `st` (taken before, so a truncation after it is seen
        by the next read's check); True if more is left to read now."""
        fd = self._fd
        assert fd is not None
        self._st = st
        limit = st.st_size
        if self._offset < self._backfill_end:
            limit = min(limit, self._backfill_end)  # a read holds backfill or live lines, never both
        stop = limit if max_bytes is None else min(limit, self._offset + max(max_bytes, 1))
        while self._offset < stop:
            raw = os.pread(fd, min(self._chunk, stop - self._offset), self._offset)
            if not raw:
                break
            self._offset += len(raw)
            self._tail = (self._tail + raw[-FINGERPRINT:])[-FINGERPRINT:]
            data = raw
            if b"\0" in raw:
                data = raw.replace(b"\0", b"")
                if not data:  # jump to the next data, past this slice if need be: a hole is not read
                    self._skip_hole(fd, limit)
            lines.extend(self._splitter.feed(data))
        self._seen = (st.st_size, st.st_mtime_ns)
        return self._offset < st.st_size

    def _skip_hole(self, fd: int, limit: int) -> None:
        """Jump over a NUL hole (a `>` writer's old offset after a truncation) without reading it."""
        try:
            data_at = os.lseek(fd, self._offset, os.SEEK_DATA)
        except OSError:  # no data after the offset, or the filesystem does not know holes
            return
        if data_at > self._offset:
            self._offset = min(data_at, limit)
            self._tail = b""

    def _result(self, lines: list[str], backfill: bool, *, reset: bool = False, problem: str | None = None,
                pending: bool = False) -> TailRead:
        st = self._st
        return TailRead(lines=lines, backfill=backfill and bool(lines), reset=reset, problem=problem,
                        size=st.st_size if st else 0, mtime=st.st_mtime if st else None, pending=pending,
                        missing=problem is not None and self._missing)


def _problem(path: str, e: OSError) -> str:
    if isinstance(e, PermissionError):
        return f"permission denied: {path}"
    if isinstance(e, FileNotFoundError):
        return f"waiting for {path} to appear"
    return f"cannot read {path}: {e.strerror or e}"


def _not_regular(path: str, mode: int) -> str:
    if stat.S_ISDIR(mode):
        return f"{path} is a directory, not a log file"
    return f"{path} is not a regular file (a FIFO, socket or device cannot be followed)"
