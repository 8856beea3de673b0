"""Lines to state: timestamp prefixes, the parser, and the counters every view shows."""

from __future__ import annotations

import re

from monitor.model import bulk
from monitor.model.state import RunState
from parsers.base import BulkLine, Parser
from parsers.events import Event
from parsers.text import clean_segments, decode_lines
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
        spec = self._bulk_line()
        if arrival is None and spec is not None and len(lines) >= BULK_MIN_LINES:
            self._feed_bulk("\n".join(lines) + "\n", spec)
        else:
            for raw in lines:
                self.feed(raw, arrival)
        self._follow_format()

    def feed_block(self, block: bytes) -> None:
        """Whole lines read on attach, as the file holds them (each ending in a newline): the bulk path
        straight from bytes, once the first lines have decided the timestamp question."""
        spec = self._bulk_line() if self._stamp_decided else None
        if spec is None:
            self.feed_lines(decode_lines(block[:-1]) if block else [], None)
            return
        self._feed_bulk(block, spec)
        self._follow_format()

    def _bulk_line(self) -> BulkLine | None:
        """The parser's plain iteration line, when bulk reading is possible (no timestamps to read)."""
        return self.parser.bulk if self._stamp is None else None

    def _feed_bulk(self, data: str | bytes, spec: BulkLine) -> None:
        end_block = self.parser.end_block
        if isinstance(data, bytes):
            folded = bulk.feed(self.state, data, spec, lambda text: self._events_of(decode_lines(text[:-1])),
                               end_block, self._apply)
        else:
            folded = bulk.feed(self.state, data, spec, lambda text: self._events_of(text[:-1].split("\n")),
                               end_block, self._apply)
        self.lines += folded  # after the call: the lines between were counted meanwhile

    def _follow_format(self) -> None:
        if self.state.format != self.parser.name:  # an AutoParser switched format
            self.state.use_format(self.parser.name, self.parser.defaults, self.parser.zero_based)

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

    def _events_of(self, lines: list[str]) -> list[Event]:
        """The events of lines read on attach without timestamps (each counted), not yet applied."""
        out: list[Event] = []
        for raw in lines:
            out += self._events(raw)
        return out

    def feed(self, raw: str, arrival: float | None) -> None:
        at = arrival
        if self._stamp is not None:
            hit = self._stamp(raw)
            if hit is not None:
                at, raw = hit
            elif at is None:
                at = self.state.last_wall  # a line whose stamp is garbled: as late as the last one
        for event in self._events(raw):
            self._apply(event, at)

    def _events(self, raw: str) -> list[Event]:
        self.lines += 1
        out: list[Event] = []
        for segment in clean_segments(raw):
            if not segment:
                continue
            try:
                events = self.parser.parse(segment)
            except Exception as e:  # the line's own boundary: the lines after it still count
                self._failed(e)
                continue
            out += events
            if not events and _PROGRESS_LIKE.match(segment):
                self.parse_errors += 1
        return out

    def _apply(self, event: Event, at: float | None = None) -> None:
        try:
            self.state.apply(event, at)
        except Exception as e:  # the event's own boundary: the ones after it still count
            self._failed(e)

    def _failed(self, e: Exception) -> None:
        self.failures += 1
        self.failure = f"{type(e).__name__}: {e}"
