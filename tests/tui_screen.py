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


async def wait_for(pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Let the app run until `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)
        await asyncio.sleep(0)
