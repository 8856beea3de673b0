"""Hostile logs through the real entry points: `trainwatch report` in a child process, the Monitor, /metrics.

Every input must cost bounded time and memory and execute nothing. A usable one gives a report (exit 0)
whose text carries no terminal control bytes and whose JSON is strict; an unusable one gives exit 2 and
one line on stderr that says what is wrong, and the Monitor shows it as the follower's `problem`. The
inputs are generated in tmp_path at test time (the biggest is a 100 MB line). The TUI's handling of
markup has its own tests (test_tui_markup.py); the parsers' and config reader's are fuzzed in
test_hostile_fuzz.py.
"""

from __future__ import annotations

import json
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
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from exporters.prometheus import TrainwatchCollector
from monitor.daemon.writer import Monitor, RunSpec

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
    """Run name and log path (from a file name) and error type round-trip through both exposition formats."""
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
            assert info.labels == {"run": HOSTILE_NAME, "team": HOSTILE_NAME, "log": str(path), "format": "nanogpt"}
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
        deadline = time.monotonic() + 120
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
