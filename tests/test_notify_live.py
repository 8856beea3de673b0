"""End to end: the real `trainwatch serve` follows accelerated simulated runs (`trainwatch simulate`)
and notifies a real HTTP receiver through apprise's json://. Each rule fires exactly once with the
right content; old logs send nothing; a restarted daemon repeats nothing; a receiver that is down or
slow does not stall the metrics.

Slow: a hang is only called a stall after at least 60 s of silence (monitor/model/forecast.py), whatever
the acceleration; every other scenario runs alongside it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alert_logs import snap
from http_sink import Sink, closed_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
TRAINWATCH = [sys.executable, "-m", "monitor.cli"]
SERVE = [*TRAINWATCH, "serve"]
LEAD_S = 600.0  # --notify-before 10m
RUN = ["--max-iters", "3000", "--iter-ms", "300", "--log-interval", "10", "--eval-interval", "500"]
LINE_S = 10 * 0.3  # training time between two log lines
LIVE = {  # run → (simulate options, the alert kinds it must send, in order, each once)
    "fin": ([], ["finishing", "finished"]),
    "crash": (["--crash-at", "0.3"], ["crashed"]),
    "nan": (["--nan-at", "0.3"], ["nan", "finishing", "finished"]),
    "slow": (["--slowdown-at", "0.3", "--slowdown-factor", "2"], ["slowdown", "finishing", "finished"]),
    "stall": (["--stall-at", "0.3", "--eval-interval", "1000"], ["stalled"]),
}
OLD = {"old-finished": [], "old-crashed": ["--crash-at", "0.5"], "old-nan": ["--nan-at", "0.3"],
       "old-stalled": ["--stall-at", "0.5"]}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    e.pop("DBUS_SESSION_BUS_ADDRESS", None)  # no desktop notifications from a test run
    return e


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def simulate(procs: list[subprocess.Popen[bytes]], env: dict[str, str], log: Path, *options: str,
             speed: float = 30) -> subprocess.Popen[bytes]:
    p = subprocess.Popen([*TRAINWATCH, "simulate", str(log), *RUN, *options, "--speed", str(speed)], cwd=ROOT, env=env)
    procs.append(p)
    return p


class Daemon:
    """`trainwatch serve`, its stderr in a file, and the port its metrics listen on."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], env: dict[str, str], logs: list[Path],
                 urls: list[str], err: Path) -> None:
        notify = [a for url in urls for a in ("--notify", url)]
        self.err = err
        with err.open("wb") as fh:
            # --publish-interval 0: the run is replayed 30-60× faster than real time, so the default 0.25 s
            # CPU guard would be 8-15 s of run time; a real run's lines are far apart
            self.proc = subprocess.Popen([*SERVE, *map(str, logs), *notify, "--publish-interval", "0",
                                          "--notify-before", "10m",
                                          "--listen", "127.0.0.1:0", "--no-gpu"], cwd=ROOT, env=env, stderr=fh)
        procs.append(self.proc)
        found = wait(lambda: re.search(r"serving metrics on http://127\.0\.0\.1:(\d+)/metrics", self.stderr())
                     or self.proc.poll() is not None, what="serve to start", timeout=60)
        assert isinstance(found, re.Match), self.stderr()
        self.port = int(found.group(1))

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def iteration(self, run: str) -> float | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            m = re.search(rf'^trainwatch_iteration{{run="{run}"}} (\S+)$', r.read().decode(), re.M)
        return float(m.group(1)) if m else None

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(20) == 0, self.stderr()


