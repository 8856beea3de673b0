"""Fixtures shared by several test files: the TUI's terminal, a real Slurm cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import slurm_cluster
from slurm_cluster import SlurmCluster
from tui_data import use_utc


@pytest.fixture
def tui_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Colour on (NO_COLOR breaks snapshots) and local time pinned to UTC, restored afterwards."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TZ", "UTC")
    use_utc()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A real one-node Slurm (munged, slurmctld, slurmd) for the whole session, stopped at its end."""
    if lacking := slurm_cluster.missing():
        pytest.skip(f"Slurm is not installed (no {', '.join(lacking)}): apt-get install slurm-wlm munge")
    if os.getuid() != 0:
        pytest.skip("slurmd runs jobs as their users, so it must run as root")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    yield cluster
    cluster.stop()
