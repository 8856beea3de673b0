"""`trainwatch serve --slurm` against a real one-node Slurm (tests/slurm_cluster.py): real sbatch jobs run
`trainwatch simulate`, and a real HTTP receiver gets the notifications.

Three jobs share one minute-long time limit (`--time=1`) and run at once: one too long for it, one
that finishes in time, one cancelled. The tests read the one scene they make, in the order its events
happen, so the whole file takes about as long as Slurm takes to kill the long job (60–90 s: slurmctld
checks time limits every 30 s).
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from http_sink import Post, Sink
from prom_fixtures import free_port, http_get, wait_for
from prometheus_client.parser import text_string_to_metric_families
from slurm_cluster import SlurmCluster, end

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # one cluster and one serve for the module

ROOT = Path(__file__).resolve().parents[1]


def simulate(max_iters: int) -> str:
    """A nanoGPT run at 50 ms an iteration, a line every 0.5 s, printed into the job's own output
    (no torch.compile warm-up: the first line comes within seconds, well inside the minute)."""
    return (f"exec {sys.executable} -u -m monitor.cli simulate /dev/stdout --max-iters {max_iters} --iter-ms 50 "
            "--log-interval 10 --eval-interval 1000 --no-compile")


@dataclass
class Scene:
    slurm: SlurmCluster
    sink: Sink
    port: int
    serve_log: Path
    jobs: dict[str, int]  # long | short | doomed → job id

    def run(self, key: str) -> str:
        names = {"long": "gpt2-124m", "short": "short-run", "doomed": "doomed"}
        return f"{self.jobs[key]} {names[key]}"

    def states(self) -> dict[str, str]:
        """Each run's state as /metrics says it (the sample that is 1)."""
        _, _, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        out = {}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "trainwatch_run_state" and s.value == 1:
                    out[s.labels["run"]] = s.labels["state"]
        return out

    def info(self) -> dict[str, dict[str, str]]:
        _, _, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        return {s.labels["run"]: s.labels for f in text_string_to_metric_families(body.decode())
                for s in f.samples if s.name == "trainwatch_run_info"}

    def posts_about(self, key: str) -> list[Post]:
        return [p for p in list(self.sink.posts) if str(p.body.get("title", "")).startswith(self.run(key) + ":")]


@pytest.fixture(scope="module")
def scene(slurm: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp("slurm-live")
    sink, port = Sink(), free_port()
    serve_log = tmp / "serve.log"
    env = {**slurm.env, "XDG_STATE_HOME": str(tmp / "state"), "PYTHONUNBUFFERED": "1"}
    with serve_log.open("wb") as fh:
        serve = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--slurm", "--slurm-interval", "1s",
                                  "--listen", f"127.0.0.1:{port}", "--no-gpu", "--notify", sink.url()],
                                 cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
    jobs: dict[str, int] = {}
    try:
        wait_for(lambda: serve.poll() is None and "serving metrics" in serve_log.read_text(), 30, "serve to listen")
        out = f"--output={tmp}/%x-%j.out"
        for key, name, iters in (("long", "gpt2-124m", 5000), ("short", "short-run", 300), ("doomed", "doomed", 5000)):
            jobs[key] = slurm.sbatch("--time=1", f"--job-name={name}", out, wrap=simulate(iters), cwd=ROOT)
        yield Scene(slurm, sink, port, serve_log, jobs)
    finally:
        end(serve)
        sink.close()
        for job in jobs.values():
            slurm.run("scancel", str(job), check=False)


def test_jobs_are_discovered_as_runs_with_their_labels(scene: Scene) -> None:
    info = wait_for(lambda: (i := scene.info()) and all(scene.run(k) in i for k in scene.jobs) and i, 60,
                    f"three runs in /metrics (serve's log: {scene.serve_log})")
    labels = info[scene.run("long")]
    user = pwd.getpwuid(os.getuid()).pw_name
    assert {k: labels[k] for k in ("job_id", "job_name", "user", "partition", "nodes")} == {
        "job_id": str(scene.jobs["long"]), "job_name": "gpt2-124m", "user": user, "partition": "debug",
        "nodes": scene.slurm.host}
    assert labels["log"].endswith(f"/gpt2-124m-{scene.jobs['long']}.out")


def test_scancel_ends_the_run_as_cancelled(scene: Scene) -> None:
    wait_for(lambda: scene.states().get(scene.run("doomed")) == "running", 60, "the doomed run to be running")
    scene.slurm.run("scancel", str(scene.jobs["doomed"]))
    wait_for(lambda: scene.states().get(scene.run("doomed")) == "cancelled", 60, "the run to be cancelled")
    said = f"{scene.run('doomed')}: was cancelled at iter "
    scene.sink.wait(lambda _: any(str(p.body["title"]).startswith(said) for p in scene.posts_about("doomed")), 30)


def test_a_job_that_finishes_in_time_gets_no_warning(scene: Scene) -> None:
    wait_for(lambda: scene.states().get(scene.run("short")) == "finished", 90, "the short run to finish")
    finished = f"{scene.run('short')}: finished"  # delivered off the writer thread: it may come a moment later
    scene.sink.wait(lambda _: any(p.body.get("title") == finished for p in scene.posts_about("short")), 30)
    assert not any("time limit" in str(p.body.get("title")) for p in scene.posts_about("short"))


def test_the_warning_arrives_before_slurm_kills_the_job(scene: Scene) -> None:
    title = f"{scene.run('long')}: will hit its time limit"
    scene.sink.wait(lambda _: any(p.body.get("title") == title for p in scene.posts_about("long")), 90)
    [warning] = [p for p in scene.posts_about("long") if p.body["title"] == title]
    assert warning.at < _ended_at(scene)
    body = str(warning.body["message"])
    assert body.startswith(f"job {scene.jobs['long']} (gpt2-124m) will hit its time limit at about iteration ")
    assert " of 5,000 (" in body and "; it needs about " in body


def test_the_run_ends_as_timeout_not_crashed(scene: Scene) -> None:
    wait_for(lambda: scene.states().get(scene.run("long")) == "timeout", 150,
             "Slurm to kill the long job at its time limit")
    ended = f"{scene.run('long')}: hit its time limit at iter "
    scene.sink.wait(lambda _: any(str(p.body.get("title")).startswith(ended) for p in scene.posts_about("long")), 30)
    titles = [p.body["title"] for p in scene.posts_about("long")]
    assert not any("crashed" in str(t) for t in titles)
    warned = next(p.at for p in scene.posts_about("long") if "will hit its time limit" in str(p.body["title"]))
    assert warned < _ended_at(scene)
    # each verdict told once: one "will hit", and it was not repeated while the job ran on
    assert sum("will hit its time limit" in str(t) for t in titles) == 1


def _ended_at(scene: Scene) -> float:
    """When Slurm ended the long job (its EndTime once it ended), unix seconds."""
    job = scene.slurm.job(scene.jobs["long"])
    if job.get("JobState") in (None, "RUNNING", "COMPLETING"):
        return time.time()  # not ended yet: anything sent so far came before
    return time.mktime(time.strptime(job["EndTime"], "%Y-%m-%dT%H:%M:%S"))
