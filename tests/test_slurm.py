"""Following Slurm jobs: discovery (monitor/daemon/slurm.py), the time limit against the forecast band
(monitor/model/job.py), Slurm's end states, a requeue, `[slurm]` and the flags. Slurm itself is either
the recorded answers of tests/fixtures/slurm or a real squeue that cannot reach its controller; the
tests against a running cluster are in test_slurm_live.py."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from prom_fixtures import T0, free_port, full_snapshot, http_get, wait_for, write_nanogpt_log
from slurm_cluster import end

from monitor.alerts.rules import AlertConfig, AlertMemory, evaluate, time_limit_text
from monitor.cli import build_parser
from monitor.cli.options import follow_sources, slurm_watch
from monitor.daemon.config import Config, parse
from monitor.daemon.slurm import SlurmError, SlurmQuery, SlurmWatch, run_command
from monitor.daemon.writer import Follower, RunSpec
from monitor.errors import TrainwatchError
from monitor.model.build import build_snapshot
from monitor.model.job import run_state, time_limit
from monitor.snapshot import Forecast, TimeLimit
from parsers.slurm import SlurmJob

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"
BASE = RunSpec(log="", name="", labels={"cluster": "a"})


def recorded(name: str) -> str:
    return "".join(ln for ln in (FIXTURES / name).read_text().splitlines(keepends=True) if not ln.startswith("#"))


class Answers:
    """Slurm as a list of answers, one per command asked: a text, or a SlurmError to raise."""

    def __init__(self, *answers: str | SlurmError) -> None:
        self.answers = list(answers)
        self.asked: list[list[str]] = []

    def __call__(self, argv: Sequence[str], env: Mapping[str, str]) -> str:
        self.asked.append(list(argv))
        assert env == {"SLURM_TIME_FORMAT": "%s"}
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, SlurmError):
            raise answer
        return answer


def watch(*answers: str | SlurmError, **query: object) -> tuple[SlurmWatch, Answers]:
    ask = Answers(*answers)
    return SlurmWatch(SlurmQuery(**{"user": "root", **query}), command=ask, clock=lambda: T0), ask  # type: ignore[arg-type]


# ---- discovery ------------------------------------------------------------------------------------

def test_one_squeue_for_all_the_users_jobs_gives_one_run_per_output() -> None:
    w, ask = watch(recorded("squeue-22.05.8.txt"))
    assert w.poll()
    [argv] = ask.asked
    assert argv[:2] == ["squeue", "--states=all"] and "--user=root" in argv and argv[2].startswith("--Format=")
    specs = {s.name: s for s in w.specs(BASE)}
    assert "9 later" not in specs  # pending: nothing written yet
    timeout = specs["1 gpt2-124m"]
    assert timeout.log == "/tmp/slurmrec2/jobs/gpt2-gpt2-124m-1.out"
    assert timeout.labels == {"cluster": "a", "job_id": "1", "job_name": "gpt2-124m", "user": "root",
                              "partition": "debug", "nodes": "vm"}
    assert timeout.job is not None and timeout.job.state == "TIMEOUT" and timeout.job_end_at == 1796306480.0
    assert specs["1 gpt2-124m (stderr)"].log == "/tmp/slurmrec2/jobs/gpt2-1.err"
    assert specs["4_1 arr"].log == "/tmp/slurmrec2/jobs/arr-4_1-vm.out"
    assert specs["8 cancelled"].job_end_at is None  # --time=UNLIMITED


@pytest.mark.parametrize(("query", "names"), [
    ({"name": "arr"}, {"4_1 arr", "4_2 arr"}),
    ({"name": "gpt2-*"}, {"1 gpt2-124m", "1 gpt2-124m (stderr)"}),
    ({"partition": "gpu"}, set()),
    ({"user": "alice"}, set()),
    ({"user": "alice", "all_users": True, "name": "done"}, {"6 done"}),
], ids=["name", "glob", "partition", "another user", "all users"])
def test_narrowing(query: dict[str, object], names: set[str]) -> None:
    ask = Answers(recorded("squeue-22.05.8.txt"))
    w = SlurmWatch(SlurmQuery(**{"user": "root", **query}), command=ask)  # type: ignore[arg-type]
    w.poll()
    assert {s.name for s in w.specs(BASE)} == names
    argv = ask.asked[0]
    assert ("--user=alice" in argv) == (query.get("user") == "alice" and not query.get("all_users"))
    assert ("--partition=gpu" in argv) == ("partition" in query)


def test_a_job_that_leaves_slurm_stays_followed_then_goes(caplog: pytest.LogCaptureFixture) -> None:
    now = [T0]
    ask = Answers(recorded("squeue-22.05.8.txt"))
    w = SlurmWatch(SlurmQuery(user="root"), command=ask, clock=lambda: now[0], keep_s=3600.0)
    w.poll()
    ask.answers = [recorded("squeue-22.05.8.txt").split("\n")[0] + "\n"]  # MinJobAge passed: all purged
    now[0] += 60
    assert not w.poll()
    assert "1 gpt2-124m" in {s.name for s in w.specs(BASE)}
    now[0] += 3601
    assert w.poll()
    assert w.specs(BASE) == []


def test_slurm_too_old_for_squeue_format_is_asked_with_scontrol(caplog: pytest.LogCaptureFixture) -> None:
    old = SlurmError("squeue failed: squeue: error: Invalid job format specification: RestartCnt")
    w, ask = watch(old, recorded("scontrol-17.11.txt"), user="alice")
    with caplog.at_level(logging.WARNING):
        w.poll()
        w.poll()
    assert [a[0] for a in ask.asked] == ["squeue", "scontrol", "scontrol"]
    assert {s.name for s in w.specs(BASE)} == {"7731 gpt2-124m", "7731 gpt2-124m (stderr)"}
    assert len([r for r in caplog.records if "asking scontrol instead" in r.message]) == 1


# ---- a bad Slurm answer: one clear log line, the runs already found keep being followed -----------

def test_garbled_answer_logs_once_keeps_what_it_understood_and_says_when_it_clears(
        caplog: pytest.LogCaptureFixture) -> None:
    good = recorded("squeue-22.05.8.txt")
    garbled = good.replace("\x1fRUNNING\x1f", "\x1f?\x1f", 1)
    w, ask = watch(good, garbled, garbled, good)
    with caplog.at_level(logging.INFO, logger="monitor.daemon.slurm"):
        for _ in range(4):
            w.poll()
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith("Slurm: Slurm's answer was not understood (squeue: 1 of 11 job line(s) not understood, "
                            "the first: '2|2|N/A|requeued|root|debug|vm|vm|?|None|")
    assert error.endswith("); following the jobs it did describe; the runs already found keep being followed")
    assert "Slurm answers again" in caplog.text
    assert "2 requeued" in {s.name for s in w.specs(BASE)}  # kept as last seen while its line was garbled


def test_squeue_missing(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    w = SlurmWatch(SlurmQuery(user="root"))
    with caplog.at_level(logging.INFO, logger="monitor.daemon.slurm"):
        assert not w.poll()
        assert not w.poll()
    assert [r.getMessage() for r in caplog.records] == [
        "Slurm: squeue not found: --slurm needs the Slurm client commands on PATH (run trainwatch on a login node); "
        "the runs already found keep being followed"]


@pytest.mark.skipif(shutil.which("squeue") is None, reason="Slurm's client commands are not installed")
def test_slurmctld_down_is_squeues_own_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real squeue whose controller does not answer (nothing listens on its port)."""
    (tmp_path / "slurm.conf").write_text(
        f"ClusterName=down\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort={free_port()}\nMessageTimeout=1\n"
        f"AuthType=auth/munge\nAuthInfo=socket={tmp_path}/munge.socket\nNodeName=localhost CPUs=1\n"
        "PartitionName=debug Nodes=localhost Default=YES\n")
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "slurm.conf"))
    with pytest.raises(SlurmError, match=r"^squeue failed: slurm_load_jobs error: Unable to contact slurm controller"):
        run_command(["squeue"], {})


