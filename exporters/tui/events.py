"""Events, newest first: evals, checkpoints, restarts, warnings, the buffering hint, errors.

Evals and notes are kept apart in the snapshot; they are merged here by where they happened in the
log. A note records the last iteration line before it; an eval at iteration N was printed right after
the previous iteration line, before anything else that followed that line (nanoGPT evaluates, then
saves the checkpoint, then prints `iter N`).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, replace

from rich.console import Group
from rich.text import Text

from exporters.tui.panel import TextPanel
from exporters.tui.plotdata import current_path
from monitor.snapshot import EvalPoint, Note, Snapshot

SHOWN = 60  # more than any panel is tall; older events are in the log itself
ERROR_CHARS = 200  # an error wraps to show its message, up to a few lines
ICONS = {"eval": ("◆", "cyan"), "info": ("·", ""), "warning": ("▲", "yellow"), "error": ("✖", "bold red")}


@dataclass(frozen=True, slots=True)
class Row:
    position: float  # order in the log: after iteration line ⌊position⌋
    iter: int | None  # shown: the eval's iteration, or the iteration a note was printed in
    kind: str  # eval | info | warning | error
    text: str


def rows(s: Snapshot, limit: int = SHOWN) -> list[Row]:
    """The latest `limit` events, newest first."""
    line_iters = [p.iter for p in current_path(s.history)]
    notes = (_note_row(n) for n in s.notes[-limit:])
    evals = (_eval_row(e, line_iters, s.best_val) for e in s.evals[-limit:])
    merged = heapq.merge(notes, evals, key=lambda r: r.position)
    return _in_eval_iterations(merged)[::-1][:limit]


def _in_eval_iterations(merged: Iterable[Row]) -> list[Row]:
    """Notes printed right after eval N (a checkpoint save) happened in iteration N, not at the line before."""
    out: list[Row] = []
    last_eval: Row | None = None
    for r in merged:
        if r.kind == "eval":
            last_eval = r
        elif last_eval is not None and r.position == last_eval.position + 0.25:
            r = replace(r, iter=last_eval.iter)
        out.append(r)
    return out


def _note_row(n: Note) -> Row:
    # Notes before the first iteration (startup warnings) come before eval 0.
    return Row(n.iter + 0.5 if n.iter is not None else -2.0, n.iter, n.level, n.text)


def _eval_row(e: EvalPoint, line_iters: list[int], best: float | None) -> Row:
    i = bisect_left(line_iters, e.iter)
    previous_line = line_iters[i - 1] if i > 0 else -1
    text = f"eval  train {_loss(e.train_loss)}  val {_loss(e.val_loss)}"
    if best is not None and e.val_loss == best:
        text += "  best"
    return Row(previous_line + 0.25, e.iter, "eval", text)


def _loss(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}" if math.isfinite(v) else str(v)


def row_text(r: Row) -> Text:
    icon, style = ICONS.get(r.kind, ("·", ""))
    error = r.kind == "error"
    t = Text(no_wrap=not error, overflow="ellipsis")
    t.append(f"{r.iter:>7,} " if r.iter is not None else " " * 8, "dim")
    t.append(icon + " ", style)
    text = r.text if not error or len(r.text) <= ERROR_CHARS else r.text[:ERROR_CHARS - 1] + "…"
    t.append(text, style if r.kind in ("warning", "error") else "")  # plain text: never markup
    return t


def events_renderable(s: Snapshot) -> tuple[list[Text], Group | Text]:
    texts = [row_text(r) for r in rows(s)]
    if not texts:
        return texts, Text("no events yet", "dim")
    return texts, Group(*texts)


class EventsPanel(TextPanel):
    def show(self, s: Snapshot) -> None:
        texts, renderable = events_renderable(s)
        self.show_content(texts, renderable)

