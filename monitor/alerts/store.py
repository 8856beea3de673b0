"""What was already notified, kept across daemon restarts: one small JSON file per log.

The files live in the XDG state directory (`$XDG_STATE_HOME/trainwatch/`, by default
`~/.local/state/trainwatch/`). A file is keyed by the log's path, and holds the identity of the run
that was in that path: the file's device and inode and a hash of its first bytes. A new run written to
the same path (the file deleted and re-created, or truncated and rewritten) no longer matches, so its
alerts start afresh instead of being silenced by the previous run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from monitor.alerts.rules import RunMemory
from monitor.defaults import xdg_dir

log = logging.getLogger(__name__)
T = TypeVar("T")

SCHEMA = "trainwatch.alerts/1"
PREFIX_BYTES = 64 * 1024
"""Enough of the log that two runs of the same config differ in it: past the config echo, into the
per-iteration timings, which never repeat exactly."""


@dataclass(frozen=True, slots=True)
class RunIdentity:
    path: str  # absolute
    device: int
    inode: int
    prefix_len: int
    prefix_sha256: str


def identify(path: str, prefix_bytes: int = PREFIX_BYTES) -> RunIdentity | None:
    """The identity of the run now in `path`; None when there is no readable file."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            head = fh.read(prefix_bytes)
    except OSError:
        return None
    return RunIdentity(os.path.abspath(path), st.st_dev, st.st_ino, len(head), hashlib.sha256(head).hexdigest())


def same_run(stored: RunIdentity, path: str) -> bool:
    """Whether `path` still holds the run `stored` describes (it may have grown since)."""
    now = identify(path, stored.prefix_len)
    return now is not None and (now.device, now.inode, now.prefix_len, now.prefix_sha256) == (
        stored.device, stored.inode, stored.prefix_len, stored.prefix_sha256)


class AlertStore:
    """Loads and saves `RunMemory.durable()` per log; `directory` defaults to the XDG state directory."""

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or xdg_dir("state")

    def file_for(self, path: str) -> str:
        digest = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
        return os.path.join(self.directory, f"alerts-{digest}.json")

    def load(self, path: str) -> RunMemory | None:
        """What was saved for the run now in `path`; None when nothing was, or for another run.

        A file that is not what `save` writes (hand-edited, truncated, another version's) is set aside as
        `….bad` with a warning: it must never stop notifications, and it is kept for a look.
        """
        name = self.file_for(path)
        try:
            with open(name, "rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("ignoring unreadable alert state %s: %s", name, e.strerror or e)
            return None
        try:
            identity, memory = _parse(raw)
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            self._set_aside(name, e)
            return None
        return memory if same_run(identity, path) else None

    def _set_aside(self, name: str, why: Exception) -> None:
        reason = f"{type(why).__name__}: {why}"[:200]
        try:
            os.replace(name, name + ".bad")
            log.warning("alert state %s is malformed (%s): set aside as %s.bad; notifications go on", name,
                        reason, os.path.basename(name))
        except OSError as e:
            log.warning("alert state %s is malformed (%s) and cannot be set aside (%s); it is ignored", name,
                        reason, e.strerror or e)

    def save(self, path: str, memory: RunMemory) -> bool:
        """Atomically replaces the file (a crash mid-write leaves the old one); False when there is no log
        file (no run to remember). Raises OSError."""
        identity = identify(path)
        if identity is None:
            return False
        durable = memory.durable()
        data = {"schema": SCHEMA, "identity": asdict(identity),
                "memory": {"fired": sorted(durable.fired), "active": sorted(durable.active),
                           "finish_announced": durable.finish_announced}}
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".alerts-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1)
            os.replace(tmp, self.file_for(path))
        except BaseException:
            os.unlink(tmp)
            raise
        return True


MAX_FILE_BYTES = 1 << 20
"""A state file holds a few dozen keys; anything bigger is not one."""


def _parse(raw: bytes) -> tuple[RunIdentity, RunMemory]:
    """The file's identity and memory, every field checked for its type (ValueError/KeyError/TypeError)."""
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(f"over {MAX_FILE_BYTES} bytes")
    data = json.loads(raw.decode("utf-8"))
    ident, mem = data["identity"], data["memory"]
    identity = RunIdentity(_typed(ident["path"], str), _typed(ident["device"], int), _typed(ident["inode"], int),
                           _typed(ident["prefix_len"], int), _typed(ident["prefix_sha256"], str))
    announced = mem["finish_announced"]
    if announced is not None and not (isinstance(announced, (int, float)) and not isinstance(announced, bool)
                                      and math.isfinite(announced)):
        raise TypeError(f"finish_announced is {announced!r}")
    fired = frozenset(_typed(k, str) for k in _typed(mem["fired"], list))
    active = frozenset(_typed(k, str) for k in _typed(mem["active"], list))
    return identity, RunMemory(fired, active, None if announced is None else float(announced))


def _typed(value: Any, kind: type[T]) -> T:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise TypeError(f"{value!r:.40} is not {kind.__name__}")
    return value
