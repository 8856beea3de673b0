"""The two charts (textual-plotext): loss against iterations, and iteration time against iterations.

Data is bucketed to the chart's width when a new snapshot or a resize arrives (`plotdata`), and
drawn in `render`, so an unchanged chart costs nothing between refreshes.
"""

from __future__ import annotations

import logging
import time

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from exporters.tui.plotdata import LossData, PlotLine, SpeedData, loss_data, nice_ticks, speed_data, tick_label
from exporters.tui.progress import iter_time
from monitor.snapshot import Snapshot
from monitor.units import human

_log = logging.getLogger(__name__)

TRAIN_RAW = (95, 110, 150)
TRAIN_SMOOTH = (80, 200, 255)
VAL = (255, 160, 40)
FORECAST = (190, 130, 60)  # the predicted val path: VAL, dimmed
STEADY = (120, 220, 120)
PAUSE = (255, 90, 90)
LEVEL = (200, 200, 200)


REDRAW_S = 2.0
"""A chart is redrawn at most this often: at 10 lines/s it would change on every refresh, and plotext's
build is most of the UI's cost. Numbers elsewhere still update on every refresh."""
XLABEL_MIN_HEIGHT = 12  # below this the axis label's row is worth more as plot


def _width(widget: PlotextPlot) -> int:
    return widget.size.width or 100  # before the first layout


def _rgb(c: tuple[int, int, int]) -> str:
    return f"rgb({c[0]},{c[1]},{c[2]})"


def loss_legend(log_scale: bool) -> Text:
    """The chart's title line doubles as its legend: plotext's own legend sits on the curve's start."""
    return Text.assemble(("loss", "bold"), " (log scale)" if log_scale else "", "   ",
                         ("⣿ train", _rgb(TRAIN_RAW)), "  ", ("⣿ smoothed", _rgb(TRAIN_SMOOTH)), "  ",
                         ("◆ val", _rgb(VAL)), "  ", ("·· predicted", _rgb(FORECAST)), " ")


def speed_legend(unit: str, level_ms: float | None, tokens_per_s: float | None) -> Text:
    """Most important first, since a narrow chart cuts the title's end."""
    t = Text.assemble(("iteration time", "bold"), f" ({unit})")
    if level_ms is not None:
        t.append(f"  ─ steady {iter_time(level_ms / 1000)}", _rgb(LEVEL))
    if tokens_per_s:
        t.append(f"  {human(tokens_per_s)} tok/s", "bold")
    return t + Text.assemble("   ", ("⣿ step", _rgb(STEADY)), "  ", ("▲ eval/save/warm-up", _rgb(PAUSE)), " ")


