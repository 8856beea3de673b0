"""Hostile logs through the real entry points: `trainwatch report` in a child process, the Monitor, /metrics.

Every input must cost bounded time and memory and execute nothing. A usable one gives a report (exit 0)
whose text carries no terminal control bytes and whose JSON is strict; an unusable one gives exit 2 and
one line on stderr that says what is wrong, and the Monitor shows it as the follower's `problem`. The
inputs are generated in tmp_path at test time (the biggest is a 100 MB line). The TUI's handling of
markup has its own tests (test_tui_markup.py); the parsers' and config reader's are fuzzed in
test_hostile_fuzz.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from http_sink import Sink
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from tui_data import from_log
from tui_screen import screen_text

from exporters.notify import Notifier
from exporters.prometheus import TrainwatchCollector
from exporters.tui.app import TrainwatchApp
from monitor.alerts.pump import AlertPump
from monitor.alerts.rules import AlertConfig, AlertMemory, RunMemory, evaluate
from monitor.alerts.store import AlertStore
from monitor.daemon import config
from monitor.daemon.config import Config, load_config, sources
from monitor.daemon.writer import Monitor, RunSpec
from monitor.errors import TrainwatchError
from monitor.snapshot import Alert, Snapshot
from monitor.units import printable
from parsers.base import FormatDefaults
from parsers.detect import PARSERS
from parsers.events import Event

ROOT = Path(__file__).resolve().parents[1]
RSS_LIMIT_MB = 200  # the brief allowed 400; attaching to anything here peaks near 25–60 MB
CHILD_TIMEOUT_S = 120.0  # a hang guard, not a speed check: a healthy report takes well under a second
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what a terminal acts on (tab and newline aside)
MARKUP = "[bold red]x[/] [link=file:///etc/passwd]click[/link] [@click=app.quit]q[/]"
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;PWNED\x07 \x1b]8;;file:///etc/passwd\x1b\\link\x1b]8;;\x1b\\ \x1b[2J\x9b1m"


# ---- the corpus ------------------------------------------------------------------------------------

def iter_line(i: int | str, loss: str = "2.5000", ms: str = "100.00", mfu: str = "30.00") -> str:
    return f"iter {i}: loss {loss}, time {ms}ms, mfu {mfu}%\n"


def escapes_log(d: Path) -> Path:
    """Escapes and markup wherever the log's text reaches a view: config, override, warning, checkpoint, error."""
    path = d / "escapes.log"
    path.write_text("".join([
        f"Overriding config with config/{MARKUP}{ESCAPES}.py:\n",
        f"dataset = '{MARKUP}{ESCAPES}'\n",
        f"Overriding: out_dir = {MARKUP}{ESCAPES}\n",
        "max_iters = 1000\n",
        f"UserWarning: {MARKUP} {ESCAPES}\n",
        *(iter_line(i) for i in range(0, 30, 10)),
        f"saving checkpoint to out/{MARKUP}{ESCAPES}\n",
        iter_line(30),
        "Traceback (most recent call last):\n",
        '  File "train.py", line 1, in <module>\n',
        f"RuntimeError: {MARKUP} {ESCAPES}\n",
    ]))
    return path


def code_in_config_log(d: Path) -> Path:
    """A config block (and overrides) that would touch SENTINEL if anything evaluated it."""
    s = str(d / "SENTINEL")
    path = d / "code.log"
    path.write_text("".join([
        "Overriding config with evil.py:\n",
        f"a = __import__('os').system('touch {s}')\n",
        f'b = exec("open({s!r}, \'w\')")\n',
        f"c = open({s!r}, 'w')\n",
        f"d = eval(\"__import__('os').system('touch {s}')\")\n",
        f"e = (lambda: __import__('pathlib').Path({s!r}).touch())()\n",
        f"f = [x for x in [__import__('os').system('touch {s}')]]\n",
        "g = ().__class__.__base__.__subclasses__()\n",
        f"max_iters = __import__('os').system('touch {s}') or 1000\n",
        f"Overriding: eval_interval = __import__('os').system('touch {s}')\n",
        *(iter_line(i) for i in range(0, 50, 10)),
    ]))
    return path


def huge_expressions_log(d: Path) -> Path:
    """Expressions that cost unbounded time or memory if evaluated naively, and out-of-range numbers."""
    path = d / "huge.log"
    with path.open("w") as fh:
        fh.write("Overriding config with big.py:\n")
        fh.write("a = 9**9**9\nb = -9**9**9\nc = 10**400\nd = 2**2**2**2**2\ne = 'x' * 10**10\n")
        fh.write("f = " + "[" * 10_000 + "]" * 10_000 + "\n")  # 10,000 deep (20 kB)
        fh.write("g = " + "(" * 1_000 + "1" + ")" * 1_000 + "\n")  # deep but short enough to reach ast
        fh.write("h = " + "-" * 3_000 + "1\n")  # a unary chain: deep recursion in a naive evaluator
        fh.write("i = [" + ",".join(["123456"] * 1_450_000) + "]\n")  # a 10 MB list literal
        fh.write("j = 1e309\nk = -1e309\nl = nan\nm = float('nan')\nn = float('inf')\no = 1e308 * 10\n")
        fh.write("max_iters = 1e309\neval_interval = nan\nbatch_size = 10**400\nblock_size = 1_000\n")
        fh.write("Overriding: max_iters = 1e309\nOverriding: gradient_accumulation_steps = 9**9**9\n")
        fh.write("tokens per iteration will be: 99999999999999999999999999999999\n")
        fh.write("number of parameters: 1e309M\n")
        fh.writelines(iter_line(i) for i in range(0, 50, 10))
    return path


def numbers_log(d: Path) -> Path:
    """An iteration counter that jumps back and forth, 19+ and 5,000-digit numbers, infinite and NaN values."""
    path = d / "numbers.log"
    path.write_text("".join([
        "Overriding: max_iters = 5000\n",
        iter_line(1), iter_line(10**15), iter_line(3), iter_line(10**18 - 1), iter_line(2),
        iter_line("1234567890123456789"), iter_line("9" * 400), iter_line("9" * 5_000),
        iter_line(4, loss="1e309"), iter_line(5, loss="nan"), iter_line(6, loss="-inf"),
        iter_line(7, ms="1e309"), iter_line(8, ms="nan"), iter_line(9, ms="-5"), iter_line(10, mfu="nan"),
        "step 11: train loss 1e309, val loss nan\n",
        f"step {'9' * 30}: train loss 1.0, val loss 1.0\n",
        "tokens per iteration will be: 1234567890123456789012345\n",
        iter_line(12, loss="1" + "0" * 400, ms="0" * 400 + "1"),
    ]))
    return path


