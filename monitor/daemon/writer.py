"""The single writer: follows every log, folds its lines into run state, publishes immutable snapshots.

One thread owns all state. It wakes on a file event (inotify) or after `poll_interval` (always, as the
fallback for filesystems without inotify), reads every file to its end, and swaps in a new tuple of
snapshots. Readers (Prometheus scrapes, the TUI's interval, the notifier) only ever see that tuple.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from monitor import defaults
from monitor.alerts.rules import time_limit_text
from monitor.daemon.load import new_ingest
from monitor.daemon.preview import preview
from monitor.follow.read import looks_binary
from monitor.follow.tail import FileTail, TailRead
from monitor.follow.wake import Waker, make_waker
from monitor.model.build import build_snapshot
from monitor.model.ingest import Ingest
from monitor.model.job import run_state
from monitor.model.plan import PlanTarget, check
from monitor.model.state import RunState
from monitor.snapshot import ENDED_STATES, Note, RunTelemetry, Snapshot
from monitor.units import printable
from parsers.base import feed
from parsers.detect import PARSERS, make_parser
from parsers.events import ConfigValue, ErrorEvent, Iteration, RunStart
from parsers.slurm import SlurmJob

log = logging.getLogger(__name__)

PARTIAL_FLUSH_S = 30.0
"""An unterminated last line this old is taken as complete: its writer is done with it (a buffered writer
that stops mid-line for longer would have its line read in two pieces)."""

SETTLED_REFRESH_S = 30.0
"""Well inside the shipped "monitor stuck" alert's 2 minutes of snapshot age."""

BURST_LINES = 5
"""A live read bringing this many iteration lines spanning far more time than passed is a buffered burst."""

BUFFERING_HINT = ("lines arrive in bursts: the training process's stdout is block-buffered; "
                  "start it with `python -u` or PYTHONUNBUFFERED=1 to see progress as it happens")


@dataclass(frozen=True)
class RunSpec:
    """What to follow and how to read it; settings are the user's (flags/config), they win over the log."""

    log: str
    name: str
    format: str | None = None
    user: dict[str, object] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    power_watts: float | None = None
    price_per_kwh: float | None = None
    plan: PlanTarget | None = None  # a plan made for the run: its snapshots carry the check against it
    target_loss: float | None = None  # the final val loss the user hopes for
    job: SlurmJob | None = None  # the Slurm job writing this log (--slurm), as Slurm last described it

    @property
    def slurm_state(self) -> str | None:
        return self.job.state if self.job is not None else None

    @property
    def job_end_at(self) -> float | None:
        """When the job's time limit ends it (None without a job or a limit)."""
        return self.job.end_time if self.job is not None and self.job.time_limit_s is not None else None


Listener = Callable[[tuple[Snapshot, ...]], None]


BINARY = "not a text log (binary data)"
PROCESS_EXITED = ErrorEvent("ProcessExited", "the training process exited before max_iters")
NO_TELEMETRY = RunTelemetry()


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(65536)
    except OSError:
        return b""


def starts_new_run(ingest: Ingest, lines: list[str]) -> bool:
    """After a truncation or a replacement: do these first lines start a new run, or continue this one
    (logrotate copytruncate of a running job)? A startup banner, or iterations that fall back, is new."""
    probe = make_parser(ingest.state.format if ingest.state.format in PARSERS else None)
    last = ingest.state.last
    for raw in lines[:NEW_RUN_PROBE]:
        for event in feed(probe, raw):
            if isinstance(event, RunStart) or (isinstance(event, ConfigValue) and event.key == "config_file"):
                return True
            if isinstance(event, Iteration):
                return last is None or event.iter < last.iter
    return False


NEW_RUN_PROBE = 500


