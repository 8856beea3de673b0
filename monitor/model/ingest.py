"""Lines to state: timestamp prefixes, the parser, and the counters every view shows."""

from __future__ import annotations

import re

from monitor.model import bulk
from monitor.model.state import RunState
from parsers.base import Parser
from parsers.text import clean_segments
from parsers.timestamps import TimestampParser, detect_prefix

BULK_MIN_LINES = 256
"""Batches this large read on attach go through monitor.model.bulk; smaller ones are not worth it."""

_PROGRESS_LIKE = re.compile(r"^(?:iter \d+:|step[ :]?\d+)")


class Ingest:
    """Feeds one log's lines into its parser and run state, in order; owned by one writer."""

    def __init__(self, parser: Parser, state: RunState) -> None:
        self.parser = parser
        self.state = state
        state.zero_based = parser.zero_based  # how its steps count is the format's to say
        self.lines = 0
        self.parse_errors = 0  # lines that look like progress but no event came of them
        self.failures = 0  # lines whose parsing or folding raised: a bug, skipped so the run goes on
        self.failure: str | None = None  # the last such exception, in one line
        self._stamp: TimestampParser | None = None
        self._stamp_decided = False

    @property
    def timestamped(self) -> bool | None:
        """Whether the log's lines carry a timestamp prefix; None until the first lines decided it."""
        return self._stamp is not None if self._stamp_decided else None

    def feed_lines(self, lines: list[str], arrival: float | None) -> None:
        """`arrival` is when these lines were read live, None when read on attach (backfill)."""
        self._decide(lines)
        fields = self.parser.iter_fields
        if arrival is None and fields is not None and self._stamp is None and len(lines) >= BULK_MIN_LINES:
            folded = bulk.feed_text(self.state, "\n".join(lines) + "\n", fields, self._slow, self.parser.end_block)
            self.lines += folded  # after the call: `_slow` counted the other lines meanwhile
        else:
            self._slow(lines, arrival)
        if self.state.format != self.parser.name:  # an AutoParser switched format
            self.state.format = self.parser.name
            self.state.defaults = dict(self.parser.defaults)
            self.state.zero_based = self.parser.zero_based

    def stamp_of(self, raw: str) -> float | None:
        """The time in `raw`'s timestamp prefix; None when the log's lines carry none (or this one is garbled)."""
        self._decide([raw])
        hit = self._stamp(raw) if self._stamp is not None else None
        return hit[0] if hit is not None else None

    def _decide(self, lines: list[str]) -> None:
        """The first lines with text decide, once, whether the log carries timestamp prefixes."""
        if not self._stamp_decided and any(ln.strip() for ln in lines):
            self._stamp = detect_prefix(lines)
            self._stamp_decided = True
            if self._stamp is not None:
                self.state.use_timestamps()

    def _slow(self, lines: list[str], arrival: float | None = None) -> None:
        for raw in lines:
            self.feed(raw, arrival)

    def feed(self, raw: str, arrival: float | None) -> None:
        self.lines += 1
        at = arrival
        if self._stamp is not None:
            hit = self._stamp(raw)
            if hit is not None:
                at, raw = hit
            elif at is None:
                at = self.state.last_wall  # a line whose stamp is garbled: as late as the last one
        state, parser = self.state, self.parser
        for segment in clean_segments(raw):
            if not segment:
                continue
            try:
                events = parser.parse(segment)
                for event in events:
                    state.apply(event, at)
            except Exception as e:  # the line's own boundary: the lines after it still count
                self.failures += 1
                self.failure = f"{type(e).__name__}: {e}"
                continue
            if not events and _PROGRESS_LIKE.match(segment):
                self.parse_errors += 1
