"""Durations and human-readable numbers, written and read the way the CLI and views show them."""

from __future__ import annotations

import math
import re
import time

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    """`90s`, `10m`, `1h30m`, `2d`, or a bare number of seconds."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if t[pos:m.start()].strip():
            break
        total += float(m.group(1)) * _SECONDS[m.group(2)]
        pos = m.end()
    if pos == 0 or t[pos:].strip():
        raise ValueError(f"not a duration: {text!r} (write e.g. 90s, 10m, 1h30m)")
    return total


def duration(seconds: float | None) -> str:
    """`3h 12m`, `4m 05s`, `12s`, `2d 3h`; `—` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(round(max(0.0, seconds)))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def clock(stamp: float | None, now: float) -> str:
    """Local clock time of `stamp`, with the day when it is not today: `09:40`, `09:40 tomorrow`, `Mon 28 Nov 09:40`."""
    if stamp is None:
        return "—"
    try:
        t, n = time.localtime(stamp), time.localtime(now)
    except (ValueError, OverflowError, OSError):  # NaN, or past what time_t can hold
        return "—"
    hm = time.strftime("%H:%M", t)
    days = (time.mktime(t[:3] + (0, 0, 0) + t[6:]) - time.mktime(n[:3] + (0, 0, 0) + n[6:])) / 86400
    if round(days) == 0:
        return hm
    if round(days) == 1:
        return f"{hm} tomorrow"
    return time.strftime("%a %d %b %H:%M", t)


def human(value: float | None, unit: str = "", base: float = 1000.0) -> str:
    """1.23 k, 4.56 M, … with SI prefixes up to Z; `—` when unknown."""
    if value is None:
        return "—"
    prefixes = ["", "k", "M", "G", "T", "P", "E", "Z", "Y"]
    v = float(value)
    i = 0
    while abs(v) >= base and i < len(prefixes) - 1:
        v /= base
        i += 1
    digits = 0 if abs(v) >= 100 or (i == 0 and v == int(v)) else (1 if abs(v) >= 10 else 2)
    return f"{v:.{digits}f} {prefixes[i]}{unit}".rstrip()


def printable(text: str) -> str:
    """`text` safe for a terminal and valid UTF-8: control characters (escapes, newlines, C0 and C1, bidi
    and other format characters) written as `\\x1b`-style escapes, and the bytes of a name that was not
    UTF-8 (decoded by the OS as lone surrogates) as `\\xe9`.

    File names and anything else from outside reach stdout, stderr, logs, notifications and metric
    labels through this, never raw.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    if "\udc80" <= c <= "\udcff":  # os.fsdecode's surrogateescape: the original byte
        return f"\\x{ord(c) - 0xDC00:02x}"
    return repr(c)[1:-1]
