"""Waking the follow loop when a log changes: inotify through watchdog where it works, a timeout always.

The only module that imports watchdog. A wake-up is a hint, never the source of truth: the loop calls
`wait(poll_interval)` and then reads every file whether it was woken or timed out, so a filesystem that
sends no events (NFS, Lustre, some overlay and FUSE mounts) still works, one poll interval late.
Events for one file merge under load (20,000 appends gave 468 callbacks), which is why the reader
always reads to the end of the file rather than counting events.

One observer watches the parent *directories* of all the files (non-recursively): a directory watch
sees a file created after the tail started, a rename onto its name and a re-creation after deletion,
which a watch on the file's inode would miss. For a symlink, the directory of its target is watched
too, and the target is looked up again on every wait, so re-pointing the link moves the watch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from watchdog.events import (
    DirDeletedEvent,
    FileAttribEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from monitor.units import printable

log = logging.getLogger(__name__)

# What changes a log's content, whether it can be read, or which file its name points at (a chmod
# that lifts "permission denied" comes as FileAttribEvent), and the loss of a watched directory (its
# watch dies with it, and a directory made again under the same name may even reuse its inode number).
# Opens and closes are left out: the tail's own reads would otherwise wake it.
_EVENTS: list[type[FileSystemEvent]] = [
    FileModifiedEvent, FileAttribEvent, FileCreatedEvent, FileMovedEvent, FileDeletedEvent, DirDeletedEvent,
]


class Waker:
    """Blocks the follow loop until a watched file changes or a timeout passes."""

    def __init__(self, observer: BaseObserver | None, mode: str) -> None:
        self.mode = mode
        self._observer = observer
        self._changed = threading.Event()
        self._closed = False
        self._paths: dict[str, frozenset[str]] = {}  # path as added → the absolute names watched for it
        self._names: frozenset[str] = frozenset()  # read by the observer thread: replaced, never mutated
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}  # dir → (watch, dir identity)
        self._dirs: frozenset[str] = frozenset()  # the keys of _watches, for the observer thread
        self._lost_watch = False  # a watched directory was deleted: watch everything afresh
        self._handler = _Handler(self)

    def add(self, path: str) -> None:
        self._paths[path] = _names_for(path)
        self._sync()

    def remove(self, path: str) -> None:
        self._paths.pop(path, None)
        self._sync()

    def wait(self, timeout: float) -> bool:
        """Block until a watched file changes (True) or `timeout` seconds pass (False)."""
        if self._observer is not None and not self._closed:
            self._refresh()
        woken = self._changed.wait(timeout)
        self._changed.clear()  # before the caller reads, so a change during its read wakes the next wait
        return woken and not self._closed

    def close(self) -> None:
        """Stop watching and release a blocked `wait()`."""
        self._closed = True
        self._changed.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        self._watches.clear()

    def _notify(self, event: FileSystemEvent) -> None:
        """Called in the observer's thread."""
        src = _text(event.src_path)
        if event.is_directory:
            if src in self._dirs:
                self._lost_watch = True
                self._changed.set()
        elif src in self._names or _text(event.dest_path) in self._names:
            self._changed.set()

    def _refresh(self) -> None:
        """Follow re-pointed symlinks and re-created directories (a deleted directory loses its watch)."""
        if self._lost_watch:
            self._lost_watch = False
            for watch, _ in self._watches.values():
                self._unschedule(watch)
            self._watches.clear()
        names = {path: _names_for(path) for path in self._paths}
        unwatched = {os.path.dirname(n) for n in self._names} - self._watches.keys()
        if names != self._paths or unwatched or any(_dir_ident(d) != i for d, (_, i) in self._watches.items()):
            self._paths = names
            self._sync()

    def _sync(self) -> None:
        self._names = frozenset(n for names in self._paths.values() for n in names)
        if self._observer is None:
            return
        wanted = {os.path.dirname(n) for n in self._names}
        for d, (watch, known) in list(self._watches.items()):
            if d not in wanted or _dir_ident(d) != known:
                del self._watches[d]
                self._unschedule(watch)
        for d in wanted - self._watches.keys():
            ident = _dir_ident(d)
            if ident is None:
                continue  # not there yet: the next wait looks again, and polling covers the meantime
            try:
                watch = self._observer.schedule(self._handler, d, recursive=False, event_filter=_EVENTS)
            except OSError as e:  # inotify watch limit, a vanished directory: polling covers it
                log.warning("cannot watch %s for changes (%s); polling it", printable(d), e)
                continue
            self._watches[d] = (watch, ident)
            self._changed.set()  # the file may have changed before the watch existed: look once now
        self._dirs = frozenset(self._watches)

    def _unschedule(self, watch: ObservedWatch) -> None:
        assert self._observer is not None
        try:
            self._observer.unschedule(watch)
        except (KeyError, OSError) as e:  # its directory is gone and watchdog dropped it already
            log.debug("unschedule %s: %s", printable(str(watch.path)), e)


class _Handler(FileSystemEventHandler):
    def __init__(self, waker: Waker) -> None:
        self._waker = waker

    def dispatch(self, event: FileSystemEvent) -> None:
        self._waker._notify(event)


def make_waker(paths: Iterable[str] = (), *, force_poll: bool = False) -> Waker:
    """The wake-up for `paths`: inotify (one observer) where it can start, a plain timeout otherwise."""
    observer: BaseObserver | None = None
    mode = "polling"
    if not force_poll:
        try:
            observer = Observer()
            observer.start()
        except OSError as e:  # e.g. the per-user limit of inotify instances (often 128) is reached
            log.warning("file events unavailable (%s); polling every read", e)
            observer = None
        else:
            mode = _mode_name(observer)
    waker = Waker(observer, mode)
    for path in paths:
        waker.add(path)
    return waker


def _mode_name(observer: BaseObserver) -> str:
    name = type(observer).__name__.removesuffix("Observer").lower()
    return name or "native"


def _names_for(path: str) -> frozenset[str]:
    """The absolute names whose events concern `path`: itself and, for a symlink, what it points at."""
    absolute = os.path.abspath(path)
    return frozenset({absolute, os.path.realpath(absolute)})


def _dir_ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _text(path: bytes | str) -> str:
    return os.fsdecode(path) if path else ""
