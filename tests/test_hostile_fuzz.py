"""No input makes a parser or the config reader raise (property tests; 10,000+ examples in CI)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from parsers.detect import make_parser
from parsers.pyconfig import literal_value, parse_assignment

EXAMPLES = 10_000 if os.environ.get("CI") else 500
PROFILE = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text biased towards what the parsers look for, so the fuzzer reaches their branches.
FRAGMENTS = st.sampled_from([
    "iter ", "step ", ": loss ", ", time ", "ms", ", mfu ", "%", "nan", "inf", "-100.00", "1e309", "train loss ",
    ", val loss ", "Traceback (most recent call last):", "Error: ", "Overriding config with x.py:", "Overriding: ",
    " = ", "tokens per iteration will be: ", "number of parameters: ", "M", "\r", "\x1b[31m", "\x1b]0;t\x07",
    "\x00", "\ufffd", "saving checkpoint to ", "Resuming training from ", "[bold red]", "9**9**9", "(", ")",
])
TEXT = st.lists(st.one_of(FRAGMENTS, st.text(max_size=20), st.integers().map(str)), max_size=12).map("".join)


@PROFILE
@given(st.lists(TEXT, max_size=20))
def test_parser_and_state_never_raise(lines: list[str]) -> None:
    parser = make_parser("nanogpt")
    ingest = Ingest(parser, RunState())
    ingest.feed_lines(lines, None)
    ingest.feed_lines(lines, 1.0)


@PROFILE
@given(TEXT)
def test_config_reader_never_raises(text: str) -> None:
    literal_value(text)
    parse_assignment("k = " + text)


@settings(max_examples=EXAMPLES // 10, deadline=None)
@given(st.binary(max_size=2048))
def test_bytes_never_raise(data: bytes) -> None:
    from monitor.follow.lines import LineSplitter

    splitter = LineSplitter()
    ingest = Ingest(make_parser("nanogpt"), RunState())
    ingest.feed_lines(splitter.feed(data), None)
    tail = splitter.flush()
    if tail is not None:
        ingest.feed_lines([tail], None)
