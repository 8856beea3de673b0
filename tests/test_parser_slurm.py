"""parsers.slurm: squeue and scontrol answers of real Slurm versions → job records; garbled text → one error."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.model.state import RunState
from parsers.base import Fatal
from parsers.events import ErrorEvent, Notice
from parsers.slurm import SEPARATOR, SlurmJob, expand_path, parse_scontrol, parse_squeue, squeue_format
from parsers.slurm import _Ids as Ids
from parsers.slurm import _limit as limit

FIXTURES = Path(__file__).parent / "fixtures" / "slurm"


def fixture(name: str) -> tuple[list[str], str]:
    """The fixture's header comment lines (without `# `) and the recorded text after them."""
    lines = (FIXTURES / name).read_text().splitlines(keepends=True)
    head = [ln for ln in lines if ln.startswith("#")]
    return [h[1:].strip() for h in head], "".join(lines[len(head):])


def jobs_of(text: str, parse=parse_squeue) -> dict[str, SlurmJob]:  # type: ignore[no-untyped-def]
    answer = parse(text, tz=UTC)
    assert answer.error is None, answer.error
    return {j.job_id: j for j in answer.jobs}


# ---- Slurm 22.05.8, recorded from the test cluster ------------------------------------------------

JOBS = "/tmp/slurmrec2/jobs"
EXPECTED_22_05 = {
    "1": dict(name="gpt2-124m", state="TIMEOUT", reason="TimeLimit", stdout=f"{JOBS}/gpt2-gpt2-124m-1.out",
              stderr=f"{JOBS}/gpt2-1.err", start_time=1796306393.0, end_time=1796306480.0, time_limit_s=60.0,
              restarts=0),
    "2": dict(name="requeued", state="RUNNING", stdout=f"{JOBS}/rq-2.out", stderr=None, time_limit_s=600.0,
              restarts=1, start_time=1796306570.0, end_time=1796307170.0),
    "3": dict(state="RUNNING", stdout=f"{JOBS}/slurm-3.out", time_limit_s=2 * 86400.0),
    "4_1": dict(name="arr", stdout=f"{JOBS}/arr-4_1-vm.out", time_limit_s=1800.0),
    "4_2": dict(name="arr", stdout=f"{JOBS}/arr-4_2-vm.out"),
    "5": dict(name="lr sweep|3 x=1", stdout="/tmp/slurmrec2/runs/lr sweep|3 x=1/5.out", time_limit_s=2700.0),
    "6": dict(state="COMPLETED", stdout=f"{JOBS}/slurm-6.out"),
    "7": dict(state="FAILED", reason="NonZeroExitCode", stdout=f"{JOBS}/fail-0007.out"),
    "8": dict(state="CANCELLED", reason=None, stdout=f"{JOBS}/slurm-8.out", time_limit_s=None),
    "9": dict(state="PENDING", reason="BeginTime", nodes="", stdout=f"{JOBS}/slurm-9.out"),
    "10": dict(name="escaped", stdout=f"{JOBS}/esc\\%j.out"),
}


@pytest.mark.parametrize("job_id", list(EXPECTED_22_05))
def test_squeue_22_05_gives_each_job_as_slurm_describes_it(job_id: str) -> None:
    job = jobs_of(fixture("squeue-22.05.8.txt")[1])[job_id]
    assert (job.user, job.partition) == ("root", "debug")
    for field, want in EXPECTED_22_05[job_id].items():
        assert getattr(job, field) == want, field
    if job.state != "PENDING":
        assert job.nodes == "vm"


def test_squeue_paths_are_the_files_the_jobs_really_wrote() -> None:
    """squeue prints the --output pattern; expanded as slurmstepd does, it names the very file on disk."""
    head, text = fixture("squeue-22.05.8.txt")
    written = {h for h in head if h.startswith("/tmp/slurmrec2/")}
    paths = {p for j in jobs_of(text).values() if j.state != "PENDING" for p in (j.stdout, j.stderr) if p}
    assert paths == written


