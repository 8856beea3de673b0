"""Fixtures shared by the TUI test files."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from tui_data import use_utc


@pytest.fixture
def tui_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Colour on (NO_COLOR breaks snapshots) and local time pinned to UTC, restored afterwards."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    use_utc()
    yield
    monkeypatch.undo()
    time.tzset()
