"""`trainwatch simulate`: nanoGPT's log line for line, live, deterministic, and each failure it fakes.

The golden file examples/shakespeare-char.log is this simulator's output; after a deliberate change
to the simulation, regenerate it with
`rm examples/shakespeare-char.log && python -m monitor.sim.write examples/shakespeare-char.log --seed 1 --instant`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor import cli
from monitor.daemon.load import load
from monitor.errors import TrainwatchError
from monitor.sim import write as simulate
from monitor.sim.emit import emissions, generate
from monitor.sim.scenario import SimConfig, resolve
from parsers.base import feed
from parsers.events import ConfigValue, ErrorEvent, Eval, Event, Iteration
from parsers.nanogpt import NanoGptParser

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "shakespeare-char.log"
ITER = re.compile(r"^iter (\d+): loss (\S+), time ([\d.]+)ms, mfu (-?[\d.]+)%$")
STEP = re.compile(r"^step (\d+): train loss (\S+), val loss (\S+)$")

SCENARIOS = {
    "char-full-run": SimConfig(),
    "char-log-every-iteration": SimConfig(max_iters=300, log_interval=1, eval_interval=100, seed=3),
    "gpt2-ddp2": SimConfig(preset="gpt2-124m", max_iters=2000, eval_interval=500),
    "gpt2-ddp4": SimConfig(preset="gpt2-124m", ddp=4, max_iters=300, eval_interval=100, seed=7),
    "crash-oom": SimConfig(max_iters=1000, crash_at=0.43),
    "crash-at-iteration-0": SimConfig(max_iters=1000, crash_at=0.0),
    "nan": SimConfig(max_iters=1000, nan_at=0.5),
    "stall-for-30s": SimConfig(max_iters=1000, stall_at=0.3, stall_s=30.0),
    "stall-for-good": SimConfig(max_iters=1000, stall_at=0.3),
    "slowdown": SimConfig(max_iters=1000, slowdown_at=0.4),
    "resume": SimConfig(max_iters=1000, resume_at=0.63),
    "resume-before-any-checkpoint": SimConfig(max_iters=1000, resume_at=0.1),
    "everything-at-once": SimConfig(preset="gpt2-124m", max_iters=3000, eval_interval=250, resume_at=0.5,
                                    nan_at=0.8, slowdown_at=0.3, stall_at=0.6, stall_s=600.0, crash_at=0.95),
}


def lines_of(cfg: SimConfig) -> list[str]:
    return [line for _, line in generate(cfg)]


def iters(lines: list[str]) -> list[tuple[int, float, float, float]]:
    """(iteration, loss, time in s, mfu %) of every iter line."""
    return [(int(m[1]), float(m[2]), float(m[3]) / 1000, float(m[4])) for m in map(ITER.match, lines) if m]


def evals(lines: list[str]) -> list[tuple[int, float, float]]:
    return [(int(m[1]), float(m[2]), float(m[3])) for m in map(STEP.match, lines) if m]


def parse(lines: list[str]) -> list[Event]:
    parser = NanoGptParser()
    return [e for line in lines for e in feed(parser, line)]


def write_instant(cfg: SimConfig, path: Path, **kw: object) -> bytes:
    simulate.write(cfg, str(path), instant=True, **kw)  # type: ignore[arg-type]
    return path.read_bytes()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = str(ROOT)
    return env


# ---- the parser accepts every line --------------------------------------------------------------

@pytest.mark.parametrize("cfg", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_every_iter_and_step_line_becomes_an_event(cfg: SimConfig) -> None:
    parser = NanoGptParser()
    for line in lines_of(cfg):
        events = feed(parser, line)
        if line.startswith("iter "):
            assert [type(e) for e in events] == [Iteration], line
            assert events[0].iter == int(line.split()[1].rstrip(":"))  # type: ignore[union-attr]
        elif line.startswith("step "):
            assert [type(e) for e in events] == [Eval], line


@pytest.mark.parametrize("cfg", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_the_log_states_the_config_it_runs(cfg: SimConfig) -> None:
    p = resolve(cfg)
    stated = {e.key: e.value for e in parse(lines_of(cfg)) if isinstance(e, ConfigValue)}  # later wins
    assert stated["max_iters"] == p.max_iters
    assert stated["eval_interval"] == p.eval_interval
    assert stated["log_interval"] == p.log_interval
    assert stated["tokens_per_iter"] == p.tokens_per_iter
    assert stated["params"] == pytest.approx(p.params, rel=1e-3)


@pytest.mark.parametrize("cfg", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_written_file_loads_without_parse_errors(cfg: SimConfig, tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    text = write_instant(cfg, path, timestamps=True, start_time=1_764_000_000.0).decode()
    ingest = load(str(path))
    assert ingest.parse_errors == 0
    assert ingest.state.time_axis == "timestamps"
    assert ingest.state.iteration_lines == len(re.findall(r"^\S+ iter \d+:", text, re.M))


# ---- the shape of a run -------------------------------------------------------------------------

@pytest.mark.parametrize("cfg", [SCENARIOS["char-full-run"], SCENARIOS["gpt2-ddp2"],
                                 SCENARIOS["char-log-every-iteration"]], ids=["char", "gpt2", "log-interval-1"])
def test_iterations_and_evals_land_where_nanogpt_puts_them(cfg: SimConfig) -> None:
    p, lines = resolve(cfg), lines_of(cfg)
    printed = [i for i, *_ in iters(lines)]
    assert printed == list(range(0, p.max_iters + 1, p.log_interval))
    assert [i for i, *_ in evals(lines)] == list(range(0, p.max_iters + 1, p.eval_interval))
    # each eval line comes right before its iteration's line, a checkpoint line possibly in between
    for k, line in enumerate(lines):
        if line.startswith("step "):
            n = line.split()[1].rstrip(":")
            after = [ln for ln in lines[k + 1:k + 3] if not ln.startswith("saving checkpoint")]
            assert after[0].startswith(f"iter {n}:")


def test_eval_iterations_carry_the_eval_in_their_time() -> None:
    cfg = SCENARIOS["char-full-run"]
    p = resolve(cfg)
    rows = iters(lines_of(cfg))
    steady = statistics.median(dt for i, _, dt, _ in rows if i % p.eval_interval)
    for i, _, dt, _ in rows:
        if i % p.eval_interval == 0:
            assert dt > steady + 0.5 * p.eval_s, i
        if i == 0:
            assert dt > p.warmup_s  # torch.compile runs inside iteration 0
    assert 0.010 < steady < 0.015  # about 12 ms, as shakespeare_char on an A100


def test_printed_times_are_the_true_gaps_between_lines() -> None:
    """With log_interval 1 the sum of `time` is the loop's wall time, so timestamps must agree to the µs."""
    cfg = SCENARIOS["char-log-every-iteration"]
    stamped = [(t, line) for t, line in generate(cfg) if line.startswith("iter ")]
    for (t0, _), (t1, line) in zip(stamped, stamped[1:], strict=False):
        dt = float(ITER.match(line)[3]) / 1000  # type: ignore[index]
        assert t1 - t0 == pytest.approx(dt, abs=1.1e-5), line