class Follower:
    """One log: its tail, its parser and state, and the bookkeeping views need (buffering, problems)."""

    def __init__(self, spec: RunSpec, *, backfill_slice: int = 8 << 20) -> None:
        self.spec = spec
        self.name, self.shown_log = printable(spec.name), printable(spec.log)  # names are data: escaped once
        self.tail = FileTail(spec.log)
        self.ingest: Ingest | None = None
        self.problem: str | None = None  # why the file cannot be followed (from the tail), in one line
        self.missing = False  # … only because it does not exist yet: the run is starting, not failing
        self._failures: dict[str, str] = {}  # stage → trainwatch's own exception on this run's data, in one line
        self._failed_lines = 0
        self.buffered = False
        self.backfilling = True
        self.pending = False  # the tail has more to read right now
        self.dirty = True  # changed since its last snapshot
        self.backfill_slice = backfill_slice
        self.preview: Ingest | None = None  # a big log's head and tail, shown until it is read whole
        self._reset_seen = False  # truncated or replaced: the next lines tell a new run from copytruncate
        self.binary = False  # the file is binary data, not a log
        self._last_read_at: float | None = None
        self._noted_verdict: str | None = None  # the last time-limit verdict a note told
        self._requeued = False  # Slurm requeued the job: the next reset of the file continues this run

    def step(self, now: float) -> bool:
        """Read what is new; True when anything changed."""
        if self.backfilling and self.ingest is None and self.preview is None:
            self.preview = preview(self.spec.log, format=self.spec.format, user=self.spec.user)
        read = self.tail.read(self.backfill_slice)  # in slices: a burst never stalls the other logs
        self.pending = read.pending
        changed = read.problem != self.problem
        if changed and read.problem is not None:
            log.warning("%s: %s", self.name, printable(read.problem))  # once per problem, not per read
        self.problem, self.missing = read.problem, read.missing
        if read.reset:
            self.binary = False  # replaced: the new content gets its own look
            self._reset_seen = self.ingest is not None
        if self._reset_seen and read.lines:
            self._reset_seen = False
            if self.ingest is not None and starts_new_run(self.ingest, read.lines) and not self._requeued:
                self._restart()
                changed = True
            self._requeued = False
        if not read.lines and not read.pending and read.mtime is not None and now - read.mtime > PARTIAL_FLUSH_S:
            last_line = self.tail.flush_partial()  # a log that ends without a newline (wandb copies, kills)
            if last_line is not None:
                read = replace(read, lines=[last_line])
        if read.lines and self.ingest is None and not self.binary:
            self.binary = looks_binary(_head(self.spec.log))  # looked at once per file, not per read
        if self.binary:
            changed |= self.problem != BINARY
            self.problem = BINARY  # read on (bounded), parse nothing, until the file is replaced
            read = replace(read, lines=[])
        if read.lines:
            if self.ingest is None:
                self.ingest = new_ingest("\n".join(read.lines[:200]).encode(), format=self.spec.format,
                                         user=self.spec.user)
            self._feed(read, now)
            self._check_lines(now)
            changed = True
        if self.backfilling and not read.pending:
            self.backfilling = False
            changed |= self.preview is not None  # the full history replaces the preview now
            self.preview = None
        self._last_read_at = now
        return changed

    def _feed(self, read: TailRead, now: float) -> None:
        assert self.ingest is not None
        state = self.ingest.state
        if read.backfill:
            self.ingest.feed_lines(read.lines, None)
            if read.mtime is not None and state.time_axis != "timestamps":
                state.last_wall = read.mtime  # lines read on attach were last written at the file's mtime
            return
        before_iters, before_clock = state.iteration_lines, state.clock_s
        burst = self.buffered
        self.ingest.feed_lines(read.lines, None if burst else now)
        new_iters = state.iteration_lines - before_iters
        span = state.clock_s - before_clock
        waited = now - self._last_read_at if self._last_read_at is not None else None
        if not self.buffered and new_iters >= BURST_LINES and waited is not None and span > max(5.0, 4 * waited):
            self.buffered = True
            state.notes.append(Note(now, state.last.iter if state.last else None, "warning", BUFFERING_HINT))
        if burst or self.buffered:
            state.last_wall = now  # the block was flushed when full: its last line was written just now

    def _check_lines(self, now: float) -> None:
        """Lines whose parsing raised (Ingest skips them) make the run `error` until lines read well again."""
        assert self.ingest is not None
        if self.ingest.failures > self._failed_lines:
            self._failed_lines = self.ingest.failures
            self.fail(now, "reading a line", self.ingest.failure or "error")
        else:
            self.recover("reading a line")

    @property
    def failure(self) -> str | None:
        return next(iter(self._failures.values()), None)

    def fail(self, now: float, stage: str, error: BaseException | str) -> None:
        """This run's boundary: mark it `error` (a note, the snapshot's state and problem) and log it once
        (with the traceback at debug); the writer goes on with the other runs."""
        summary = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        text = printable(f"trainwatch failed {stage}: {summary}")[:300]
        self.dirty = True
        if self._failures.get(stage) == text:
            return
        self._failures[stage] = text
        log.error("%s: %s (the other runs go on)", self.name, text,
                  exc_info=isinstance(error, BaseException) and log.isEnabledFor(logging.DEBUG))
        if self.ingest is not None:
            state = self.ingest.state
            state.notes.append(Note(now, state.last.iter if state.last else None, "error", text))

    def recover(self, stage: str) -> None:
        if self._failures.pop(stage, None) is not None:
            self.dirty = True
            log.info("%s: %s works again", self.name, stage)

    def retarget(self, spec: RunSpec) -> None:
        """New settings for the same log (a reloaded config, Slurm's new word on the job): the state stays,
        the user's values change. A job Slurm requeued runs its script again into the same file: that is a
        resume of this run, not a new one, even when the file starts over."""
        old = self.spec.job
        self.spec = spec
        self.name, self.shown_log = printable(spec.name), printable(spec.log)
        if self.ingest is not None:
            self.ingest.state.user = dict(spec.user)
            if old is not None and spec.job is not None and spec.job.restarts > old.restarts:
                self._requeued = True
                self.ingest.state.notes.append(Note(None, None, "warning", f"Slurm requeued job {spec.job.job_id} "
                                                    f"(restart {spec.job.restarts}): its run resumes"))
        self.dirty = True

    def _restart(self) -> None:
        """The file was truncated or replaced: a new run in the same path. Keep nothing of the old one."""
        self.ingest = self.preview = None
        self.binary = False
        self.buffered = False
        self.backfilling = True
        self._failures, self._failed_lines = {}, 0

    def snapshot(self, now: float, telemetry: RunTelemetry = NO_TELEMETRY) -> Snapshot:
        """`telemetry` comes from the Monitor's extras hook (monitor.daemon.telemetry): what it reports
        about the run (its process exited, its dataset's size) is recorded here, then shown."""
        spec = self.spec
        state_now = self.ingest.state if self.ingest is not None else None
        if state_now is not None:
            if telemetry.writer_exited and state_now.status == "running" and state_now.error is None:
                state_now.apply(PROCESS_EXITED, now)
            if telemetry.dataset_tokens and state_now.number("dataset_tokens") is None:
                state_now.logged["dataset_tokens"] = telemetry.dataset_tokens
        shown = self.preview if self.preview is not None else self.ingest
        if shown is None:
            state, lines, errors = RunState(format=spec.format or "unknown"), 0, 0
        else:
            state, lines, errors = shown.state, shown.lines, shown.parse_errors
        snap = build_snapshot(state, run=self.name, log=self.shown_log, source=spec.log, now=now, lines=lines,
                              parse_errors=errors, price_per_kwh=spec.price_per_kwh, power_watts=spec.power_watts,
                              labels={k: printable(v) for k, v in spec.labels.items()},
                              energy=telemetry.energy, gpus=telemetry.gpus, gpu_peak_flops=telemetry.gpu_peak_flops,
                              gpu_memory_peak_bytes=telemetry.gpu_memory_peak_bytes,
                              gpu_selection=telemetry.gpu_selection, slurm_state=spec.slurm_state,
                              job_end_at=spec.job_end_at, target_loss=spec.target_loss)
        verdict = snap.time_limit.verdict if snap.time_limit is not None else None
        if verdict is not None and verdict != self._noted_verdict and state_now is not None and shown is self.ingest:
            self._noted_verdict = verdict  # told once per verdict, in the run's notes as in a notification
            note = Note(now, snap.iter, "warning", time_limit_text(snap))
            state_now.notes.append(note)
            snap = replace(snap, notes=(*snap.notes, note))
        self.recover("building its snapshot")
        snap = self._with_trouble(snap)
        return snap if spec.plan is None else replace(snap, plan=check(snap, spec.plan))

    def error_snapshot(self, now: float) -> Snapshot:
        """What is shown when this run's snapshot cannot be built: its name and why, nothing else."""
        state = RunState(format=self.spec.format or "unknown")
        return self._with_trouble(build_snapshot(state, run=self.name, log=self.shown_log, source=self.spec.log,
                                                 now=now))

    def _with_trouble(self, snap: Snapshot) -> Snapshot:
        """A failure or a file that cannot be read is the run's state (`error`) and `problem`, for every view."""
        if self.failure is not None:
            return replace(snap, state="error", problem=self.failure)
        if self.problem is not None:
            return replace(snap, problem=printable(self.problem), state=snap.state if self.missing else "error")
        return snap

    def close(self) -> None:
        self.tail.close()


