"""A remote `trainwatch serve` as a source of snapshots: the TUI on another machine's runs.

A background thread holds the server's event stream open (`GET /api/v1/events`). Each message names
the runs that changed; for a run whose log moved on (more lines, another state) the thread fetches
its history since the last point it holds (`GET /api/v1/runs/{id}?since=…`) and merges it, so a
long run costs one full download and then small ones. The snapshots are rebuilt from the JSON
(exporters.api.snapshot_of) and swapped in as one tuple, which `snapshots()` returns to any thread.
A lost connection keeps the last view, marked with why and when it retries (with backoff), and the
first message after a reconnect brings every run again.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlsplit

from exporters import api
from monitor.errors import TrainwatchError
from monitor.model.build import build_snapshot
from monitor.model.history import Thinned
from monitor.model.state import RunState
from monitor.snapshot import IterPoint, Snapshot

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 45.0  # three of the server's keep-alive comments: silence this long is a dead link
BACKOFF_S = (1.0, 30.0)  # first and longest wait before reconnecting
MAX_LINE = 16 << 20
HISTORY_CAPACITY = 4096  # as the writer keeps it
DEFAULT_PORT = 10464  # serve's (exporters.prometheus.DEFAULT_PORT, not imported: no prometheus_client here)


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    prefix: str  # a path before /api/v1 (a reverse proxy's), without the trailing slash

    @property
    def label(self) -> str:
        return self.host if self.port == DEFAULT_PORT else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.prefix}"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def parse_url(text: str) -> Endpoint:
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        raise TrainwatchError(f"{text}: not a URL ({e})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrainwatchError(f"{text}: not an http:// or https:// URL of a trainwatch serve")
    if parts.username or parts.query or parts.fragment:
        raise TrainwatchError(f"{text}: give credentials with --basic-auth-file, and no query")
    return Endpoint(parts.scheme, parts.hostname, port or DEFAULT_PORT, parts.path.rstrip("/"))


@dataclass
class _Run:
    snap: Snapshot
    history: Thinned[IterPoint]


class RemoteRuns:
    """The runs of one remote serve, kept current on a daemon thread; `snapshots()` from any thread."""

    def __init__(self, url: str, *, auth: tuple[str, str] | None = None, cafile: str | None = None,
                 clock: Callable[[], float] = time.time, backoff: tuple[float, float] = BACKOFF_S,
                 read_timeout: float = READ_TIMEOUT_S) -> None:
        self.endpoint = parse_url(url)
        self._headers = {"Accept": "text/event-stream, application/json", "User-Agent": "trainwatch"}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._context = ssl.create_default_context(cafile=cafile) if self.endpoint.scheme == "https" else None
        self._clock = clock
        self._backoff = backoff
        self._read_timeout = read_timeout
        self._runs: dict[str, _Run] = {}
        self._shown: tuple[Snapshot, ...] = ()
        self._problem: str | None = "connecting…"
        self._retry_at: float | None = None
        self._lost_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: http.client.HTTPConnection | None = None  # the open event stream, closed to stop

    # ---- readers ---------------------------------------------------------------------------------
    def snapshots(self) -> tuple[Snapshot, ...]:
        """The runs as last heard of; while the link is down each carries the reason, and with no run
        known yet a placeholder says what is going on."""
        shown, problem = self._shown, self._problem
        if problem is None:
            return shown
        now = self._clock()
        text = problem
        if self._lost_at is not None and shown:
            text += f"; last data {_ago(now - self._lost_at)} ago"
        if self._retry_at is not None:
            text += f"; retrying in {max(0, round(self._retry_at - now))}s"
        if not shown:
            empty = RunState(format="unknown")
            return (replace(build_snapshot(empty, run=self.endpoint.label, log=self.endpoint.url, now=now),
                            problem=text),)
        return tuple(replace(s, problem=text) for s in shown)

    # ---- the thread ------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"trainwatch-remote-{self.endpoint.label}",
                                        daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None and stream.sock is not None:
            with contextlib.suppress(OSError):
                stream.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread out of its read
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                for name, data in self._events():
                    if name == "open":
                        delay = self._backoff[0]
                        self._problem = self._retry_at = self._lost_at = None
                    elif name == "runs":
                        self._apply(json.loads(data))
                raise ConnectionError("the server closed the event stream")
            except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, TrainwatchError) as e:
                if self._stop.is_set():
                    return
                if self._problem is None:
                    self._lost_at = self._clock()
                    log.warning("%s: connection lost: %s", self.endpoint.url, _reason(e))
                verb = "connection lost" if self._lost_at is not None else "cannot connect"
                self._problem = f"{verb} to {self.endpoint.url}: {_reason(e)}"
                self._retry_at = self._clock() + delay
                self._stop.wait(delay)
                delay = min(delay * 2, self._backoff[1])

    def _connection(self) -> http.client.HTTPConnection:
        e = self.endpoint
        if self._context is not None:
            return http.client.HTTPSConnection(e.host, e.port, timeout=self._read_timeout, context=self._context)
        return http.client.HTTPConnection(e.host, e.port, timeout=self._read_timeout)

    def _events(self) -> Iterator[tuple[str, str]]:
        """("open", "") once the stream is accepted, then (event, data) per message."""
        conn = self._stream = self._connection()
        try:
            conn.request("GET", self.endpoint.prefix + "/api/v1/events", headers=self._headers)
            resp = conn.getresponse()
            _check(resp)
            yield "open", ""
            yield from sse_events(lambda: resp.readline(MAX_LINE), self._stop)
        finally:
            self._stream = None
            conn.close()

    def _get(self, path: str) -> dict[str, Any] | None:
        conn = self._connection()
        try:
            conn.request("GET", self.endpoint.prefix + path, headers=self._headers)
            resp = conn.getresponse()
            if resp.status == 404:
                return None
            _check(resp)
            doc = json.loads(resp.read())
        finally:
            conn.close()
        if not isinstance(doc, dict):
            raise api.ShapeError("not a JSON object")
        return doc

    def _apply(self, message: dict[str, Any]) -> None:
        """One `runs` event: fetch what moved, rebuild those runs, swap in the new tuple."""
        ids = [str(i) for i in message["ids"]]
        for summary in message["runs"]:
            rid = str(summary["id"])
            old = self._runs.get(rid)
            snap = api.snapshot_of(summary)
            moved = old is None or (snap.lines, snap.state) != (old.snap.lines, old.snap.state)
            if moved:
                fetched = self._fetch(rid, old)
                if fetched is None:
                    continue
                self._runs[rid] = fetched
            else:
                assert old is not None
                old.snap = replace(snap, history=old.snap.history, evals=old.snap.evals, notes=old.snap.notes)
        self._runs = {rid: r for rid, r in self._runs.items() if rid in ids}
        self._shown = tuple(self._label(self._runs[rid].snap, rid) for rid in ids if rid in self._runs)

    def _fetch(self, rid: str, old: _Run | None) -> _Run | None:
        path = f"/api/v1/runs/{quote(rid, safe='')}"
        last = old.history.last() if old is not None else None
        if last is not None:
            path += f"?since={last.iter}&segment={last.segment}"
        doc = self._get(path)
        if doc is None:
            return None
        snap = api.snapshot_of(doc)
        if last is not None and _restarted(snap, last):
            return self._fetch(rid, None)
        history = old.history if old is not None and last is not None else Thinned(capacity=HISTORY_CAPACITY)
        for p in snap.history:
            history.append(p)
        return _Run(replace(snap, history=tuple(history.points)), history)

    def _label(self, s: Snapshot, rid: str) -> Snapshot:
        """Runs of several machines side by side: the name says where, the log key is unique."""
        return replace(s, run=f"{s.run}@{self.endpoint.label}", log=f"{self.endpoint.url}#{rid}")


def _restarted(fetched: Snapshot, last: IterPoint) -> bool:
    """The log now holds another run (truncated or replaced): nothing came after our last point, and
    the run is now short of it. A resumed run is not one: its repeated iterations are a later segment."""
    return not fetched.history and (fetched.iter is None or fetched.iter < last.iter)


def sse_events(readline: Callable[[], bytes], stop: threading.Event) -> Iterator[tuple[str, str]]:
    """Server-Sent Events from a line reader: (event name, data) per message; comments skipped."""
    name, data = "message", list[str]()
    while not stop.is_set():
        raw = readline()
        if not raw:
            return
        if not raw.endswith(b"\n"):
            raise ConnectionError("event stream cut mid-line")
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if not line:
            if data:
                yield name, "\n".join(data)
            name, data = "message", list[str]()
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)


def _check(resp: http.client.HTTPResponse) -> None:
    if resp.status == 401:
        raise TrainwatchError("401: the server wants credentials (--basic-auth-file USER:PASSWORD)")
    if resp.status != 200:
        raise TrainwatchError(f"HTTP {resp.status} {resp.reason}")


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"TLS: {e.verify_message} (--tls-ca CA.pem for a private CA)"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _ago(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s}s" if s < 60 else f"{s // 60}m {s % 60:02d}s" if s < 3600 else f"{s // 3600}h {s % 3600 // 60:02d}m"