def test_mfu_is_minus_100_until_the_fifth_iteration_then_an_ema_that_evals_pull_down() -> None:
    rows = iters(lines_of(SCENARIOS["char-log-every-iteration"]))
    assert [m for i, *_, m in rows if i < 5] == [-100.0] * 5
    assert all(m > 0 for i, *_, m in rows if i >= 5)
    by_iter = {i: m for i, *_, m in rows}
    assert by_iter[100] < by_iter[99] * 0.95  # the eval iteration's long dt drags the average down
    assert by_iter[110] > by_iter[100]


def test_loss_falls_fast_then_slowly_and_the_char_model_overfits() -> None:
    lines = lines_of(SCENARIOS["char-full-run"])
    ev = {i: (train, val) for i, train, val in evals(lines)}
    assert ev[0][0] == pytest.approx(math.log(65), abs=0.2)  # a uniform guess over 65 characters
    assert ev[250][0] < 2.2 and ev[5000][0] < ev[2500][0] < ev[1000][0]
    assert all(val > train for i, (train, val) in ev.items() if i > 0)
    best = min(ev, key=lambda i: ev[i][1])
    assert 1000 <= best <= 3500 and ev[5000][1] > ev[best][1] + 0.1
    checkpoints = sum(1 for line in lines if line.startswith("saving checkpoint to out-shakespeare-char"))
    assert checkpoints == best // 250  # always_save_checkpoint = False: saves stop once val stops improving


# ---- determinism --------------------------------------------------------------------------------

def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    cfg = SCENARIOS["everything-at-once"]
    a = write_instant(cfg, tmp_path / "a.log", timestamps=True, start_time=1.7e9)
    b = write_instant(cfg, tmp_path / "b.log", timestamps=True, start_time=1.7e9)
    assert a == b
    c = write_instant(SimConfig(preset="gpt2-124m", max_iters=3000, eval_interval=250, seed=2), tmp_path / "c.log")
    assert c != write_instant(SimConfig(preset="gpt2-124m", max_iters=3000, eval_interval=250), tmp_path / "d.log")


