"""Delivering alerts: apprise URLs, a desktop notification, the terminal bell.

Delivery never runs on the caller's thread: each destination has its own queue and worker thread,
so a dead or slow receiver neither blocks the writer loop nor delays the other destinations.
Failures are retried with exponential backoff, logged, and never raised. apprise is imported only
when a URL is configured, in a worker (the import and its plugin scan cost about half a second).
URLs carry secrets (tokens, passwords, webhook paths, ntfy topics): they are shown only through
`redact()`, the libraries' request lines are not logged below warning, and every log handler scrubs them.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.snapshot import Alert

QUEUE_LIMIT = 100  # per destination: a receiver that is down for days must not grow memory
_HOST = re.compile(r"^(?:localhost|(?:[\w-]+\.)+[A-Za-z]{2,}|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\])(?::\d+)?$")
_LIBRARY_LOGGERS = ("apprise", "urllib3", "requests")
_log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """One attempt failed; worth retrying."""


class Unusable(Exception):
    """The destination can never work as configured (a URL apprise does not understand)."""


# ---- secrets in URLs -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _UrlParts:
    scheme: str
    host: str | None  # only when it is a real host name or address: kept in redacted URLs
    user: bool  # has user info (name, password)
    tail: bool  # has a path, query or fragment
    secrets: tuple[str, ...]


def _split(url: str) -> _UrlParts:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _UrlParts("", None, False, False, (url,))
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, _, host = netloc.rpartition("@")
    secrets = [p for p in re.split(r"[:/#]", userinfo + "/" + path) if p]
    secrets += [v for _, _, v in (kv.partition("=") for kv in query.split("&")) if v]
    real_host = host if _HOST.match(host) else None
    if real_host is None:
        secrets.append(host)  # slack://TOKEN/…, ntfy://topic, tgram://bot-token: the "host" is the secret
    return _UrlParts(scheme, real_host, bool(userinfo), bool(slash or query or "#" in netloc), tuple(secrets))


def redact(url: str) -> str:
    """`json://127.0.0.1:9099/***`, `ntfy://***`, `mailto://***@gmail.com`: the URL with its secrets out."""
    p = _split(url)
    if not p.scheme:
        return "***"
    return f"{p.scheme}://{'***@' if p.user else ''}{p.host or '***'}{'/***' if p.tail else ''}"


class _Scrub(logging.Filter):
    """Replaces the secret parts of the configured URLs in log records (and in any text)."""

    def __init__(self, urls: Sequence[str]) -> None:
        super().__init__()
        words = {w for u in urls for s in _split(u).secrets for w in (s, urllib.parse.quote(s, safe=""),
                                                                 urllib.parse.unquote(s))}
        # Very short parts ("a", "1") would mangle every message and hide almost nothing.
        self.words = sorted((w for w in words if len(w) >= 3), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for w in self.words:
            text = text.replace(w, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: logging reports it itself
        clean = self(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self(logging.Formatter().formatException(record.exc_info))
        return True


def _guard_logs(scrub: _Scrub) -> list[logging.Handler]:
    """Secrets never reach a log, at any level. The libraries' own request lines (urllib3 logs each
    request's path at debug, from a logger it makes only when the first request goes out) are not made
    below warning; and every handler of the root logger scrubs the URLs' secrets from whatever reaches it,
    from any logger, made now or later. Returns the handlers to release."""
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        if library.getEffectiveLevel() < logging.WARNING:
            library.setLevel(logging.WARNING)
    handlers = [h for h in logging.getLogger().handlers if scrub not in h.filters]
    for handler in handlers:
        handler.addFilter(scrub)
    return handlers


# ---- destinations --------------------------------------------------------------------------------

@dataclass
class _Target:
    name: str  # shown in logs: never a secret
    deliver: Callable[[Alert], None]
    attempts: int = 1
    prepare: Callable[[], None] = field(default=lambda: None)


class _AppriseTarget:
    def __init__(self, url: str) -> None:
        self.url = url
        self._apprise: Any = None  # apprise.Apprise, typed loosely: apprise is imported lazily

    def prepare(self) -> None:
        """Import apprise and parse the URL once, before the first alert, so a bad URL shows at start."""
        import apprise

        obj = apprise.Apprise()
        if not obj.add(self.url):
            raise Unusable("not a notification URL apprise understands (see https://github.com/caronc/apprise/wiki)")
        self._apprise = obj

    def deliver(self, alert: Alert) -> None:
        if self._apprise is None:
            self.prepare()
        if not self._apprise.notify(title=alert.title, body=alert.body, notify_type=alert.level):
            raise DeliveryError("not delivered (apprise logged why)")


def _desktop(env: Mapping[str, str], log: logging.Logger) -> Callable[[Alert], None] | None:
    """`notify-send`, when a session bus exists; apprise's dbus:// needs dbus-python and a GLib loop."""
    exe = shutil.which("notify-send", path=env.get("PATH"))
    if not env.get("DBUS_SESSION_BUS_ADDRESS") or exe is None:
        log.debug("desktop notifications off: %s", "no notify-send on PATH" if exe is None else "no session bus")
        return None

    def send(alert: Alert) -> None:
        urgency = "critical" if alert.level == "failure" else "normal"  # "low" is hidden by some desktops
        argv = [exe, "-a", "trainwatch", "-u", urgency, "--", alert.title, alert.body]
        r = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=10, check=False)
        if r.returncode != 0:
            raise DeliveryError(f"notify-send exited {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1]}")

    return send


