"""The API's event stream (`GET /api/v1/events`, Server-Sent Events): one message per published change.

The writer calls `EventHub.publish` after each publish (Monitor.subscribe); that only swaps a reference
and wakes the waiting clients, so the writer pays the same for 0 or 32 clients. Each client's own
server thread then compares the tuple it last sent with the latest by identity (the writer keeps the
same Snapshot object for a run that did not change), and sends the changed runs' summaries. A run's
summary is encoded once, whatever the number of clients. A client waits at least `min_gap_s` between
two messages (changes in between are merged into the next), the number of clients is bounded, and a
comment every `keepalive_s` finds clients that went away.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from exporters import api
from monitor.snapshot import Snapshot

MAX_CLIENTS = 32
MIN_GAP_S = 0.25
KEEPALIVE_S = 15.0
RETRY_MS = 2000  # how long a browser waits before it reconnects on its own


class EventHub:
    def __init__(self, *, max_clients: int = MAX_CLIENTS, min_gap_s: float = MIN_GAP_S,
                 keepalive_s: float = KEEPALIVE_S) -> None:
        self._cond = threading.Condition()
        self._snaps: tuple[Snapshot, ...] = ()
        self._version = 0
        self._closed = threading.Event()
        self._slots = threading.BoundedSemaphore(max_clients)
        self._min_gap_s = min_gap_s
        self._keepalive_s = keepalive_s
        self._lock = threading.Lock()
        self._encoded: dict[int, tuple[Snapshot, bytes]] = {}  # id(snapshot) → (it, its summary's JSON)

    def publish(self, snaps: Sequence[Snapshot]) -> None:
        """The writer's listener: O(1), never blocks on a client."""
        with self._cond:
            self._snaps = tuple(snaps)
            self._version += 1
            self._cond.notify_all()

    def close(self) -> None:
        """End every stream (the server is shutting down)."""
        self._closed.set()
        with self._cond:
            self._cond.notify_all()

    def stream(self) -> Iterator[bytes] | None:
        """A client's messages, or None when `max_clients` are already connected."""
        if not self._slots.acquire(blocking=False):
            return None
        return self._messages()

    def _messages(self) -> Iterator[bytes]:
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            sent: tuple[Snapshot, ...] | None = None
            seen = -1
            while not self._closed.is_set():
                with self._cond:
                    if self._version == seen and not self._closed.is_set():
                        self._cond.wait(self._keepalive_s)
                    version, snaps = self._version, self._snaps
                if self._closed.is_set():
                    return
                if version == seen:
                    yield b": keepalive\n\n"
                    continue
                seen = version
                message = self.message(sent, snaps, version)
                if message is not None:
                    yield message
                    sent = snaps
                    self._closed.wait(self._min_gap_s)
        finally:
            self._slots.release()

    def message(self, sent: tuple[Snapshot, ...] | None, snaps: tuple[Snapshot, ...], version: int) -> bytes | None:
        """`event: runs` with the runs that changed since `sent` (all of them at first) and every run's id
        in order (a run missing from `ids` is gone); None when nothing changed."""
        before = {id(s) for s in sent} if sent is not None else set()
        changed = [s for s in snaps if id(s) not in before]
        ids = [api.run_id(s) for s in snaps]
        if sent is not None and not changed and ids == [api.run_id(s) for s in sent]:
            return None
        runs = b",".join(self._summary_json(s, snaps) for s in changed)
        data = b'{"ids":' + api.dumps(ids) + b',"runs":[' + runs + b"]}"
        return b"id: %d\nevent: runs\ndata: %s\n\n" % (version, data)

    def _summary_json(self, s: Snapshot, current: tuple[Snapshot, ...]) -> bytes:
        with self._lock:
            hit = self._encoded.get(id(s))
            if hit is not None and hit[0] is s:
                return hit[1]
        data = api.dumps(api.summary(s))
        with self._lock:
            if len(self._encoded) > 2 * len(current) + 16:  # forget runs' older snapshots
                live = {id(c) for c in current}
                self._encoded = {k: v for k, v in self._encoded.items() if k in live}
            self._encoded[id(s)] = (s, data)
        return data