def _iteration_axis(widget: PlotextPlot, *series: PlotLine) -> None:
    xs = [x for s in series for x in s.xs]
    if xs:
        ticks = nice_ticks(min(xs), max(xs), n=max(2, _width(widget) // 10))
        widget.plt.xticks(ticks, [tick_label(t) for t in ticks])
    if widget.size.height >= XLABEL_MIN_HEIGHT:
        widget.plt.xlabel("iteration")


def _unit(d: SpeedData) -> tuple[float, str]:
    """Seconds once a step takes a second or more; otherwise milliseconds."""
    return (1000.0, "s") if (d.level_ms or d.top or 0) >= 1000 else (1.0, "ms")


class Chart(PlotextPlot):
    """A plotext chart that takes snapshots, redrawn at most every REDRAW_S seconds.

    `draw` runs inside the chart's own boundary: plotext's arithmetic has edge cases no filter here can
    list in advance (property tests found three), and a chart that cannot be drawn must not end the view.
    """

    _drawn_at: float | None = None

    def draw(self) -> RenderResult:
        raise NotImplementedError

    def render(self) -> RenderResult:
        try:
            return self.draw()
        except Exception as e:  # the chart's boundary: the rest of the view goes on
            _log.debug("chart not drawn", exc_info=True)
            return Text(f"chart not drawn: {type(e).__name__}", "dim")

    def _due(self) -> bool:
        """A change is drawn now if the last drawing is old enough; otherwise at a later refresh."""
        now = time.monotonic()
        if self._drawn_at is not None and now - self._drawn_at < REDRAW_S:
            return False
        self._drawn_at = now
        return True


class LossChart(Chart):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_scale = False
        self.border_title = loss_legend(False)
        self._snap: Snapshot | None = None
        self._key: object = None
        self._data: LossData | None = None

    def show(self, s: Snapshot) -> None:
        key = (len(s.history), s.history[-1] if s.history else None, len(s.evals), s.evals[-1] if s.evals else None)
        if key != self._key and self._due():
            self._key, self._snap = key, s
            self._prepare()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.border_title = loss_legend(on)
        self.refresh()

    def on_resize(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        if self._snap is not None:
            self._data = loss_data(self._snap.history, self._snap.evals, _width(self), self._snap.final_loss.path)
            self.refresh()

    def draw(self) -> RenderResult:
        d = self._data
        if d is None or not (d.train or d.val):
            return Text("loss: waiting for the first iteration", "dim")
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.log_scale:
            lo, mid, hi = d.forecast
            d = LossData(d.train.positive(), d.smooth.positive(), d.val.positive(),
                         (lo.positive(), mid.positive(), hi.positive()))
            if not (d.train or d.val):  # plotext cannot scale an empty log axis
                return Text("loss: no positive value to draw on a log scale (l: linear)", "dim")
        if d.train:
            plt.plot(d.train.xs, d.train.ys, marker="braille", color=TRAIN_RAW)
            plt.plot(d.smooth.xs, d.smooth.ys, marker="braille", color=TRAIN_SMOOTH)
        lo, mid, hi = d.forecast
        for edge in (lo, hi):  # dotted: a forecast, not data
            if edge:
                plt.scatter(edge.xs, edge.ys, marker="·", color=FORECAST)
        if mid:
            plt.scatter(mid.xs, mid.ys, marker="•", color=FORECAST)
        if d.val:
            plt.scatter(d.val.xs, d.val.ys, marker="◆", color=VAL)
        plt.yscale("log" if self.log_scale else "linear")
        _iteration_axis(self, d.train, d.val, mid)
        return PlotextPlot.render(self)  # plotext draws (Chart.render is the boundary around draw)


class SpeedChart(Chart):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._snap: Snapshot | None = None
        self._key: object = None
        self._data: SpeedData | None = None

    def show(self, s: Snapshot) -> None:
        key = (len(s.history), s.history[-1] if s.history else None, s.forecast.iter_s, s.forecast.tokens_per_s)
        if key != self._key and self._due():
            self._key, self._snap = key, s
            self._prepare()

    def on_resize(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        s = self._snap
        if s is not None:
            d = self._data = speed_data(s.history, _width(self), s.forecast.iter_s)
            self.border_title = speed_legend(_unit(d)[1], d.level_ms, s.forecast.tokens_per_s)
            self.refresh()

    def draw(self) -> RenderResult:
        d, s = self._data, self._snap
        if d is None or s is None or not (d.steady or d.pauses):
            return Text("iteration time: waiting for iterations", "dim")
        scale, _ = _unit(d)
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if d.steady:
            plt.plot(d.steady.xs, [y / scale for y in d.steady.ys], marker="braille", color=STEADY)
        if d.pauses:
            plt.scatter(d.pauses.xs, [y / scale for y in d.pauses.ys], marker="▲", color=PAUSE)
        if d.level_ms is not None:
            plt.hline(d.level_ms / scale, color=LEVEL)
        if d.top is not None and d.top > d.bottom:  # equal limits: plotext divides by their difference
            plt.ylim(d.bottom / scale, d.top / scale)
        _iteration_axis(self, d.steady, d.pauses)
        return PlotextPlot.render(self)  # plotext draws (Chart.render is the boundary around draw)
