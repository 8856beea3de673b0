"""Slurm jobs → runs to follow: asks Slurm once per interval, in its own thread, about every job at once.

The writer never waits on Slurm: `SlurmWatch` keeps the last answer, and `specs()` turns it into one run
per job output (its StdOut, and its StdErr when that is another file), named `12345 gpt2-124m` and
labelled with the job. A missing command, a slurmctld that does not answer or an answer that does not
parse is logged once (and once more when it clears); the jobs already known keep being followed.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import pwd
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from monitor.daemon.writer import RunSpec
from monitor.units import printable
from parsers.slurm import SlurmJob, SlurmJobs, parse_scontrol, parse_squeue, squeue_format

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 30.0
"""Every login node's squeue costs slurmctld an RPC: twice a minute is plenty to see jobs come and go."""

COMMAND_TIMEOUT_S = 30.0
SLURM_ENV = {"SLURM_TIME_FORMAT": "%s"}  # times as unix seconds: no guessing the cluster's zone

NOT_STARTED = frozenset({"PENDING", "CONFIGURING"})


class SlurmError(Exception):
    """A Slurm command could not answer; the message is the one line to log."""


Command = Callable[[Sequence[str], Mapping[str, str]], str]
"""Runs a Slurm client command with these extra environment variables; its stdout, or SlurmError."""


