"""The `?` screen: what each key does."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = (
    ("q", "quit"),
    ("?", "this help (escape closes it)"),
    ("l", "loss chart: log / linear scale"),
    ("f", "follow on/off: freeze the view; f again catches up"),
    ("tab / shift+tab", "next / previous run (several logs)"),
    ("1 … 9", "run number n;  0: the overview"),
)


def keys_table() -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    for key, what in KEYS:
        t.add_row(key, what)
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark", "dismiss", "close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 80; max-width: 100%; height: auto; padding: 1 2; border: round $accent; background: $surface;
    }
    """

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = "trainwatch keys"
            yield Static(keys_table())