def test_a_poll_that_fails_keeps_the_runs_and_the_thread_goes_on() -> None:
    w, ask = watch(recorded("squeue-22.05.8.txt"), SlurmError("squeue did not answer in 30 s"))
    w.poll()
    before = w.specs(BASE)
    assert not w.poll()
    assert w.specs(BASE) == before


# ---- the time limit against the band --------------------------------------------------------------

def band(finish: float, spread: float = 600.0) -> Forecast:
    return Forecast(eta_s=finish - T0, finish_at=finish, finish_p10=finish - spread, finish_p90=finish + spread)


@pytest.mark.parametrize(("finish", "verdict"), [
    (T0 + 5 * 3600, "will"),  # even p10 (4h50m) is past the end (3h)
    (T0 + 3 * 3600, "may"),  # p90 is past, p10 is not
    (T0 + 3600, None),  # p90 (1h10m) is well inside
], ids=["will", "may", "in time"])
def test_verdict_from_the_band(finish: float, verdict: str | None) -> None:
    tl = time_limit(band(finish), state="running", iter_=1000, max_iters=20000, job_end_at=T0 + 3 * 3600, now=T0)
    assert (tl.verdict if tl else None) == verdict


def test_no_verdict_without_a_job_end_or_once_the_run_ended() -> None:
    fc = band(T0 + 5 * 3600)
    assert time_limit(fc, state="running", iter_=1, max_iters=9, job_end_at=None, now=T0) is None
    assert time_limit(fc, state="timeout", iter_=1, max_iters=9, job_end_at=T0, now=T0) is None