def test_scontrol_22_05_gives_the_same_records_as_squeue() -> None:
    """Both commands of one Slurm describe the same jobs; only an escaped path (job 10), which scontrol
    expands although slurmstepd does not, tells them apart."""
    squeue = jobs_of(fixture("squeue-22.05.8.txt")[1])
    scontrol = jobs_of(fixture("scontrol-22.05.8.txt")[1], parse_scontrol)
    assert scontrol.keys() == squeue.keys()
    for job_id in squeue.keys() - {"10", "9"}:
        assert scontrol[job_id] == squeue[job_id], job_id
    assert scontrol["10"].stdout == f"{JOBS}/esc\\10.out" != squeue["10"].stdout
    assert replace(scontrol["9"], start_time=None, end_time=None) == replace(squeue["9"], start_time=None,
                                                                            end_time=None)


def test_scontrol_default_form_reads_like_the_oneliner() -> None:
    multi = jobs_of(fixture("scontrol-22.05.8-multiline.txt")[1], parse_scontrol)
    one = jobs_of(fixture("scontrol-22.05.8.txt")[1], parse_scontrol)
    assert multi == {"5": one["5"]}


# ---- Slurm 17.11, from public output ------------------------------------------------------------

def test_scontrol_17_11() -> None:
    jobs = jobs_of(fixture("scontrol-17.11.txt")[1], parse_scontrol)
    assert list(jobs) == ["7731", "2398463_150", "134238037"]
    run = jobs["7731"]
    assert run == SlurmJob(job_id="7731", name="gpt2-124m", user="alice", partition="long", nodes="gpu-[63-65]",
                           state="RUNNING", reason=None, stdout="/home/alice/gpt2/out.txt",
                           stderr="/home/alice/gpt2/err.txt", start_time=1548930953.0, end_time=1549017354.0,
                           time_limit_s=86400.0, restarts=0)
    done = jobs["2398463_150"]
    assert (done.state, done.user, done.stdout, done.stderr, done.time_limit_s) == (
        "COMPLETED", "bob", "/home/bob/sweep/dir/a.out", None, 15 * 86400.0)
    pending = jobs["134238037"]
    assert (pending.state, pending.reason, pending.nodes, pending.start_time, pending.end_time, pending.partition) == (
        "PENDING", "AssocGrpCpuLimit", "", None, None, "long,other")


# ---- what the daemon asks for ---------------------------------------------------------------------

def test_squeue_format_names_every_field_with_the_separator() -> None:
    fmt = squeue_format()
    assert fmt.count(SEPARATOR) == fmt.count(",") + 1
    assert fmt.startswith("JobID:\x1f,")


def test_bar_separated_output_reads_too() -> None:
    """People write `squeue -O 'JobID:|,…'`: the same parser reads it, columns found by their titles."""
    text = ("STATE|JOBID|NAME|STDOUT|WORK_DIR|\n"
            "RUNNING|12345|gpt2-124m|slurm-%j.out|/home/alice|\n")
    [job] = parse_squeue(text).jobs
    assert (job.job_id, job.state, job.name, job.stdout) == ("12345", "RUNNING", "gpt2-124m",
                                                              "/home/alice/slurm-12345.out")


# ---- output paths ---------------------------------------------------------------------------------

IDS = Ids(job="12345", array_job="12345", array_task=None, name="gpt2 124m", user="alice", host="gpu-07")
TASK = Ids(job="12350", array_job="12340", array_task="7", name="sweep", user="alice", host=None)


