"""`report --json` on every corpus log and real fixture, pinned byte for byte.

Refactors must not change what users' scripts read. A deliberate change regenerates the files:
`python tests/test_golden_report.py` (then review the diff like code).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
GOLDEN = Path(__file__).resolve().parent / "golden" / "report"
MTIME = 1_800_000_000.0  # the copy's modification time: backfilled times are anchored on it
NOW = MTIME + 60.0


def _logs() -> list[Path]:
    return sorted(CORPUS.glob("*/*.log")) + sorted((ROOT / "tests" / "fixtures" / "real").glob("*.log"))


def _golden_name(log: Path) -> str:
    return f"{log.parent.name}--{log.stem}.json"


def report_json(log: Path, tmp: Path) -> str:
    """What `trainwatch report COPY --json` prints at NOW, for a copy of LOG with a fixed mtime and name."""
    from monitor.cli import main

    copy = tmp / log.name
    shutil.copyfile(log, copy)
    os.utime(copy, (MTIME, MTIME))
    out = tmp / "out.json"
    real_time, real_stdout = time.time, sys.stdout
    time.time = lambda: NOW  # the report's clock, for this one call
    try:
        with open(out, "w", encoding="utf-8") as sys.stdout:
            code = main(["report", str(copy), "--json"])
    finally:
        time.time, sys.stdout = real_time, real_stdout
    assert code == 0
    return out.read_text(encoding="utf-8").replace(str(tmp), "TMP")


@pytest.mark.parametrize("log", _logs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_report_json_is_unchanged(log: Path, tmp_path: Path) -> None:
    golden = GOLDEN / _golden_name(log)
    assert golden.exists(), f"no golden file for {log.name}: run `python tests/test_golden_report.py`"
    assert report_json(log, tmp_path) == golden.read_text(encoding="utf-8")


if __name__ == "__main__":
    import tempfile

    sys.path.insert(0, str(ROOT))
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for path in _logs():
        with tempfile.TemporaryDirectory() as d:
            (GOLDEN / _golden_name(path)).write_text(report_json(path, Path(d)), encoding="utf-8")
    print(f"wrote {len(_logs())} files to {GOLDEN}")
