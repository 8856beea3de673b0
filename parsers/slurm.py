"""Slurm's own answers about jobs (`squeue --Format`, `scontrol show job --oneliner`) → frozen records.

Pure: text in, `SlurmJobs` out, standard library only; garbled lines are skipped and summed up in one
error, never raised. Both formats give the same record, so the daemon can take whichever its Slurm
answers. Output paths are expanded the way slurmstepd expands them for a batch script (`%j`, `%x`,
`%A_%a`, `%N`, `%4j`, `%%`, `\\`), since squeue prints the pattern the user gave and scontrol expands
only part of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

SEPARATOR = "\x1f"
"""Ends every squeue field: no job name or path holds it, where `|` or a space may be in either."""

SQUEUE_FIELDS = ("JobID", "ArrayJobID", "ArrayTaskID", "Name", "UserName", "Partition", "NodeList", "BatchHost",
                 "State", "Reason", "STDOUT", "STDERR", "WorkDir", "StartTime", "EndTime", "TimeLimit", "RestartCnt")


def squeue_format() -> str:
    """The `squeue --Format` argument this parser reads: every field ends in SEPARATOR (no padding)."""
    return ",".join(f"{f}:{SEPARATOR}" for f in SQUEUE_FIELDS)


# squeue's column titles (its header line) and scontrol's keys → the record's fields
_SQUEUE_TITLES = {
    "JOBID": "id", "ARRAY_JOB_ID": "array_job", "ARRAY_TASK_ID": "array_task", "NAME": "name", "USER": "user",
    "PARTITION": "partition", "NODELIST": "nodes", "EXEC_HOST": "batch_host", "STATE": "state", "REASON": "reason",
    "STDOUT": "stdout", "STDERR": "stderr", "WORK_DIR": "work_dir", "START_TIME": "start", "END_TIME": "end",
    "TIME_LIMIT": "limit", "RESTART_COUNT": "restarts",
}
_SCONTROL_KEYS = {
    "JobId": "id", "ArrayJobId": "array_job", "ArrayTaskId": "array_task", "JobName": "name", "UserId": "user",
    "Partition": "partition", "NodeList": "nodes", "BatchHost": "batch_host", "JobState": "state",
    "Reason": "reason", "StdOut": "stdout", "StdErr": "stderr", "WorkDir": "work_dir", "StartTime": "start",
    "EndTime": "end", "TimeLimit": "limit", "Restarts": "restarts",
}

# Every key `scontrol show job` prints, Slurm 17.11 to 25.11 (slurm_sprint_job_info in src/api/job_info.c,
# later _sprint_job_info in src/scontrol/info_job.c). A value may hold spaces (a job name, a path): a
# ` Word=` inside it is taken for the next key only when Word is one of these.
_SCONTROL_ALL_KEYS = frozenset({
    "Account", "AccrueTime", "AdminComment", "AllocNode:Sid", "AllocTRES", "ArrayJobId", "ArrayTaskId",
    "ArrayTaskThrottle", "BatchFeatures", "BatchFlag", "BatchHost", "BurstBuffer", "BurstBufferState", "CPU_IDs",
    "CPUs", "CPUs/Task", "ClusterFeatures", "Command", "Comment", "ConsolidateSegments", "Container", "ContainerID",
    "Contiguous", "CoreSpec", "CpusPerTres", "CronJob", "CrontabSpec", "Deadline", "DelayBoot", "Dependency",
    "DerivedExitCode", "EligibleTime", "EndTime", "ExcNodeList", "ExitCode", "ExpeditedRequeue", "Extra",
    "FailedNode", "Features", "FedActiveSiblings", "FedOrigin", "FedViableSiblings", "GRES", "Gres",
    "GresAllowTaskSharing", "GresEnforceBind", "GresOneTaskPerSharing", "GroupId", "HetJobId", "HetJobIdSet",
    "HetJobOffset", "JOB_GRES", "JobId", "JobName", "JobState", "KillOInInvalidDependent", "KillOnInvalidDependent",
    "LastSchedEval", "Licenses", "LicensesAlloc", "MCS_label", "MailType", "MailUser", "Mem", "MemPerTres",
    "MinCPUsNode", "MinMemoryCPU", "MinMemoryNode", "MinTmpDiskNode", "Network", "Nice", "NodeList", "Nodes",
    "NtasksPerN:B:S:C", "NtasksPerTRES", "NumCPUs", "NumNodes", "NumTasks", "OOMKillStep", "OverSubscribe",
    "PackJobId", "PackJobIdSet", "PackJobOffset", "Partition", "Power", "PreemptEligibleTime", "PreemptTime",
    "Prefer", "Priority", "QOS", "Reason", "Reboot", "ReqB:S:C:T", "ReqNodeList", "ReqTRES", "Requeue", "Reservation",
    "ResizeTime", "Restarts", "ResvPorts", "RunTime", "SELinuxContext", "SLUID", "Scheduler", "SecsPreSuspend",
    "SegmentSize", "Shared", "Socks/Node", "SpreadJob", "SpreadSegments", "StartTime", "StdErr", "StdIn", "StdOut",
    "StepMgrEnabled", "SubmitLine", "SubmitTime", "SuspendTime", "Switches", "SystemComment", "TRES", "ThreadSpec",
    "TimeLimit", "TimeMin", "TresBind", "TresFreq", "TresPerJob", "TresPerNode", "TresPerSocket", "TresPerTask",
    "UserId", "WCKey", "WorkDir",
})
_FREE_TEXT = frozenset({"JobName", "Command", "SubmitLine", "WorkDir", "AdminComment", "SystemComment", "Comment",
                        "Extra", "StdErr", "StdIn", "StdOut"})
_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z][\w/:]*)=")
_UNKNOWN = frozenset({"", "N/A", "n/a", "(null)", "Unknown", "None", "NONE"})
_UNLIMITED = frozenset({"UNLIMITED", "INFINITE", "Partition_Limit", "NOT_SET"})
_LIMIT = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_PATTERN = re.compile(r"%(\d*)([%aAjJnNstux])")


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """One job as Slurm describes it; None where Slurm does not say (yet)."""

    job_id: str  # as users write it: `12345`, or `12345_7` for a task of an array
    name: str
    user: str
    partition: str
    nodes: str  # Slurm's node list, e.g. `gpu[001-004]`; empty while pending
    state: str  # Slurm's word: PENDING, RUNNING, COMPLETING, COMPLETED, TIMEOUT, CANCELLED, PREEMPTED…
    reason: str | None
    stdout: str | None  # absolute path, patterns expanded
    stderr: str | None  # None when it is stdout's file
    start_time: float | None  # unix seconds
    end_time: float | None  # while running: when the time limit ends it; after: when it ended
    time_limit_s: float | None  # None: unlimited
    restarts: int  # times the job was requeued


@dataclass(frozen=True, slots=True)
class SlurmJobs:
    jobs: tuple[SlurmJob, ...]
    error: str | None = None  # what was not understood, in one line


def parse_squeue(text: str, *, tz: tzinfo = UTC) -> SlurmJobs:
    """`squeue --Format=…` with its header line, fields separated by SEPARATOR (or `|`, as people often
    write it); columns are found by title, so any order and any subset that holds JOBID and STATE reads.
    `tz`: the cluster's zone, for times printed as `2026-12-03T13:52:19` (SLURM_TIME_FORMAT=%s prints none)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return SlurmJobs(())
    sep = SEPARATOR if SEPARATOR in lines[0] else "|"
    titles = [t.strip() for t in lines[0].split(sep)]
    if "JOBID" not in titles or "STATE" not in titles:
        return SlurmJobs((), f"squeue: no JOBID and STATE columns in its first line {_quote(lines[0])}")
    if titles[-1] == "":
        titles.pop()  # every field ends in the separator, the last one too
    jobs: list[SlurmJob] = []
    bad: list[str] = []
    for line in lines[1:]:
        values = line.split(sep)
        if len(values) == len(titles) + 1 and values[-1] == "":
            values.pop()
        job = _job({_SQUEUE_TITLES[t]: v.strip() for t, v in zip(titles, values, strict=True)
                    if t in _SQUEUE_TITLES}, tz) if len(values) == len(titles) else None
        if job is None:
            bad.append(line)
        else:
            jobs.append(job)
    return SlurmJobs(tuple(jobs), _error("squeue", bad, len(lines) - 1))


