"""Finding the process that writes a log, with real processes: `> out.log`, `| tee out.log`, a
torchrun-like parent with rank children; its liveness; its GPUs; its dataset size."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monitor.hardware.gpu import make_sample
from monitor.hardware.procs import Writer, alive, dataset_tokens, find_writer, run_gpus, started_at
from monitor.snapshot import GpuProcess

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="process discovery reads /proc (Linux)")

TRAINER = textwrap.dedent("""
    import os, subprocess, sys, time
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 0):  # torchrun-like: rank children share stdout
        subprocess.Popen([sys.executable, sys.argv[0]])
    print(f"pid {os.getpid()}", flush=True)
    while True:
        print("iter 1: loss 2.0000, time 10.00ms, mfu 1.00%", flush=True)
        time.sleep(0.05)
""")


def wait_for(cond, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def spawn(tmp_path):
    """Start a shell command in its own process group in tmp_path; everything it started is killed after."""
    (tmp_path / "train.py").write_text(TRAINER)
    procs: list[subprocess.Popen] = []

    def start(cmd: str, **kw) -> subprocess.Popen:
        p = subprocess.Popen(cmd, shell=True, cwd=tmp_path, start_new_session=True, **kw)
        procs.append(p)
        return p

    yield start
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=10)


def trainer_pids(log):
    """The PIDs the trainers printed (`pid N`) so far."""
    text = log.read_text() if log.exists() else ""
    return [int(ln.split()[1]) for ln in text.splitlines() if ln.startswith("pid ")]


PY = sys.executable


def ppid(pid):
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_writer_through_redirect_is_the_training_process(spawn, tmp_path):
    log = tmp_path / "out.log"
    spawn(f"exec {PY} train.py > out.log")
    assert wait_for(lambda: trainer_pids(log))
    (pid,) = trainer_pids(log)
    w = find_writer(str(log))
    assert w is not None
    assert w.pid == pid and w.training_pids == (pid,)
    assert w.cmdline == (PY, "train.py") and w.cwd == str(tmp_path)


def test_writer_through_tee_is_followed_to_the_training_process(spawn, tmp_path):
    log = tmp_path / "out.log"
    spawn(f"{PY} train.py | tee out.log > /dev/null")
    assert wait_for(lambda: trainer_pids(log))
    (pid,) = trainer_pids(log)
    w = find_writer(str(log))
    assert w is not None
    assert w.pid != pid and Path(f"/proc/{w.pid}/comm").read_text().strip() == "tee"
    assert w.training_pids == (pid,)
    assert w.cmdline == (PY, "train.py") and w.cwd == str(tmp_path)


def test_writer_through_two_relays(spawn, tmp_path):
    log = tmp_path / "out.log"
    spawn(f"{PY} train.py | cat | tee out.log > /dev/null")
    assert wait_for(lambda: trainer_pids(log))
    w = find_writer(str(log))
    assert w is not None and w.training_pids == tuple(trainer_pids(log))


def test_torchrun_like_parent_and_its_rank_children(spawn, tmp_path):
    log = tmp_path / "out.log"
    spawn(f"exec {PY} train.py 2 > out.log")
    assert wait_for(lambda: len(trainer_pids(log)) == 3)
    pids = trainer_pids(log)
    parent = next(p for p in pids if ppid(p) not in pids)
    w = find_writer(str(log))
    assert w is not None
    assert w.pid == parent and w.training_pids[0] == parent
    assert sorted(w.training_pids) == sorted(pids)
    assert w.cmdline == (PY, "train.py", "2")


def test_a_reader_is_not_a_writer(spawn, tmp_path):
    log = tmp_path / "out.log"
    log.write_text("iter 1: loss 2.0, time 1.00ms\n")
    spawn(f"exec {PY} -c 'import time; time.sleep(60)' < out.log")
    time.sleep(0.2)  # let it start holding the file; absence is what is asserted
    assert find_writer(str(log)) is None
    assert find_writer(str(tmp_path / "missing.log")) is None


def test_alive_until_killed_even_before_it_is_reaped(spawn, tmp_path):
    log = tmp_path / "out.log"
    p = spawn(f"exec {PY} train.py > out.log")
    assert wait_for(lambda: trainer_pids(log))
    assert alive(p.pid)
    os.kill(p.pid, signal.SIGKILL)
    assert wait_for(lambda: not alive(p.pid))  # a zombie until p.wait()
    p.wait(timeout=10)
    assert not alive(p.pid)


def test_started_at_is_the_process_start_time(spawn, tmp_path):
    before = time.time()
    p = spawn(f"exec {PY} train.py > out.log")
    at = started_at(p.pid)
    assert at is not None and before - 2 < at < time.time() + 2
    assert started_at(2**22 + 12345) is None


# ---------------------------------------------------------------- which GPUs are the run's

def gpus(*procs_per_gpu):
    return tuple(make_sample(i, 1.0, processes=tuple(GpuProcess(p, 1 << 30) for p in procs))
                 for i, procs in enumerate(procs_per_gpu))


def writer(*pids, ns=()):
    return Writer(pid=pids[0], cmdline=("python", "train.py"), cwd="/w", training_pids=pids, ns_pids=ns)


@pytest.mark.parametrize("w, samples, fallback, expected, says", [
    pytest.param(writer(10, 11, 12), gpus((11,), (12,), (99,)), None, (0, 1),
                 "GPUs 0,1: where NVML lists the run's processes 11, 12", id="ranks-on-two-of-three"),
    pytest.param(writer(10, ns=(7,)), gpus((99,), (7,)), [0], (1,),
                 "GPU 1: where NVML lists the run's process 7", id="container-pid-via-nspid"),
    pytest.param(writer(10), gpus((), (), ()), [2], (2,),
                 "GPU 2: from --gpu (no process of the run is on a GPU (yet))", id="flag-when-not-on-gpu"),
    pytest.param(writer(10), gpus((), (4242,)), None, (1,),
                 "GPU 1: assumed, it runs the only GPU process (PID 4242)", id="only-gpu-process-host-pid"),
    pytest.param(writer(10), gpus((4242,), (4243,)), None, (0, 1),
                 "all GPUs (no process of the run is on a GPU (yet))", id="several-foreign-processes"),
    pytest.param(None, gpus((4242,), ()), None, (0, 1),
                 "all GPUs (the process writing the log was not found)", id="no-writer"),
    pytest.param(None, (), None, (), "no GPUs (the process writing the log was not found)", id="no-gpus"),
])
def test_run_gpus(w, samples, fallback, expected, says):
    indexes, sentence = run_gpus(w, samples, fallback)
    assert indexes == expected
    assert sentence.startswith(says)


# ---------------------------------------------------------------- nanoGPT's dataset

def test_dataset_tokens_from_train_bin(tmp_path):
    d = tmp_path / "data" / "shakespeare_char"
    d.mkdir(parents=True)
    (d / "train.bin").write_bytes(b"\0" * 2002)
    assert dataset_tokens(str(tmp_path), "shakespeare_char") == 1001
    assert dataset_tokens(str(tmp_path), "openwebtext") is None
    assert dataset_tokens(str(tmp_path), "../data/shakespeare_char") is None
    assert dataset_tokens(str(tmp_path), "") is None