def wait(cond: Callable[[], object], *, what: str, timeout: float = 150.0) -> object:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        pause.wait(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def alerts(sink: Sink) -> list[tuple[str, str, str]]:
    """(run, kind, body) of each post; the kind is read from the title's wording."""
    kinds = [("finishing at", "finishing"), ("finish moved", "finish-moved"), ("finished", "finished"),
             ("crashed", "crashed"), ("stalled", "stalled"), ("loss is", "nan"), ("diverging", "diverging"),
             ("slowed down", "slowdown"), ("% done", "milestone")]
    out = []
    for p in sink.posts:
        run, _, what = str(p.body["title"]).partition(": ")
        kind = next((k for words, k in kinds if what.startswith(words) or words in what), what)
        out.append((run, kind, str(p.body["message"])))
    return out


def eta_in(body: str) -> float:
    m = re.search(r"\(in (?:(\d+)m )?(\d+)s", body)
    assert m, body
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def test_each_rule_fires_once_with_its_content(tmp_path: Path, env: dict[str, str],
                                               procs: list[subprocess.Popen[bytes]]) -> None:
    old_logs = []
    for name, options in OLD.items():  # finished, crashed or hung an hour ago: history, never news
        log = tmp_path / f"{name}.log"
        simulate(procs, env, log, *options, "--instant").wait(60)
        hour_ago = time.time() - 3600
        os.utime(log, (hour_ago, hour_ago))
        old_logs.append(log)
    good, slow, down = Sink(), Sink(), f"json://127.0.0.1:{closed_port()}/hook"
    slow.hold.set()
    try:
        live_logs = [tmp_path / f"{run}.log" for run in LIVE]  # not there yet: the runs start after serve
        daemon = Daemon(procs, env, old_logs + live_logs, [good.url(), slow.url(), down], tmp_path / "serve.err")
        for log, (options, _) in zip(live_logs, LIVE.values(), strict=True):
            simulate(procs, env, log, *options)

        # A receiver holding its request and one that is down: the metrics still move.
        assert slow.held.wait(60), f"no alert reached the receivers; serve said:\n{daemon.stderr()}"
        first = wait(lambda: daemon.iteration("fin"), what="fin's first iteration in /metrics")
        wait(lambda: (daemon.iteration("fin") or 0) > first, what="/metrics to move on")  # type: ignore[operator]

        def complete() -> bool:
            got = Counter((run, kind) for run, kind, _ in alerts(good))
            return all(got[(run, k)] for run, (_, kinds) in LIVE.items() for k in kinds)

        wait(complete, what=f"every expected alert; got {[(r, k) for r, k, _ in alerts(good)]}", timeout=240)
        daemon.stop()
    finally:
        good.close()
        slow.close()

    got = alerts(good)
    for run, (_, kinds) in LIVE.items():
        assert [k for r, k, _ in got if r == run] == kinds, (run, got)
    assert not [r for r, _, _ in got if r.startswith("old-")], "backfill sent history"
    body = {(r, k): b for r, k, b in got}

    crash_log = (tmp_path / "crash.log").read_text()
    assert body["crash", "crashed"].startswith("OutOfMemoryError: CUDA out of memory")
    last_iter = re.findall(r"^iter (\d+):", crash_log, re.M)[-1]
    assert f"Iteration {int(last_iter):,} of 3,000." in body["crash", "crashed"]

    first_nan = re.search(r"^iter (\d+): loss nan", (tmp_path / "nan.log").read_text(), re.M)
    assert first_nan and body["nan", "nan"] == f"The training loss became nan at iter {int(first_nan.group(1)):,}."

    fin_log = (tmp_path / "fin.log").read_text()
    final_loss = re.findall(r"^iter 3000: loss ([\d.]+)", fin_log, re.M)[-1]
    final_val = re.findall(r"^step 3000: train loss [\d.]+, val loss ([\d.]+)", fin_log, re.M)[-1]
    assert body["fin", "finished"].startswith("3,000 iterations in ")
    assert f"train loss {final_loss}, val loss {final_val}" in body["fin", "finished"]

    assert body["stall", "stalled"].startswith("No new iteration for ")
    assert body["stall", "stalled"].endswith("(one was expected every 3s).")
    assert re.fullmatch(r"Throughput is (4[5-9]|5[0-5]) % of this run's earlier steady rate \(0\.6\d* s per "
                        r"iteration\)\.", body["slow", "slowdown"]), body["slow", "slowdown"]

    # "finishing soon" comes at the first log line within the lead time (one more line is allowed:
    # under load, two lines can be read in one wake-up).
    notice = body["fin", "finishing"]
    assert LEAD_S - 2 * LINE_S <= eta_in(notice) <= LEAD_S, notice
    stated = int(re.search(r"Iteration ([\d,]+) of 3,000", notice).group(1).replace(",", ""))  # type: ignore[union-attr]
    assert _left_at(tmp_path, fin_log, stated) <= LEAD_S < _left_at(tmp_path, fin_log, stated - 20)


def _left_at(tmp_path: Path, log_text: str, iteration: int) -> float:
    """The forecast's time left at the moment the line for `iteration` was written (replayed)."""
    lines = log_text.splitlines()
    end = next(i for i, ln in enumerate(lines) if ln.startswith(f"iter {iteration}:"))
    s = snap(tmp_path / "replay.log", lines[:end + 1])
    assert s.forecast.eta_s is not None
    return s.forecast.eta_s


def test_a_restarted_daemon_repeats_nothing(tmp_path: Path, env: dict[str, str],
                                            procs: list[subprocess.Popen[bytes]]) -> None:
    sink = Sink()
    log, later = tmp_path / "run.log", tmp_path / "next.log"
    try:
        first = Daemon(procs, env, [log], [sink.url()], tmp_path / "serve1.err")
        simulate(procs, env, log, speed=60)
        sink.wait(lambda posts: len(posts) == 1, timeout=120)
        first.stop()  # mid-run, after "finishing soon", well before the finish
        assert list((tmp_path / "state" / "trainwatch").glob("alerts-*.json")), "no alert state was saved"

        second = Daemon(procs, env, [log], [sink.url()], tmp_path / "serve2.err")
        sink.wait(lambda posts: len(posts) == 2, timeout=120)
        second.stop()

        # A third start on the finished log, next to a new run: only the new run is news. Its
        # alerts come after the old log's first publish was evaluated, so nothing else is on the way.
        third = Daemon(procs, env, [log, later], [sink.url()], tmp_path / "serve3.err")
        simulate(procs, env, later, "--max-iters", "300", speed=60)
        sink.wait(lambda posts: any(p.body["title"] == "next: finished" for p in posts), timeout=120)
        third.stop()
    finally:
        sink.close()
    assert [(r, k) for r, k, _ in alerts(sink)] == [("run", "finishing"), ("run", "finished"),
                                                  ("next", "finishing"), ("next", "finished")]
