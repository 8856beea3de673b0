"""Cleaning raw log text before matching: escape sequences, carriage returns, over-long lines."""

from __future__ import annotations

import re

MAX_LINE_CHARS = 64 * 1024
"""Longer lines are cut: no real metric line is near this, and a 100 MB line must not be kept whole."""
MAX_LINE_BYTES = MAX_LINE_CHARS * 4  # a UTF-8 char is at most 4 bytes

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-byte escapes, and C1 CSI (0x9b).
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[@-Z\\-_]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_segments(line: str) -> list[str]:
    """Split one physical line into the logical lines a terminal would show.

    tqdm and llm.c separate states with `\\r`; the text after the last `\\r` is what a terminal shows,
    but a real line can follow a bar after a `\\r` with no newline, so every segment is kept.
    """
    if len(line) > MAX_LINE_CHARS:
        line = line[:MAX_LINE_CHARS]
    if "\x1b" in line or "\x9b" in line:
        line = _ESCAPES.sub("", line)
    if "\r" in line:
        parts = [_clean(p) for p in line.split("\r")]
        return [p for p in parts if p]
    return [_clean(line)]


def _clean(segment: str) -> str:
    if _CONTROL.search(segment):
        segment = _CONTROL.sub("", segment)
    return segment.rstrip()


def decode_lines(body: bytes) -> list[str]:
    """Lines of `body` (newlines between them, none at its end), decoded as monitor.follow.lines.LineSplitter does."""
    text = body.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(body) > MAX_LINE_BYTES and max(map(len, lines)) > MAX_LINE_BYTES:
        lines = [ln[:MAX_LINE_BYTES] for ln in lines]
    if "\r\n" in text:  # CRLF line ends (screen logs)
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    return lines
