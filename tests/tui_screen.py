"""Reading what a running Textual app shows: the composed screen as text and styled segments."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from rich.segment import Segment
from textual.app import App
from textual.pilot import Pilot
from textual.strip import Strip
from textual.widget import Widget


def _lines(app: App[Any]) -> list[Strip]:
    return app.screen._compositor.render_strips()


def screen_text(app: App[Any]) -> str:
    return "\n".join(strip.text for strip in _lines(app))


def widget_text(app: App[Any], widget: Widget) -> str:
    """The characters inside the widget's region on screen (borders included)."""
    r = widget.region
    lines = _lines(app)
    return "\n".join(lines[y].crop(r.x, r.right).text for y in range(r.y, min(r.bottom, len(lines))))


def widget_segments(app: App[Any], widget: Widget) -> list[Segment]:
    r = widget.region
    lines = _lines(app)
    return [seg for y in range(r.y, min(r.bottom, len(lines))) for seg in lines[y].crop(r.x, r.right)]


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds (generous: CI is loaded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
        await asyncio.sleep(0)


def drawn(app: Any) -> bool:
    """The app has shown its snapshots: a view per run, each filled, and the overview of several."""
    from exporters.tui.overview import Overview
    from exporters.tui.progress import ProgressPanel
    from exporters.tui.run_view import RunView

    views, n = app.query(RunView), len(app.snapshots)
    if not n or len(views) != n or not all(p._shown is not None for v in views for p in v.query(ProgressPanel)):
        return False
    return n == 1 or any(t.row_count == n for t in app.query(Overview))


async def ready(pilot: Pilot[Any]) -> None:
    """Wait until the first snapshots are on screen, however slowly the app mounts under load."""
    await wait_for(pilot, lambda: drawn(pilot.app))
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()