def test_the_warning_says_where_the_run_will_be_cut() -> None:
    """The issue's own example: at 82 % when the job ends in 3h 10m, the checkpoint at 16,000."""
    left, needs = 3 * 3600 + 600.0, 4 * 3600 + 1200.0
    it = 16400 - round((20000 - 16400) * left / (needs - left))  # where the run is now, at that speed
    tl = time_limit(band(T0 + needs), state="running", iter_=it, max_iters=20000, job_end_at=T0 + left, now=T0)
    snap = full_snapshot("12345 gpt2-124m", iter=it, max_iters=20000, time_limit=tl, last_checkpoint_iter=16000,
                         labels={"job_id": "12345", "job_name": "gpt2-124m"})
    assert time_limit_text(snap) == ("job 12345 (gpt2-124m) will hit its time limit at about iteration 16,400 of "
                                     "20,000 (82 %), in 3h 10m; the last checkpoint was at 16,000; it needs about "
                                     "4h 20m more")


def test_time_limit_notifications_once_per_verdict_and_no_finish_the_limit_will_prevent() -> None:
    def snap(verdict: str | None, eta: float = 300.0) -> object:
        tl = None if verdict is None else TimeLimit(verdict, T0 + 60, 60.0, eta, 100, 0.5)
        return full_snapshot("7 gpt2", forecast=replace(band(T0 + eta), iter_s=0.1, evals_left=0), iter=100,
                             max_iters=3000, time_limit=tl, labels={"job_id": "7", "job_name": "gpt2"})

    mem, cfg = AlertMemory(), AlertConfig(notify_before_s=600.0)
    sent = []
    for verdict in ("may", "may", "will", "will", "may"):
        mem, alerts = evaluate(mem, [snap(verdict)], T0, cfg, quiet=False)  # type: ignore[list-item]
        sent += [(a.kind, a.key) for a in alerts]
    assert sent == [("finishing", "finishing"), ("time-limit", "time-limit:may"), ("time-limit", "time-limit:will")]


@pytest.mark.parametrize(("log_state", "slurm", "state"), [
    ("running", "TIMEOUT", "timeout"), ("stalled", "PREEMPTED", "preempted"), ("running", "CANCELLED", "cancelled"),
    ("running", "NODE_FAIL", "node_fail"), ("running", "OUT_OF_MEMORY", "out_of_memory"),
    ("running", "FAILED", "crashed"), ("finished", "TIMEOUT", "finished"), ("running", "COMPLETED", "running"),
    ("running", "RUNNING", "running"), ("crashed", None, "crashed"),
])
def test_slurms_end_state_is_the_runs_unless_the_training_finished(log_state: str, slurm: str | None,
                                                                    state: str) -> None:
    assert run_state(log_state, slurm) == state


def test_a_run_slurm_ended_notifies_as_slurm_said_it(tmp_path: Path) -> None:
    log = write_nanogpt_log(tmp_path / "out.log", last_iter=300, max_iters=500)
    from monitor.daemon.load import load

    state = load(str(log)).state
    labels = {"job_id": "12345", "job_name": "gpt2-124m"}
    snap = build_snapshot(state, run="12345 gpt2-124m", log=str(log), now=T0, labels=labels, slurm_state="TIMEOUT")
    assert snap.state == "timeout" and snap.forecast.eta_s is None
    _, alerts = evaluate(AlertMemory(), [snap], T0, AlertConfig(), quiet=False)
    assert [(a.title, a.body) for a in alerts] == [
        ("12345 gpt2-124m: hit its time limit at iter 300", "Slurm ended job 12345 (gpt2-124m): timeout. "
         "Iteration 300 of 500. The last checkpoint was at 300.")]


