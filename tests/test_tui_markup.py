"""Nothing from a log is rendered as markup: Rich/Textual markup, links, actions, ANSI and OSC show literally.

The log below is hostile on every path the TUI shows text from it: the run name, a warning, a
checkpoint path, a traceback's last line, and lines carrying raw ANSI colour and OSC 8 hyperlinks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from rich.segment import Segment
from textual.app import App
from tui_data import FIXED_NOW, from_log
from tui_screen import screen_text, wait_for, widget_segments, widget_text

from exporters.tui.app import TrainwatchApp
from exporters.tui.events import EventsPanel
from exporters.tui.header import RunHeader
from exporters.tui.overview import Overview
from exporters.tui.progress import ProgressPanel

NAME = "[bold red]x[/]"
WARNING = "UserWarning: [bold red]x[/] and [link=https://evil.example]click[/link] [@click=app.quit]q[/]"
CHECKPOINT = "out-[blink]ckpt[/blink]"
ERROR = "RuntimeError: [bold red]boom[/] [link=https://evil.example]here[/link] [$accent]v[/] [@click=app.quit]q[/]"
HOSTILE = "\n".join([
    "Overriding config with config/[bold red]evil[/].py:",
    "max_iters = 100",
    "eval_interval = 50",
    WARNING,
    "UserWarning: \x1b[31mansi red\x1b[0m \x1b]8;;https://evil.example\x1b\\osc link\x1b]8;;\x1b\\ \x1b]0;title\x07end",
    "step 0: train loss 4.0000, val loss 4.0100",
    "iter 0: loss 4.0000, time 1000.00ms, mfu -100.00%",
    *(f"iter {i}: loss {4 - i / 100:.4f}, time 10.00ms, mfu 1.00%" for i in range(10, 50, 10)),
    "step 50: train loss 3.5000, val loss 3.5100",
    f"saving checkpoint to {CHECKPOINT}",
    "iter 50: loss 3.5000, time 500.00ms, mfu 1.00%",
    "Traceback (most recent call last):",
    '  File "train.py", line 300, in <module>',
    ERROR,
    "",
])


pytestmark = pytest.mark.usefixtures("tui_terminal")


@pytest.fixture
def hostile_log(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.log"
    path.write_bytes(HOSTILE.encode())
    return path


def styled(seg: Segment) -> list[str]:
    """What markup would have applied to this piece of screen: a link, a click action, blink, reverse."""
    s = seg.style
    if s is None:
        return []
    found = []
    if s.link:
        found.append(f"link {s.link}")
    if s.meta and any(k.startswith("@") for k in s.meta):
        found.append(f"action {s.meta}")
    if s.blink or s.blink2:
        found.append("blink")
    return found


def no_markup_applied(app: App[Any]) -> None:
    for strip in app.screen._compositor.render_strips():
        for seg in strip:
            assert not styled(seg), (seg.text, styled(seg))
            assert "\x1b" not in seg.text and "\x07" not in seg.text


@pytest.mark.asyncio
async def test_log_text_is_shown_literally(hostile_log: Path) -> None:
    snap = from_log(hostile_log, run=NAME)
    assert snap.state == "crashed" and snap.error_message and "[bold red]boom[/]" in snap.error_message
    app = TrainwatchApp(lambda: (snap,), clock=lambda: FIXED_NOW, title="[b]tw[/b]")
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: NAME in screen_text(app))
        header = widget_text(app, app.query_one(RunHeader))
        assert f" {NAME}   crashed " in header and header.rstrip().endswith("[b]tw[/b]")
        events = widget_text(app, app.query_one(EventsPanel))
        assert "[bold red]x[/] and [link=https://evil.example]click[/link]" in events
        assert f"checkpoint saved to {CHECKPOINT}" in events
        assert "[bold red]boom[/] [link=https://evil.example]here[/link] [$accent]v[/]" in events
        assert "ansi red osc link" in events  # the parser stripped the escapes; what is left is plain text
        progress = widget_text(app, app.query_one(ProgressPanel))
        assert "RuntimeError: [bold red]boom[/]" in progress
        no_markup_applied(app)
        # The name was not made bold red: the segment carrying it has the header's own style only.
        name_segs = [s for s in widget_segments(app, app.query_one(RunHeader)) if NAME in s.text]
        assert name_segs and all(s.style is None or s.style.color is None or s.style.color.name != "red"
                                 for s in name_segs)


@pytest.mark.asyncio
async def test_run_names_in_tabs_and_overview_are_literal(hostile_log: Path) -> None:
    other = from_log(hostile_log, run="[link=https://evil.example]y[/link]")
    snaps = (from_log(hostile_log, run=NAME), dataclasses.replace(other, log=other.log + ".2"))  # two runs
    app = TrainwatchApp(lambda: snaps, clock=lambda: FIXED_NOW)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_for(pilot, lambda: bool(app.query(Overview)) and app.query_one(Overview).row_count == 2)
        await wait_for(pilot, lambda: f"1 {NAME}" in screen_text(app)
                       and "2 [link=https://evil.example]y[/link]" in screen_text(app))  # tab labels, drawn
        overview = widget_text(app, app.query_one(Overview))
        assert NAME in overview and "[link=https://evil.example]y[/link]" in overview
        no_markup_applied(app)


@pytest.mark.asyncio
async def test_alert_toasts_are_literal(hostile_log: Path) -> None:
    snap = from_log(hostile_log)
    app = TrainwatchApp(lambda: (snap,), clock=lambda: FIXED_NOW)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        app.notify_alert("[bold red]T[/]", "[link=https://evil.example]body[/link] [@click=app.quit]q[/]", "error")
        await wait_for(pilot, lambda: "[link=https://evil.example]body[/link]" in screen_text(app))
        assert "[bold red]T[/]" in screen_text(app)
        no_markup_applied(app)
