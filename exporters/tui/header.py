"""The run's one-line header: which run, in what state (in colour), on which GPU, and how fresh."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from exporters.tui.context import ViewContext
from monitor.snapshot import ENDED_STATES, Snapshot
from monitor.units import duration

STATE_STYLE = {
    "starting": "bold white on grey37",
    "running": "bold black on green3",
    "evaluating": "bold black on dark_cyan",
    "finished": "bold white on dodger_blue2",
    "crashed": "bold white on red3",
    "stalled": "bold black on orange1",
    "timeout": "bold white on dark_orange3",  # Slurm ended the job: not a crash of the training
    "preempted": "bold white on purple4",
    "cancelled": "bold white on grey50",
    "node_fail": "bold white on red3",
    "out_of_memory": "bold white on red3",
    "error": "bold white on magenta",  # trainwatch cannot read the log, or failed on it
}


QUIET_S = 30.0  # silence worth mentioning in the header


def state_badge(state: str) -> Text:
    return Text(f" {state} ", style=STATE_STYLE.get(state, "reverse"))


def gpu_label(gpus: Sequence[object], no_gpu: str) -> str:
    """`NVIDIA H100 80GB HBM3`, `NVIDIA A100-SXM4-80GB ×8`, or why there is none."""
    if not gpus:
        return no_gpu
    names = [str(getattr(g, "name", None) or "GPU") for g in gpus]
    label = names[0] if len(set(names)) == 1 else " + ".join(dict.fromkeys(names))
    if len(gpus) > 1:
        label += f" ×{len(gpus)}"
    lost = sum(1 for g in gpus if getattr(g, "lost", False))
    return label + (f" ({lost} lost)" if lost else "")


def header_text(s: Snapshot, ctx: ViewContext) -> Text:
    """The left part: what matters most comes first, since a narrow terminal cuts the end."""
    # Text.append takes the run name as plain text: a name like "[red]x" is shown as written.
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" ")
    t.append(s.run, "bold")
    t.append("  ")
    t.append_text(state_badge(s.state))
    t.append("  ")
    if s.problem:  # why the run shows nothing (an unreadable file, a failure) or may be stale: before all else
        t.append(f"⚠ {s.problem}", "bold red")
        t.append("  ")
    t.append(gpu_label(s.gpus, ctx.no_gpu), "dim" if not s.gpus else "")
    silence = ctx.now - s.last_progress_at if s.last_progress_at is not None else None
    if silence is not None and silence >= QUIET_S and s.state not in ENDED_STATES:
        # Only once it says something: a ticking "2s ago" would redraw the header every second for nothing.
        t.append(f"  · last progress {duration(silence)} ago", "bold orange1" if s.state == "stalled" else "dim")
    if not ctx.following:
        t.append("  ⏸ frozen (f: follow)", "bold yellow")
    return t


def fit(left: Text, title: str, width: int) -> Text:
    """The title goes right, into the room the run's own line leaves; it is the first thing to give way."""
    line = left.copy()
    room = width - left.cell_len - 2
    if room >= 8:
        label = f" {title} " if len(title) + 2 <= room else f" {title[:room - 3]}… "
        line.append(" " * (width - left.cell_len - len(label)))
        line.append(label, "bold reverse")
    return line


class RunHeader(Widget):
    """Drawn in `render` because what fits depends on the width."""

    DEFAULT_CSS = "RunHeader { height: 1; }"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: tuple[Text, str] | None = None

    def show(self, s: Snapshot, ctx: ViewContext) -> None:
        shown = (header_text(s, ctx), ctx.title)
        if shown != self._shown:
            self._shown = shown
            self.refresh()

    def render(self) -> RenderResult:
        if self._shown is None:
            return Text()
        return fit(*self._shown, self.size.width)
