"""Keeping the terminal to the TUI while it runs: log lines on stderr would land in the middle of the screen."""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

HELD = 200


class _Holder(logging.Handler):
    def __init__(self, records: deque[logging.LogRecord]) -> None:
        super().__init__()
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _on_terminal(h: logging.Handler) -> bool:
    stream = getattr(h, "stream", None)
    return isinstance(h, logging.StreamHandler) and stream in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


@contextmanager
def logs_held(limit: int = HELD) -> Iterator[deque[logging.LogRecord]]:
    """Detach the root logger's terminal handlers; hold the records (the last `limit`) and write the warnings
    and errors among them through those handlers once the screen is given back."""
    root = logging.getLogger()
    moved = [h for h in root.handlers if _on_terminal(h)]
    held: deque[logging.LogRecord] = deque(maxlen=limit)
    holder = _Holder(held)
    for h in moved:
        root.removeHandler(h)
    root.addHandler(holder)
    try:
        yield held
    finally:
        root.removeHandler(holder)
        for h in moved:
            root.addHandler(h)
        for record in held:
            if record.levelno >= logging.WARNING:
                for h in moved:
                    if record.levelno >= h.level:
                        h.handle(record)
