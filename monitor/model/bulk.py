"""Backfill in bulk: a log read on attach is matched a block at a time with one regex, not line by line.

A log written with log_interval 1 is almost all plain iteration lines. Read on attach, they carry no
arrival time, and the state needs from them only sums, last values and a thinned history. So each block
(≤ BLOCK bytes of whole lines) is split by the format's BulkLine pattern in one C call: the lines it
matches become columns (iteration, duration) folded by `RunState.extend_iterations`; the text between
them (warnings, evals, progress bars, garbage) goes through the ordinary line path. An unknown line costs
one failed match plus its parse, and ends nothing: a stretch of iterations is cut only where a line
between them has an event, so that every event reaches the state in the log's order.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import compress, repeat
from operator import truediv
from typing import Any, AnyStr

from monitor.model.state import RECENT_KEPT, RunState
from parsers.base import BulkLine
from parsers.events import Event, Iteration

BLOCK = 1 << 20
"""Bytes matched at once: the split's list holds a few objects per line, so memory stays bounded."""


def feed(state: RunState, data: AnyStr, line: BulkLine, between: Callable[[AnyStr], list[Event]],
         end_block: Callable[[int], None], apply: Callable[[Event], None]) -> int:
    """Fold `data` (whole lines, each ending in a newline). `between(text)` parses the lines between
    matched ones, counting them, and returns their events; `end_block(last_iter)` tells the parser what the
    matched lines since the last call would have (the last iteration; a config block ended); `apply(event)`
    folds an event of the lines between (each within its own failure boundary). Returns how many lines went
    in bulk."""
    folded = 0
    blocks = _blocks(data)
    for start, end in blocks:
        folded += _feed_block(state, data[start:end], line, between, end_block, apply,
                              last=end == blocks[-1][1])
    return folded


def _blocks(data: AnyStr) -> list[tuple[int, int]]:
    nl = b"\n" if isinstance(data, bytes) else "\n"
    out, start = [], 0
    while start < len(data):
        end = data.rfind(nl, start, start + BLOCK) + 1
        if end <= start:  # one line longer than a block
            end = data.find(nl, start + BLOCK) + 1 or len(data)
        out.append((start, end))
        start = end
    return out


def _feed_block(state: RunState, block: AnyStr, line: BulkLine, between: Callable[[AnyStr], list[Event]],
                end_block: Callable[[int], None], apply: Callable[[Event], None], last: bool) -> int:
    width = line.pattern.groups + 1
    parts = _split(line, block) or [block]  # gap, groups…, gap, groups…, gap
    gaps = parts[::width]
    rows = len(gaps) - 1
    if not rows:
        for e in between(block):
            apply(e)
        return 0
    iters = list(map(int, parts[1 + line.iter::width]))
    dts = list(map(truediv, map(float, parts[1 + line.ms::width]), repeat(1000.0)))

    text = bytes.decode if isinstance(block, bytes) else str

    def event(offset: int, row: int) -> Iteration:
        start = 1 + (offset + row) * width
        return line.event(*(g if g is None else text(g) for g in parts[start:start + width - 1]))

    dense = rows - RECENT_KEPT if last else rows  # the data's last lines all become history points
    done = parsed = 0  # rows folded into the state; rows the parser has seen
    for g in compress(range(len(gaps)), gaps):  # the non-empty gaps: text between matched lines
        if g > parsed:
            end_block(iters[g - 1])
            parsed = g
        events = between(gaps[g])
        if events:
            if g > done:
                state.extend_iterations(iters[done:g], dts[done:g], partial(event, done), dense - done)
                done = g
            for e in events:
                apply(e)
    if rows > done:
        state.extend_iterations(iters[done:], dts[done:], partial(event, done), dense - done)
    if rows > parsed:
        end_block(iters[-1])
    return rows


def _split(line: BulkLine, block: str | bytes) -> list[Any] | None:
    """The block split by the line's pattern, or None when it holds the text that makes it unsafe."""
    if isinstance(block, bytes):
        return None if line.unsafe is not None and line.unsafe.encode() in block else line.pattern.split(block)
    return None if line.unsafe is not None and line.unsafe in block else line.text.split(block)