def test_example_log_is_this_simulator_output_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    expected = "".join(line + "\n" for line in lines_of(SimConfig(seed=1)))
    assert EXAMPLE.read_text() == expected
    assert cli.main(["report", str(EXAMPLE)]) == 0
    assert "finished" in capsys.readouterr().out


# ---- failures -----------------------------------------------------------------------------------

def test_crash_ends_with_a_cuda_oom_traceback_and_the_run_reads_crashed(tmp_path: Path) -> None:
    cfg = SCENARIOS["crash-oom"]
    lines = lines_of(cfg)
    assert "Traceback (most recent call last):" in lines
    assert lines[-1].startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 48.00 MiB.")
    errors = [e for e in parse(lines) if isinstance(e, ErrorEvent)]
    assert [e.type for e in errors] == ["OutOfMemoryError"]
    assert iters(lines)[-1][0] < 430
    path = tmp_path / "crash.log"
    write_instant(cfg, path)
    assert load(str(path)).state.status == "crashed"


def test_nan_losses_from_the_point_on_evals_too() -> None:
    lines = lines_of(SCENARIOS["nan"])
    for i, loss, _, _ in iters(lines):
        assert math.isnan(loss) == (i >= 500), i
    for i, train, val in evals(lines):
        assert math.isnan(train) == math.isnan(val) == (i >= 500), i
    nan_from = lines.index("step 500: train loss nan, val loss nan")
    assert not any(line.startswith("saving checkpoint") for line in lines[nan_from:])  # nan never improves
    assert iters(lines)[-1][0] == 1000  # a nan run goes on


def test_stall_is_silence_in_the_middle_of_an_iteration() -> None:
    stamped = list(generate(SCENARIOS["stall-for-30s"]))
    gaps = [(t1 - t0, line) for (t0, _), (t1, line) in zip(stamped, stamped[1:], strict=False)]
    longest, line = max(gaps)
    assert longest >= 30.0 and line.startswith("iter ")
    assert int(line.split()[1].rstrip(":")) in range(300, 311)
    forever = lines_of(SCENARIOS["stall-for-good"])
    assert iters(forever)[-1][0] == 290 and not any("Error" in line for line in forever)


def test_slowdown_changes_the_steady_iteration_time() -> None:
    rows = [(i, dt) for i, _, dt, _ in iters(lines_of(SCENARIOS["slowdown"])) if i % 250 and i > 20]
    before = statistics.median(dt for i, dt in rows if i < 400)
    after = statistics.median(dt for i, dt in rows if i >= 410)
    assert after / before == pytest.approx(1.4, rel=0.03)


def test_resume_appends_a_second_process_whose_iterations_go_back(tmp_path: Path) -> None:
    cfg = SCENARIOS["resume"]
    lines = lines_of(cfg)
    printed = [i for i, *_ in iters(lines)]
    back = next(k for k in range(1, len(printed)) if printed[k] < printed[k - 1])
    last_before, first_after = printed[back - 1], printed[back]
    assert last_before == 620 and first_after == 500  # the last checkpoint before iteration 630 (val improving)
    banner = lines.index("Resuming training from out-shakespeare-char")
    assert "Overriding: init_from = resume" in lines[:banner]
    resumed = iters(lines)[back]
    assert resumed[2] > resolve(cfg).warmup_s  # the resumed first iteration compiles again and re-runs the eval
    assert resumed[3] == -100.0  # running_mfu starts over in the new process
    assert printed[-1] == 1000
    path = tmp_path / "resume.log"
    write_instant(cfg, path)
    segments = load(str(path)).state.segments
    assert [s.mode for s in segments] == ["scratch", "resume"]
    assert segments[1].first_iter == 500


def test_resume_before_any_checkpoint_starts_over_from_scratch() -> None:
    lines = lines_of(SCENARIOS["resume-before-any-checkpoint"])
    assert lines.count("Initializing a new model from scratch") == 2
    assert [i for i, *_ in iters(lines)].count(0) == 2


def test_ddp_prints_the_startup_once_per_rank_some_on_one_line() -> None:
    lines = lines_of(SCENARIOS["gpt2-ddp4"])
    assert lines.count("tokens per iteration will be: 491,520") == 4
    assert sum(line.startswith("Overriding config with") for line in lines) == 4
    assert "using fused AdamW: True" * 4 in lines
    assert sum(line.count("compiling the model") for line in lines) == 4
    assert sum(line.startswith("step 0:") for line in lines) == 1  # the loop prints on rank 0 only


