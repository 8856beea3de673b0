"""Choosing the parser: by name, from the head of the log, and following a log whose format changes.

Mixed logs are built from real corpus logs put one after another, as `>>` or a speedrun script would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.daemon.load import load
from parsers.auto import AutoParser
from parsers.base import feed
from parsers.detect import PARSERS, detect, make_parser
from parsers.events import ConfigValue, Event, Iteration, RunStart
from parsers.nanogpt import DEFAULTS

CORPUS = Path(os.environ.get("TRAINWATCH_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no log corpus at {CORPUS}")

NANOGPT = "nanogpt/char-custom-dataset-code-generation.log"  # 1000 iterations, max_iters 1000
LLMC = "llmc/gpt2-124m-nan-loss-slurm-timelimit-midline.log"  # steps 1-100 of 19560, killed
MODDED = "modded-nanogpt/2025-01-16-sub3min-no-train_loss.log"


def text(rel: str) -> str:
    return (CORPUS / rel).read_bytes().decode("utf-8", "replace")


def run(parser: object, log: str) -> list[tuple[str, Event]]:
    """(the parser's name after the line, event) for every event of the log."""
    out = []
    for line in log.split("\n"):
        for event in feed(parser, line):  # type: ignore[arg-type]
            out.append((parser.name, event))  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_a_format_can_be_forced_by_name(name: str) -> None:
    assert make_parser(name).name == name
    assert make_parser(name, head="iter 0: loss 4.2, time 1.0ms").name == name


def test_an_unknown_format_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="auto, hf, llmc, modded, nanochat, nanogpt"):
        make_parser("megatron")


@pytest.mark.parametrize(("head", "fmt"), [
    ("step    1/19560 | loss 11.009662 (+nanz)| norm 15.0789 (+nanz)| lr 8.57e-07 | 4230.95 ms", "llmc"),
    ("s:0 tel:11.0092\ns:0 trl:11.0091 lr:0.000001 norm:15.37", "llmc"),
    ("step:1/1393 train_time:17608ms step_avg:nanms", "modded"),
    ("\x1b[1mstep 00000/21400 (0.00%) | loss: 11.090355 | lrm: 1.00 | dt: 18285.05ms\r\n", "nanochat"),
    ("  0%|          | 0/1677 [00:00<?, ?it/s]\r{'loss': '3.412', 'epoch': '0.0179'}", "hf"),
    ("iter 0: loss 4.2714, time 3520.31ms, mfu -100.00%", "nanogpt"),
    ("+-----------------------+-----+\n| Parameter             | Value                                              |",
     "llmc"),
    ("Running PyTorch 2.7.0.dev20250110+cu126 compiled for CUDA 12.6", "modded"),
    ("Resolved 91 packages\n ~ nanochat==0.1.0 (from file:///root/nanochat)", "nanochat"),
    ("Overriding config with config/train_shakespeare_char.py:", "nanogpt"),
])
def test_detection_from_the_first_lines(head: str, fmt: str) -> None:
    assert detect(head) == fmt
    assert make_parser(None, head).name == fmt


def test_progress_outranks_startup_lines() -> None:
    # a speedrun log names nanochat in its shell output long before its first step
    head = "Installed nanochat-0.1.0\nstep:1/1393 train_time:17608ms step_avg:nanms\n"
    assert detect(head) == "modded"


@pytest.mark.parametrize("head", [
    "", "hello\nworld\n", "iter 0: loss 4.2, time 1.0ms\nstep:1/9 train_time:5ms step_avg:5ms",
])
def test_no_format_or_two_formats_get_the_auto_parser_reading_as_nanogpt(head: str) -> None:
    parser = make_parser(None, head)
    assert isinstance(parser, AutoParser)
    assert parser.name == "nanogpt" and parser.defaults == DEFAULTS
    assert isinstance(make_parser("auto"), AutoParser)


@needs_corpus
def test_auto_follows_one_format_after_another() -> None:
    log = text(NANOGPT) + text(LLMC) + text(NANOGPT)
    assert detect(log) is None
    parser = make_parser(None, log)
    events = run(parser, log)
    iterations = [(name, e.iter) for name, e in events if isinstance(e, Iteration)]
    names = [name for name, _ in iterations]
    assert names == ["nanogpt"] * 21 + ["llmc"] * 100 + ["nanogpt"] * 21
    assert iterations[21] == ("llmc", 1) and iterations[-1] == ("nanogpt", 1000)
    assert sum(isinstance(e, RunStart) for _, e in events) >= 3


@needs_corpus
def test_auto_delivers_the_config_a_format_printed_while_another_was_answering() -> None:
    # nanoGPT echoes its config file before its first banner; llm.c is still answering then
    log = text(LLMC) + text(NANOGPT)
    events = run(make_parser("auto"), log)
    after_switch = [e for name, e in events if name == "nanogpt"]
    assert ConfigValue("max_iters", 1000, "config-file") in after_switch


@needs_corpus
def test_auto_state_matches_the_detected_parser(tmp_path: Path) -> None:
    # a speedrun's shell output, then a training script: the same report either way
    path = tmp_path / "speedrun.log"
    path.write_text("Resolved 91 packages in 0.96ms\nInstalled 4 packages in 85ms\n" + text(MODDED))
    auto, direct = load(str(path), format="auto"), load(str(path), format="modded")
    assert auto.parser.name == "modded"
    assert auto.state.last == direct.state.last
    assert auto.state.logged == direct.state.logged


@needs_corpus
def test_auto_opens_a_segment_when_a_format_without_banner_takes_over(tmp_path: Path) -> None:
    # llm.c's main.log has no banner: its `s:0 trl:` restarts the count below nanoGPT's iter 1000
    main_log = "\n".join(text("llmc/main-log-train_gpt2cu-trl-lr-norm.log").split("\n")[:300])
    events = run(make_parser("auto"), text(NANOGPT) + main_log)
    assert RunStart("unknown", "llmc log follows") in [e for _, e in events]
    path = tmp_path / "mixed.log"
    path.write_text(text(NANOGPT) + main_log)
    state = load(str(path), format="auto").state
    assert [(s.first_iter, s.last_iter) for s in state.segments] == [(0, 1000), (1, 298)]  # 300 lines, 2 `tel`