def run_command(argv: Sequence[str], env: Mapping[str, str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=COMMAND_TIMEOUT_S,
                              env={**os.environ, **env}, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise SlurmError(f"{argv[0]} not found: --slurm needs the Slurm client commands on PATH "
                         "(run trainwatch on a login node)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{argv[0]} did not answer in {COMMAND_TIMEOUT_S:g} s") from None
    except OSError as e:
        raise SlurmError(f"{argv[0]}: {e.strerror or e}") from None
    if proc.returncode != 0:
        said = next((ln.strip() for ln in proc.stderr.splitlines() if ln.strip()), f"exit status {proc.returncode}")
        raise SlurmError(f"{argv[0]} failed: {said}")
    return proc.stdout


@dataclass(frozen=True)
class SlurmQuery:
    """Which jobs to follow: the current user's unless `all_users`; in `partition`; named like `name` (a glob)."""

    all_users: bool = False
    partition: str | None = None
    name: str | None = None
    user: str = ""  # whose jobs; the current user when empty

    def wants(self, job: SlurmJob) -> bool:
        return ((self.all_users or job.user == self.user)
                and (self.partition is None or self.partition in job.partition.split(","))
                and (self.name is None or fnmatch.fnmatchcase(job.name, self.name)))


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no passwd entry (containers): Slurm names it by number
        return str(os.getuid())


class SlurmWatch:
    """The jobs Slurm reports, refreshed every `interval_s` by a background thread (`start`/`stop`).

    One command per interval for all jobs: `squeue --states=all` filtered by user and partition on
    slurmctld's side. A Slurm too old for squeue's `--Format` fields is asked with `scontrol show job`
    instead (filtered here). Jobs that leave Slurm's memory (MinJobAge after they end) are kept as last
    seen, for `keep_s` (None: for good), so their runs stay followed as finished runs do.
    """

    def __init__(self, query: SlurmQuery, *, interval_s: float = DEFAULT_INTERVAL_S, keep_s: float | None = None,
                 command: Command = run_command, clock: Callable[[], float] = time.time,
                 on_change: Callable[[], None] | None = None) -> None:
        self.query = query if query.user else replace(query, user=current_user())
        self.interval_s = interval_s
        self.keep_s = keep_s
        self.command = command
        self.clock = clock
        self.on_change = on_change  # called from the watch thread when the jobs changed
        self._jobs: dict[str, SlurmJob] = {}
        self._gone: dict[str, float] = {}  # job id → when it left Slurm's answers
        self._snapshot: tuple[SlurmJob, ...] = ()
        self._problem: str | None = None
        self._use_scontrol = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def describe(self) -> str:
        """Whose jobs, in words, for the log: `alice`, `every user in partition gpu named gpt2-*`."""
        q = self.query
        return ("every user" if q.all_users else q.user) + (f" in partition {q.partition}" if q.partition else "") \
            + (f" named {q.name}" if q.name else "")

    # ---- the reader (any thread) ---------------------------------------------------------------
    def specs(self, base: RunSpec) -> list[RunSpec]:
        """One run per job output: `base` gives the settings every job run shares (format, labels…)."""
        out = []
        for job in self._snapshot:
            labels = {**base.labels, "job_id": job.job_id, "job_name": job.name, "user": job.user,
                      "partition": job.partition, "nodes": job.nodes}
            name = f"{job.job_id} {job.name}".strip()
            for path, run in ((job.stdout, name), (job.stderr, f"{name} (stderr)")):
                if path:
                    out.append(replace(base, log=path, name=run, labels=labels, job=job))
        return out

    # ---- the poll ---------------------------------------------------------------------------
    def poll(self) -> bool:
        """Ask Slurm once; True when the jobs changed. Never raises: a failure is logged and the
        jobs known so far stay as they were."""
        try:
            answer = self._ask()
        except SlurmError as e:
            self._report(str(e))
            return False
        if answer.error:
            self._report(f"Slurm's answer was not understood ({answer.error}); following the jobs it did describe")
        else:
            self._report(None)
        return self._update([j for j in answer.jobs if self.query.wants(j)], self.clock())

    def _ask(self) -> SlurmJobs:
        if not self._use_scontrol:
            argv = ["squeue", "--states=all", f"--Format={squeue_format()}"]
            if not self.query.all_users:
                argv.append(f"--user={self.query.user}")
            if self.query.partition:
                argv.append(f"--partition={self.query.partition}")
            try:
                return parse_squeue(self.command(argv, SLURM_ENV))
            except SlurmError as e:
                if "format" not in str(e).lower() and "unrecognized" not in str(e).lower():
                    raise
                log.warning("this squeue does not know every --Format field (%s): asking scontrol instead",
                            printable(str(e)))
                self._use_scontrol = True
        return parse_scontrol(self.command(["scontrol", "show", "job", "--oneliner"], SLURM_ENV))

    def _update(self, answered: list[SlurmJob], now: float) -> bool:
        seen = {j.job_id: j for j in answered
                if j.state not in NOT_STARTED or j.job_id in self._jobs}  # a requeued job we follow stays
        jobs = dict(self._jobs)
        jobs.update(seen)
        for job_id in jobs.keys() - seen.keys():
            gone = self._gone.setdefault(job_id, now)
            if self.keep_s is not None and now - gone > self.keep_s:
                del jobs[job_id], self._gone[job_id]
        for job_id in seen:
            self._gone.pop(job_id, None)
        for job_id in seen.keys() - self._jobs.keys():
            job = seen[job_id]
            log.info("Slurm job %s (%s) of %s: following %s", job_id, printable(job.name), printable(job.user),
                     printable(" and ".join(p for p in (job.stdout, job.stderr) if p)) or "nothing (no output file)")
        changed = jobs != self._jobs
        self._jobs = jobs
        self._snapshot = tuple(jobs.values())
        return changed

    def _report(self, problem: str | None) -> None:
        """One log line when a problem starts or changes, one when it clears: never one every interval."""
        if problem == self._problem:
            return
        if problem is not None:
            log.error("Slurm: %s; the runs already found keep being followed", printable(problem))
        elif self._problem is not None:
            log.info("Slurm answers again")
        self._problem = problem

    # ---- the thread ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="trainwatch-slurm", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                changed = self.poll()
            except Exception:  # a bug here must not end the watch: the next interval tries again
                log.exception("Slurm poll failed")
                changed = False
            if changed and self.on_change is not None:
                self.on_change()
            self._stop.wait(self.interval_s)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