def test_ddp_needs_accumulation_steps_divisible_by_ranks() -> None:
    with pytest.raises(TrainwatchError, match="not divisible by 2 ranks"):
        resolve(SimConfig(ddp=2))


# ---- writing: buffering, timestamps, live ------------------------------------------------------

def test_buffered_stdout_reaches_the_file_in_8192_byte_blocks() -> None:
    chunks: list[bytes] = []
    out = simulate.Output(chunks.append, buffered=True)
    simulate.play(emissions(SimConfig()), out, instant=True)
    warning, source, *blocks, last = chunks
    assert b"FutureWarning" in warning  # stderr is line-buffered: it lands before stdout printed earlier
    assert source.startswith(b"  scaler = ")
    assert b"".join(chunks).count(b"\n") == len(lines_of(SimConfig()))
    assert len(blocks) >= 2
    longest_line = max(len(line) for line in lines_of(SimConfig())) + 1
    for block in blocks:
        assert 8192 - longest_line < len(block) <= 8192
    assert 0 < len(last) <= 8192


def test_buffered_crash_shows_the_traceback_before_the_last_stdout_lines() -> None:
    chunks: list[bytes] = []
    simulate.play(emissions(SCENARIOS["crash-oom"]), simulate.Output(chunks.append, buffered=True), instant=True)
    text = b"".join(chunks).decode()
    assert text.index("Traceback") < text.index("iter 420:")  # the exit flushes stdout after stderr's traceback
    assert text.endswith("\n")


def test_buffered_kill_loses_the_unflushed_block() -> None:
    cfg = SCENARIOS["resume"]
    chunks: list[bytes] = []
    simulate.play(emissions(cfg), simulate.Output(chunks.append, buffered=True), instant=True)
    text = b"".join(chunks).decode()
    # the first process printed less than one block before it died: none of its stdout reached the file
    assert text.count("Overriding config with") == 1 and text.count("iter 500:") == 1
    assert "Resuming training from" in text
    assert text.splitlines()[-1].startswith("iter 1000:")  # the resumed process exits normally and flushes


def test_timestamps_are_the_simulated_clock_like_ts() -> None:
    chunks: list[bytes] = []
    out = simulate.Output(chunks.append, stamp_origin=1_764_275_588.0)
    simulate.play(emissions(SCENARIOS["char-log-every-iteration"]), out, instant=True)
    rows = b"".join(chunks).decode().splitlines()
    truth = list(generate(SCENARIOS["char-log-every-iteration"]))
    assert len(rows) == len(truth)
    for row, (t, line) in zip(rows, truth, strict=True):
        assert row == f"{1_764_275_588.0 + t:.6f} {line}"


def test_buffered_timestamps_stamp_whole_lines_at_flush_time() -> None:
    chunks: list[bytes] = []
    out = simulate.Output(chunks.append, buffered=True, stamp_origin=1e9)
    simulate.play(emissions(SimConfig(max_iters=2000)), out, instant=True)
    rows = b"".join(chunks).decode().splitlines()
    truth = {line: t for t, line in generate(SimConfig(max_iters=2000)) if line.startswith("iter ")}
    stamps = [float(row.split(" ", 1)[0]) for row in rows]
    assert len(set(stamps)) <= 6  # a few bursts
    late = 0
    for row in rows:
        stamp, line = row.split(" ", 1)
        if line in truth:
            assert float(stamp) >= 1e9 + truth[line] - 1e-6  # seen when its block was flushed, never before
            late += float(stamp) > 1e9 + truth[line] + 1.0
    assert late > 100


def test_live_subprocess_grows_the_file_then_matches_the_instant_log(tmp_path: Path) -> None:
    args = ["--max-iters", "300", "--eval-interval", "100", "--seed", "5"]
    live, reference = tmp_path / "live.log", tmp_path / "ref.log"
    proc = subprocess.Popen([sys.executable, "-m", "monitor.sim.write", str(live), "--speed", "40", *args],
                            env=child_env(), stderr=subprocess.PIPE)
    try:
        assert simulate.main([str(reference), "--instant", *args]) == 0
        final = reference.stat().st_size
        sizes = set()
        while proc.poll() is None:
            if live.exists():
                sizes.add(live.stat().st_size)
            time.sleep(0.005)
        assert proc.returncode == 0 and proc.stderr is not None and proc.stderr.read() == b""
    finally:
        proc.kill()
        proc.wait()
    assert live.read_bytes() == reference.read_bytes()
    assert len([s for s in sizes if 0 < s < final]) >= 3


