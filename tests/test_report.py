"""`trainwatch report`: the worked example, every nanoGPT corpus log, the JSON schema, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from exporters import report
from monitor.daemon.load import load
from monitor.model.build import build_snapshot

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
REQUIRED = [
    "schema", "log", "format", "state", "progress.iter", "progress.max_iters", "progress.fraction", "loss.train",
    "loss.val", "loss.best_val", "tokens.per_iter", "tokens.seen", "tokens.total", "tokens.per_second",
    "tokens.dataset", "tokens.epochs", "compute.params", "compute.flops_per_token", "compute.flops_done",
    "compute.flops_total", "compute.mfu", "compute.gpu_peak_flops", "time.elapsed_s", "time.iter_s", "time.eta_s",
    "time.eta_p10_s", "time.eta_p90_s", "time.finish_at", "energy.joules", "energy.forecast_joules",
    "energy.source", "energy.cost", "gpu.memory_peak_bytes", "error.type", "error.message",
]

SEED_LOG = """Overriding config with config/train_seed.py:
batch_size = 16
block_size = 1024
gradient_accumulation_steps = 32
max_iters = 20000
n_layer = 12
n_head = 6
n_embd = 384

tokens per iteration will be: 524,288
Initializing a new model from scratch
number of parameters: 40.56M
step 0: train loss 10.9000, val loss 10.9000
iter 0: loss 10.9000, time 30000.00ms, mfu -100.00%
""" + "".join(f"iter {i}: loss 5.0000, time 1500.00ms, mfu 20.00%\n" for i in range(10, 1010, 10))


def trainwatch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_worked_example_of_the_seed(tmp_path: Path) -> None:
    log = tmp_path / "seed.log"
    log.write_text(SEED_LOG)
    state = load(str(log), user={"dataset_tokens": 3.68e9}).state
    snap = build_snapshot(state, run="seed", log=str(log), now=0.0)
    assert snap.tokens_per_iter == 524_288
    assert snap.tokens_total == pytest.approx(10.49e9, rel=1e-3)
    assert snap.epochs_total == pytest.approx(2.85, abs=0.005)
    assert 6 * snap.params * snap.tokens_total == pytest.approx(2.55e18, rel=2e-3)  # type: ignore[operator]
    assert snap.flops_total == pytest.approx(3.1e18, rel=0.02)
    text = report.to_text(snap)
    assert "of 3.15 EFLOP" in text


def test_json_has_every_required_key(tmp_path: Path) -> None:
    log = tmp_path / "seed.log"
    log.write_text(SEED_LOG)
    out = trainwatch("report", str(log), "--json", "--dataset-tokens", "3.68e9", "--power-watts", "200",
                     "--price-per-kwh", "0.3")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for key in REQUIRED:
        node = doc
        for part in key.split("."):
            assert part in node, key
            node = node[part]
    assert doc["schema"] == "trainwatch.report/1"
    assert doc["state"] == "running"
    assert doc["progress"]["iter"] == 1000 and doc["progress"]["max_iters"] == 20000
    assert doc["energy"]["source"] == "power-flag" and doc["energy"]["cost"] > 0
    assert doc["time"]["eta_s"] == pytest.approx(19000 * 1.5, rel=0.02)


NANOGPT_EXPECTED = {
    # file: (state, last iter)
    "char-1gpu-xxl-cuda-oom-crash.log": ("crashed", 0),
    "char-custom-dataset-code-generation.log": ("finished", 1000),
    "char-tmux-pane-capture-ansi-shell-session.log": ("finished", 5000),
    "char-windows-cli-overrides-log-interval-1.log": ("finished", 1000),
    "char-wandb-output-oom-traceback.log": ("crashed", None),
    "gpt2-124m-owt-ddp2-linesearch-sigterm.log": ("crashed", 9840),
    "multinode-2x8-torchrun-assertion-crash.log": ("crashed", None),
    "tinystories-51m-nohup-wandb-stderr-reordered.log": ("finished", 6000),
    "char-ddp4-torchrun-duplicate-rank-prints.log": ("finished", 5000),
}


@pytest.mark.parametrize("path", sorted((CORPUS / "nanogpt").glob("*.log")), ids=lambda p: p.name)
def test_report_on_every_nanogpt_corpus_log(path: Path) -> None:
    ingest = load(str(path))
    snap = build_snapshot(ingest.state, run=path.stem, log=str(path), now=2e9)
    doc = report.to_dict(snap)
    json.dumps(doc, allow_nan=False)
    report.to_text(snap)
    assert snap.parse_errors == 0 or ingest.parse_errors == snap.parse_errors
    if path.name in NANOGPT_EXPECTED:
        state, last = NANOGPT_EXPECTED[path.name]
        assert (snap.state, snap.iter) == (state, last)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(bytes(range(256)) * 64), "not a text log"),
        (lambda p: os.mkfifo(p), "not a regular file"),
    ],
    ids=["missing", "directory", "empty", "binary", "fifo"],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make: object, message: str) -> None:
    path = tmp_path / "x.log"
    make(path)  # type: ignore[operator]
    out = trainwatch("report", str(path))
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("trainwatch: error: ")
    assert message in out.stderr and "Traceback" not in out.stderr


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text("iter 0: loss 1.0, time 1.00ms, mfu 1.00%\n")
    path.chmod(0)
    # root reads anything: drop the capabilities that let it, so the permission check is real
    cmd = [sys.executable, "-m", "monitor.cli", "report", str(path)]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: cannot make a file unreadable")
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 2 and "permission denied" in out.stderr, out.stderr


def test_invalid_utf8_and_nul_bytes_and_a_long_line(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(b"\x00" * 100 + b"iter 0: loss 1.0, time 1.00ms, mfu 1.00%\n\xff\xfe garbage \xc3\n"
                     + b"x" * (5 << 20) + b"\niter 10: loss 0.5, time 1.00ms, mfu 1.00%")
    out = trainwatch("report", str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["progress"]["iter"] == 10