def write_big_line(fh: object, mb: int) -> None:
    write = fh.write  # type: ignore[attr-defined]
    block = b"y" * (1 << 20)
    for _ in range(mb):
        write(block)


def big_line_log(d: Path) -> Path:
    """100 MB without a newline in the middle of a run, and another 100 MB at the end that never ends."""
    path = d / "bigline.log"
    with path.open("wb") as fh:
        fh.write(iter_line(0).encode())
        write_big_line(fh, 100)
        fh.write(b"\n" + iter_line(10).encode() + iter_line(20).encode())
        write_big_line(fh, 100)
    return path


def utf8_nul_log(d: Path) -> Path:
    """Invalid UTF-8 (stray, truncated, overlong, surrogates), NUL bytes inside lines, a leading NUL hole."""
    path = d / "utf8.log"
    path.write_bytes(b"".join([
        b"\x00" * 4096,
        b"Overriding: max_iters = 1000\xff\n",
        b"\xc3(\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\n",
        iter_line(0).encode(),
        b"iter 10: loss 2.5\x00000, time 100.00ms, mfu 30.00%\n",
        b"\xfe\xffiter 20: loss 2.5000, time 100.00ms, mfu 30.00%\n",
        b"iter 30: loss 2.5000, time 1\xc0\xaf00.00ms, mfu 30.00%\n",
        b"\x00\x00\x00\n",
        iter_line(40).encode(),
    ]))
    return path


def binary_log(d: Path) -> Path:
    path = d / "binary.log"
    path.write_bytes(random.Random(11).randbytes(4 << 20))
    return path


def fifo(d: Path) -> Path:
    path = d / "fifo.log"
    os.mkfifo(path)
    return path


def dev_zero(d: Path) -> Path:
    return Path("/dev/zero")


def symlink_loop(d: Path) -> Path:
    (d / "a.log").symlink_to(d / "b.log")
    (d / "b.log").symlink_to(d / "a.log")
    return d / "a.log"


def directory(d: Path) -> Path:
    path = d / "dir.log"
    path.mkdir()
    return path


@dataclass(frozen=True)
class Case:
    make: Callable[[Path], Path]
    iter: int | None = None
    """The last iteration a usable log shows."""
    report_says: str | None = None
    """Part of report's one-line error for an unusable input (exit 2)."""
    monitor_says: str | None = None
    """Part of the Monitor's `problem` for it."""


CASES = {
    "escapes-and-markup": Case(escapes_log, iter=30),
    "code-in-config": Case(code_in_config_log, iter=40),
    "huge-expressions": Case(huge_expressions_log, iter=40),
    "numbers": Case(numbers_log, iter=12),
    "100mb-lines": Case(big_line_log, iter=20),
    "utf8-and-nul": Case(utf8_nul_log, iter=40),
    "binary": Case(binary_log, report_says="not a text log (binary data)"),
    "fifo": Case(fifo, report_says="not a regular file", monitor_says="not a regular file"),
    "dev-zero": Case(dev_zero, report_says="not a regular file", monitor_says="not a regular file"),
    "symlink-loop": Case(symlink_loop, report_says="Too many levels of symbolic links",
                         monitor_says="Too many levels of symbolic links"),
    "directory": Case(directory, report_says="is a directory", monitor_says="is a directory"),
}


@pytest.fixture
def hostile_input(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Case, Path]]:
    """The case's input, made in tmp_path; files over 10 MB are deleted afterwards (pytest keeps tmp dirs)."""
    case = CASES[request.param]
    yield case, case.make(tmp_path)
    for f in tmp_path.iterdir():
        if f.is_file() and not f.is_symlink() and f.stat().st_size > 10 << 20:
            f.unlink()


# ---- running trainwatch ----------------------------------------------------------------------------

PEAK_WRAPPER = """
import atexit, runpy, sys
out = sys.argv.pop(1)

def peak() -> None:
    with open("/proc/self/status") as status, open(out, "w") as fh:
        fh.write(next(ln.split()[1] for ln in status if ln.startswith("VmHWM:")))

atexit.register(peak)
sys.argv[0] = "trainwatch"
runpy.run_module("monitor.cli", run_name="__main__", alter_sys=True)
"""
"""`trainwatch ARGS` that writes its peak RSS (kB) to a file as it exits. VmHWM, not getrusage: a child's
ru_maxrss also counts the parent's memory at the fork (the kernel keeps the old mm's high-water mark
across exec), so under pytest it would measure pytest."""


