"""The overview table when several runs are followed: one row per run."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.widgets import DataTable

from exporters.tui.context import ViewContext
from exporters.tui.header import state_badge
from exporters.tui.progress import counter
from monitor.snapshot import ENDED_STATES, Snapshot
from monitor.units import clock, duration

COLUMNS = ("#", "run", "state", "progress", "ETA", "finishes", "loss train / val")


def _loss(v: float | None) -> Text:
    if v is None:
        return Text("—", "dim")
    return Text(f"{v:.4f}", "bold red" if not math.isfinite(v) else "")


def overview_row(i: int, s: Snapshot, ctx: ViewContext) -> tuple[Text, ...]:
    fc = s.forecast
    live = s.state not in ENDED_STATES
    finishes = Text(clock(fc.finish_at, ctx.now) if live else "—")
    if s.time_limit is not None:
        finishes.append(f" {s.time_limit.verdict} hit the time limit", "bold red" if s.time_limit.verdict == "will"
                        else "yellow")
    return (Text(str(i)), Text(s.run, "bold") + _job(s), state_badge(s.state), Text(counter(s)),
            Text(duration(fc.eta_s) if live else "—"), finishes,
            _loss(s.train_loss) + Text(" / ", "dim") + _loss(s.val_loss))


def _job(s: Snapshot) -> Text:
    """A Slurm job's user, partition and nodes after its run's name (`12345 gpt2-124m`), when it has them."""
    where = [s.labels[k] for k in ("user", "partition", "nodes") if s.labels.get(k) and "job_id" in s.labels]
    return Text("  " + " · ".join(where), "dim") if where else Text("")


class Overview(DataTable[Text]):
    """Cells are `Text`, so a run name holding markup is shown as written."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, id=id)
        self._rows: list[tuple[Text, ...]] = []

    def on_mount(self) -> None:
        self.add_columns(*COLUMNS)

    def show(self, snaps: Sequence[Snapshot], ctx: ViewContext) -> None:
        rows = [overview_row(i, s, ctx) for i, s in enumerate(snaps, 1)]
        if rows != self._rows:
            self._rows = rows
            cursor = self.cursor_row
            self.clear()
            self.add_rows(rows)
            if rows:
                self.move_cursor(row=min(cursor, len(rows) - 1))
