"""From the writer loop to the notifier: the alert rules run on each publish, what fired is saved."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from exporters.notify import Notifier
from monitor.alert_state import AlertStore
from monitor.alerts import Alert, AlertConfig, AlertMemory, RunMemory, evaluate
from monitor.snapshot import Snapshot

_log = logging.getLogger(__name__)


class AlertPump:
    """Runs the alert rules on each publish (`Monitor.subscribe(pump.on_snapshots)`), persists what
    fired, and hands new alerts to the notifier and to the TUI's `toast`.

    Called in the writer thread, so it stays cheap: the rules are pure, the state file is written only
    when what fired changes, delivery is a queue put. What the files held before the daemon came is
    history, evaluated quietly: the first publish, every publish while `busy()` (the Monitor's: a tail
    has more to read right now, i.e. a backlog read in slices), and the one right after, which holds
    the last slice. `toast` must not block (post a message to the UI thread).
    """

    def __init__(self, notifier: Notifier | None, cfg: AlertConfig, *, busy: Callable[[], bool],
                 store: AlertStore | None = None, toast: Callable[[Alert], None] | None = None,
                 log: logging.Logger = _log) -> None:
        self.notifier = notifier
        self.cfg = cfg
        self.busy = busy
        self.store = store or AlertStore()
        self.toast = toast
        self.log = log
        self.memory = AlertMemory()
        self._backlog = True  # the next publish still holds what was read on attach
        self._lines: dict[str, int] = {}  # lines read per log at the last publish
        self._save_failed = False

    def on_snapshots(self, snapshots: Sequence[Snapshot]) -> None:
        busy = self.busy()
        quiet, self._backlog = self._backlog or busy, busy
        if not snapshots:
            return
        memory = self.memory
        for s in snapshots:
            seen = self._lines.get(s.log)
            if seen is None:  # first sight: what an earlier daemon already sent for this run
                memory = memory.with_run(s.log, self.store.load(s.log) or RunMemory())
            elif s.lines < seen:  # the follower started over: the file was truncated or replaced
                memory = memory.with_run(s.log, RunMemory())
            self._lines[s.log] = s.lines
        before = memory
        now = max(s.taken_at for s in snapshots)
        memory, alerts = evaluate(before, snapshots, now, self.cfg, quiet=quiet)
        for s in snapshots:
            durable = memory.run(s.log).durable()
            if durable != before.run(s.log).durable():
                self._save(s.log, durable)
        self.memory = memory
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
