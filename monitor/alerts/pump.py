"""From the writer loop to the notifier: the alert rules run on each publish, what fired is saved."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from monitor.alerts.rules import AlertConfig, AlertMemory, RunMemory, evaluate
from monitor.alerts.store import AlertStore
from monitor.snapshot import Alert, Snapshot

_log = logging.getLogger(__name__)

OWED = frozenset({"finished", "crashed"})
"""What a restarted daemon sends for the time it was down: how each run ended, not its history."""


class Sender(Protocol):
    """Where alerts go (exporters.notify.Notifier): `send` must not block the writer thread."""

    def send(self, alert: Alert) -> None: ...


class AlertPump:
    """Runs the alert rules on each publish (`Monitor.subscribe(pump.on_snapshots)`), persists what
    fired, and hands new alerts to the notifier and to the TUI's `toast`.

    Called in the writer thread, so it stays cheap: the rules are pure, the state file is written only
    when what fired changes, delivery is a queue put. What a file held before the daemon came is
    history, evaluated quietly: a log's first publish (at start, or added by a config reload), every
    publish while `busy()` (the Monitor's: a tail has more to read right now, a backlog read in
    slices), and the one right after, which holds the last slice. A run an earlier daemon followed
    (its state file is there) is owed what ended while none did: once the backlog is read, a finish or
    a crash that state does not record is sent. `toast` must not block (post a message to the UI thread).
    """

    def __init__(self, notifier: Sender | None, cfg: AlertConfig, *, busy: Callable[[], bool],
                 store: AlertStore | None = None, toast: Callable[[Alert], None] | None = None,
                 log: logging.Logger = _log) -> None:
        self.notifier = notifier
        self.cfg = cfg
        self.busy = busy
        self.store = store or AlertStore()
        self.toast = toast
        self.log = log
        self.memory = AlertMemory()
        self._backlog = False  # the last publish came while a backlog was still being read
        self._lines: dict[str, int] = {}  # lines read per log at the last publish
        self._save_failed = False
        self._saved: set[str] = set()  # runs whose state file this pump has written
        self._owed: dict[str, RunMemory] = {}  # runs an earlier daemon followed: what it had sent
        self._failed: dict[str, str] = {}  # runs whose rules raised, and the error (logged once)

    def on_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        busy = self.busy()
        backlog, self._backlog = self._backlog or busy, busy
        memory, alerts = self.memory, []
        now = max((s.taken_at for s in snapshots), default=0.0)
        for s in snapshots:
            try:
                memory, new = self._evaluate(memory, s, now, backlog)
            except Exception as e:  # this run's boundary: the other runs are still evaluated and notified
                if self._failed.get(s.key) != str(e):
                    self._failed[s.key] = str(e)
                    self.log.error("%s: alert rules failed: %s: %s (the other runs go on)", s.run, type(e).__name__,
                                   e, exc_info=self.log.isEnabledFor(logging.DEBUG))
                continue
            self._failed.pop(s.key, None)
            alerts += new
        # Runs no longer followed (dropped when finished, or by a reload) are forgotten here; their
        # saved state brings them back if they are followed again.
        self._lines = {s.key: s.lines for s in snapshots}
        self.memory = AlertMemory({s.key: memory.run(s.key) for s in snapshots})
        for alert in alerts:
            self.log.info("alert: %s", alert.title)
            if self.notifier is not None:
                self.notifier.send(alert)
            if self.toast is not None:
                try:
                    self.toast(alert)
                except Exception:  # a view's bug must not stop the notifications
                    self.log.exception("alert toast failed")

    def _evaluate(self, memory: AlertMemory, s: Snapshot, now: float,
                  backlog: bool) -> tuple[AlertMemory, list[Alert]]:
        key = s.key
        seen = self._lines.get(key)
        if seen is None:  # first sight: what an earlier daemon already sent for this run
            stored = self.store.load(key)
            if stored is not None:  # that daemon followed this run: what happened while none did is owed
                self._owed[key] = stored
            memory = memory.with_run(key, stored or RunMemory())
        elif s.lines < seen and not backlog:  # the follower started over: a new run in the same path
            memory = memory.with_run(key, RunMemory())  # (in a backlog: a big log's preview giving way)
            self._owed.pop(key, None)
        quiet = backlog or seen is None
        loaded = memory.run(key).durable()
        memory, new = evaluate(memory, [s], now, self.cfg, quiet=quiet)
        if not quiet and key in self._owed:
            new += owed(self._owed.pop(key), s, now, self.cfg)
        if memory.run(key).durable() != loaded or key not in self._saved:
            self._save(key, memory.run(key))  # the first time too: a restart then knows this run was followed
        return memory, new

    def _save(self, log_path: str, memory: RunMemory) -> None:
        try:
            if self.store.save(log_path, memory):
                self._saved.add(log_path)
        except OSError as e:
            if not self._save_failed:  # once: the alerts still go out, only a restart may repeat them
                self.log.warning("cannot save alert state in %s (%s): a restart may repeat alerts",
                                 self.store.directory, e.strerror or e)
            self._save_failed = True


def owed(sent: RunMemory, s: Snapshot, now: float, cfg: AlertConfig) -> list[Alert]:
    """The finish or crash that `s` shows and an earlier daemon, which had sent `sent`, did not report."""
    _, alerts = evaluate(AlertMemory({s.key: sent}), [s], now, cfg, quiet=False)
    return [a for a in alerts if a.kind in OWED]