def test_buffered_subprocess_file_grows_only_at_block_boundaries(tmp_path: Path) -> None:
    cfg = SimConfig(seed=4)
    chunks: list[bytes] = []
    simulate.play(emissions(cfg), simulate.Output(chunks.append, buffered=True), instant=True)
    boundaries = {sum(len(c) for c in chunks[:k]) for k in range(len(chunks) + 1)}
    live = tmp_path / "buffered.log"
    proc = subprocess.Popen([sys.executable, "-m", "monitor.sim.write", str(live), "--buffered", "--speed", "200",
                             "--seed", "4"], env=child_env())
    try:
        seen = set()
        while proc.poll() is None:
            if live.exists():
                seen.add(live.stat().st_size)
            time.sleep(0.002)
        assert proc.returncode == 0
    finally:
        proc.kill()
        proc.wait()
    seen.add(live.stat().st_size)
    # A block's write() can be caught half done: the kernel grows the file a page at a time while it copies
    # (ext4, a loaded machine). Line by line, sizes would end at lines instead, rarely on a page.
    assert {s for s in seen if s % 4096} <= boundaries
    assert live.stat().st_size == max(boundaries)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_ends_the_writer_quietly(sig: signal.Signals, tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    proc = subprocess.Popen([sys.executable, "-m", "monitor.sim.write", str(log), "--speed", "4"],
                            env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: log.exists() and b"compiling the model" in log.read_bytes(), what="the banner")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + sig
    assert err == b""


def test_background_writer_stops_on_request_even_while_stalled(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    cfg = SCENARIOS["stall-for-good"]
    bg = simulate.start(cfg, str(log), speed=10_000)
    expected = "".join(line + "\n" for line in lines_of(cfg)).encode()
    wait_for(lambda: log.read_bytes() == expected, what="everything before the stall")
    assert not bg.done  # stalled for good: the process is alive and silent
    bg.stop()
    assert bg.done


# ---- the command line ---------------------------------------------------------------------------

def test_cli_arguments_build_the_config_and_write(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    simulate.add_arguments(p)
    args = p.parse_args([str(tmp_path / "x.log"), "--instant", "--preset", "gpt2-124m", "--max-iters", "100",
                         "--eval-interval", "50", "--ddp", "4", "--crash-at", "0.5", "--stall-at", "0.2",
                         "--stall-seconds", "2m", "--timestamps", "--start-time", "1764275588"])
    cfg = simulate.config_from_args(args)
    assert (cfg.preset, cfg.max_iters, cfg.ddp, cfg.crash_at, cfg.stall_s) == ("gpt2-124m", 100, 4, 0.5, 120.0)
    assert simulate.run(args) == 0
    first = (tmp_path / "x.log").read_text().splitlines()[0]
    assert first.startswith("1764275591.") and "Overriding config with config/train_gpt2.py:" in first


@pytest.mark.parametrize("argv", [["--crash-at", "1.5"], ["--speed", "0"], ["--stall-seconds", "soon"]],
                         ids=["fraction-above-1", "zero-speed", "bad-duration"])
def test_cli_rejects_bad_values(argv: list[str], tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    simulate.add_arguments(p)
    with pytest.raises(SystemExit) as e:
        p.parse_args([str(tmp_path / "x.log"), *argv])
    assert e.value.code == 2


def test_cli_reports_impossible_runs_and_paths_as_user_errors(tmp_path: Path) -> None:
    p = argparse.ArgumentParser()
    simulate.add_arguments(p)
    with pytest.raises(TrainwatchError, match="not divisible"):
        simulate.run(p.parse_args([str(tmp_path / "x.log"), "--ddp", "3"]))
    with pytest.raises(TrainwatchError, match="No such file"):
        simulate.run(p.parse_args([str(tmp_path / "missing" / "x.log"), "--instant"]))


def test_no_compile_skips_the_compile_warm_up_and_says_so() -> None:
    """`--no-compile` is nanoGPT's `--compile=False`: the first iteration pays CUDA's warm-up, not torch.compile's."""
    from monitor.sim.scenario import CUDA_WARMUP_S

    compiled, eager = resolve(SimConfig()), resolve(SimConfig(compile=False))
    assert compiled.warmup_s > 10 and eager.warmup_s == CUDA_WARMUP_S
    assert ("compile", False) in eager.overrides
    args = cli.build_parser().parse_args(["simulate", "out.log", "--no-compile"])
    assert args.compile is False
