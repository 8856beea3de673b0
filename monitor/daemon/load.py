"""Folding a whole log once (report, backtest): the same lines → parser → state path as live."""

from __future__ import annotations

import contextlib
import os

from monitor.follow.read import read_blocks
from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from parsers.detect import formats_tried, make_parser


def load(path: str, *, format: str | None = None, user: dict[str, object] | None = None,
         max_bytes: int | None = None) -> Ingest:
    """Parse the whole file (or its first `max_bytes`) as it is now."""
    ingest: Ingest | None = None
    for head, block in read_blocks(path, max_bytes):
        if ingest is None:
            ingest = new_ingest(head, format=format, user=user)
        ingest.feed_block(block)
    assert ingest is not None
    with contextlib.suppress(OSError):  # gone since it was read: the lines stay unanchored
        ingest.state.anchor(os.stat(path).st_mtime)
    return ingest


def new_ingest(head: bytes, *, format: str | None, user: dict[str, object] | None) -> Ingest:
    parser = make_parser(format, head.decode("utf-8", "replace"))
    state = RunState(format=parser.name, defaults=dict(parser.defaults), user=dict(user or {}),
                     formats=formats_tried(parser))
    return Ingest(parser, state)
