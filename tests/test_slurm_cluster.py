"""The test cluster itself: a real Slurm that runs a job to its end and kills one at its time limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from prom_fixtures import wait_for
from slurm_cluster import SlurmCluster

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]  # the session's one cluster, on one worker


def test_a_job_runs_and_writes_its_output(slurm: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "hello-%j.out"
    job = slurm.sbatch("--job-name=hello", f"--output={out}", wrap="echo hello from $SLURM_JOB_ID")
    wait_for(lambda: slurm.state(job) in ("COMPLETED", None), 60, "the job to complete")
    assert (tmp_path / f"hello-{job}.out").read_text() == f"hello from {job}\n"