Sources = Callable[[], Sequence[RunSpec]]


class Monitor:
    """Owns the followers and the writer thread; `snapshots()` is safe to call from any thread.

    The runs come from `specs`, or from `sources()` — re-asked every `rescan_s` (globs pick up logs
    that appear) and after `reload()` (SIGHUP) — which the writer reconciles with what it follows:
    new logs get a follower, logs no longer wanted lose theirs, the others keep their state.
    Finished or crashed runs drop out `keep_finished_s` after their last line; at most `max_runs`.
    """

    def __init__(self, specs: Sequence[RunSpec] = (), *, sources: Sources | None = None,
                 poll_interval: float = defaults.POLL_INTERVAL_S, force_poll: bool = False,
                 clock: Callable[[], float] = time.time, republish_s: float = 1.0,
                 rescan_s: float = 5.0, keep_finished_s: float | None = None, max_runs: int = defaults.MAX_RUNS,
                 min_publish_s: float = 0.0) -> None:
        self.poll_interval = poll_interval
        self.clock = clock
        self.republish_s = republish_s
        self.rescan_s = rescan_s
        self.min_publish_s = min_publish_s  # the TUI reads twice a second: publishing more often is waste
        self._any_publish_at = 0.0
        self.keep_finished_s = keep_finished_s
        self.max_runs = max_runs
        self._sources: Sources = sources if sources is not None else (lambda: specs)
        self._scanned_at: float | None = None
        self._reload = threading.Event()
        self._retired: dict[str, tuple[int, int]] = {}  # log → (inode, size) when it dropped out
        self._capped: set[str] = set()
        self.followers: list[Follower] = []
        self.waker: Waker = make_waker((), force_poll=force_poll)
        self._reconcile(self.clock())
        self._snapshots: tuple[Snapshot, ...] = ()
        self._listeners: list[Listener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._published_at = 0.0
        self.extras: Callable[[Follower, float], RunTelemetry] | None = None

    # ---- readers ---------------------------------------------------------------------------
    def snapshots(self) -> tuple[Snapshot, ...]:
        return self._snapshots

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def reload(self, sources: Sources | None = None) -> None:
        """Ask the writer to re-read the run list (from new `sources`, e.g. a re-read config) before its next pass."""
        if sources is not None:
            self._sources = sources
        self._reload.set()

    # ---- the writer ------------------------------------------------------------------------
    def _reconcile(self, now: float) -> bool:
        """Bring the followers in line with what `sources()` wants; True when the set changed."""
        self._scanned_at = now
        wanted = {s.log: s for s in self._sources()}
        changed = False
        for f in list(self.followers):
            spec = wanted.pop(f.spec.log, None)
            if spec is None or self._expired(f, now):
                self._drop(f)
                changed = True
            elif spec != f.spec:
                f.retarget(spec)
                changed = True
        for log_path, spec in wanted.items():
            if self._still_retired(log_path):
                continue
            if len(self.followers) >= self.max_runs:
                if log_path not in self._capped:
                    self._capped.add(log_path)
                    log.warning("not following %s: already following %d runs (raise --max-runs)",
                                printable(log_path), self.max_runs)
                continue
            self.followers.append(Follower(spec))
            self.waker.add(log_path)
            changed = True
        return changed

    def _expired(self, f: Follower, now: float) -> bool:
        if self.keep_finished_s is None or f.ingest is None:
            return False
        state = f.ingest.state
        if run_state(state.status, f.spec.slurm_state) not in ENDED_STATES or state.last_wall is None:
            return False
        if now - state.last_wall < self.keep_finished_s:
            return False
        with contextlib.suppress(OSError):
            st = os.stat(f.spec.log)
            self._retired[f.spec.log] = (st.st_ino, st.st_size)
        log.info("%s %s %.0fs ago: no longer exported", f.name, state.status, now - state.last_wall)
        return True

    def _still_retired(self, log_path: str) -> bool:
        """A run that dropped out stays out until its file changes (a new run written there)."""
        key = self._retired.get(log_path)
        if key is None:
            return False
        try:
            st = os.stat(log_path)
        except OSError:
            return True
        if (st.st_ino, st.st_size) == key:
            return True
        del self._retired[log_path]
        return False

    def _drop(self, f: Follower) -> None:
        self.followers.remove(f)
        if not any(o.spec.log == f.spec.log for o in self.followers):
            self.waker.remove(f.spec.log)
        f.close()

    def step(self) -> bool:
        """One pass over every log; publishes when anything changed or a second has passed."""
        now = self.clock()
        changed = False
        if self._reload.is_set() or self._scanned_at is None or now - self._scanned_at >= self.rescan_s:
            self._reload.clear()
            changed = self._reconcile(now)
        for f in self.followers:
            try:
                f.dirty |= f.step(now)
                f.recover("reading its log")
            except OSError as e:  # the tail reports problems itself; this is the last line of defence
                f.problem = f"{f.spec.log}: {e.strerror or e}"
                f.dirty = True
            except Exception as e:  # this run's boundary: a bug with one log's data blinds no other run
                f.fail(now, "reading its log", e)
            changed |= f.dirty
        due = now - self._published_at >= self.republish_s or not self._snapshots
        if due or (changed and now - self._any_publish_at >= self.min_publish_s):
            self.publish(now)
        return changed

    def busy(self) -> bool:
        """Some tail has more to read right now (backfill slices, a rotation's old file)."""
        return any(f.pending for f in self.followers)

    def publish(self, now: float) -> None:
        """Rebuild the snapshots of runs that changed, and of all once `republish_s` has passed (ETAs
        count down, stalls appear with time); the others keep their last snapshot. A finished or crashed
        run changes with time only in its age: it is rebuilt every SETTLED_REFRESH_S."""
        refresh_all = now - self._published_at >= self.republish_s
        old = {s.key: s for s in self._snapshots}
        self._any_publish_at = now
        snaps = []
        for f in self.followers:
            prev = old.get(f.spec.log)
            settled = prev is not None and prev.state in ENDED_STATES \
                and now - prev.taken_at < SETTLED_REFRESH_S
            if prev is None or prev.run != f.name or f.dirty or (refresh_all and not settled):
                try:
                    prev = f.snapshot(now, self.extras(f, now) if self.extras else NO_TELEMETRY)
                except Exception as e:  # this run's boundary: it shows `error`, the others are published
                    f.fail(now, "building its snapshot", e)
                    prev = f.error_snapshot(now)
                f.dirty = False
            snaps.append(prev)
        self._snapshots = tuple(snaps)
        if refresh_all:
            self._published_at = now
        for listener in self._listeners:
            try:
                listener(self._snapshots)
            except Exception:  # a view's bug must not stop the writer
                log.exception("snapshot listener failed")

    def run(self) -> None:
        """The loop: until stop(). While a tail has more ready, do not wait; a change held back by
        `min_publish_s` is published when that time is up."""
        while not self._stop.is_set():
            self.step()
            if not self.busy():
                timeout = self.poll_interval
                if any(f.dirty for f in self.followers):
                    timeout = min(timeout, max(0.0, self.min_publish_s - (self.clock() - self._any_publish_at)))
                self.waker.wait(timeout)

    def start(self) -> None:
        self.step()
        self._thread = threading.Thread(target=self.run, name="trainwatch-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self.waker.close()
        if self._thread is not None:
            self._thread.join(timeout)
        for f in self.followers:
            f.close()

