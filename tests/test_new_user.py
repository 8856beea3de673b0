"""What a new user trips on first: the version, a file that is not a training log, a run that crashed before
its first iteration, counts printed as floats."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from exporters import report
from monitor.daemon.load import load
from monitor.model.build import build_snapshot

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
PASSWD = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n" \
         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
ALL_FORMATS = "formats tried: llmc, modded, nanochat, hf, nanogpt"


def trainwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_flag_prints_the_version(flag: str) -> None:
    done = trainwatch(flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"trainwatch {importlib.metadata.version('trainwatch')}"


@pytest.mark.parametrize(("extra", "tried"), [((), ALL_FORMATS), (("--format", "llmc"), "formats tried: llmc")],
                         ids=["detected", "forced"])
def test_report_on_a_file_that_is_not_a_training_log_says_so(tmp_path: Path, extra: tuple[str, ...],
                                                             tried: str) -> None:
    path = tmp_path / "passwd"
    path.write_text(PASSWD)
    for json_flag in ((), ("--json",)):
        done = trainwatch("report", str(path), *extra, *json_flag)
        assert done.returncode != 0 and done.stdout == ""
        assert done.stderr.strip() == f"trainwatch: error: no training progress found in {path} ({tried})"


def test_a_training_log_with_no_iteration_yet_is_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "starting.log"
    path.write_text("Overriding config with config/train_shakespeare_char.py:\nmax_iters = 5000\n")
    done = trainwatch("report", str(path), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "starting"


def test_the_snapshot_carries_the_note_for_the_live_view(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    path.write_text(PASSWD)
    ingest = load(str(path))
    snap = build_snapshot(ingest.state, run="passwd", log=str(path), now=0.0, lines=ingest.lines)
    assert snap.no_progress == f"no training progress found in {path} ({ALL_FORMATS})"
    empty = build_snapshot(ingest.state, run="passwd", log=str(path), now=0.0, lines=0)
    assert empty.no_progress is None  # nothing read yet: waiting, not refused


def test_a_run_that_crashed_before_its_first_iteration_says_crashed_in_the_eta() -> None:
    log = CORPUS / "llmc" / "gpt2-124m-oom-at-startup.log"
    ingest = load(str(log))
    snap = build_snapshot(ingest.state, run="oom", log=str(log), now=0.0, lines=ingest.lines)
    assert snap.state == "crashed" and snap.iter is None
    eta = next(line for line in report.to_text(snap).splitlines() if line.startswith("ETA"))
    assert "crashed" in eta and "waiting" not in eta
    assert report.to_dict(snap)["time"]["eta_reason"] == "crashed (OutOfMemoryError)"


@pytest.mark.parametrize("log", [ROOT / "examples" / "shakespeare-char.log",
                                 CORPUS / "llmc" / "gpt2-124m-oom-at-startup.log",
                                 CORPUS / "modded-nanogpt" / "2025-01-16-sub3min-no-train_loss.log"],
                         ids=lambda p: p.stem)
def test_json_counts_are_integers(log: Path) -> None:
    """`tokens/iter 512.0` in JSON was a float for a count."""
    done = trainwatch("report", str(log), "--json", "--dataset-tokens", "1003854")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    counts = {("tokens", "per_iter"), ("tokens", "seen"), ("tokens", "total"), ("tokens", "dataset"),
              ("compute", "params"), ("compute", "flops_per_token"), ("compute", "flops_done"),
              ("compute", "flops_total"), ("progress", "iter"), ("progress", "max_iters")}
    for group, key in counts:
        value = data[group][key]
        assert value is None or type(value) is int, (group, key, value)
    assert data["tokens"]["dataset"] == 1003854
    assert type(data["lines"]) is int and type(data["parse_errors"]) is int


@pytest.mark.asyncio
@pytest.mark.usefixtures("tui_terminal")
async def test_the_live_view_shows_the_note_instead_of_an_empty_run(tmp_path: Path) -> None:
    from tui_screen import screen_text, wait_for

    from exporters.tui.app import TrainwatchApp
    from exporters.tui.progress import ProgressPanel

    path = tmp_path / "passwd"
    path.write_text(PASSWD)
    ingest = load(str(path))
    snap = build_snapshot(ingest.state, run="passwd", log=str(path), now=0.0, lines=ingest.lines)
    app = TrainwatchApp(lambda: (snap,), clock=lambda: 0.0)
    async with app.run_test(size=(160, 40)) as pilot:
        note = f"no training progress found in {path} ({ALL_FORMATS})"
        await wait_for(pilot, lambda: note in " ".join(screen_text(app).split()))  # the note may wrap
        text = screen_text(app)
        assert "ETA" not in text and "waiting for the first iteration" not in text
        assert not app.query_one(ProgressPanel).display and "─ stats" not in text and "─ events" not in text
