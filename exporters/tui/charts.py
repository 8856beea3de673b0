"""The two charts (textual-plotext): loss against iterations, and iteration time against iterations.

Data is bucketed to the chart's width when a new snapshot or a resize arrives (`plotdata`), and
drawn in `render`, so an unchanged chart costs nothing between refreshes.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

from exporters.tui.plotdata import LossData, Series, SpeedData, loss_data, nice_ticks, speed_data, tick_label
from exporters.tui.progress import iter_time
from monitor.snapshot import Snapshot
from monitor.units import human

TRAIN_RAW = (95, 110, 150)
TRAIN_SMOOTH = (80, 200, 255)
VAL = (255, 160, 40)
STEADY = (120, 220, 120)
PAUSE = (255, 90, 90)
LEVEL = (200, 200, 200)


LEGEND_MIN_HEIGHT = 12  # below this the legend would cover most of the plot


def _width(widget: PlotextPlot) -> int:
    return widget.size.width or 100  # before the first layout


def _label(widget: PlotextPlot, text: str) -> str | None:
    return text if widget.size.height >= LEGEND_MIN_HEIGHT else None


def _iteration_axis(widget: PlotextPlot, *series: Series) -> None:
    xs = [x for s in series for x in s.xs]
    if xs:
        ticks = nice_ticks(min(xs), max(xs), n=max(2, _width(widget) // 10))
        widget.plt.xticks(ticks, [tick_label(t) for t in ticks])
    widget.plt.xlabel("iteration")


class LossChart(PlotextPlot):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_scale = False
        self._snap: Snapshot | None = None
        self._key: object = None
        self._data: LossData | None = None

    def show(self, s: Snapshot) -> None:
        key = (len(s.history), s.history[-1] if s.history else None, len(s.evals), s.evals[-1] if s.evals else None)
        if key != self._key:
            self._key, self._snap = key, s
            self._prepare()

    def set_log_scale(self, on: bool) -> None:
        self.log_scale = on
        self.refresh()

    def on_resize(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        if self._snap is not None:
            self._data = loss_data(self._snap.history, self._snap.evals, _width(self))
            self.refresh()

    def render(self) -> RenderResult:
        d = self._data
        if d is None or not (d.train or d.val):
            return Text("loss: waiting for the first iteration", "dim")
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.log_scale:
            d = LossData(d.train.positive(), d.smooth.positive(), d.val.positive())
        if d.train:
            plt.plot(d.train.xs, d.train.ys, marker="braille", color=TRAIN_RAW, label=_label(self, "train"))
            plt.plot(d.smooth.xs, d.smooth.ys, marker="braille", color=TRAIN_SMOOTH, label=_label(self, "smoothed"))
        if d.val:
            plt.scatter(d.val.xs, d.val.ys, marker="◆", color=VAL, label=_label(self, "val"))
        plt.yscale("log" if self.log_scale else "linear")
        plt.title("loss (log scale)" if self.log_scale else "loss")
        _iteration_axis(self, d.train, d.val)
        return super().render()


class SpeedChart(PlotextPlot):
    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._snap: Snapshot | None = None
        self._key: object = None
        self._data: SpeedData | None = None

    def show(self, s: Snapshot) -> None:
        key = (len(s.history), s.history[-1] if s.history else None, s.forecast.iter_s, s.forecast.tokens_per_s)
        if key != self._key:
            self._key, self._snap = key, s
            self._prepare()

    def on_resize(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        if self._snap is not None:
            self._data = speed_data(self._snap.history, _width(self), self._snap.forecast.iter_s)
            self.refresh()

    def render(self) -> RenderResult:
        d, s = self._data, self._snap
        if d is None or s is None or not (d.steady or d.pauses):
            return Text("iteration time: waiting for iterations", "dim")
        scale, unit = (1000.0, "s") if (d.level_ms or d.top or 0) >= 1000 else (1.0, "ms")
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if d.steady:
            plt.plot(d.steady.xs, [y / scale for y in d.steady.ys], marker="braille", color=STEADY,
                     label=_label(self, "step"))
        if d.pauses:
            plt.scatter(d.pauses.xs, [y / scale for y in d.pauses.ys], marker="▲", color=PAUSE,
                        label=_label(self, "eval/save/warm-up"))
        if d.level_ms is not None:
            plt.hline(d.level_ms / scale, color=LEVEL)
        if d.top is not None:
            plt.ylim(0, d.top / scale)
        title = f"iteration time ({unit})"
        if d.level_ms is not None:
            title += f" · steady {iter_time(d.level_ms / 1000)}"
        if s.forecast.tokens_per_s:
            title += f" · {human(s.forecast.tokens_per_s)} tok/s"
        plt.title(title)
        _iteration_axis(self, d.steady, d.pauses)
        return super().render()
