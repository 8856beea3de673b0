"""SVG snapshots of the main screen (pytest-textual-snapshot): fixed data, fixed clock, UTC.

The data is the synthetic run of tui_data (no forecaster, no parser), so these change only when the
TUI's look changes. After an intended change: `pytest tests/test_tui_snapshots.py --snapshot-update`,
then look at the SVGs in tests/__snapshots__/test_tui_snapshots/ before committing them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_data import FIXED_NOW, synthetic
from tui_screen import ready

from exporters.tui.app import TrainwatchApp
from monitor.snapshot import Note, Snapshot

SnapCompare = Callable[..., bool]


pytestmark = pytest.mark.usefixtures("tui_terminal")


def app_for(*snaps: Snapshot) -> TrainwatchApp:
    return TrainwatchApp(lambda: snaps, clock=lambda: FIXED_NOW)


async def mounted(pilot: Pilot[Any]) -> None:
    await ready(pilot)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)], ids=["80x24", "160x48"])
def test_main_screen(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(app_for(synthetic()), terminal_size=size, run_before=mounted)


def test_crashed_run_80x24(snap_compare: SnapCompare) -> None:
    snap = dataclasses.replace(
        synthetic(), state="crashed", error_type="OutOfMemoryError",
        error_message="CUDA out of memory. Tried to allocate 64.00 MiB. GPU 0 has a total capacity of 79.15 GiB",
        notes=(*synthetic().notes, Note(None, 8350, "error", "OutOfMemoryError: CUDA out of memory. Tried to "
                                        "allocate 64.00 MiB. GPU 0 has a total capacity of 79.15 GiB")), gpus=())
    assert snap_compare(app_for(snap), terminal_size=(80, 24), run_before=mounted)


def test_overview_of_several_runs_160x48(snap_compare: SnapCompare) -> None:
    runs = [synthetic(run="gpt2-124m-owt"), synthetic(run="gpt2-124m-lr3e-4", state="stalled"),
            synthetic(run="gpt2-124m-lr1e-3", state="crashed")]
    runs = [dataclasses.replace(s, log=f"/runs/{s.run}/train.log") for s in runs]
    assert snap_compare(app_for(*runs), terminal_size=(160, 48), run_before=mounted)
