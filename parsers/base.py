"""What every format parser shares: the protocol, number parsing, tracebacks and fatal lines."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from parsers.events import ErrorEvent, Event, Iteration, Notice
from parsers.text import clean_segments

NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+|nan|NaN|inf|Inf)"
INT = r"\d{1,18}"
"""A step or count: bounded, since int() refuses more than 4300 digits and no real count has 19."""


class Parser(Protocol):
    """Turns logical lines (already cleaned) into events. Stateful only for multi-line constructs.

    Besides `parse`, the core reads what the format itself knows: the script's `defaults` for settings
    a log may not print, whether its step numbers are `zero_based` (nanoGPT's `iter N` is step N+1 of a
    0..max_iters loop; llm.c's `step N/M` counts steps done), and `bulk`, its plain iteration line, which
    lets a log read on attach be matched a block at a time (monitor.model.bulk), after which
    `end_block(last_iter)` tells the parser what the lines read that way would have.
    """

    name: str

    @property
    def defaults(self) -> Mapping[str, object]: ...

    @property
    def zero_based(self) -> bool: ...

    @property
    def bulk(self) -> BulkLine | None: ...

    def parse(self, line: str) -> list[Event]: ...

    def end_block(self, last_iter: int) -> None: ...


class FormatDefaults:
    """What a format without defaults, bulk reading or 0-based steps declares: a base for parsers."""

    defaults: Mapping[str, object] = MappingProxyType({})
    zero_based = False
    bulk: BulkLine | None = None

    def end_block(self, last_iter: int) -> None:
        """No multi-line state spans a run of iteration lines."""


PLAIN = r"[0-9]+\.?[0-9]*"
"""A plain decimal for BulkLine patterns: float() reads it as to_float() does; never nan or inf."""


@dataclass(frozen=True)
class BulkLine:
    """A format's ordinary iteration line, for reading long runs of them at once (monitor.model.bulk).

    `source` matches one whole line, its newline included (compiled with MULTILINE for bytes and for
    text); group `iter` is the iteration (at most 18 digits, as INT), group `ms` its duration in
    milliseconds (PLAIN), and `event` turns the groups (as text) into the Iteration the parser gives for
    that line. A line it matches must
    be one the parser turns into exactly that event with a finite loss, changing nothing in the parser
    but what its `end_block(last_iter)` sets, unless the text read holds `unsafe` (a line that makes the
    parser take the next one as something else): such text is read line by line.
    """

    source: str
    iter: int
    ms: int
    event: Callable[..., Iteration]
    unsafe: str | None = None
    pattern: re.Pattern[bytes] = field(init=False)
    text: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(self.source.encode(), re.M))
        object.__setattr__(self, "text", re.compile(self.source, re.M | re.ASCII))


def feed(parser: Parser, raw: str) -> list[Event]:
    """Clean one physical line and hand each logical segment to the parser."""
    out: list[Event] = []
    for segment in clean_segments(raw):
        if segment:
            out.extend(parser.parse(segment))
    return out


def to_float(text: str | None) -> float | None:
    """A printed number; nan and inf stay as such (a NaN loss is information), garbage is None."""
    if text is None:
        return None
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def to_int(text: str | None) -> int | None:
    """A printed whole number, thousands separators allowed (`21,400`); anything else is None.

    Over 18 digits is None too: no real count is that large, and the state converts counts to float."""
    if text is None:
        return None
    digits = text.replace(",", "")
    if len(digits.lstrip("+-")) > 18:
        return None
    try:
        return int(digits)
    except ValueError:
        return None


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


_TRACEBACK = "Traceback (most recent call last):"
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Failure|Failed))(?:: ?(.*))?$")
_WARNING = re.compile(r"(?:^|: )(\w*Warning): (.*)$")
_EXITCODE = re.compile(r"failed \(exitcode: (-?\d+)\)")
_SIGNALS = {-9: "SIGKILL", -15: "SIGTERM", -6: "SIGABRT", -11: "SIGSEGV", -2: "SIGINT"}
_SLURM_KILL = re.compile(
    r"slurmstepd(?:-\S+)?: error: \*\*\* (?:JOB|STEP) \S+ ON \S+ CANCELLED AT \S+(?: DUE TO ([A-Z ]+))?")
"""What slurmstepd writes into a job's output when Slurm ends it (src/slurmd/slurmstepd/req.c); newer
versions name the node after `slurmstepd-`."""
SLURM_ENDINGS = {None: "SlurmCancelled", "TIME LIMIT": "SlurmTimeLimit", "PREEMPTION": "SlurmPreempted",
                 "NODE FAILURE": "SlurmNodeFail"}


class Fatal:
    """Recognises tracebacks, kills and launcher failures, which look the same in every format.

    A traceback becomes one ErrorEvent at its final `Type: message` line.
    """

    def __init__(self) -> None:
        self.in_traceback = False

    def parse(self, line: str) -> list[Event] | None:
        """Events for a line that belongs to an error or warning; None when it is not such a line."""
        if line.startswith(_TRACEBACK) or line.endswith(_TRACEBACK):
            self.in_traceback = True
            return []
        if self.in_traceback:
            if line[:1] in (" ", "\t") or not line:
                return []
            m = _EXC_LINE.match(line)
            if m:
                self.in_traceback = False
                return [ErrorEvent(m.group(1).rsplit(".", 1)[-1], (m.group(2) or "").strip())]
            if line.startswith(("During handling", "The above exception")):
                return []
        if "CUDA out of memory" in line or line.startswith("torch.OutOfMemoryError"):
            return [ErrorEvent("OutOfMemoryError", line.split(": ", 1)[-1])]
        if line == "Killed" or line.endswith(" Killed"):
            return [ErrorEvent("Killed", "process killed (SIGKILL; often the kernel's OOM killer)")]
        if "slurmstepd" in line:
            slurm = _slurm(line)
            if slurm is not None:
                return slurm
        if "Watchdog caught collective operation timeout" in line:
            return [ErrorEvent("NCCLTimeout", line)]
        m = _EXITCODE.search(line)
        if m and "torch.distributed" in line or (m and "elastic" in line):
            code = int(m.group(1))
            sig = _SIGNALS.get(code)
            return [ErrorEvent("ChildFailedError", f"worker exited with code {code}" + (f" ({sig})" if sig else ""))]
        m = _WARNING.search(line) if "Warning: " in line else None  # the search backtracks over a long word
        if m and "Warning" in m.group(1):
            return [Notice("warning", f"{m.group(1)}: {m.group(2)}")]
        return None


def _slurm(line: str) -> list[Event] | None:
    """Slurm's word, in the job's own output, on how it ended the job: the time limit, a preemption, a
    node failure, an scancel, the cgroup's OOM killer; a requeue is not an end (the job runs again)."""
    said = line[line.index("slurmstepd"):]
    if "oom-kill event" in line:
        return [ErrorEvent("SlurmOutOfMemory", said)]
    m = _SLURM_KILL.search(line)
    if m is None:
        return None
    due = (m.group(1) or "").strip() or None
    if due == "JOB REQUEUE":
        return [Notice("warning", said)]
    return [ErrorEvent(SLURM_ENDINGS.get(due, "SlurmCancelled"), said)]
