"""Following a log whose format is not known, or changes inside it (a speedrun's shell output, then its
training script; one run appended after another of a different kind)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from parsers.base import FormatDefaults, Parser
from parsers.events import ConfigValue, Eval, Event, Iteration, RunStart

_TAKES_OVER = (Iteration, Eval, RunStart)
PENDING_MAX = 256
"""Config values a silent parser keeps for when it takes over (a config block is far shorter)."""


class AutoParser(FormatDefaults):
    """Runs every format's parser on every line and answers with the format the log currently speaks.

    A parser takes over when it recognises progress (Iteration, Eval) or the start of a run (RunStart)
    on a line and the current one does not. Until one has, a line's events come from the first parser,
    in order, that has any. Every parser keeps seeing every line, so their multi-line state
    (tracebacks, config tables) stays right whichever one answers, and the config values a parser
    read while another was answering (a config block printed before its run's first banner) are
    delivered when it takes over. `name`, `defaults` and `zero_based` are those of the answering parser, or of
    `fallback` before any has taken over.
    """

    def __init__(self, parsers: Sequence[Parser], fallback: Parser) -> None:
        self._parsers = list(parsers)
        self._pending: list[deque[Event]] = [deque(maxlen=PENDING_MAX) for _ in self._parsers]
        self._current: int | None = None
        self.formats = tuple(p.name for p in self._parsers)  # what a line is tried as
        self.name = fallback.name
        self.defaults = fallback.defaults
        self.zero_based = fallback.zero_based

    def parse(self, line: str) -> list[Event]:
        results = [p.parse(line) for p in self._parsers]
        chosen, events = self._answer(results)
        for i, others in enumerate(results):
            if i != chosen:
                self._pending[i].extend(e for e in others if isinstance(e, ConfigValue))
        return events

    def _answer(self, results: list[list[Event]]) -> tuple[int | None, list[Event]]:
        current = self._current
        if current is not None and _takes_over(results[current]):
            return current, results[current]
        for i, events in enumerate(results):
            if i != current and _takes_over(events):
                return i, self._switch(i, events)
        if current is not None:
            return current, results[current]
        return next(((i, events) for i, events in enumerate(results) if events), (None, []))

    def _switch(self, index: int, events: list[Event]) -> list[Event]:
        previous, parser = self._current, self._parsers[index]
        self._current, self.name = index, parser.name
        self.defaults, self.zero_based = parser.defaults, parser.zero_based
        out: list[Event] = []
        if previous is not None and not any(isinstance(e, RunStart) for e in events):
            # another format's counter starts over: the state must open a new segment
            out.append(RunStart("unknown", f"{parser.name} log follows"))
        out.extend(self._pending[index])
        self._pending[index].clear()
        return out + events


def _takes_over(events: list[Event]) -> bool:
    return any(isinstance(e, _TAKES_OVER) for e in events)
