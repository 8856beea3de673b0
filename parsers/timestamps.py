"""Timestamp prefixes that tools such as moreutils `ts` put in front of each line.

Each recogniser returns (unix seconds, rest of the line) or None; `detect_prefix` picks the first that
matches, and the tailer keeps using it for the file so a line's text is never mistaken for a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

TimestampParser = Callable[[str], "tuple[float, str] | None"]

_EPOCH = re.compile(r"^(1[0-9]{9}(?:\.[0-9]+)?) ")
_ISO = re.compile(
    r"^\[?(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?\]? "
)
_SYSLOG = re.compile(r"^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ")
_MONTHS = {m: i + 1 for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))}


def epoch_prefix(line: str) -> tuple[float, str] | None:
    """`ts '%.s'`: `1764275588.123456 iter 10: ...`"""
    m = _EPOCH.match(line)
    return (float(m.group(1)), line[m.end():]) if m else None


def iso_prefix(line: str) -> tuple[float, str] | None:
    """`2026-11-27T20:33:08.123Z ...` or `2026-11-27 20:33:08,123 ...` (no zone: local time)."""
    m = _ISO.match(line)
    if not m:
        return None
    date, clock, frac, zone = m.groups()
    try:
        text = f"{date}T{clock}" + (_zone(zone) if zone else "")
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    stamp = dt.timestamp() + (float("0." + frac) if frac else 0.0)
    return stamp, line[m.end():]


def syslog_prefix(line: str, year: int | None = None) -> tuple[float, str] | None:
    """moreutils `ts` default: `Nov 27 20:33:08 ...` (local time; the year is not printed)."""
    m = _SYSLOG.match(line)
    if not m or m.group(1) not in _MONTHS:
        return None
    mon, day, hh, mm, ss, frac = m.groups()
    try:
        dt = datetime(year or datetime.now().year, _MONTHS[mon], int(day), int(hh), int(mm), int(ss))
    except ValueError:
        return None
    return dt.timestamp() + (float("0." + frac) if frac else 0.0), line[m.end():]


def _zone(zone: str) -> str:
    if zone == "Z":
        return "+00:00"
    return zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"


PREFIXES: tuple[TimestampParser, ...] = (epoch_prefix, iso_prefix, syslog_prefix)


def detect_prefix(lines: list[str]) -> TimestampParser | None:
    """The prefix format most of the non-empty sample lines carry, if more than half do."""
    sample = [ln for ln in lines if ln.strip()][:50]
    if not sample:
        return None
    best, best_hits = None, 0
    for parser in PREFIXES:
        hits = sum(1 for ln in sample if parser(ln) is not None)
        if hits > best_hits:
            best, best_hits = parser, hits
    return best if best_hits * 2 > len(sample) else None
