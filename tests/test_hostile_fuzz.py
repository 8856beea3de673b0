"""No input makes a parser, the config reader, or the whole path from a file to every exporter raise
(property tests; the parsers get 10,000+ examples in CI)."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tui_screen import screen_text

from exporters import report
from exporters.prometheus import TrainwatchCollector
from exporters.tui.app import TrainwatchApp
from monitor.alerts.rules import AlertConfig, AlertMemory, evaluate
from monitor.daemon.config import Config, load_config, sources
from monitor.daemon.writer import Monitor
from monitor.errors import TrainwatchError
from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from monitor.snapshot import Snapshot
from parsers.detect import make_parser
from parsers.pyconfig import literal_value, parse_assignment

EXAMPLES = 10_000 if os.environ.get("CI") else 500
pytestmark = pytest.mark.slow  # in CI: a minute each
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


# ---- the whole path: a log, its file and a config → ingest → forecast → snapshot → every exporter ----
# Each example is a real file followed by the real writer (backfill, then lines arriving live), read by
# every exporter: the report's text (no control character) and JSON (strict: no NaN, no inf), the alert
# rules, the Prometheus exposition (parsed back, and accepted by `promtool check metrics`), and the TUI
# under Pilot. CI runs a fixed, modest number of examples in a fixed order (derandomized: not flaky);
# TRAINWATCH_FUZZ_EXAMPLES=N runs a longer pass (bench/README.md has what one found).

WHOLE_EXAMPLES = int(os.environ.get("TRAINWATCH_FUZZ_EXAMPLES", "40"))
WHOLE = settings(max_examples=WHOLE_EXAMPLES, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

NUMBER = st.one_of(
    st.sampled_from(["0", "-0", "1", "0.5", "1e-320", "5e-324", "1e20", "1e308", "1e309", "-1e309", "nan", "NaN",
                     "inf", "-inf", "9" * 30, "10**29", "1_000", "0x10", "", "-5", "3.0"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)
STEP = st.one_of(st.integers(min_value=0, max_value=300), st.sampled_from([10**15, 10**18 - 1, 10**19]))
SETTING = st.sampled_from(["max_iters", "eval_interval", "log_interval", "batch_size", "block_size",
                           "gradient_accumulation_steps", "n_layer", "n_head", "n_embd", "eval_iters"])


@st.composite
def log_line(draw: st.DrawFn) -> str:
    kind = draw(st.integers(min_value=0, max_value=7))
    i, x, y = draw(STEP), draw(NUMBER), draw(NUMBER)
    if kind <= 2:  # the line that matters most, most often
        return f"iter {i}: loss {x}, time {y}ms, mfu {draw(NUMBER)}%"
    if kind == 3:
        return f"step {i}: train loss {x}, val loss {y}"
    if kind == 4:
        return f"Overriding: {draw(SETTING)} = {x}"
    if kind == 5:
        return f"step:{i}/{draw(STEP)} train_loss:{x} train_time:{y}ms step_avg:{draw(NUMBER)}ms"
    if kind == 6:
        return f"step {i:5d}/{draw(STEP)} | loss {x} | norm 1.0 | lr 1e-4 | {y} ms | 30.0% bf16 MFU | {x} tok/s"
    return draw(TEXT)


LOG = st.lists(log_line(), max_size=40)
HEAD = st.sampled_from(["", "Overriding config with config/x.py:\n", "number of parameters: 10.00M\n",
                        "tokens per iteration will be: 16,384\n"])
FILE_NAME = st.binary(min_size=1, max_size=24).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..", b".cfg"))
FILE_KIND = st.sampled_from(["text", "text", "text", "empty", "fifo", "directory", "binary", "missing"])
CONFIG_VALUE = st.one_of(NUMBER, NUMBER.map(lambda n: f'"{n}s"'), st.sampled_from(
    ["true", "[5]", "[1]", '["x"]', "[]", '"99999999999d"', "{ a = 1 }", '"0s"', "[[[]]]"]))
CONFIG_KEY = st.sampled_from(["max_iters", "tokens_per_iter", "eval_interval", "dataset_tokens", "power_watts",
                              "price_per_kwh", "poll_interval", "publish_interval", "notify_before", "keep_finished",
                              "max_runs", "peak_flops", "gpu", "notify_milestones", "labels"])
CONFIG = st.lists(st.tuples(CONFIG_KEY, CONFIG_VALUE), max_size=4, unique_by=lambda kv: kv[0])


def make_file(path: str, kind: str, text: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        os.mkdir(path)
    elif kind == "binary":
        with open(path, "wb") as fh:
            fh.write(bytes(range(256)) * 64)
    elif kind != "missing":
        with open(path, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(text if kind == "text" else "")


def check_exporters(snaps: tuple[Snapshot, ...], now: float) -> str:
    """Every exporter's output for these snapshots is valid; returns the Prometheus exposition."""
    for s in snaps:
        text = report.to_text(s)
        assert not CONTROL.search(text), text
        json.loads(report.to_json(s), parse_constant=_refuse)
    _, alerts = evaluate(AlertMemory(), snaps, now, AlertConfig(milestones=(0.5,)), quiet=False)
    for a in alerts:
        assert not CONTROL.search(a.title + a.body), a
        (a.title + a.body).encode("utf-8")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainwatchCollector(lambda: snaps, version="fuzz"))
    exposition = generate_latest(registry).decode("utf-8")
    list(text_string_to_metric_families(exposition))
    return exposition