def parse_scontrol(text: str, *, tz: tzinfo = UTC) -> SlurmJobs:
    """`scontrol show job --oneliner` (one job per line), or its default form (one job per block of
    indented lines); `tz` as for parse_squeue."""
    records: list[dict[str, str]] = []
    stray: list[str] = []  # lines that belong to no job
    for line in text.splitlines():
        if not line.strip() or line.startswith("No jobs in the system"):
            continue
        pairs = _pairs(line)
        if line.startswith("JobId="):
            records.append(pairs)
        elif line[:1].isspace() and records and pairs:
            records[-1].update(pairs)
        else:
            stray.append(line)
    jobs, bad = [], list(stray)
    for rec in records:
        job = _job({field: rec[key] for key, field in _SCONTROL_KEYS.items() if key in rec}, tz)
        if job is None:
            bad.append(" ".join(f"{k}={v}" for k, v in list(rec.items())[:3]))
        else:
            jobs.append(job)
    return SlurmJobs(tuple(jobs), _error("scontrol", bad, len(records) + len(stray)))


def _pairs(line: str) -> dict[str, str]:
    """`Key=value Key=value…`; a free-text value runs on past spaces up to the next key Slurm prints."""
    keys: list[re.Match[str]] = []
    for m in _KEY.finditer(line):
        if keys and keys[-1].group(1) in _FREE_TEXT and m.group(1) not in _SCONTROL_ALL_KEYS:
            continue  # `JobName=lr sweep x=1`: still the name
        keys.append(m)
    if not keys:
        return {}
    ends = [m.start() for m in keys[1:]] + [len(line)]
    return {m.group(1): line[m.end():end].rstrip() for m, end in zip(keys, ends, strict=True)}


