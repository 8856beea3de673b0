"""Telemetry: what the machine says about a run, as a typed record the writer records and shows."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.daemon.telemetry import Telemetry
from monitor.daemon.writer import Follower, RunSpec
from monitor.hardware.gpu import BackgroundSampler, ScriptedSampler, make_sample
from monitor.hardware.procs import Writer
from monitor.snapshot import GpuProcess, RunTelemetry

LOG = """Overriding: dataset = 'tiny'
Overriding: max_iters = 100
tokens per iteration will be: 1,024
iter 0: loss 4.0000, time 900.00ms, mfu -100.00%
iter 10: loss 3.5000, time 100.00ms, mfu 10.00%
iter 20: loss 3.2000, time 100.00ms, mfu 10.00%
"""


def _follower(tmp_path: Path) -> Follower:
    log = tmp_path / "out.log"
    log.write_text(LOG)
    f = Follower(RunSpec(log=str(log), name="run"))
    f.step(1000.0)
    assert f.ingest is not None and f.ingest.state.last is not None
    return f


def _writer(tmp_path: Path, pid: int) -> Writer:
    return Writer(pid=pid, cmdline=("python", "train.py"), cwd=str(tmp_path), training_pids=(pid,), ns_pids=())


def test_a_found_writer_gives_the_dataset_size_and_its_exit_is_recorded_by_the_writer(tmp_path: Path) -> None:
    (tmp_path / "data" / "tiny").mkdir(parents=True)
    (tmp_path / "data" / "tiny" / "train.bin").write_bytes(b"\0" * 4000)  # 2,000 uint16 tokens
    alive = {"yes": True}
    f = _follower(tmp_path)
    t = Telemetry(None, find_writer=lambda log: _writer(tmp_path, 4242), alive=lambda pid: alive["yes"])

    first = t(f, 1001.0)
    assert first == RunTelemetry(dataset_tokens=2000)
    snap = f.snapshot(1001.0, first)
    assert snap.dataset_tokens == 2000 and snap.state == "running"

    alive["yes"] = False
    gone = t(f, 1002.0)
    assert gone.writer_exited
    snap = f.snapshot(1002.0, gone)
    assert snap.state == "crashed" and snap.error_type == "ProcessExited"


def test_the_runs_gpus_are_those_nvml_lists_its_process_on(tmp_path: Path) -> None:
    pid = os.getpid()
    frame = (make_sample(0, 1000.0, name="NVIDIA H100 80GB HBM3", power_w=500.0, energy_j=1e6,
                         processes=(GpuProcess(pid=pid, used_memory_bytes=1 << 30),)),
             make_sample(1, 1000.0, name="NVIDIA H100 80GB HBM3", power_w=80.0, energy_j=2e6))
    sampler = BackgroundSampler(ScriptedSampler([frame]), interval_s=0.05)
    try:
        assert sampler.wait_first(30.0)
        t = Telemetry(sampler, find_writer=lambda log: _writer(tmp_path, pid), alive=lambda p: True)
        got = t(_follower(tmp_path), 1001.0)
    finally:
        sampler.stop()
    assert [g.index for g in got.gpus] == [0]
    assert got.gpu_selection is not None and "NVML lists the run's process" in got.gpu_selection
    assert got.gpu_peak_flops is not None and got.gpu_peak_flops > 5e14
    assert got.energy is not None and got.energy.source.startswith("nvml")
    assert not got.writer_exited
