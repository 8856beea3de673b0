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
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from monitor.alerts.rules import RunMemory

log = logging.getLogger(__name__)

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


def state_dir(env: Mapping[str, str] = os.environ) -> str:
    base = env.get("XDG_STATE_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is invalid and must be ignored
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "trainwatch")


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
        self.directory = directory or state_dir()

    def file_for(self, path: str) -> str:
        digest = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
        return os.path.join(self.directory, f"alerts-{digest}.json")

    def load(self, path: str) -> RunMemory | None:
        """What was saved for the run now in `path`; None when nothing was, or for another run."""
        name = self.file_for(path)
        try:
            with open(name, encoding="utf-8") as fh:
                data = json.load(fh)
            identity = RunIdentity(**data["identity"])
            mem = data["memory"]
            memory = RunMemory(frozenset(mem["fired"]), frozenset(mem["active"]), mem["finish_announced"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("ignoring unreadable alert state %s: %s", name, e)
            return None
        return memory if same_run(identity, path) else None

    def save(self, path: str, memory: RunMemory) -> None:
        """Atomically replaces the file (a crash mid-write leaves the old one). Raises OSError."""
        identity = identify(path)
        if identity is None:
            return  # no file, no run to remember
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
