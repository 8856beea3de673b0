"""`/`: index.html with the run list rendered on the server, so the essentials read without JavaScript.

Everything that comes from a log (run names, states, paths) goes through `html.escape`; the page's
script rebuilds the same table from the API with `textContent`, never as markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources

from exporters.api import run_id
from monitor.snapshot import Snapshot
from monitor.units import clock, duration

PLACEHOLDER = "<!--RUNS-->"
COLUMNS = 6


def template() -> str:
    return (resources.files("exporters.web") / "index.html").read_text(encoding="utf-8")


def render(tpl: str, snaps: Sequence[Snapshot], now: float) -> bytes:
    rows = "".join(row(s, now) for s in snaps) or \
        f'<tr><td colspan="{COLUMNS}" class="empty">no run yet</td></tr>'
    return tpl.replace(PLACEHOLDER, rows, 1).encode()


def row(s: Snapshot, now: float) -> str:
    cells = [
        f'<a href="#{escape(run_id(s))}">{escape(s.run)}</a>',
        f'<span class="state state-{escape(s.state)}">{escape(s.state)}</span>',
        _progress(s),
        escape(_eta(s)),
        escape("—" if s.state == "finished" else clock(s.forecast.finish_at, now)),
        escape(f"{_loss(s.train_loss)} / {_loss(s.val_loss)}"),
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _progress(s: Snapshot) -> str:
    if s.iter is None:
        return "—"
    of = f" / {s.max_iters:,}" if s.max_iters is not None else ""
    bar = f'<progress value="{s.fraction:.4f}" max="1"></progress> ' if s.fraction is not None else ""
    return f"{bar}{s.iter:,}{of}"


def _eta(s: Snapshot) -> str:
    fc = s.forecast
    if s.state == "finished":
        return "finished"
    if fc.eta_s is None:
        return "—"
    return f"{duration(fc.eta_s)} ({duration(fc.eta_p10_s)} – {duration(fc.eta_p90_s)})"


def _loss(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"