@pytest.mark.parametrize(("pattern", "ids", "want"), [
    ("slurm-%j.out", IDS, "/w/slurm-12345.out"),
    ("%x-%j.out", IDS, "/w/gpt2 124m-12345.out"),
    ("/abs/%u/%J.log", IDS, "/abs/alice/12345.log"),
    ("%8j.out", IDS, "/w/00012345.out"),
    ("%20j.out", IDS, "/w/0000012345.out"),  # slurmstepd caps the width at 10
    ("100%%-%j.out", IDS, "/w/100%-12345.out"),
    ("%%j.out", IDS, "/w/%j.out"),
    ("%N-%n-%t-%s.out", IDS, "/w/gpu-07-0-0-batch.out"),
    ("%A_%a.out", IDS, "/w/12345_4294967294.out"),  # not an array: Slurm's NO_VAL
    ("%A_%a.out", TASK, "/w/12340_7.out"),
    ("%3a-%N.out", TASK, "/w/007-%N.out"),  # the batch host is not known while pending
    ("esc\\\\%j.out", IDS, "/w/esc\\%j.out"),  # a backslash: taken literally, `\\` is one `\`
    ("e\\sc-%j.out", IDS, "/w/esc-%j.out"),
    ("%z-%j.out", IDS, "/w/%z-12345.out"),  # not a pattern Slurm knows: left as it is
], ids=lambda v: v if isinstance(v, str) else "")
def test_output_path_expands_as_slurmstepd_does(pattern: str, ids: Ids, want: str) -> None:
    assert expand_path(pattern, ids, "/w") == want


@pytest.mark.parametrize(("text", "seconds"), [
    ("5", 300.0), ("5:00", 300.0), ("1:00", 60.0), ("00:05:00", 300.0), ("12:00:00", 43200.0),
    ("1-00:00:00", 86400.0), ("2-12", 216000.0), ("1-2:30", 95400.0), ("UNLIMITED", None),
    ("Partition_Limit", None), ("N/A", None),
])
def test_time_limit_forms(text: str, seconds: float | None) -> None:
    assert limit(text) == seconds


# ---- garbled answers: records skipped, one error, never a raise ------------------------------------

def squeue_text(*rows: str) -> str:
    head = SEPARATOR.join(["JOBID", "NAME", "STATE", "STDOUT", "WORK_DIR", "TIME_LIMIT"]) + SEPARATOR
    return "\n".join([head, *rows]) + "\n"


def row(*fields: str) -> str:
    return SEPARATOR.join(fields) + SEPARATOR


@pytest.mark.parametrize(("text", "jobs", "error"), [
    ("", 0, None),
    (squeue_text(), 0, None),
    (squeue_text(row("7", "ok", "RUNNING", "o.out", "/w", "5:00"), row("8", "cut", "RUN")), 1,
     "squeue: 1 of 2 job line(s) not understood, the first: '8|cut|RUN|'"),
    (squeue_text(row("x9", "bad id", "RUNNING", "o", "/w", "5:00")), 0, "1 of 1"),
    (squeue_text(row("9", "bad limit", "RUNNING", "o", "/w", "soon")), 0, "1 of 1"),
    (squeue_text(row("9", "bad state", "running?", "o", "/w", "5:00")), 0, "1 of 1"),
    ("slurm_load_jobs error: Unable to contact slurm controller\n", 0, "no JOBID and STATE columns"),
    ("\x00\xff garbage \x1f\n\x1f\x1f\n", 0, "no JOBID and STATE columns"),
], ids=["empty", "header only", "a cut line", "id", "limit", "state", "an error message", "binary"])
def test_garbled_squeue(text: str, jobs: int, error: str | None) -> None:
    answer = parse_squeue(text)
    assert len(answer.jobs) == jobs
    if error is None:
        assert answer.error is None
    else:
        assert answer.error is not None and error in answer.error


@pytest.mark.parametrize(("text", "jobs", "error"), [
    ("No jobs in the system\n", 0, None),
    ("JobId=5 JobName=a JobState=RUNNING\nJobId=x JobName=b JobState=RUNNING\n", 1,
     "scontrol: 1 of 2 job line(s) not understood, the first: 'JobId=x JobName=b JobState=RUNNING'"),
    ("slurm_load_jobs error: Socket timed out on send/recv operation\n", 0, "1 of 1"),
    ("JobId=6 JobState=RUNNING StartTime=yesterday\n", 0, "1 of 1"),
], ids=["none", "a bad id", "an error message", "a bad time"])
def test_garbled_scontrol(text: str, jobs: int, error: str | None) -> None:
    answer = parse_scontrol(text)
    assert len(answer.jobs) == jobs
    assert answer.error == error if error is None else error in (answer.error or "")