@dataclass(frozen=True, slots=True)
class _Ids:
    """What a job's output path pattern may name."""

    job: str
    array_job: str
    array_task: str | None
    name: str
    user: str
    host: str | None  # the batch script's node


def _job(f: dict[str, str], tz: tzinfo) -> SlurmJob | None:
    """The record from one job's fields (canonical names), or None when they do not make a job."""
    raw_id, state = f.get("id", ""), f.get("state", "").split(" ")[0].upper()
    if not raw_id.isdigit() or not re.fullmatch(r"[A-Z_]+", state):
        return None
    array_job, array_task = _known(f.get("array_job")), _known(f.get("array_task"))
    if not (array_job and array_job.isdigit() and array_task and array_task.isdigit()):
        array_job, array_task = raw_id, None  # not a task of an array (or a pending array's range)
    ids = _Ids(job=raw_id, array_job=array_job, array_task=array_task, name=f.get("name", ""),
               user=re.sub(r"\(\d+\)$", "", f.get("user", "")), host=_known(f.get("batch_host")))
    try:
        restarts = int(f.get("restarts") or 0)
        start, end, limit = _time(f.get("start"), tz), _time(f.get("end"), tz), _limit(f.get("limit"))
    except ValueError:
        return None
    work_dir = _known(f.get("work_dir"))
    stdout = expand_path(_known(f.get("stdout")), ids, work_dir) or _default_stdout(ids, work_dir)
    stderr = expand_path(_known(f.get("stderr")), ids, work_dir)
    return SlurmJob(job_id=f"{array_job}_{array_task}" if array_task else raw_id, name=ids.name, user=ids.user,
                    partition=f.get("partition", ""), nodes=_known(f.get("nodes")) or "", state=state,
                    reason=_known(f.get("reason")), stdout=stdout, stderr=stderr if stderr != stdout else None,
                    start_time=start, end_time=end, time_limit_s=limit, restarts=restarts)


def expand_path(pattern: str | None, ids: _Ids, work_dir: str | None) -> str | None:
    """A batch script's output path as slurmstepd writes it (src/slurmd/common/fname.c): a path with a
    backslash is taken literally (`\\\\` → `\\`); else `%j`, `%x`, `%u`, `%A`, `%a`, `%N` (the batch host),
    `%n`/`%t` (0), `%s` (`batch`), zero-padded by a width (`%4j`), `%%` → `%`. Relative to `work_dir`."""
    if not pattern:
        return None
    if "\\" in pattern:
        path = re.sub(r"\\(.)?", lambda m: m.group(1) or "", pattern)
    else:
        values = {"a": ids.array_task or NO_VAL, "A": ids.array_job, "j": ids.job, "J": ids.job, "n": "0",
                  "t": "0", "s": "batch", "N": ids.host, "u": ids.user, "x": ids.name}

        def one(m: re.Match[str]) -> str:
            width, code = m.group(1), m.group(2)
            value = "%" if code == "%" else values[code]
            if value is None:
                return m.group(0)  # not known yet (the batch host of a pending job)
            return value.zfill(min(int(width), 10)) if width and value.isdigit() else value

        path = _PATTERN.sub(one, pattern)
    if not path.startswith("/") and work_dir:
        path = work_dir.rstrip("/") + "/" + path
    return path


NO_VAL = "4294967294"
"""What slurmstepd writes for `%a` in a job that is not part of an array."""


def _default_stdout(ids: _Ids, work_dir: str | None) -> str | None:
    """Where Slurm writes a batch job's output when it was given no --output."""
    pattern = "slurm-%A_%a.out" if ids.array_task is not None else "slurm-%j.out"
    return expand_path(pattern, ids, work_dir) if work_dir else None


def _known(value: str | None) -> str | None:
    return None if value is None or value.strip() in _UNKNOWN else value


def _time(value: str | None, tz: tzinfo) -> float | None:
    """Unix seconds (SLURM_TIME_FORMAT=%s) or Slurm's ISO form in `tz`; None for Unknown/None/N/A and 0."""
    value = _known(value)
    if value is None:
        return None
    if value.isdigit():
        return float(value) or None
    if not _ISO.fullmatch(value):
        raise ValueError(value)
    return datetime.fromisoformat(value).replace(tzinfo=tz).timestamp()


def _limit(value: str | None) -> float | None:
    """Seconds from Slurm's time forms: `M`, `M:S` (squeue's `5:00`), `H:M:S`, `D-H`, `D-H:M`, `D-H:M:S`;
    None when unlimited."""
    value = _known(value)
    if value is None or value in _UNLIMITED:
        return None
    m = _LIMIT.fullmatch(value)
    if not m:
        raise ValueError(value)
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    assert a is not None
    if days is not None:
        return float(days * 86400 + a * 3600 + (b or 0) * 60 + (c or 0))
    if b is None:
        return float(a * 60)
    return float(a * 60 + b if c is None else a * 3600 + b * 60 + c)


def _error(what: str, bad: list[str], total: int) -> str | None:
    if not bad:
        return None
    return f"{what}: {len(bad)} of {total} job line(s) not understood, the first: {_quote(bad[0])}"


def _quote(line: str) -> str:
    return repr(line[:120].replace(SEPARATOR, "|"))
