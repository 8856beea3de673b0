"""Backfill in bulk: runs of plain iteration lines folded in one go instead of line by line.

A log written with log_interval 1 is almost all `iter N: …` lines. Read on attach, they carry no
arrival time, and the state needs from them only sums (the training clock, eval overhead), the last
point, a few recent durations and a thinned history for charts. So a run of such lines is matched
with one regex over the whole text, its numbers summed in C (`map`, `sum`, `accumulate`), and only
every k-th line becomes a history point. Lines that need judgement — eval iterations, outliers,
non-finite losses, anything with escapes or carriage returns — go through the ordinary line path,
so the result matches it (to within the filler estimate for unprinted iterations).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate

from monitor.model.state import OUTLIER_FACTOR, RunState
from monitor.snapshot import IterPoint

RUN = re.compile(r"(?:^iter [^\n]*\n)+", re.M)
MIN_RUN = 16
POINTS_PER_RUN = 32


def feed_text(state: RunState, text: str, fields: re.Pattern[str],
              slow: Callable[[list[str]], None], after: Callable[[], None]) -> int:
    """Fold `text` (complete lines, each ending in a newline): runs of iteration lines in bulk (parsed
    with `fields`, the format's iteration regex), everything else through `slow`; `after` runs after
    every bulk run (the parser leaves any multi-line state an iteration line ends). Returns the number of
    lines folded in bulk (the others were counted by `slow`)."""
    pos = folded = 0
    for m in RUN.finditer(text):
        if m.start() > pos:
            slow(text[pos:m.start()].split("\n")[:-1])
        block = m.group()
        rows = fields.findall(block) if "\r" not in block and "\x1b" not in block else []
        done = _fold(state, rows, slow, block) if len(rows) >= MIN_RUN and len(rows) == block.count("\n") else None
        if done is None:
            slow(block.split("\n")[:-1])
        else:
            after()
            folded += done
        pos = m.end()
    if pos < len(text):
        slow(text[pos:].split("\n")[:-1])
    return folded


def _fold(state: RunState, rows: list[tuple[str, ...]], slow: Callable[[list[str]], None],
          block: str) -> int | None:
    """Apply `rows` (iter, loss, ms, mfu as text): how many went in bulk (the rest went through `slow`),
    or None when none could and the whole block needs the line path."""
    # "iter", "loss", "time", "ms", "mfu" have no n: an n is a nan/inf loss (or a fork's suffix)
    prev, typical = state.last, state.typical_dt()
    if (prev is None or typical is None or state.time_axis != "reconstructed" or not state.segments
            or prev.segment != state.segments[-1].index or "n" in block or "N" in block):
        return None
    first, last, n = int(rows[0][0]), int(rows[-1][0]), len(rows)
    step = (last - first) // (n - 1)
    if first <= prev.iter or step <= 0 or [r[0] for r in rows] != [str(i) for i in range(first, last + 1, step)]:
        return None
    try:
        ms = list(map(float, [r[2] for r in rows]))
    except ValueError:  # the loose bulk pattern let something odd through: the line path decides
        return None
    interval = int(state.number("eval_interval") or 0)
    limit = OUTLIER_FACTOR * typical * 1000
    special = [j for j, d in enumerate(ms) if d > limit or (interval > 0 and (first + j * step) % interval == 0)]
    lines: list[str] = []
    start = folded = 0
    for j in [*special, n]:
        if j > start:
            try:
                _stretch(state, rows[start:j], ms[start:j], step)
                folded += j - start
            except ValueError:  # a number the loose pattern let through: the line path decides
                lines = lines or block.split("\n")
                slow(lines[start:j])
        if j < n:
            lines = lines or block.split("\n")
            slow([lines[j]])
        start = j + 1
    return folded


def _stretch(state: RunState, rows: list[tuple[str, ...]], ms: list[float], step: int) -> None:
    """Evenly spaced, ordinary iterations right after `state.last` in its segment."""
    prev = state.last
    assert prev is not None
    seg = state.segments[-1]
    typical = state.typical_dt() or 0.0
    first = int(rows[0][0])
    lead = (first - prev.iter - 1) * typical  # unprinted iterations before the first row
    fill = (step - 1) * typical  # … and between rows
    clock0 = state.clock_s
    elapsed = list(accumulate(ms))
    n = len(rows)
    keep = max(1, n // POINTS_PER_RUN)
    points = []
    for j in [*range(keep - 1, n - 1, keep), n - 1]:
        it, loss, _, mfu = rows[j][:4]
        mfu_v = float(mfu) / 100 if mfu and not mfu.startswith("-") else None
        t = clock0 + lead + elapsed[j] / 1000 + j * fill
        points.append(IterPoint(int(it), float(loss), ms[j] / 1000, t, None, False, seg.index, None, mfu_v))
    for point in points:  # converted first: an odd number raises before the state changed
        state.iters.append(point)
    state.last = points[-1]
    state.clock_s = state.last.t
    state.recent_dt.extend(d / 1000 for d in ms[-(state.recent_dt.maxlen or n):])
    state.iteration_lines += n
    state.evaluating = False
    state.error = None
    state.nonfinite_since = None
    seg.last_iter = state.last.iter
