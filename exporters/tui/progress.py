"""Progress: the bar with iteration/max and %, and the ETA with its band and the finish's clock time."""

from __future__ import annotations

from rich.console import RenderableType
from rich.text import Text
from textual.widget import Widget

from exporters.tui.context import ViewContext
from monitor.snapshot import JOB_END_STATES, Snapshot
from monitor.units import clock, duration


def counter(s: Snapshot) -> str:
    if s.iter is None:
        return "no iteration yet"
    if s.max_iters is None:
        return f"iter {s.iter:,} of ?"
    return f"{s.iter:,} / {s.max_iters:,}  {100 * (s.fraction or 0.0):5.1f} %"


def bar(fraction: float | None, width: int) -> Text:
    """A thin bar that says "unknown" by being empty rather than guessing."""
    width = max(0, width)
    t = Text(no_wrap=True)
    if fraction is None:
        t.append("╌" * width, "dim")
        return t
    filled = fraction * width
    full = int(filled)
    t.append("━" * full, "green3" if fraction < 1 else "dodger_blue2")
    if full < width:
        t.append("╸" if filled - full >= 0.5 else "╺", "green3" if filled - full >= 0.5 else "grey35")
        t.append("━" * (width - full - 1), "grey35")
    return t


def iter_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def eta_line(s: Snapshot, ctx: ViewContext) -> Text:
    fc = s.forecast
    t = Text(no_wrap=True, overflow="ellipsis")
    if s.state == "crashed":
        t.append("crashed", "bold red")
        if s.error_type:
            t.append(" — ")
            t.append(f"{s.error_type}: {s.error_message}" if s.error_message else s.error_type, "red")
        return t
    if s.state in JOB_END_STATES:
        t.append(f"{s.state} — Slurm ended the job", "bold dark_orange3")
        if s.last_checkpoint_iter is not None:
            t.append(f" · last checkpoint at {s.last_checkpoint_iter:,}")
        return t
    if s.state == "finished":
        t.append("finished", "bold dodger_blue2")
        if s.last_progress_at is not None:
            t.append(f" at {clock(s.last_progress_at, ctx.now)}")
        if s.elapsed_s is not None:
            t.append(f" after {duration(s.elapsed_s)}")
        return t
    t.append("ETA ", "bold")
    if fc.eta_s is None:
        t.append("—")
        if fc.reason:
            t.append(f" ({fc.reason})", "dim")
    else:
        t.append(duration(fc.eta_s), "bold")
        t.append(f" ({duration(fc.eta_p10_s)} – {duration(fc.eta_p90_s)})")
        t.append(f" · finishes ~{clock(fc.finish_at, ctx.now)}", "bold")
    if s.job_end_at is not None:
        tl = s.time_limit
        t.append(f" · job ends {clock(s.job_end_at, ctx.now)}", "dim" if tl is None else
                 "bold red" if tl.verdict == "will" else "yellow")
        if tl is not None:
            t.append(f": {tl.verdict} hit the time limit", "bold red" if tl.verdict == "will" else "yellow")
    if fc.iter_s is not None:
        t.append(f" · {iter_time(fc.iter_s)}/iter", "dim")
    if fc.eval_overhead_s:
        t.append(f" · +{iter_time(fc.eval_overhead_s)} per eval", "dim")
    if fc.slowdown is not None and fc.slowdown > 1:
        t.append(f" · {100 * (fc.slowdown - 1):.0f} % slower than before", "yellow")
    if s.state == "stalled" and fc.stalled_s is not None and s.last_progress_at is not None:
        t.append(f" · no progress for {duration(ctx.now - s.last_progress_at)}", "bold orange1")
    return t


class ProgressPanel(Widget):
    """Drawn in `render` because the bar's length depends on the panel's width."""

    DEFAULT_CSS = "ProgressPanel { height: 2; }"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[float | None, str, Text] | None = None

    def show(self, s: Snapshot, ctx: ViewContext) -> None:
        shown = (s.fraction, counter(s), eta_line(s, ctx))
        if shown != self._shown:
            self._shown = shown
            self.refresh()

    def render(self) -> RenderableType:
        if self._shown is None:
            return Text("waiting for the log…", style="dim")
        fraction, count, eta = self._shown
        label = Text(" " + count, style="bold", no_wrap=True)
        line = bar(fraction, self.size.width - label.cell_len)
        line.append_text(label)
        return Text("\n", no_wrap=True, overflow="ellipsis").join([line, eta])
