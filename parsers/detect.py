"""Choosing the parser for a log: forced by name, or detected from its first lines."""

from __future__ import annotations

import re
from collections.abc import Callable

from parsers.auto import AutoParser
from parsers.base import Parser
from parsers.hf import HfParser
from parsers.llmc import LlmcParser
from parsers.modded import ModdedParser
from parsers.nanochat import NanochatParser
from parsers.nanogpt import NanoGptParser
from parsers.text import clean_segments

PARSERS: dict[str, Callable[[], Parser]] = {
    "nanogpt": NanoGptParser,
    "llmc": LlmcParser,
    "modded": ModdedParser,
    "nanochat": NanochatParser,
    "hf": HfParser,
}
AUTO = "auto"
AUTO_ORDER = ("llmc", "modded", "nanochat", "hf", "nanogpt")
"""Who answers a line several formats claim, in AutoParser: the most specific formats first."""

# Per format: lines that only its progress output looks like, and startup lines that name it.
# Loose on purpose (detection, not parsing); checked against every log of the corpus.
_PROGRESS: dict[str, re.Pattern[str]] = {
    "llmc": re.compile(r"^step\s+\d+/\d+\s*[|:]\s*(?:train )?loss\s|^s:\d+ t[er]l:"),
    "modded": re.compile(r"^step:\d+/\d+ (?:val_loss|train_loss|train_time):"),
    "nanochat": re.compile(r"^step \d+(?:/\d+)? \([\d.]+%\) \| loss:"
                           r"|^Step \d+(?:/\d+)? \| (?:Validation|Training loss)"),
    "hf": re.compile(r"^\s*\{'(?:loss|eval_loss|train_runtime)':"),
    "nanogpt": re.compile(r"iter \d+: loss |^step \d+(?:, tokens [\d,]+)?: train loss "),
}
_BANNERS: dict[str, re.Pattern[str]] = {
    "llmc": re.compile(r"^\| Parameter\s+\| Value\s+\|$|^\| train_num_batches\s+\||^Multi-GPU support is disabled"),
    "modded": re.compile(r"^Running (?:Python \d|PyTorch \S+ compiled for|pytorch \S+ compiled for)"),
    "nanochat": re.compile(r"nanochat"),
    "hf": re.compile(r"\*\*\*\*\* Running training \*\*\*\*\*"),
    "nanogpt": re.compile(r"^(?:Overriding config with |tokens per iteration will be|Initializing a new model from"
                          r" scratch|Resuming training from |Initializing from OpenAI GPT-2 weights)"),
}


def make_parser(name: str | None, head: str = "") -> Parser:
    """The parser `name` names (`auto` included), or the one the head of the log shows.

    A head that shows no format, or several, gets an AutoParser that follows the log as it goes
    (reading as nanoGPT until a line says otherwise).
    """
    if name == AUTO:
        return auto_parser()
    if name:
        try:
            return PARSERS[name]()
        except KeyError:
            known = ", ".join(sorted([*PARSERS, AUTO]))
            raise ValueError(f"unknown format {name!r}; known: {known}") from None
    found = detect(head)
    return PARSERS[found]() if found else auto_parser()


def formats_tried(parser: Parser) -> tuple[str, ...]:
    """The formats `parser` reads lines as: every format for an AutoParser, else its own."""
    return tuple(getattr(parser, "formats", (parser.name,)))


def auto_parser() -> AutoParser:
    return AutoParser([PARSERS[n]() for n in AUTO_ORDER], fallback=NanoGptParser())


def detect(head: str) -> str | None:
    """The one format whose progress lines (or else startup lines) the head shows; None if none or several."""
    progress: set[str] = set()
    banners: set[str] = set()
    for raw in head.split("\n"):
        for segment in clean_segments(raw):
            for fmt, pattern in _PROGRESS.items():
                if pattern.search(segment):
                    progress.add(fmt)
            if not progress:
                banners.update(fmt for fmt, pattern in _BANNERS.items() if pattern.search(segment))
    if progress:
        return progress.pop() if len(progress) == 1 else None
    return banners.pop() if len(banners) == 1 else None