def _refuse(name: str) -> None:
    raise AssertionError(f"not strict JSON: {name}")


def promtool_accepts(exposition: str) -> None:
    if shutil.which("promtool") is None:
        return
    r = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def follow(directory: str, name: bytes, kind: str, head: str, log: list[str], config: list[tuple[str, str]]
           ) -> tuple[tuple[Snapshot, ...], float]:
    """The file made, the config read (a bad one is one error naming its key), the log followed: its first
    half read on attach, the rest arriving live."""
    path = os.path.join(directory, os.fsdecode(name))
    half = len(log) // 2
    make_file(path, kind, head + "".join(ln + "\n" for ln in log[:half]))
    os.mkdir(os.path.join(directory, ".cfg"))
    cfg_path = os.path.join(directory, ".cfg", "config.toml")
    with open(cfg_path, "w") as fh:
        fh.write("".join(f"{k} = {v}\n" for k, v in config))
    try:
        cfg = load_config(cfg_path)
    except TrainwatchError as e:
        assert "\n" not in str(e) and str(e).startswith(cfg_path), str(e)
        cfg = Config()
    clock = [1.8e9]
    mon = Monitor(sources=sources(cfg, [path], {}), poll_interval=0.05, force_poll=True, clock=lambda: clock[0])
    try:
        for _ in range(50):
            mon.step()
            if not mon.busy():
                break
        if kind == "text":
            with open(path, "a", encoding="utf-8", errors="surrogateescape") as fh:
                fh.write("".join(ln + "\n" for ln in log[half:]))
        for _ in range(3):
            clock[0] += 30.0  # time passes: republish, stalls, settled runs
            mon.step()
        return mon.snapshots(), clock[0]
    finally:
        mon.stop()


@WHOLE
@given(name=FILE_NAME, kind=FILE_KIND, head=HEAD, log=LOG, config=CONFIG)
def test_the_whole_path_never_raises_and_every_output_is_valid(name: bytes, kind: str, head: str, log: list[str],
                                                               config: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="tw-fuzz-") as d:
        snaps, now = follow(d, name, kind, head, log, config)
    # A directory is its *.log files (here none); a name that does not exist and holds glob characters
    # (`[`) is a glob that matches nothing yet.
    as_glob = kind == "directory" or kind == "missing" and glob.has_magic(os.fsdecode(name))
    assert len(snaps) == (0 if as_glob else 1)
    for text in (t for s in snaps for t in (s.run, s.log, s.problem or "")):
        assert not CONTROL.search(text)
        text.encode("utf-8")
    promtool_accepts(check_exporters(snaps, now))


@settings(max_examples=max(4, WHOLE_EXAMPLES // 8), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=FILE_NAME, head=HEAD, log=LOG)
def test_the_terminal_view_shows_any_run(name: bytes, head: str, log: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="tw-fuzz-") as d:
        snaps, now = follow(d, name, "text", head, log, [])

    async def show() -> str:
        app = TrainwatchApp(lambda: snaps, clock=lambda: now)
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await pilot.press("l")  # log-scale loss: the other way to draw the chart
            await pilot.pause()
            return screen_text(app)

    screen = asyncio.run(show())
    assert "\x1b" not in screen and "chart not drawn" not in screen  # the charts' boundary stayed unused
