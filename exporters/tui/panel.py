"""The base of the text panels: a Static that repaints only when what it shows has changed."""

from __future__ import annotations

from rich.console import RenderableType
from textual.widgets import Static


class TextPanel(Static):
    """Most refreshes of a live run change a few numbers or nothing; skipping equal content keeps the
    UI thread idle between changes instead of re-laying out every panel twice a second."""

    _shown: object = None

    def __init__(self, title: str = "", id: str | None = None) -> None:
        super().__init__(markup=False, id=id)  # belt and braces: every panel passes Text, never a markup string
        self.border_title = title

    def show_content(self, key: object, renderable: RenderableType, *, layout: bool = False) -> None:
        """`layout`: the panel's size may change with this content (the CSS fixes all others' sizes, and a
        layout pass over the whole screen costs more than drawing the panel)."""
        if key != self._shown:
            self._shown = key
            self.update(renderable, layout=layout)