# ---- a requeued job is a resume of the same run ---------------------------------------------------

def job(restarts: int, state: str = "RUNNING") -> SlurmJob:
    return SlurmJob(job_id="5", name="gpt2", user="root", partition="debug", nodes="vm", state=state, reason=None,
                    stdout="", stderr=None, start_time=T0, end_time=T0 + 3600, time_limit_s=3600.0,
                    restarts=restarts)


def test_requeued_job_writing_its_file_anew_resumes_the_run(tmp_path: Path) -> None:
    log = write_nanogpt_log(tmp_path / "out.log", last_iter=200, max_iters=500)
    f = Follower(RunSpec(str(log), "5 gpt2", job=job(0)))
    f.step(T0)
    f.step(T0 + 1)
    assert f.ingest is not None and f.ingest.state.last is not None and f.ingest.state.last.iter == 200
    f.retarget(RunSpec(str(log), "5 gpt2", job=job(1, "PENDING")))
    log.write_text("Overriding config with config/train_shakespeare_char.py:\nmax_iters = 500\n"
                   "Resuming training from out-shakespeare-char\niter 210: loss 2.1, time 250.00ms, mfu 31.00%\n")
    f.step(T0 + 2)
    f.step(T0 + 3)
    state = f.ingest.state
    assert state.last is not None and state.last.iter == 210
    assert len(state.iters.points) > 2  # the history before the requeue is still there
    assert any("Slurm requeued job 5 (restart 1)" in n.text for n in state.notes)


# ---- `[slurm]` and the flags ----------------------------------------------------------------------

