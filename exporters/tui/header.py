"""The run's one-line header: which run, in what state (in colour), on which GPU, and how fresh."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from exporters.tui.context import ViewContext
from exporters.tui.panel import TextPanel
from monitor.snapshot import Snapshot
from monitor.units import duration

STATE_STYLE = {
    "starting": "bold white on grey37",
    "running": "bold black on green3",
    "evaluating": "bold black on dark_cyan",
    "finished": "bold white on dodger_blue2",
    "crashed": "bold white on red3",
    "stalled": "bold black on orange1",
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
    t.append(gpu_label(s.gpus, ctx.no_gpu), "dim" if not s.gpus else "")
    silence = ctx.now - s.last_progress_at if s.last_progress_at is not None else None
    if silence is not None and silence >= QUIET_S and s.state not in ("finished", "crashed"):
        # Only once it says something: a ticking "2s ago" would redraw the header every second for nothing.
        t.append(f"  · last progress {duration(silence)} ago", "bold orange1" if s.state == "stalled" else "dim")
    if not ctx.following:
        t.append("  ⏸ frozen (f: follow)", "bold yellow")
    return t


def header(s: Snapshot, ctx: ViewContext) -> Table:
    """Run, state, GPU on the left; the app's title on the right, given the room that is left."""
    grid = Table.grid(expand=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    grid.add_column(justify="right", no_wrap=True, overflow="ellipsis", max_width=max(10, len(ctx.title) + 2))
    grid.add_row(header_text(s, ctx), Text(f" {ctx.title} ", "bold reverse"))
    return grid


class RunHeader(TextPanel):
    def show(self, s: Snapshot, ctx: ViewContext) -> None:
        text = header_text(s, ctx)
        self.show_content((text, ctx.title), header(s, ctx))
