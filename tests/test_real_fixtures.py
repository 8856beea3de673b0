"""bench/split.toml, the tuning/test split of real runs (issues 15 and 16): every log it names is there, is read
as the finished run it is, and no log is in both halves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from exporters import report
from monitor.daemon.load import load
from monitor.model.build import build_snapshot

ROOT = Path(__file__).resolve().parents[1]
SPLIT = tomllib.loads((ROOT / "bench" / "split.toml").read_text())
HALVES = ("tune", "test")
USES = ("forecast", "loss")
FIXTURES = "tests/fixtures/real/"
CORPUS = "../shared/corpus/"

# The length of every run in the split (nanochat speedrun logs: of the last phase with steps, which is what
# `report` follows today; the base_train phase before it is longer).
MAX_ITERS = {
    FIXTURES + "eval-heavy.log": 3000, FIXTURES + "interval1.log": 2000, FIXTURES + "neighbour.log": 3000,
    FIXTURES + "plain.log": 2500, FIXTURES + "resume.log": 2500, FIXTURES + "slowdown.log": 2500,
    FIXTURES + "wander-a.log": 1600, FIXTURES + "wander-b.log": 1600,
    FIXTURES + "buffered-a.log": 1500, FIXTURES + "buffered-b.log": 1500,
    FIXTURES + "resume-a.log": 2000, FIXTURES + "resume-b.log": 2000,
    FIXTURES + "evals-a.log": 1000, FIXTURES + "evals-b.log": 1000,
    FIXTURES + "long-a.log": 4000, FIXTURES + "long-b.log": 4400,
    FIXTURES + "gradacc-a.log": 500, FIXTURES + "gradacc-b.log": 500,
    FIXTURES + "big-a.log": 500, FIXTURES + "big-b.log": 500,
    FIXTURES + "every-a.log": 2000, FIXTURES + "every-b.log": 2000,
    CORPUS + "nanogpt/char-custom-dataset-code-generation.log": 1000,
    CORPUS + "nanogpt/char-ddp4-interleaved-rank-lines.log": 5000,
    CORPUS + "nanogpt/char-ddp4-torchrun-duplicate-rank-prints.log": 5000,
    CORPUS + "nanogpt/char-model-parallel-mem-suffix-autotune.log": 1000,
    CORPUS + "nanogpt/char-tiny-4layer-log-interval-20-always-save.log": 3000,
    CORPUS + "nanogpt/char-tmux-pane-capture-ansi-shell-session.log": 5000,
    CORPUS + "nanogpt/char-wandb-output-bpc-suffix-no-header.log": 5000,
    CORPUS + "nanogpt/char-windows-cli-overrides-log-interval-1.log": 1000,
    CORPUS + "nanogpt/tinystories-51m-nohup-wandb-stderr-reordered.log": 6000,
    CORPUS + "llmc/gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log": 19560,
    CORPUS + "llmc/main-log-train_gpt2cu-trl-lr-norm.log": 19560,
    CORPUS + "llmc/main-log-train_gpt2py-pytorch-variant.log": 9536,
    CORPUS + "modded-nanogpt/2024-10-10-muon-train_loss-timer-reset-at-step10.log": 6200,
    CORPUS + "modded-nanogpt/2024-11-24-windowwarmup-1750-steps.log": 1750,
    CORPUS + "modded-nanogpt/2025-01-16-sub3min-no-train_loss.log": 1393,
    CORPUS + "modded-nanogpt/2025-01-18-track2-medium-16min-first-step.log": 7500,
    CORPUS + "modded-nanogpt/2025-10-24-normuon-warmup-outside-timer.log": 2315,
    CORPUS + "modded-nanogpt/2026-02-16-flattenforward-baseline-current-format.log": 1490,
    CORPUS + "nanochat/speedrun-screen-log-1xrtx3090-78h-eta-epoch-format.log": 502,
    CORPUS + "nanochat/speedrun-screen-log-complete-d20.log": 681,
}


def listed(use: str) -> list[str]:
    return sorted({p for half in HALVES for p in SPLIT[half][use]})


def test_halves_do_not_overlap_and_each_log_is_listed_once() -> None:
    for use in USES:
        tune, test = SPLIT["tune"][use], SPLIT["test"][use]
        assert len(set(tune)) == len(tune) and len(set(test)) == len(test)
        assert not set(tune) & set(test), use


def test_every_log_has_its_expected_length_here() -> None:
    assert set(listed("forecast")) | set(listed("loss")) == set(MAX_ITERS)
    assert all(MAX_ITERS[p] == n for p, n in SPLIT["max_iters"].items())


def test_new_recordings_go_half_and_half() -> None:
    """Each recorded pair (`x-a`, `x-b`) has one member in each half, for both uses."""
    for use in USES:
        for half, other in (HALVES, HALVES[::-1]):
            for path in SPLIT[half][use]:
                if path.startswith(FIXTURES) and path[-6:] in ("-a.log", "-b.log"):
                    twin = path[:-5] + ("b" if path[-5] == "a" else "a") + ".log"
                    assert twin in SPLIT[other][use], (use, path)


@pytest.mark.parametrize("path", sorted(MAX_ITERS), ids=lambda p: p.rsplit("/", 1)[-1])
def test_log_reads_as_a_finished_run(path: str) -> None:
    file = ROOT / path
    assert file.is_file(), f"{path} is missing"
    if path.startswith(FIXTURES):
        assert file.stat().st_size < 400_000, "keep recorded logs small"
    user: dict[str, object] = {}
    if path in SPLIT["max_iters"]:
        user["max_iters"] = SPLIT["max_iters"][path]
    state = load(str(file), user=user).state
    snap = build_snapshot(state, run=file.stem, log=str(file), now=2e9)
    doc = report.to_dict(snap)
    assert (doc["state"], doc["progress"]["max_iters"]) == ("finished", MAX_ITERS[path])
    if path in listed("loss"):
        assert sum(e.val_loss is not None for e in snap.evals) >= 4
