"""One run on one screen: header, progress, the two charts, stats, GPUs and events."""

from __future__ import annotations

import contextlib

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import Static

from exporters.tui.charts import LossChart, SpeedChart
from exporters.tui.context import ViewContext
from exporters.tui.events import EventsPanel
from exporters.tui.gpu_panel import GpuPanel
from exporters.tui.header import RunHeader
from exporters.tui.progress import ProgressPanel
from exporters.tui.stats import StatsPanel
from monitor.snapshot import Snapshot


class NoProgress(Static):
    """Said instead of an empty run when no line of the log was recognised (a file that is not a training log)."""


class RunView(Vertical):
    def compose(self) -> ComposeResult:
        yield RunHeader()
        yield NoProgress(id="no-progress")
        yield ProgressPanel()
        with Horizontal(classes="charts"):
            yield LossChart()
            yield SpeedChart()
        yield GpuPanel("GPU")
        with Horizontal(classes="panels"):
            yield StatsPanel("stats")
            yield EventsPanel("events")

    def show(self, s: Snapshot, ctx: ViewContext) -> None:
        # not composed yet, or being taken down as the app exits: the next pull draws it
        with contextlib.suppress(NoMatches):
            self._show(s, ctx)

    def _show(self, s: Snapshot, ctx: ViewContext) -> None:
        self.query_one(RunHeader).show(s, ctx)
        self.set_class(s.no_progress is not None, "-no-progress")  # the note, and nothing but the header
        if s.no_progress:
            self.query_one(NoProgress).update(Text(s.no_progress))  # a path is text, never markup
            return
        self.query_one(ProgressPanel).show(s, ctx)
        self.query_one(LossChart).show(s)
        self.query_one(SpeedChart).show(s)
        self.query_one(StatsPanel).show(s)
        self.query_one(GpuPanel).show(s.gpus, ctx.no_gpu)
        self.query_one(EventsPanel).show(s)

    def set_log_scale(self, on: bool) -> None:
        self.query_one(LossChart).set_log_scale(on)
