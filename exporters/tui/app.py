"""The Textual app: pulls the latest snapshots on an interval and shows one run, or a tab per run.

The app never touches run state. A single writer (monitor.daemon.writer.Monitor) publishes a tuple of immutable
snapshots; `source()` returns the latest, and this app reads it at most twice a second on the UI
thread. Everything it draws is bounded by the snapshot (history ≤ ~4096 points, 200 notes), so the UI
costs the same at iteration 100 and at iteration 10 million.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from exporters.tui.context import ViewContext
from exporters.tui.help import HelpScreen
from exporters.tui.overview import Overview
from exporters.tui.run_view import RunView
from exporters.tui.terminal import logs_held
from monitor.errors import TrainwatchError
from monitor.snapshot import Snapshot

Source = Callable[[], Sequence[Snapshot]]
MIN_REFRESH_S = 0.5
SEVERITIES = {"info": "information", "information": "information", "warning": "warning", "error": "error",
              "critical": "error"}


class RunTabs(Vertical):
    """Several runs: the overview first, then one tab per run, labelled with its number for the keys."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__()
        self.names = tuple(names)

    def compose(self) -> ComposeResult:
        with TabbedContent(id="tabs"):
            # Content(...) is plain text: a run name is never parsed as markup in the tab label.
            yield TabPane(Content("0 overview"), Overview(), id="overview")
            for i, name in enumerate(self.names, 1):
                yield TabPane(Content(f"{i} {name}"), RunView(), id=f"run-{i}")


class TrainwatchApp(App[None]):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = False
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-normal"), (180, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (30, "-tall"), (55, "-huge")]
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("question_mark", "help", "help"),
        Binding("l", "toggle_log", "log scale"),
        Binding("f", "toggle_follow", "follow"),
        Binding("tab", "next_run", "next run", priority=True),
        Binding("shift+tab", "previous_run", "previous run", show=False, priority=True),
        *(Binding(str(n), f"show_run({n})", show=False) for n in range(10)),
    ]

    def __init__(self, source: Source, *, clock: Callable[[], float] = time.time, refresh_s: float = 0.5,
                 title: str = "trainwatch", gpu_status: str | None = None) -> None:
        super().__init__()
        self._source = source
        self._clock = clock
        self._refresh_s = max(MIN_REFRESH_S, refresh_s)
        self._gpu_status = gpu_status
        self.title = title
        self.following = True
        self.log_scale = False
        self.snapshots: tuple[Snapshot, ...] = ()  # what is on screen now
        self._layout: tuple[str, ...] | None = None  # the logs the widgets were built for

    def compose(self) -> ComposeResult:
        yield Vertical(id="body")
        yield Footer()

    async def on_mount(self) -> None:
        await self.pull()
        self.set_interval(self._refresh_s, self.pull)

    # ---- the refresh -----------------------------------------------------------------------
    async def pull(self) -> None:
        """Take the latest snapshots from the source and show them (unless the view is frozen)."""
        if self.following:
            await self.show(tuple(self._source()))

    async def show(self, snaps: tuple[Snapshot, ...]) -> None:
        self.snapshots = snaps
        logs = tuple(s.log for s in snaps)
        if logs != self._layout:
            await self._build(snaps)
            self._layout = logs
            self.refresh_bindings()
        ctx = ViewContext(now=self._clock(), title=self.title, gpu_status=self._gpu_status,
                          following=self.following)
        for view, s in zip(self.query(RunView), snaps, strict=False):
            view.show(s, ctx)
        for table in self.query(Overview):  # absent with one run (and for a moment while tabs are mounted)
            table.show(snaps, ctx)

    async def _build(self, snaps: tuple[Snapshot, ...]) -> None:
        body = self.query_one("#body")
        await body.remove_children()
        if not snaps:
            await body.mount(Static("waiting for the log…", id="waiting"))
        elif len(snaps) == 1:
            await body.mount(RunView())
        else:
            await body.mount(RunTabs([s.run for s in snaps]))
        for view in self.query(RunView):
            view.set_log_scale(self.log_scale)

    # ---- keys ------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Run switching exists only with several runs; otherwise tab keeps its usual meaning."""
        if action in ("next_run", "previous_run", "show_run"):
            return len(self.snapshots) > 1
        return True

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss()
        else:
            self.push_screen(HelpScreen())

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        for view in self.query(RunView):
            view.set_log_scale(self.log_scale)

    async def action_toggle_follow(self) -> None:
        self.following = not self.following
        if self.following:
            await self.pull()
        else:
            await self.show(self.snapshots)  # same data, now marked frozen

    def _tab_ids(self) -> list[str]:
        return [pane.id for pane in self.query(TabPane) if pane.id]

    def _activate(self, pane_id: str) -> None:
        for tabs in self.query(TabbedContent):
            tabs.active = pane_id

    def action_next_run(self, step: int = 1) -> None:
        ids = self._tab_ids()
        if ids:
            tabs = self.query_one(TabbedContent)
            i = ids.index(tabs.active) if tabs.active in ids else 0
            self._activate(ids[(i + step) % len(ids)])

    def action_previous_run(self) -> None:
        self.action_next_run(-1)

    def action_show_run(self, n: int) -> None:
        pane = "overview" if n == 0 else f"run-{n}"
        if pane in self._tab_ids():
            self._activate(pane)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_show_run(event.cursor_row + 1)

    # ---- alerts ----------------------------------------------------------------------------
    def notify_alert(self, title: str, body: str, severity: str = "warning") -> None:
        """A toast, callable from any thread (the notifier's): App.notify only posts a message.

        Title and body may quote the log, so markup is off: they are shown as written.
        """
        self.notify(body, title=title, severity=SEVERITIES.get(severity, "warning"),  # type: ignore[arg-type]
                    timeout=10, markup=False)


def run_tui(source: Source, *, on_start: Callable[[TrainwatchApp], object] | None = None,
            title: str = "trainwatch", gpu_status: str | None = None) -> int:
    """Run the app in this terminal until `q`; returns the exit code.

    `on_start(app)` runs before the app starts, e.g. to hand `app.notify_alert` to the notifier.
    """
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise TrainwatchError("the live view needs a terminal; use `trainwatch report LOG` or `trainwatch serve`")
    app = TrainwatchApp(source, title=title, gpu_status=gpu_status)
    if on_start is not None:
        on_start(app)
    with logs_held():
        app.run()
    return app.return_code or 0