def args_of(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def config(text: str) -> Config:
    import tomllib

    return parse(tomllib.loads(text), text, "config.toml")


@pytest.mark.parametrize(("argv", "text", "want"), [
    ((), "", None),
    (("--slurm",), "", SlurmQuery(user="u")),
    (("--slurm-all",), "", SlurmQuery(all_users=True, user="u")),
    (("--slurm-name", "gpt2-*", "--slurm-partition", "gpu"), "", SlurmQuery(partition="gpu", name="gpt2-*", user="u")),
    ((), "[slurm]\n", SlurmQuery(user="u")),
    ((), "[slurm]\nenabled = false\n", None),
    (("--slurm-partition", "a100"), '[slurm]\nall_users = true\npartition = "gpu"\ninterval = "2m"\n',
     SlurmQuery(all_users=True, partition="a100", user="u")),
], ids=["off", "flag", "all", "narrowed", "table", "disabled", "table and flags"])
def test_slurm_from_flags_and_config(argv: tuple[str, ...], text: str, want: SlurmQuery | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.daemon.slurm.current_user", lambda: "u")
    w = slurm_watch(args_of(*argv), config(text))
    assert (w.query if w else None) == want
    if w is not None:
        assert w.interval_s == (120.0 if "2m" in text else 30.0)


def test_slurm_alone_is_something_to_follow() -> None:
    with pytest.raises(TrainwatchError, match="--slurm"):
        follow_sources(args_of(), Config())
    w, _ = watch(recorded("squeue-22.05.8.txt"))
    w.poll()
    specs = follow_sources(args_of("--slurm", "--max-iters", "3000"), Config(), w)()
    assert {s.name for s in specs} >= {"1 gpt2-124m", "2 requeued"}
    assert all(s.user == {"max_iters": 3000} for s in specs)


@pytest.mark.parametrize(("text", "error"), [
    ("[slurm]\nuser = 'x'\n", "config.toml:2: unknown key `slurm.user`"),
    ("[slurm]\nall_users = 'yes'\n", "config.toml:2: `slurm.all_users` must be true or false, not 'yes'"),
    ("slurm = 3\n", "`slurm` must be a [slurm] table"),
    ("[slurm]\ninterval = 'often'\n", "config.toml:2: `slurm.interval` must be a duration"),
])
def test_slurm_table_is_checked(text: str, error: str) -> None:
    with pytest.raises(TrainwatchError, match=error.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        config(text)



def test_without_squeue_serve_says_so_once_and_follows_its_other_logs(tmp_path: Path) -> None:
    """The real serve process, on a machine with no Slurm commands: one clear line, the log still followed."""
    log = write_nanogpt_log(tmp_path / "out.log", last_iter=200, max_iters=500)
    port = free_port()
    env = {**os.environ, "PATH": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"),
           "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    errors = tmp_path / "serve.err"
    with errors.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--slurm", "--slurm-interval", "0.2s",
                                 "--listen", f"127.0.0.1:{port}", "--no-gpu", str(log)], cwd=Path(__file__).parents[1],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: b'trainwatch_iteration{run="out"} 200.0' in _scrape(port), 30, "the log's run in /metrics")
        wait_for(lambda: errors.read_text().count("asking Slurm every") == 1, 10, "the watch to start")
        first = _taken_at(port)
        wait_for(lambda: _taken_at(port) >= first + 1.0, 10, "a second more (five Slurm intervals)")
        said = [ln for ln in errors.read_text().splitlines() if "squeue" in ln]
        assert said == ["ERROR monitor.daemon.slurm: Slurm: squeue not found: --slurm needs the Slurm client commands "
                        "on PATH (run trainwatch on a login node); the runs already found keep being followed"]
    finally:
        end(proc)


def _scrape(port: int) -> bytes:
    try:
        return http_get(f"http://127.0.0.1:{port}/metrics")[2]
    except OSError:
        return b""


def _taken_at(port: int) -> float:
    """When serve last rebuilt the run's snapshot (it does so every second)."""
    line = next(ln for ln in _scrape(port).decode().splitlines()
                if ln.startswith('trainwatch_snapshot_timestamp_seconds{run="out"}'))
    return float(line.split()[-1])


def test_the_time_limit_note_is_written_once_into_the_runs_events(tmp_path: Path) -> None:
    """A run that needs minutes more, in a job that ends in seconds: one note, however often it is published."""
    log = write_nanogpt_log(tmp_path / "out.log", last_iter=200, max_iters=2000)
    mtime = log.stat().st_mtime
    soon = replace(job(0), end_time=mtime + 5, stdout=str(log))
    f = Follower(RunSpec(str(log), "5 gpt2", job=soon, labels={"job_id": "5", "job_name": "gpt2"}))
    f.step(mtime)
    snaps = [f.snapshot(mtime + dt) for dt in (1.0, 2.0, 3.0)]
    assert snaps[0].time_limit is not None and snaps[0].time_limit.verdict == "will"
    notes = [n.text for n in snaps[-1].notes if "time limit" in n.text]
    assert len(notes) == 1 and notes[0].startswith("job 5 (gpt2) will hit its time limit at about iteration ")


def test_trainwatch_dash_dash_slurm_is_the_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor import cli

    seen: list[argparse.Namespace] = []
    monkeypatch.setattr(cli, "handler_of", lambda command: lambda a: seen.append(a) or 0)
    assert cli.main(["--slurm", "--slurm-name", "gpt2-*", "--slurm-interval", "1s"]) == 0
    assert (seen[0].command, seen[0].slurm, seen[0].slurm_name, seen[0].slurm_interval) == ("watch", True, "gpt2-*",
                                                                                          1.0)


def test_a_hostile_job_name_reaches_the_log_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """Anyone on the cluster names their jobs: escapes and newlines in a name stay out of the terminal."""
    head = "\x1f".join(["JOBID", "NAME", "USER", "STATE", "STDOUT", "WORK_DIR", "START_TIME"]) + "\x1f"
    row = "\x1f".join(["9", "x\x1b]0;PWNED\x07\x1b[2J", "root", "RUNNING", "%x.out", "/w", "1796306393"]) + "\x1f"
    w, _ = watch(f"{head}\n{row}\n")
    with caplog.at_level(logging.INFO, logger="monitor.daemon.slurm"):
        w.poll()
    [line] = caplog.messages
    assert "\x1b" not in line and "\x07" not in line and "x\\x1b]0;PWNED\\x07" in line


def test_a_slurm_runs_snapshot_crosses_the_json_api() -> None:
    """A remote view (`trainwatch http://login1:10464`) sees the job's end and the verdict too."""
    from exporters import api

    snap = full_snapshot("12345 gpt2-124m", labels={"job_id": "12345"}, job_end_at=T0 + 600.0,
                         last_checkpoint_iter=2500, time_limit=TimeLimit("will", T0 + 600.0, 600.0, 1800.0, 3100, 0.62))
    doc = json.loads(api.dumps(api.detail(snap, limit=10**6)))
    assert api.snapshot_of(doc) == snap
