"""From the writer loop to the notifier: the alert rules run on each publish, what fired is saved."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from monitor.alerts.rules import AlertConfig, AlertMemory, RunMemory, evaluate
from monitor.alerts.store import AlertStore
from monitor.snapshot import Alert, Snapshot

_log = logging.getLogger(__name__)


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
    slices), and the one right after, which holds the last slice. `toast` must not block (post a
    message to the UI thread).
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

    def on_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        busy = self.busy()
        backlog, self._backlog = self._backlog or busy, busy
        memory, alerts = self.memory, []
        now = max((s.taken_at for s in snapshots), default=0.0)
        for s in snapshots:
            seen = self._lines.get(s.log)
            if seen is None:  # first sight: what an earlier daemon already sent for this run
                memory = memory.with_run(s.log, self.store.load(s.log) or RunMemory())
            elif s.lines < seen and not backlog:  # the follower started over: a new run in the same path
                memory = memory.with_run(s.log, RunMemory())  # (in a backlog: a big log's preview giving way)
            loaded = memory.run(s.log).durable()
            memory, new = evaluate(memory, [s], now, self.cfg, quiet=backlog or seen is None)
            if memory.run(s.log).durable() != loaded:
                self._save(s.log, memory.run(s.log))
            alerts += new
        # Runs no longer followed (dropped when finished, or by a reload) are forgotten here; their
        # saved state brings them back if they are followed again.
        self._lines = {s.log: s.lines for s in snapshots}
        self.memory = AlertMemory({s.log: memory.run(s.log) for s in snapshots})
        for alert in alerts:
            self.log.info("alert: %s", alert.title)
            if self.notifier is not None:
                self.notifier.send(alert)
            if self.toast is not None:
                self.toast(alert)

    def _save(self, log_path: str, memory: RunMemory) -> None:
        try:
            self.store.save(log_path, memory)
        except OSError as e:
            if not self._save_failed:  # once: the alerts still go out, only a restart may repeat them
                self.log.warning("cannot save alert state in %s (%s): a restart may repeat alerts",
                                 self.store.directory, e.strerror or e)
            self._save_failed = True
