"""The nanoGPT parser, line by line, and over every nanoGPT log in the corpus."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from parsers.base import feed
from parsers.events import Checkpoint, ConfigValue, ErrorEvent, Eval, Iteration, Notice, RunStart
from parsers.nanogpt import NanoGptParser

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
NANOGPT_LOGS = sorted((CORPUS / "nanogpt").glob("*.log"))


def parse_all(lines: list[str]) -> list[object]:
    p = NanoGptParser()
    return [e for ln in lines for e in feed(p, ln)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("iter 10: loss 3.1476, time 12.42ms, mfu 30.00%", Iteration(10, 3.1476, 0.01242, 0.30)),
        ("iter 0: loss 4.2714, time 3520.31ms, mfu -100.00%", Iteration(0, 4.2714, 3.52031, None)),
        ("iter 425: loss nan, time 1440.08ms, mfu 0.01%", Iteration(425, math.nan, 1.44008, 0.0001)),
        ("iter 7: loss inf, time 10.00ms, mfu 1.00%", Iteration(7, math.inf, 0.01, 0.01)),
        ("iter 10: loss 4.5735 BPC, time 267.36ms, mfu 8.92%", Iteration(10, 4.5735, 0.26736, 0.0892)),
        ("iter 10: loss 3.0947, time 108.26ms, mfu 27.54%, mem 11.71GB", Iteration(10, 3.0947, 0.10826, 0.2754)),
        ("iter 3: loss 2.5, time 100.00ms", Iteration(3, 2.5, 0.1, None)),
        ("step 250: train loss 1.9638, val loss 2.0642", Eval(250, 1.9638, 2.0642)),
        ("step 0: train loss 6.0601 BPC, val loss 6.0586 BPC", Eval(0, 6.0601, 6.0586)),
        ("step 100, tokens 1,638,400: train loss 1.3673, val loss 1.3539 avg perplexity: 1.1066",
         Eval(100, 1.3673, 1.3539)),
        ("saving checkpoint to out-shakespeare-char", Checkpoint("out-shakespeare-char")),
        ("saving checkpoint -> out-tinystories/ckpt_000002.pt", Checkpoint("out-tinystories/ckpt_000002.pt")),
        ("tokens per iteration will be: 524,288", ConfigValue("tokens_per_iter", 524288, "banner")),
        ("number of parameters: 40.56M", ConfigValue("params", 40560000, "banner")),
        ("Initializing a new model from scratch", RunStart("scratch")),
        ("Resuming training from out", RunStart("resume", "out")),
        ("Initializing from OpenAI GPT-2 weights: gpt2-xl", RunStart("pretrained", "gpt2-xl")),
        ("found vocab_size = 65 (inside data/shakespeare_char/meta.pkl)", ConfigValue("vocab_size", 65, "banner")),
        ("defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)",
         ConfigValue("vocab_size", 50304, "banner")),
        ("using fused AdamW: True", ConfigValue("fused_adamw", True, "banner")),
        ("num decayed parameter tensors: 26, with 10,740,096 parameters",
         ConfigValue("decayed_params", 10740096, "banner")),
        ("Overriding: max_iters = 2000", ConfigValue("max_iters", 2000, "override")),
        ("Overriding: out_dir = C:\\Users\\x\\out", ConfigValue("out_dir", "C:\\Users\\x\\out", "override")),
        ("Overriding: compile = False", ConfigValue("compile", False, "override")),
        ("Killed", ErrorEvent("Killed", "process killed (SIGKILL; often the kernel's OOM killer)")),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_line(line: str, expected: object) -> None:
    events = parse_all([line])
    assert len(events) == 1
    got = events[0]
    if isinstance(expected, Iteration) and isinstance(got, Iteration) and expected.loss is not None \
            and math.isnan(expected.loss):
        assert got.loss is not None and math.isnan(got.loss)
        assert (got.iter, got.dt_s, got.mfu) == (expected.iter, expected.dt_s, expected.mfu)
    elif isinstance(expected, Iteration):
        assert isinstance(got, Iteration)
        assert (got.iter, got.loss, got.mfu) == (expected.iter, expected.loss, expected.mfu)
        assert got.dt_s == pytest.approx(expected.dt_s)
    else:
        assert got == expected


def test_compile_is_a_notice() -> None:
    assert isinstance(parse_all(["compiling the model... (takes a ~minute)"])[0], Notice)


def test_config_block_values_are_read_without_executing() -> None:
    lines = [
        "Overriding config with config/train_gpt2.py:",
        "# config for training GPT-2 (124M)",
        "import time",
        "wandb_run_name='gpt2-124M'",
        "batch_size = 12",
        "gradient_accumulation_steps = 5 * 8  # global",
        "max_iters = 600000",
        "learning_rate = 1e-1",
        "device = 'cuda' if __import__('torch').cuda.is_available() else 'cpu'",
        "out_dir = __import__('os').system('touch /tmp/pwned')",
        "",
        "tokens per iteration will be: 491,520",
        "max_iters = 5",  # after the block: not config text any more
    ]
    values = {e.key: e.value for e in parse_all(lines) if isinstance(e, ConfigValue)}
    assert values["wandb_run_name"] == "gpt2-124M"
    assert values["gradient_accumulation_steps"] == 40
    assert values["max_iters"] == 600000
    assert values["learning_rate"] == 0.1
    assert values["tokens_per_iter"] == 491520
    assert "device" not in values and "out_dir" not in values


def test_traceback_becomes_one_error_at_its_last_line() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "train.py", line 300, in <module>',
        "    loss.backward()",
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 64.00 MiB.",
    ]
    errors = [e for e in parse_all(lines) if isinstance(e, ErrorEvent)]
    assert errors == [ErrorEvent("OutOfMemoryError", "CUDA out of memory. Tried to allocate 64.00 MiB.")]


def test_keyboard_interrupt_and_bare_assertion() -> None:
    tb = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>']
    assert [e for e in parse_all([*tb, "KeyboardInterrupt"]) if isinstance(e, ErrorEvent)] == [
        ErrorEvent("KeyboardInterrupt", "")]
    assert [e for e in parse_all([*tb, "AssertionError"]) if isinstance(e, ErrorEvent)] == [
        ErrorEvent("AssertionError", "")]


def test_progress_survives_escapes_and_carriage_returns() -> None:
    line = "\x1b[32mloading 50%\r\x1b]0;title\x07iter 20: loss 2.0000, time 10.00ms, mfu 1.00%\x1b[0m"
    events = parse_all([line])
    assert [type(e) for e in events] == [Iteration]


# ---- the corpus: values computed independently of the parser -----------------------------
_ITER = re.compile(r"iter (\d+): loss (\S+?)(?: BPC)?, time")
_EVAL = re.compile(r"^step (\d+)(?:, tokens [\d,]+)?: train loss ([\d.na]+)(?: BPC)?, val loss ([\d.na]+)")
_TOKENS = re.compile(r"tokens per iteration will be: ([\d,]+)")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def independent_facts(path: Path) -> dict[str, object]:
    text = _ANSI.sub("", path.read_bytes().decode("utf-8", "replace"))
    lines = [seg for ln in text.split("\n") for seg in ln.split("\r")]
    iters = [m for ln in lines if (m := _ITER.search(ln))]
    evals = [m for ln in lines if (m := _EVAL.match(ln))]
    tokens = [m for ln in lines if (m := _TOKENS.search(ln))]
    return {
        "iters": len(iters),
        "last_iter": int(iters[-1].group(1)) if iters else None,
        "last_loss": float(iters[-1].group(2)) if iters else None,
        "evals": len(evals),
        "last_eval": (float(evals[-1].group(2)), float(evals[-1].group(3))) if evals else None,
        "tokens": int(tokens[0].group(1).replace(",", "")) if tokens else None,
    }


@pytest.mark.parametrize("path", NANOGPT_LOGS, ids=lambda p: p.name)
def test_corpus_log(path: Path) -> None:
    facts = independent_facts(path)
    p = NanoGptParser()
    events = []
    with path.open("rb") as fh:
        for raw in fh:
            events.extend(feed(p, raw.decode("utf-8", "replace").rstrip("\n")))
    iters = [e for e in events if isinstance(e, Iteration)]
    evals = [e for e in events if isinstance(e, Eval)]
    assert len(iters) == facts["iters"], "every iteration line is recognised"
    assert len(evals) == facts["evals"], "every eval line is recognised"
    if iters:
        assert iters[-1].iter == facts["last_iter"]
        last_loss = facts["last_loss"]
        assert isinstance(last_loss, float)
        assert iters[-1].loss == last_loss or (math.isnan(last_loss) and math.isnan(iters[-1].loss or 0.0))
    if evals:
        assert (evals[-1].train_loss, evals[-1].val_loss) == facts["last_eval"]
    tokens = [e.value for e in events if isinstance(e, ConfigValue) and e.key == "tokens_per_iter"]
    assert (tokens[0] if tokens else None) == facts["tokens"]


def test_corpus_is_there() -> None:
    assert len(NANOGPT_LOGS) >= 18, f"corpus not found at {CORPUS}"