def trainwatch(peak_file: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", PEAK_WRAPPER, str(peak_file), *args]


def peak_mb(peak_file: Path) -> float:
    return int(peak_file.read_text()) / 1024


@dataclass(frozen=True)
class Child:
    rc: int
    out: str
    err: str
    peak_mb: float


def run_child(args: list[str], tmp: Path, timeout: float = CHILD_TIMEOUT_S) -> Child:
    """`trainwatch ARGS` in a child process, with its peak RSS."""
    out, err, peak = tmp / "child.out", tmp / "child.err", tmp / "child.peak"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TRAINWATCH_DEBUG", None)
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(trainwatch(peak, *args), stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=env,
                                cwd=ROOT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"trainwatch {' '.join(args)[:200]} ran past {timeout}s") from None
    return Child(proc.returncode, out.read_bytes().decode("utf-8", "replace"),
                 err.read_bytes().decode("utf-8", "replace"), peak_mb(peak))


def strict_json(text: str) -> dict[str, object]:
    def refuse(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    data = json.loads(text, parse_constant=refuse)
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
@pytest.mark.parametrize("hostile_input", CASES, indirect=True)
def test_report_on_hostile_input(hostile_input: tuple[Case, Path], tmp_path: Path) -> None:
    case, path = hostile_input
    for flags in ([], ["--json"]):
        child = run_child(["report", str(path), *flags], tmp_path)
        assert "Traceback" not in child.err and len(child.err.splitlines()) <= 1, child.err
        assert child.peak_mb < RSS_LIMIT_MB, f"peak RSS {child.peak_mb:.0f} MB"
        if case.report_says is not None:
            assert child.rc == 2, (child.rc, child.err)
            assert child.err.startswith(f"trainwatch: error: {path}: ") and case.report_says in child.err
            continue
        assert child.rc == 0 and child.err == "", (child.rc, child.err)
        assert not CONTROL.search(child.out), f"control bytes reach the terminal: {child.out!r}"[:500]
        if flags:
            progress = strict_json(child.out)["progress"]
            assert isinstance(progress, dict) and progress["iter"] == case.iter
        else:
            assert f"iter {case.iter} " in child.out
    assert not (tmp_path / "SENTINEL").exists()


def test_report_keeps_markup_literal_and_drops_escapes(tmp_path: Path) -> None:
    """The error message reaches the JSON as the text a terminal would have shown: markup kept as text."""
    child = run_child(["report", "--json", str(escapes_log(tmp_path))], tmp_path)
    data = strict_json(child.out)
    assert data["error"] == {"type": "RuntimeError", "message": f"{MARKUP} red  link"}
    assert data["state"] == "crashed"


def test_config_code_and_huge_values_are_not_values(tmp_path: Path) -> None:
    """Nothing is evaluated; an expression that is not a plain literal sets no number (max_iters stays the
    default, or unknown where an `Overriding:` line left it as text)."""
    for make in (code_in_config_log, huge_expressions_log):
        data = strict_json(run_child(["report", "--json", str(make(tmp_path))], tmp_path).out)
        progress, settings = data["progress"], data["settings"]
        assert isinstance(progress, dict) and isinstance(settings, dict)
        assert progress["max_iters"] in (None, 600_000)
        numbers = [s["value"] for s in settings.values() if isinstance(s["value"], (int, float))]
        assert all(abs(v) < 1e30 for v in numbers), settings
    assert not (tmp_path / "SENTINEL").exists()


def test_an_infinite_logged_mfu_does_not_break_the_json_report(tmp_path: Path) -> None:
    """`mfu 1e309%` once made mfu_logged inf, and the strict JSON report refused it."""
    path = tmp_path / "mfu.log"
    path.write_text(iter_line(0) + iter_line(10, mfu="1e309"))
    child = run_child(["report", "--json", str(path)], tmp_path)
    assert child.rc == 0, child.err
    strict_json(child.out)


def garbled_timestamp_lines(first: int, last: int, odd: int, how: str = "garbled") -> str:
    """A `ts '%.s'`-stamped run whose line for iteration `odd` has a broken stamp (`garbled`) or one a day
    ahead (`jump`, a clock stepped and stepped back). Both found by atheris."""
    out = []
    for i in range(first, last + 1, 10):
        t = 1795815900 + i * 0.055 + (86400 if i == odd and how == "jump" else 0)
        stamp = f"{t:.6f}"
        if i == odd and how == "garbled":
            stamp = stamp.replace("5", "!", 1)
        out.append(f"{stamp} iter {i}: loss 2.5000, time 55.00ms, mfu 0.02%\n")
    return "".join(out)


@pytest.mark.parametrize("how", ["garbled", "jump"])
def test_an_odd_timestamp_does_not_break_the_report(tmp_path: Path, how: str) -> None:
    """One absurd step time (found by atheris) once overflowed math.exp in the forecast's band."""
    path = tmp_path / "odd.log"
    path.write_text("Overriding: max_iters = 3000\n" + garbled_timestamp_lines(0, 300, 150, how))
    child = run_child(["report", "--json", str(path)], tmp_path)
    assert child.rc == 0, child.err
    assert strict_json(child.out)["progress"]["iter"] == 300  # type: ignore[index]


HOSTILE_NAME = f'run"\\{MARKUP}\n{ESCAPES}'.replace("/", "%")
"""A run name from a file name: quotes, backslashes, a newline, markup and escapes (no slash)."""


def test_a_modded_training_line_at_step_0_is_read(tmp_path: Path) -> None:
    path = tmp_path / "modded.log"
    path.write_text("step:0/100 train_loss:10.9 train_time:0ms step_avg:nanms\n"
                    "step:1/100 train_loss:10.0 train_time:100ms step_avg:100ms\n")
    child = run_child(["report", "--json", str(path)], tmp_path)
    assert child.rc == 0, child.err
    assert strict_json(child.out)["progress"]["iter"] == 1  # type: ignore[index]


def test_a_hostile_file_name_does_not_reach_the_terminal(tmp_path: Path) -> None:
    """A file name's escapes and newline once reached the terminal through report and its error line."""
    path = tmp_path / f"{HOSTILE_NAME}.log"
    path.write_text(iter_line(0))
    child = run_child(["report", str(path)], tmp_path)
    assert not CONTROL.search(child.out), child.out
    missing = run_child(["report", str(tmp_path / f"{HOSTILE_NAME}-missing.log")], tmp_path)
    assert missing.rc == 2 and len(missing.err.splitlines()) == 1 and not CONTROL.search(missing.err)


# ---- the Monitor -----------------------------------------------------------------------------------

class Clock:
    """The Monitor's clock, moved by the test: a republish without waiting for it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def step_until_read(mon: Monitor, timeout: float = CHILD_TIMEOUT_S) -> None:
    """Step the writer until nothing is left to read, in a thread: a hang fails the test instead of stalling it."""
    failure: list[BaseException] = []

    def body() -> None:
        try:
            for _ in range(100_000):
                mon.step()
                if not mon.busy():
                    return
            raise AssertionError("still busy after 100,000 steps")
        except BaseException as e:  # handed to the test thread
            failure.append(e)

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"Monitor.step() hung on {mon.followers[0].spec.log}"
    if failure:
        raise failure[0]


@pytest.mark.slow
@pytest.mark.parametrize("hostile_input", CASES, indirect=True)
def test_monitor_follows_hostile_input(hostile_input: tuple[Case, Path], tmp_path: Path) -> None:
    case, path = hostile_input
    clock = Clock()
    mon = Monitor([RunSpec(str(path), "hostile")], poll_interval=0.05, clock=clock)
    try:
        step_until_read(mon)
        clock.now += mon.republish_s  # what a viewer sees within a second (see the preview test below)
        mon.step()
        snaps, follower = mon.snapshots(), mon.followers[0]
        assert len(snaps) == 1
        if case.monitor_says is not None:
            assert follower.problem is not None and case.monitor_says in follower.problem
            assert len(follower.problem.splitlines()) == 1 and snaps[0].iter is None
        elif case.iter is not None:
            assert follower.problem is None and snaps[0].iter == case.iter
    finally:
        mon.stop()
    assert not (tmp_path / "SENTINEL").exists()


def test_the_full_history_replaces_a_big_logs_preview_at_once(tmp_path: Path) -> None:
    """The backfill's end once left the preview published when the last slice brought no line."""
    clock = Clock()
    mon = Monitor([RunSpec(str(big_line_log(tmp_path)), "big")], poll_interval=0.05, clock=clock)
    try:
        step_until_read(mon)
        assert mon.snapshots()[0].iter == 20
    finally:
        mon.stop()
        (tmp_path / "bigline.log").unlink()


def test_monitor_says_a_binary_file_is_not_a_log(tmp_path: Path) -> None:
    mon = Monitor([RunSpec(str(binary_log(tmp_path)), "binary")], poll_interval=0.05)
    try:
        step_until_read(mon)
        problem = mon.followers[0].problem
        assert problem is not None and "binary" in problem
    finally:
        mon.stop()


def test_a_garbled_timestamp_arriving_live_does_not_stop_the_writer(tmp_path: Path) -> None:
    """A snapshot that raised (the odd timestamps above) once ended the writer thread."""
    path = tmp_path / "garbled.log"
    path.write_text("Overriding: max_iters = 3000\n" + garbled_timestamp_lines(0, 140, -1))
    mon = Monitor([RunSpec(str(path), "garbled")], poll_interval=0.05)
    try:
        step_until_read(mon)
        with path.open("a") as fh:
            fh.write(garbled_timestamp_lines(150, 300, 150))
        step_until_read(mon)
        assert mon.snapshots()[0].iter == 300
    finally:
        mon.stop()


def test_metrics_labels_from_hostile_names_are_escaped(tmp_path: Path) -> None:
    """Run name, log path (from a file name) and labels reach both exposition formats escaped once, in their
    printable form (no control character in any label), and round-trip through the parsers."""
    path = tmp_path / f"{HOSTILE_NAME}.log"
    path.write_text(escapes_log(tmp_path).read_text())
    mon = Monitor([RunSpec(str(path), HOSTILE_NAME, labels={"team": HOSTILE_NAME})], poll_interval=0.05)
    try:
        step_until_read(mon)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrainwatchCollector(mon.snapshots, version="test"))
        for text, parse in ((generate_latest(registry), text_string_to_metric_families),
                            (generate_openmetrics(registry), parse_openmetrics)):
            families = {f.name: f for f in parse(text.decode())}
            (info,) = families["trainwatch_run_info"].samples
            shown = printable(HOSTILE_NAME)
            assert info.labels == {"run": shown, "team": shown, "log": printable(str(path)), "format": "nanogpt"}
            assert not any(CONTROL.search(v) for f in families.values() for x in f.samples for v in x.labels.values())
            (error,) = families["trainwatch_error_info"].samples
            assert error.labels["type"] == "RuntimeError"
            assert [s.value for s in families["trainwatch_iteration"].samples] == [30.0]
    finally:
        mon.stop()


# ---- a log that grows by 50 MB/s ---------------------------------------------------------------

GROWER = r"""
import os, sys, time
path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
i = written = 0
start = time.monotonic()
while (now := time.monotonic()) - start < seconds:
    if written < rate * (now - start):
        block = "".join(f"iter {i + k}: loss 2.5000, time 100.00ms, mfu 30.00%\n" for k in range(10_000)).encode()
        i += 10_000
        written += os.write(fd, block)
    else:
        time.sleep(0.002)
print(i, written)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metric(port: int, name: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?name[]={name}", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return None
    values = [float(ln.split()[-1]) for ln in body.splitlines() if ln.startswith(name + "{")]
    return values[0] if values else None


@pytest.mark.slow
def test_serve_stays_responsive_and_bounded_under_a_50_mb_per_s_writer(tmp_path: Path) -> None:
    """`trainwatch serve` follows a log growing at 50 MB/s for 3 s: scrapes keep answering, snapshots keep
    coming, the line count only grows, and the process's peak RSS stays bounded (it may fall behind)."""
    log = tmp_path / "fast.log"
    log.write_text("Overriding: max_iters = 100000000\n")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    peak = tmp_path / "serve.peak"
    serve = subprocess.Popen(trainwatch(peak, "serve", str(log), "--listen", f"127.0.0.1:{port}", "--no-gpu",
                                        "--poll-interval", "0.1"), stdin=subprocess.DEVNULL,
                             stderr=(tmp_path / "serve.err").open("wb"), env=env, cwd=ROOT)
    writer = None
    try:
        deadline = time.monotonic() + 60
        while metric(port, "trainwatch_lines_total") is None:
            assert time.monotonic() < deadline and serve.poll() is None, (tmp_path / "serve.err").read_text()
            time.sleep(0.05)
        writer = subprocess.Popen([sys.executable, "-c", GROWER, str(log), "50e6", "3"], stdout=subprocess.PIPE)
        stamps: list[float] = []
        counts: list[float] = []
        deadline = time.monotonic() + 300  # ~16 s alone; a loaded CI machine parses far slower
        while len(set(stamps)) < 6 or writer.poll() is None:  # 6 distinct snapshots, and the writer done
            assert time.monotonic() < deadline, f"snapshots seen: {sorted(set(stamps))}"
            stamp = metric(port, "trainwatch_snapshot_timestamp_seconds")
            count = metric(port, "trainwatch_lines_total")
            assert stamp is not None and count is not None, "a scrape went unanswered while the log grew"
            stamps.append(stamp)
            counts.append(count)
            time.sleep(0.2)
        written_lines = int(writer.communicate(timeout=10)[0].split()[0])
        assert written_lines >= 100_000  # the writer really wrote (tens of MB)
        assert counts == sorted(counts) and counts[-1] > counts[0]
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0, (tmp_path / "serve.err").read_text()
        assert peak_mb(peak) < RSS_LIMIT_MB, f"peak RSS {peak_mb(peak):.0f} MB"
        assert "Traceback" not in (tmp_path / "serve.err").read_text()
    finally:
        if writer is not None and writer.poll() is None:
            writer.kill()
            writer.wait()
        if serve.returncode is None:
            serve.kill()
            serve.wait()
        log.unlink()  # ~150 MB


# ---- round 2: one bad run never blinds the others (issue 21) ---------------------------------------

class RaisingParser(FormatDefaults):
    """A parser with a bug on every line, chosen through the format seam (parsers.detect.PARSERS)."""

    name = "raising"

    def parse(self, line: str) -> list[Event]:
        raise ZeroDivisionError("injected: this parser fails on every line")


def wait_until(cond: Callable[[], object], what: str, timeout: float = CHILD_TIMEOUT_S) -> object:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not (value := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.05)
    return value


def by_run(mon: Monitor) -> dict[str, Snapshot]:
    return {s.run: s for s in mon.snapshots()}


def exposition(registry: CollectorRegistry) -> dict[str, Metric]:
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def lines(iters: range, ms: str = "100.00") -> str:
    return "".join(iter_line(i, ms=ms) for i in iters)


def append(path: Path, text: str) -> None:
    with path.open("a") as fh:
        fh.write(text)


def test_one_run_raising_on_every_line_blinds_no_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Beside a run whose parser raises on every line and one whose numbers are absurd (1e20 ms a step,
    max_iters 10**29), a healthy run finishes and notifies a real HTTP receiver. The writer thread, the
    notifier and the metrics collector live through it; the bad run says `error` and why, in one log line."""
    monkeypatch.setitem(PARSERS, "raising", RaisingParser)
    bad, absurd, good = tmp_path / "bad.log", tmp_path / "absurd.log", tmp_path / "good.log"
    bad.write_text(lines(range(0, 50, 10)))
    absurd.write_text(f"Overriding: max_iters = {10**29}\n" + lines(range(0, 200, 10), ms="1e20"))
    good.write_text("Overriding: max_iters = 100\n" + lines(range(0, 100, 10)))
    sink = Sink()
    notifier = Notifier([sink.url()], desktop=False)
    mon = Monitor([RunSpec(str(bad), "bad", format="raising"), RunSpec(str(absurd), "absurd"),
                   RunSpec(str(good), "good")], poll_interval=0.05)
    mon.subscribe(AlertPump(notifier, AlertConfig(), busy=mon.busy,
                            store=AlertStore(str(tmp_path / "state"))).on_snapshots)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainwatchCollector(mon.snapshots, version="test"))
    mon.start()
    try:
        wait_until(lambda: len(mon.snapshots()) == 3 and by_run(mon)["good"].iter == 90, "the first publish")
        append(bad, iter_line(50))
        append(absurd, iter_line(200, ms="1e20"))
        append(good, iter_line(100))
        sink.wait(lambda posts: any(p.body["title"] == "good: finished" for p in posts), timeout=CHILD_TIMEOUT_S)
        wait_until(lambda: by_run(mon)["absurd"].iter == 200, "the absurd run's last line")
        snaps = by_run(mon)
        assert snaps["bad"].state == "error" and "ZeroDivisionError: injected" in str(snaps["bad"].problem)
        assert snaps["absurd"].state == "running" and snaps["absurd"].forecast.eta_s is None
        assert any(t.name == "trainwatch-writer" for t in threading.enumerate())
        families = exposition(registry)
        assert [s.labels["run"] for s in families["trainwatch_run_problem_info"].samples] == ["bad"]
        current = {(s.labels["run"], s.labels["state"]) for s in families["trainwatch_run_state"].samples if s.value}
        assert current == {("bad", "error"), ("absurd", "running"), ("good", "finished")}
        assert not [t for t in sink.titles() if not str(t).startswith("good")]
        logged = [r for r in caplog.records if "trainwatch failed reading a line" in r.getMessage()]
        assert len(logged) == 1, "one log line for the failure, not one per line read"
    finally:
        mon.stop()
        notifier.close()
        sink.close()


def test_a_zero_divisor_arriving_live_does_not_stop_the_snapshots(tmp_path: Path) -> None:
    """`eval_interval = 0.5` once divided by zero in the fold: arriving live, it ended the writer thread and
    every run's snapshot froze."""
    path, other = tmp_path / "a.log", tmp_path / "other.log"
    path.write_text(lines(range(0, 4)))
    other.write_text(lines(range(0, 4)))
    mon = Monitor([RunSpec(str(path), "a"), RunSpec(str(other), "other")], poll_interval=0.05)
    mon.start()
    try:
        wait_until(lambda: len(mon.snapshots()) == 2, "the first publish")
        append(path, "Overriding: eval_interval = 0.5\n" + lines(range(4, 8)))
        wait_until(lambda: by_run(mon)["a"].iter == 7, "the lines after the override")
        taken = by_run(mon)["other"].taken_at
        wait_until(lambda: by_run(mon)["other"].taken_at > taken, "the next publish of the other run")
        assert by_run(mon)["a"].state != "error"
    finally:
        mon.stop()


ABSURD_LOGS = {
    "eval-interval-half": "Overriding: eval_interval = 0.5\n" + lines(range(0, 4)),
    "step-1e20ms": "Overriding: max_iters = 2000\n" + lines(range(0, 210, 10), ms="1e20"),
    "max-iters-1e29": f"Overriding: max_iters = {10**29}\n" + lines(range(0, 210, 10)),
    "step-1e308ms": "Overriding: max_iters = 2000\n" + lines(range(0, 210, 10), ms="1e308"),
    "n-head-1e-320": ("Overriding config with tiny.py:\nn_layer = 12\nn_head = 1e-320\nn_embd = 768\n"
                      "block_size = 1024\nnumber of parameters: 10.00M\n" + lines(range(0, 210, 10))),
}


@pytest.mark.parametrize("name", ABSURD_LOGS)
def test_absurd_numbers_are_unknown_not_an_exception(tmp_path: Path, name: str) -> None:
    """Reproductions 1–3: a zero divisor, an overflowing step time or max_iters, a value that makes inf:
    `report` and `report --json` answer (strict JSON), with no inf, no NaN and no internal error."""
    path = tmp_path / f"{name}.log"
    path.write_text(ABSURD_LOGS[name])
    for flags in ([], ["--json"]):
        child = run_child(["report", str(path), *flags], tmp_path)
        assert child.rc == 0 and child.err == "", child.err
    data = strict_json(child.out)
    assert data["progress"]["iter"] in (3, 200)  # type: ignore[index]
    assert "nonfinite" not in data, data.get("nonfinite")


OSC_NAME = "x\x1b]2;PWNED\x1b\\\x1b]52;c;ZWNobyBwd25lZA==\x1b\\"
"""A file name that sets a terminal's title and writes its clipboard (reproduction 4)."""


def test_a_file_name_with_escapes_reaches_no_sink_raw(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The run's name and path are escaped once, in the writer: snapshots, notification titles, log lines and
    Prometheus labels carry no control character, and a name that is not UTF-8 is shown escaped."""
    caplog.set_level(logging.INFO)
    osc = tmp_path / f"{OSC_NAME}.log"
    osc.write_text("Overriding: max_iters = 10\n" + iter_line(0))
    latin = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.log"))  # a Latin-1 name: not UTF-8
    latin.write_text(iter_line(0))
    fifo_named = tmp_path / f"{OSC_NAME}.fifo"
    os.mkfifo(fifo_named)
    clock = Clock()
    mon = Monitor([RunSpec(str(p), config.default_name(str(p), str(p))) for p in (osc, latin, fifo_named)],
                  poll_interval=0.05, clock=clock)
    try:
        step_until_read(mon)
        append(osc, iter_line(10))
        step_until_read(mon)
        snaps = mon.snapshots()
        _, alerts = evaluate(AlertMemory(), snaps, clock.now, AlertConfig(), quiet=False)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrainwatchCollector(mon.snapshots, version="test"))
        metrics = generate_latest(registry).decode("utf-8")
    finally:
        mon.stop()
    texts = [t for s in snaps for t in (s.run, s.log, s.problem or "")]
    texts += [t for a in alerts for t in (a.title, a.body)] + [r.getMessage() for r in caplog.records]
    assert "osc" not in "".join(texts) and texts
    for text in [*texts, metrics]:
        assert not CONTROL.search(text), text
        text.encode("utf-8")  # valid UTF-8: no lone surrogate
    assert [a.title for a in alerts if a.kind == "finished"] == [f"{printable(OSC_NAME)}: finished"]
    assert {s.run for s in snaps} >= {"caf\\xe9"}


def test_a_path_that_exists_is_a_path_not_a_glob(tmp_path: Path) -> None:
    """`tw serve 'r[1].log'` followed no log: the name was read as a glob (matching `r1.log`)."""
    path = tmp_path / "r[1].log"
    path.write_text(iter_line(0))
    (tmp_path / "r1.log").write_text(iter_line(0))  # what the glob would have matched instead
    specs = sources(Config(), [str(path)], {})()
    assert [(s.log, s.name) for s in specs] == [(str(path), "r[1]")]


DEEP = "[" * 50_000 + "]" * 50_000
BAD_CONFIGS = {
    "logs-of-numbers": ("logs = [5]\n", ":1: `logs` must be a list of log paths or globs, not [5]"),
    "notify-of-numbers": ('price_per_kwh = 0.3\nnotify = [1]\n', ":2: `notify` must be a list of notification URLs"),
    "milestones-of-text": ('notify_milestones = ["x"]\n', ":1: `notify_milestones` must be a list of percentages"),
    "50000-deep": (f"max_runs = 3\nlogs = {DEEP}\n", ":2: `logs` is nested too deeply"),
    "run-log-number": ("[[run]]\nlog = 5\n", ":2: `run.log` must be text, not 5"),
    "poll-inf": ("poll_interval = inf\n", ":1: `poll_interval` must be a number from 0.01 to 3600, not inf"),
    "poll-99999999999d": ('poll_interval = "99999999999d"\n', "not '99999999999d'"),
    "poll-zero": ("poll_interval = 0\n", ":1: `poll_interval` must be a number from 0.01 to 3600, not 0"),
    "poll-negative": ("poll_interval = -1\n", "not -1"),
    "poll-nan": ("poll_interval = nan\n", "not nan"),
    "max-runs-zero": ("max_runs = 0\n", ":1: `max_runs` must be a whole number from 1 to 100000, not 0"),
    "power-inf": ("[[run]]\nlog = 'a.log'\npower_watts = inf\n", ":3: `run.power_watts` must be a number above 0"),
}


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_a_bad_config_value_is_one_error_naming_key_and_line(tmp_path: Path, name: str) -> None:
    """Reproductions 6 and 7: wrong types and absurd values once gave TypeError, AttributeError,
    RecursionError or OverflowError tracebacks, or a writer spinning at 98 % of a core."""
    text, message = BAD_CONFIGS[name]
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(TrainwatchError) as e:
        load_config(str(path))
    assert str(e.value).startswith(f"{path}:") and message in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_a_bad_config_is_one_line_from_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BAD_CONFIGS["50000-deep"][0])
    child = run_child(["serve", "--config", str(path), "--no-gpu", "--listen", "127.0.0.1:0"], tmp_path)
    assert child.rc == 2 and child.err.count("\n") == 1 and "`logs` is nested too deeply" in child.err, child.err


@pytest.mark.parametrize("args", [
    ["report", "{log}", "--max-iters", "-5"],
    ["report", "{log}", "--dataset-tokens", "nan"],
    ["report", "{log}", "--power-watts", "inf"],
    ["serve", "{log}", "--poll-interval", "0"],
    ["serve", "{log}", "--poll-interval", "99999999999d"],
], ids=lambda a: " ".join(a[2:]))
def test_every_number_a_user_gives_is_checked(tmp_path: Path, args: list[str]) -> None:
    """Reproductions 7 and 8: `--max-iters -5` once showed −15,025 %, `--dataset-tokens nan` an internal error,
    `--power-watts inf` invalid JSON, `--poll-interval 0` a core spinning."""
    log = tmp_path / "a.log"
    log.write_text(lines(range(0, 40, 10)))
    child = run_child([a.format(log=log) for a in args], tmp_path)
    assert child.rc == 2 and child.out == "", (child.rc, child.out)
    assert child.err.count("\n") == 1 and f"argument {args[2]}: must be " in child.err, child.err


def unreadable(d: Path) -> Path:
    path = d / "secret.log"
    path.write_text(iter_line(0))
    path.chmod(0)
    return path


@pytest.mark.parametrize("make", [fifo, directory, unreadable], ids=["fifo", "directory", "unreadable"])
def test_a_log_that_cannot_be_read_says_why_everywhere(tmp_path: Path, make: Callable[[Path], Path],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """Reproduction 9: `serve` and the TUI showed such a run "starting" forever. Now its state is `error`,
    the reason is the snapshot's problem (the header shows it), an exported metric, and one log line."""
    if make is unreadable and os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = make(tmp_path)
    clock = Clock()
    mon = Monitor([RunSpec(str(path), "r")], poll_interval=0.05, clock=clock)
    try:
        for _ in range(3):
            clock.now += mon.republish_s
            mon.step()
        (snap,) = mon.snapshots()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(TrainwatchCollector(mon.snapshots, version="test"))
        (problem,) = exposition(registry)["trainwatch_run_problem_info"].samples
    finally:
        mon.stop()
    assert snap.state == "error" and snap.problem is not None and str(path) in snap.problem
    assert problem.labels == {"run": "r", "problem": snap.problem}
    assert [r.getMessage() for r in caplog.records if str(path) in r.getMessage()] == [f"r: {snap.problem}"]
    from exporters.tui.context import ViewContext
    from exporters.tui.header import header_text

    assert snap.problem in header_text(snap, ViewContext(now=clock.now)).plain


def test_a_missing_log_is_starting_with_its_reason(tmp_path: Path) -> None:
    mon = Monitor([RunSpec(str(tmp_path / "later.log"), "later")], poll_interval=0.05)
    try:
        mon.step()
        (snap,) = mon.snapshots()
    finally:
        mon.stop()
    assert snap.state == "starting" and snap.problem is not None and "to appear" in snap.problem


class Serve:
    """`trainwatch serve` in a child process, with its own config and state folders and stderr in a file."""

    def __init__(self, tmp: Path, *args: str, name: str = "serve", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.err = tmp / f"{name}.err"
        environ = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp / "cfg"),
                   "XDG_STATE_HOME": str(tmp / "state"), **(env or {})}
        environ.pop("DBUS_SESSION_BUS_ADDRESS", None)  # no desktop notifications from a test
        with self.err.open("wb") as fh:
            self.proc = subprocess.Popen(trainwatch(tmp / f"{name}.peak", "serve", *args, "--no-gpu",
                                                    "--listen", f"127.0.0.1:{self.port}"),
                                         stdin=subprocess.DEVNULL, stderr=fh, env=environ, cwd=ROOT)
        wait_until(lambda: metric(self.port, "trainwatch_build_info") is not None or self.proc.poll() is not None,
                   "serve to answer")
        assert self.proc.poll() is None, self.stderr()

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def value(self, name: str) -> float | None:
        return metric(self.port, name)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(30) == 0, self.stderr()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@pytest.fixture
def served() -> Iterator[list[Serve]]:
    started: list[Serve] = []
    yield started
    for s in started:
        s.kill()


@pytest.mark.slow
def test_a_bad_config_sent_with_sighup_keeps_the_old_one(tmp_path: Path, served: list[Serve]) -> None:
    """Reproduction 6: a config of the wrong types sent with SIGHUP made the daemon exit."""
    log, cfg = tmp_path / "a.log", tmp_path / "config.toml"
    log.write_text(iter_line(0))
    cfg.write_text(f'logs = ["{log}"]\n')
    serve = Serve(tmp_path, "--config", str(cfg))
    served.append(serve)
    wait_until(lambda: serve.value("trainwatch_iteration") == 0.0, "the run")
    for n, text in enumerate(["logs = [5]\n", f"logs = {DEEP}\n", "poll_interval = inf\n", "notify = [1]\n"], 1):
        cfg.write_text(text)
        serve.proc.send_signal(signal.SIGHUP)
        wait_until(lambda n=n: serve.stderr().count("keeping the old one") == n, f"reload {n} refused")
        assert serve.proc.poll() is None, serve.stderr()
    append(log, iter_line(10))
    wait_until(lambda: serve.value("trainwatch_iteration") == 10.0, "the run, followed under the old config")
    serve.stop()
    assert "Traceback" not in serve.stderr()


def owed_log(path: Path, last: int) -> None:
    path.write_text("Overriding: max_iters = 100\n" + lines(range(0, last + 1, 10)))


@pytest.mark.slow
def test_a_restarted_daemon_sends_once_what_it_owes(tmp_path: Path, served: list[Serve]) -> None:
    """Reproduction 10: killed with -9 near the end, the run finishing and another crashing while it was
    down, the restarted daemon never sent either. Now it sends both, once, and nothing it already sent."""
    sink = Sink()
    fin, crash, old, tick = (tmp_path / f"{n}.log" for n in ("fin", "crash", "old", "tick"))
    owed_log(fin, 80)
    owed_log(crash, 80)
    owed_log(old, 100)  # finished before any daemon saw it: history, never news
    owed_log(tick, 10)  # still running: its snapshot is rebuilt every second (the ended runs' every 30 s)
    args = [str(fin), str(crash), str(old), str(tick), "--notify", sink.url()]
    try:
        first = Serve(tmp_path, *args, name="first")
        served.append(first)
        wait_until(lambda: len(list((tmp_path / "state" / "trainwatch").glob("alerts-*.json"))) == 4,
                   "the alert state of each run")
        first.kill()
        append(fin, lines(range(90, 101, 10)))
        append(crash, iter_line(90) + "Traceback (most recent call last):\nRuntimeError: CUDA error: an illegal "
                                     "memory access was encountered\n")
        second = Serve(tmp_path, *args, name="second")
        served.append(second)
        sink.wait(lambda posts: len(posts) >= 2, timeout=CHILD_TIMEOUT_S)
        second.kill()
        third = Serve(tmp_path, *args, name="third")
        served.append(third)
        stamp = wait_until(lambda: run_metric(third.port, "trainwatch_snapshot_timestamp_seconds", "tick"), "a publish")
        wait_until(lambda: (run_metric(third.port, "trainwatch_snapshot_timestamp_seconds", "tick") or 0) > stamp + 2,
                   "two more publishes: the restart's evaluation is done")
        third.stop()
    finally:
        sink.close()
    assert sorted(str(t) for t in sink.titles()) == ["crash: crashed at iter 90", "fin: finished"]


def run_metric(port: int, name: str, run: str) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?name[]={name}", timeout=5) as r:
            body = r.read().decode()
    except OSError:
        return None
    m = re.search(rf'^{name}{{run="{run}"}} (\S+)$', body, re.M)
    return float(m.group(1)) if m else None


@pytest.mark.slow
def test_secrets_never_reach_the_log_at_debug(tmp_path: Path, served: list[Serve]) -> None:
    """Reproduction 11: at TRAINWATCH_LOG_LEVEL=DEBUG, urllib3 logged `"POST /tok3nPATH"`."""
    sink = Sink()
    log = tmp_path / "run.log"
    owed_log(log, 90)
    try:
        serve = Serve(tmp_path, str(log), "--notify", sink.url("tok3nPATH"), env={"TRAINWATCH_LOG_LEVEL": "DEBUG"})
        served.append(serve)
        wait_until(lambda: serve.value("trainwatch_iteration") == 90.0, "the run")
        append(log, iter_line(100))
        sink.wait(lambda posts: [p.path for p in posts] == ["/tok3nPATH"], timeout=CHILD_TIMEOUT_S)
        wait_until(lambda: "delivered" in serve.stderr(), "the delivery's debug line")
        serve.stop()
    finally:
        sink.close()
    err = serve.stderr()
    assert "DEBUG" in err and "tok3n" not in err, err[-2000:]


def test_metrics_leave_out_a_run_whose_values_raise_and_answer_for_the_others() -> None:
    """The collector's per-run boundary: /metrics answers, every family whole, without the broken run."""
    from dataclasses import replace

    from prom_fixtures import full_snapshot

    good = full_snapshot("good")
    broken = replace(full_snapshot("broken"), iter="not a number")  # what a bug elsewhere could hand it
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrainwatchCollector(lambda: (broken, good), version="test"))
    families = exposition(registry)
    assert {s.labels["run"] for f in families.values() for s in f.samples if "run" in s.labels} == {"good"}