class _Channel:
    """One destination: its own bounded queue and worker thread, retries with exponential backoff."""

    def __init__(self, target: _Target, *, backoff_s: float, log: logging.Logger, scrub: _Scrub) -> None:
        self.target = target
        self.backoff_s = backoff_s
        self.log = log
        self.scrub = scrub
        self.unusable = False
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"trainwatch-notify {target.name}", daemon=True)
        self._thread.start()

    def put(self, alert: Alert) -> None:
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.log.warning("%s: %d alerts already waiting; dropping %r", self.target.name, QUEUE_LIMIT, alert.title)

    def close(self, deadline: float) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()  # whatever is still retrying gives up at its next wait

    def _run(self) -> None:
        try:
            self.target.prepare()
        except Unusable as e:
            self._unusable(e)
        except Exception as e:  # e.g. a broken apprise install: report, and try again per alert
            self.log.error("%s: %s", self.target.name, self.scrub(f"{type(e).__name__}: {e}"))
        while (alert := self._queue.get()) is not None:
            if not self.unusable:
                self._deliver(alert)

    def _unusable(self, e: Exception) -> None:
        self.unusable = True
        self.log.error("%s: %s; nothing will be sent there", self.target.name, self.scrub(str(e)))

    def _deliver(self, alert: Alert) -> None:
        t = self.target
        for attempt in range(1, t.attempts + 1):
            try:
                t.deliver(alert)
                self.log.debug("%s: delivered %r", t.name, alert.title)
                return
            except Unusable as e:
                self._unusable(e)
                return
            except Exception as e:  # a destination's failure must never reach the daemon
                why = self.scrub(f"{type(e).__name__}: {e}" if not isinstance(e, DeliveryError) else str(e))
                if attempt == t.attempts or self._stop.is_set():
                    self.log.error("%s: giving up on %r after %d attempts: %s", t.name, alert.title, attempt, why)
                    return
                delay = self.backoff_s * 2 ** (attempt - 1)
                self.log.warning("%s: %r not delivered (%s); retrying in %gs (attempt %d of %d)", t.name,
                                 alert.title, why, delay, attempt, t.attempts)
                if self._stop.wait(delay):
                    self.log.error("%s: shutting down; %r not delivered", t.name, alert.title)
                    return


class Notifier:
    """Sends alerts to every destination, off the caller's thread; `send` never blocks or raises.

    `attempts` is per alert and destination, the backoff doubling from `backoff_s` (by default 2, 4,
    8, 16, 32 s: a minute of outage is bridged). `bell` (the TUI's) is called from a worker thread,
    so it must be thread-safe. `env` is read for the desktop session bus and PATH (a test seam; the
    default is the process environment).
    """

    def __init__(self, urls: Sequence[str], *, desktop: bool = True, bell: Callable[[], None] | None = None,
                 log: logging.Logger = _log, attempts: int = 6, backoff_s: float = 2.0,
                 env: Mapping[str, str] | None = None) -> None:
        self._scrub = _Scrub(urls)
        targets = []
        for url in dict.fromkeys(urls):  # the same URL twice (flag and config file) is one destination
            t = _AppriseTarget(url)
            targets.append(_Target(redact(url), t.deliver, attempts, t.prepare))
        send = _desktop(os.environ if env is None else env, log) if desktop else None
        if send is not None:
            targets.append(_Target("desktop", send))
        if bell is not None:
            ring = bell
            targets.append(_Target("bell", lambda _alert: ring()))
        self._guarded = _guard_logs(self._scrub) if urls else []
        self._channels = [_Channel(t, backoff_s=backoff_s, log=log, scrub=self._scrub) for t in targets]

    @property
    def destinations(self) -> list[str]:
        return [c.target.name for c in self._channels]

    def send(self, alert: Alert) -> None:
        for c in self._channels:
            c.put(alert)

    def close(self, timeout: float = 2.0) -> None:
        """Lets queued alerts go out for up to `timeout` seconds in all, then abandons retries."""
        deadline = time.monotonic() + timeout
        for c in self._channels:
            c.close(deadline)
        for handler in self._guarded:
            handler.removeFilter(self._scrub)