def test_scontrol_value_with_spaces_ends_at_the_next_key_slurm_prints() -> None:
    [job] = parse_scontrol("JobId=3 JobName=lr sweep x=1 Restarts=2 UserId=al(5) JobState=RUNNING "
                           "StdOut=/runs/My Run=3/out.log Power= StdErr=/e\n").jobs
    assert (job.name, job.user, job.restarts, job.stdout, job.stderr) == (
        "lr sweep x=1", "al", 2, "/runs/My Run=3/out.log", "/e")


PIECES = ["JobId=", "JOBID", "STATE", "1", "a", " ", "\n", SEPARATOR, "|", "=", "RUNNING", "%", "\\", "-", ":",
          "StdOut=", "TimeLimit=", "99-", "\x00"]


@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_no_answer_makes_either_parser_raise(text: str) -> None:
    for parse in (parse_squeue, parse_scontrol):
        answer = parse(text)
        assert all(isinstance(j, SlurmJob) for j in answer.jobs)


# ---- what slurmstepd writes into the job's own output --------------------------------------------

@pytest.mark.parametrize(("line", "kind"), [
    ("slurmstepd-vm: error: *** JOB 1 ON vm CANCELLED AT 2026-12-03T13:53:43 DUE TO TIME LIMIT ***", "SlurmTimeLimit"),
    ("3616.slurmstepd: error: *** JOB 11679010 ON g002 CANCELLED AT 2024-04-20T09:09:37 DUE TO TIME LIMIT ***",
     "SlurmTimeLimit"),
    ("slurmstepd: error: *** STEP 7.0 ON g002 CANCELLED AT 2024-04-20T09:09:37 DUE TO PREEMPTION ***",
     "SlurmPreempted"),
    ("slurmstepd: error: *** JOB 7 ON g002 CANCELLED AT 2024-04-20T09:09:37 DUE TO NODE FAILURE, SEE SLURMCTLD LOG "
     "FOR DETAILS ***", "SlurmNodeFail"),
    ("slurmstepd: error: *** JOB 8 ON g002 CANCELLED AT 2024-04-20T09:09:37 ***", "SlurmCancelled"),
    ("slurmstepd: error: Detected 1 oom-kill event(s) in StepId=8.batch. Some of your processes may have been killed "
     "by the cgroup out-of-memory handler.", "SlurmOutOfMemory"),
    ("slurmstepd-vm: error: *** JOB 9 ON vm CANCELLED AT 2026-12-03T13:57:45 DUE TO JOB REQUEUE ***", "notice"),
], ids=["time limit", "cut into a line", "preemption", "node failure", "scancel", "oom", "requeue"])
def test_slurms_word_in_the_job_output(line: str, kind: str) -> None:
    """Slurm writes how it ended the job into the job's output (src/slurmd/slurmstepd/req.c): the log alone
    tells a time limit from a crash, also for `trainwatch report` and without --slurm."""
    [event] = Fatal().parse(line) or [None]
    said = line[line.index("slurmstepd"):]
    assert event == (Notice("warning", said) if kind == "notice" else ErrorEvent(kind, said))


@pytest.mark.parametrize(("error", "state"), [
    ("SlurmTimeLimit", "timeout"), ("SlurmPreempted", "preempted"), ("SlurmCancelled", "cancelled"),
    ("SlurmNodeFail", "node_fail"), ("SlurmOutOfMemory", "out_of_memory"), ("OutOfMemoryError", "crashed"),
])
def test_a_run_slurm_ended_is_in_that_state_not_crashed(error: str, state: str) -> None:
    s = RunState()
    s.apply(ErrorEvent(error, "…"))
    assert s.status == state