class Sent:
    """A Sender that keeps what it is given."""

    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.alerts.append(alert)


def test_alert_rules_that_raise_for_one_run_notify_the_others(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """The alert pump's per-run boundary: a run whose rules raise is logged once; the others are notified."""
    from dataclasses import replace

    from prom_fixtures import full_snapshot

    sent = Sent()
    pump = AlertPump(sent, AlertConfig(), busy=lambda: False, store=AlertStore(str(tmp_path / "state")))
    running = full_snapshot("good", state="running", iter=100, max_iters=200)
    broken = replace(full_snapshot("broken"), state="finished", iter=None)  # `f"{iter:,}"` raises
    pump.on_snapshots([broken, running])
    for t in (1.0, 2.0):
        done = replace(running, state="finished", iter=200, taken_at=running.taken_at + t)
        pump.on_snapshots([replace(broken, taken_at=done.taken_at), done])
    assert [a.title for a in sent.alerts] == ["good: finished"]
    assert len([r for r in caplog.records if "alert rules failed" in r.getMessage()]) == 1


BAD_STATE_FILES = {
    "not-json": "{not json",
    "fired-is-text": '{"identity": %s, "memory": {"fired": "abc", "active": [], "finish_announced": null}}',
    "announced-is-text": '{"identity": %s, "memory": {"fired": [], "active": [], "finish_announced": "x"}}',
    "announced-is-inf": '{"identity": %s, "memory": {"fired": [], "active": [], "finish_announced": 1e999}}',
    "identity-extra-key": '{"identity": {"x": 1}, "memory": {"fired": [], "active": [], "finish_announced": null}}',
    "deep": "[" * 100_000 + "]" * 100_000,
    "huge": '{"pad": "' + "x" * (2 << 20) + '"}',
}


@pytest.mark.parametrize("name", BAD_STATE_FILES)
def test_a_malformed_alert_state_is_set_aside_and_notifications_go_on(tmp_path: Path, name: str,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Reproduction-adjacent (issue 21, "everything read from disk is validated"): a state file of the wrong
    shape once raised inside the alert rules (a text where a number goes) or in json (RecursionError)."""
    log = tmp_path / "run.log"
    owed_log(log, 90)
    store = AlertStore(str(tmp_path / "state"))
    store.save(str(log), RunMemory())
    state = Path(store.file_for(str(log)))
    identity = json.dumps(json.loads(state.read_text())["identity"])
    state.write_text(BAD_STATE_FILES[name].replace("%s", identity) if "%s" in BAD_STATE_FILES[name]
                     else BAD_STATE_FILES[name])
    sent = Sent()
    pump = AlertPump(sent, AlertConfig(), busy=lambda: False, store=store)
    clock = Clock()
    mon = Monitor([RunSpec(str(log), "run")], poll_interval=0.05, clock=clock)
    mon.subscribe(pump.on_snapshots)
    try:
        step_until_read(mon)
        append(log, iter_line(100))
        for _ in range(3):
            clock.now += mon.republish_s
            mon.step()
    finally:
        mon.stop()
    assert [a.title for a in sent.alerts] == ["run: finished"]
    assert Path(f"{state}.bad").exists() and "set aside" in caplog.text


def terminal_screen(path: Path, *keys: str) -> str:
    """What the TUI shows for the log at `path` (as it is) after pressing `keys`, under Pilot."""
    snap = from_log(path)

    async def show() -> str:
        app = TrainwatchApp(lambda: (snap,), clock=lambda: snap.taken_at)
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            return screen_text(app)

    return asyncio.run(show())


TUI_LOGS = {  # name → (log, keys pressed, what the view shows); each once made the TUI exit with a traceback
    "step-1e20ms": (ABSURD_LOGS["step-1e20ms"], (), "200 / 2,000"),  # OverflowError formatting its finish time
    # found by the long property runs (bench/README.md, "Hostile input, round 2"):
    "no-positive-loss-log-scale": ("".join(iter_line(i, loss=x) for i, x in ((0, "0"), (10, "-1.5"), (20, "0.0"))),
                                   ("l",), "no positive value to draw on a log scale"),  # an empty log axis
    "loss-1e231-log-scale": ("number of parameters: 10.00M\n" + iter_line(10**18 - 1, loss="1.4733690527095306e+231"),
                             ("l",), "loss"),  # plotext's ticks overflowed
    "loss-1e308": (iter_line(0, loss="0") + iter_line(211, loss="1e308") + iter_line(300, loss="-882"),
                   ("l", "l"), "loss"),  # plotext's linear scaling overflowed
    "step-1e-320ms": (iter_line(0, loss="0", ms="0") * 2 + iter_line(1, loss="0", ms="1e-320"), ("l",),
                      "iteration time"),  # a denormal step time overflowed the speed chart
}


@pytest.mark.parametrize("name", TUI_LOGS)
def test_the_terminal_view_shows_absurd_runs(tmp_path: Path, name: str) -> None:
    """Every chart drawn (its boundary, "chart not drawn", unused) and the view alive."""
    text, keys, shown = TUI_LOGS[name]
    path = tmp_path / f"{name}.log"
    path.write_text(text)
    screen = terminal_screen(path, *keys)
    assert shown in screen and "chart not drawn" not in screen, screen


def test_a_step_under_a_nanosecond_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "tiny.log"
    path.write_text(TUI_LOGS["step-1e-320ms"][0])
    assert [p.dt_s for p in from_log(path).history] == [0.0, None]
