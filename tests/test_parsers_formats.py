"""llm.c, modded-nanogpt, nanochat and Hugging Face Trainer logs: every real log of the corpus, read the
way `trainwatch report` reads it.

What a log should say (its last step, that step's loss, its last validation value) is computed here
from the raw bytes with this file's own simple regexes, independently of the parsers. Step numbers
follow the parsers' documented convention: iter = optimizer steps finished (llm.c `step k/N` → k,
main.log `s:k trl` → k+1, nanochat base `step k/N` → k+1, ...).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporters import report
from monitor.daemon.load import load
from monitor.follow.read import CHUNK
from monitor.model.build import build_snapshot
from monitor.model.ingest import Ingest
from monitor.model.state import RunState
from parsers.base import feed
from parsers.detect import PARSERS, make_parser
from parsers.events import ConfigValue, ErrorEvent, Eval, Event, Iteration, RunStart
from parsers.text import clean_segments

CORPUS = Path(os.environ.get("TRAINWATCH_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
FORMAT_DIRS = ("llmc", "modded-nanogpt", "nanochat", "hf-trainer", "other")

if not CORPUS.is_dir():
    pytest.skip(f"no log corpus at {CORPUS} (set TRAINWATCH_CORPUS)", allow_module_level=True)


@dataclass(frozen=True)
class Expect:
    format: str
    state: str  # the report's state, as of the file's last write
    train_total: int | None = None  # HF: the training bar's total (eval and dataset bars have others)


EXPECTED: dict[str, Expect] = {
    "llmc/gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log": Expect("llmc", "finished"),
    "llmc/gpt2-124m-nan-loss-slurm-timelimit-midline.log": Expect("llmc", "timeout"),  # Slurm's time limit
    "llmc/gpt2-124m-oom-at-startup.log": Expect("llmc", "crashed"),  # [CUDA ERROR] out of memory
    # main.log states no total, and its last line is the final validation
    "llmc/main-log-train_gpt2cu-trl-lr-norm.log": Expect("llmc", "evaluating"),
    "llmc/main-log-train_gpt2py-pytorch-variant.log": Expect("llmc", "evaluating"),
    "modded-nanogpt/2024-10-10-muon-train_loss-timer-reset-at-step10.log": Expect("modded", "finished"),
    "modded-nanogpt/2024-11-24-windowwarmup-1750-steps.log": Expect("modded", "finished"),
    "modded-nanogpt/2025-01-16-sub3min-no-train_loss.log": Expect("modded", "finished"),
    "modded-nanogpt/2025-01-18-track2-medium-16min-first-step.log": Expect("modded", "finished"),
    "modded-nanogpt/2025-10-24-normuon-warmup-outside-timer.log": Expect("modded", "finished"),
    "modded-nanogpt/2026-02-16-flattenforward-baseline-current-format.log": Expect("modded", "finished"),
    "nanochat/report-md-complete-speedrun.log": Expect("nanochat", "finished"),
    "nanochat/speedrun-screen-log-1xrtx3090-78h-eta-epoch-format.log": Expect("nanochat", "finished"),
    "nanochat/speedrun-screen-log-complete-d20.log": Expect("nanochat", "finished"),
    "nanochat/speedrun-screen-log-device-ordinal-fail-then-slow-partial.log": Expect("nanochat", "running"),
    "nanochat/speedrun-screen-log-failed-before-base-train.log": Expect("nanochat", "crashed"),
    "hf-trainer/bert-mlm-old-format-padded-dicts-two-runs.log": Expect("hf", "finished", 2260),
    "hf-trainer/reward-model-wandb-output-grad_norm.log": Expect("hf", "crashed", 1954),  # KeyboardInterrupt
    # training finished, then the user's script crashed (omegaconf) in the same process
    "hf-trainer/reward-model-wandb-output-with-train_runtime.log": Expect("hf", "crashed", 760),
    "hf-trainer/trl-sft-lora-quoted-4g-floats-tqdm-cr.log": Expect("hf", "finished", 1677),
    "other/nanorwkv-modified-step-line-multiline-warning.log": Expect("nanogpt", "evaluating"),
}

LOGS = sorted(EXPECTED)
NANOGPT_LOGS = sorted(p.name for p in (CORPUS / "nanogpt").glob("*.log"))

# The test's own idea of "a line that reports progress", per format.
LOOKS_LIKE_PROGRESS = {
    "llmc": re.compile(r"^step\s+\d+/\d+ \||^s:\d+ t[er]l:|^val loss "),
    "modded": re.compile(r"^step:\d+/\d+ "),
    "nanochat": re.compile(r"^step \d+|^Step \d+(/\d+)? \| (Validation|Training loss)"
                           r"|^- (Calculated )?[Nn]umber of iter"),
    "hf": re.compile(r"^\s*\{'(loss|eval_loss)'"),
    "nanogpt": re.compile(r"^iter \d+:|^step \d+[,:]"),
}


@dataclass(frozen=True)
class Facts:
    step: int | None
    loss: float | None
    val: float | None


def raw_lines(rel: str) -> list[str]:
    """The file's logical lines by this test's own rules: ANSI codes out, split at CR, LF and CRLF."""
    text = (CORPUS / rel).read_bytes().decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[ -/]*[@-~]", "", text)
    return [line.rstrip() for line in re.split(r"\r\n|\r|\n", text)]


def _num(text: str | None) -> float | None:
    return None if text is None else float(text.strip("'").replace(",", ""))


def facts(rel: str) -> Facts:
    expect = EXPECTED[rel]
    step = loss = val = None
    for line in raw_lines(rel):
        if expect.format == "llmc":
            if m := re.match(r"^step\s+(\d+)/\d+ \| (?:train )?loss\s+(\S+)", line):
                step, loss = int(m[1]), _num(m[2])
            elif m := re.match(r"^s:(\d+) trl:(\S+)", line):
                step, loss = int(m[1]) + 1, _num(m[2])
            elif m := re.match(r"^(?:val loss |s:\d+ tel:)(\S+)", line):
                val = _num(m[1])
        elif expect.format == "modded":
            if m := re.match(r"^step:(\d+)/\d+ (?:train_loss:(\S+) )?train_time:", line):
                step, loss = int(m[1]), _num(m[2])
            elif m := re.match(r"^step:\d+/\d+ val_loss:(\S+)", line):
                val = _num(m[1])
        elif expect.format == "nanochat":
            if m := re.match(r"^step (\d+)/\d+ \(.*?\| loss: (\S+)", line):
                step, loss = int(m[1]) + 1, _num(m[2])
            elif m := re.match(r"^step (\d+) \(.*?\| loss: (\S+)", line):
                step, loss = int(m[1]), _num(m[2])
            elif m := re.match(r"^Step (\d+)/\d+ \| Training loss: ([\d.]+)", line):
                step, loss = int(m[1]) + 1, _num(m[2])
            elif m := re.match(r"^- (?:Calculated )?[Nn]umber of iterations: ([\d,]+)$", line):
                step, loss = int(m[1].replace(",", "")), None
            elif m := re.match(r"^(?:Step \d+ \| Validation (?:bpb|loss)|- Final validation bpb"
                               r"|- Validation loss): (\S+)", line):
                val = _num(m[1])
        elif expect.format == "hf":
            if m := re.match(rf"^\s*\d+%\|[^|]*\|\s*(\d+)/{expect.train_total} \[", line):
                step = int(m[1])
            elif line.lstrip().startswith("{'"):
                if m := re.search(r"'loss': '?([^',}]+)", line):
                    loss = _num(m[1])
                if m := re.search(r"'eval_loss': '?([^',}]+)", line):
                    val = _num(m[1])
        elif expect.format == "nanogpt":
            if m := re.search(r"iter (\d+): loss (\S+?),", line):
                step, loss = int(m[1]), _num(m[2])
            elif m := re.search(r"val loss (\S+?)(?: |$)", line):
                val = _num(m[1])
    return Facts(step, loss, val)


def events_of(rel: str) -> list[Event]:
    """Every event, the file fed line by line to the parser detection picks, as load() does."""
    path = CORPUS / rel
    parser = make_parser(None, path.read_bytes()[:CHUNK].decode("utf-8", "replace"))
    out: list[Event] = []
    for line in path.read_bytes().decode("utf-8", "replace").split("\n"):
        out.extend(feed(parser, line))
    return out


def same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9)


def test_the_table_covers_every_log_of_these_formats() -> None:
    on_disk = {f"{d}/{p.name}" for d in FORMAT_DIRS for p in (CORPUS / d).glob("*.log")}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("rel", LOGS, ids=[Path(r).name for r in LOGS])
def test_detection_picks_the_format(rel: str) -> None:
    head = (CORPUS / rel).read_bytes()[:CHUNK].decode("utf-8", "replace")
    assert make_parser(None, head).name == EXPECTED[rel].format


@pytest.mark.parametrize("name", NANOGPT_LOGS)
def test_nanogpt_logs_stay_nanogpt(name: str) -> None:
    head = (CORPUS / "nanogpt" / name).read_bytes()[:CHUNK].decode("utf-8", "replace")
    assert make_parser(None, head).name == "nanogpt"


@pytest.mark.parametrize("rel", LOGS, ids=[Path(r).name for r in LOGS])
def test_no_progress_line_goes_unrecognised(rel: str) -> None:
    looks = LOOKS_LIKE_PROGRESS[EXPECTED[rel].format]
    path = CORPUS / rel
    parser = make_parser(None, path.read_bytes()[:CHUNK].decode("utf-8", "replace"))
    missed = []
    for raw in path.read_bytes().decode("utf-8", "replace").split("\n"):
        for segment in clean_segments(raw):
            events = parser.parse(segment) if segment else []
            if looks.search(segment) and not any(isinstance(e, (Iteration, Eval)) for e in events):
                missed.append(segment)
    assert missed == []


@pytest.mark.parametrize("rel", LOGS, ids=[Path(r).name for r in LOGS])
def test_last_step_loss_and_validation_match_the_raw_file(rel: str) -> None:
    want = facts(rel)
    events = events_of(rel)
    iterations = [e for e in events if isinstance(e, Iteration)]
    evals = [e for e in events if isinstance(e, Eval)]
    if want.step is None:
        assert iterations == []
    else:
        assert iterations[-1].iter == want.step
        assert same(iterations[-1].loss, want.loss)
    if want.val is None:
        assert [e.val_loss for e in evals if e.val_loss is not None] == []
    else:
        assert same(evals[-1].val_loss, want.val)


@pytest.mark.parametrize("rel", LOGS, ids=[Path(r).name for r in LOGS])
def test_report_reads_the_log(rel: str) -> None:
    expect, want = EXPECTED[rel], facts(rel)
    ingest = load(str(CORPUS / rel))
    state = ingest.state
    snap = build_snapshot(state, run=Path(rel).stem, log=rel, now=state.last_wall or 0.0, lines=ingest.lines,
                          parse_errors=ingest.parse_errors)
    doc = json.loads(report.to_json(snap))
    assert report.to_text(snap)
    assert (doc["format"], doc["state"]) == (expect.format, expect.state)
    assert doc["parse_errors"] == 0
    assert snap.iter == want.step
    if want.step is not None:  # HF logs its loss after the bar reached that step: the state takes it then
        assert same(snap.train_loss, want.loss)
    if expect.state == "finished":
        assert snap.iter == snap.max_iters and snap.fraction == 1.0
    if expect.state == "crashed":
        assert doc["error"]["type"]


# ---- what each format states beyond progress, read from the same real logs ------------------------------

def logged(rel: str) -> dict[str, object]:
    return load(str(CORPUS / rel)).state.logged


def test_llmc_config_table_gives_totals_tokens_and_the_gpu_peak() -> None:
    values = logged("llmc/gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log")
    assert values["max_iters"] == 19560
    assert values["tokens_per_iter"] == 524288
    assert values["eval_interval"] == 250
    assert values["gpu_name"] == "NVIDIA A100-PCIE-40GB"
    assert values["gpu_peak_flops"] == pytest.approx(312e12)
    # llm.c's own FLOPs/token: 6·N + 6·L·C·T
    assert values["flops_per_token"] == 6 * 124475904 + 6 * 12 * 768 * 1024


def test_llmc_kill_in_the_middle_of_a_step_line_keeps_the_step_and_the_kill() -> None:
    events = events_of("llmc/gpt2-124m-nan-loss-slurm-timelimit-midline.log")
    last_iteration = [e for e in events if isinstance(e, Iteration)][-1]
    assert last_iteration.iter == 100 and math.isnan(last_iteration.loss or 0.0)
    assert last_iteration.dt_s is None  # `| 3616.` was cut before its unit
    assert isinstance(events[-1], ErrorEvent) and events[-1].type == "SlurmTimeLimit"


def test_llmc_cuda_error_takes_its_message_from_the_next_line() -> None:
    errors = [e for e in events_of("llmc/gpt2-124m-oom-at-startup.log") if isinstance(e, ErrorEvent)]
    assert errors == [ErrorEvent("OutOfMemoryError", "out of memory (at train_gpt2.cu:265)")]


def test_llmc_step_line_fields() -> None:
    it = make_parser("llmc").parse(
        "step 19560/19560 | loss 3.253402 (-1.20z)| norm 0.2241 (-0.23z)| lr 0.00e+00 | 4368.24 ms | 30.9% bf16 MFU"
        " | 122878 tok/s")
    assert [asdict(e) for e in it] == [pytest.approx(asdict(Iteration(
        19560, 3.253402, dt_s=4.36824, mfu=0.309, max_iters=19560, tokens_per_s=122878.0, lr=0.0)))]


@pytest.mark.parametrize(("line", "step", "max_iters", "ms", "tok_s"), [
    ("step    1/10 | train loss 10.974512 | norm 15.4239 | lr 1.00e-04 | (1234.56 ms | 13243 tok/s)",
     1, 10, 1234.56, 13243.0),  # train_gpt2.py
    ("step    2/74: train loss 4.367631 (80.639749 ms, 6350 tok/s)", 2, 74, 80.639749, 6350.0),  # 2024-04
    ("step   10/74: train loss 4.350000 norm 1.2345 lr 3.00e-04 (120.54 ms, 4247 tok/s)", 10, 74, 120.54, 4247.0),
    ("step   61/74 | train loss 3.256000 | norm 0.4521 | lr 6.00e-04 | 124.21 ms | 42.9% A100 fp16 MFU | 41226 tok/s",
     61, 74, 124.21, 41226.0),  # 2024-05-25
    ("step 1: train loss 4.677649 (took 1376.968000 ms)", 2, None, 1376.968, None),  # train_gpt2.c, 0-based
], ids=["py", "apr-2024", "may-2024", "a100-fp16-mfu", "c-cpu"])
def test_llmc_historical_step_lines(line: str, step: int, max_iters: int | None, ms: float,
                                    tok_s: float | None) -> None:
    (it,) = make_parser("llmc").parse(line)
    assert isinstance(it, Iteration)
    assert (it.iter, it.max_iters, it.tokens_per_s) == (step, max_iters, tok_s)
    assert it.dt_s == pytest.approx(ms / 1000)


def test_llmc_nvml_line_reports_power() -> None:
    events = make_parser("llmc").parse(
        "                  compute 99.0% | memory: 45.1% | fan: 30% | 1410 MHz / 1410 MHz | 243 W / 250 W | 61°C / 85°C"
        " | Unknown")
    assert ConfigValue("gpu_power_watts", 243.0, "banner") in events


def test_modded_train_time_keeps_counting_across_the_step_10_reset() -> None:
    rel = "modded-nanogpt/2024-10-10-muon-train_loss-timer-reset-at-step10.log"
    its = {e.iter: e for e in events_of(rel) if isinstance(e, Iteration)}
    assert its[10].train_time_s == pytest.approx(77.676)
    assert its[11].train_time_s == pytest.approx(77.676 + 0.214)  # printed: 214ms
    assert its[11].dt_s == pytest.approx(0.214)
    assert its[6200].train_time_s == pytest.approx(77.676 + 1339.065)
    times = [its[k].train_time_s or 0.0 for k in sorted(its)]
    assert times == sorted(times)


def test_modded_current_format_train_time_is_the_records_clock() -> None:
    its = [e for e in events_of("modded-nanogpt/2025-10-24-normuon-warmup-outside-timer.log")
           if isinstance(e, Iteration)]
    assert its[-1].train_time_s == pytest.approx(140.464) and its[-1].loss is None
    assert its[0].dt_s == pytest.approx(0.082)


def test_modded_source_code_preamble_is_not_progress() -> None:
    parser = make_parser("modded")
    source = [
        '        print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms"'
        ' step_avg:{training_time_ms/max(step, 1):.2f}ms", console=True)',
        'print0(f"Running Python {sys.version}")',
    ]
    assert [e for line in source for e in parser.parse(line)] == []


def test_nanochat_speedrun_opens_a_segment_per_phase() -> None:
    rel = "nanochat/speedrun-screen-log-complete-d20.log"
    starts = [e for e in events_of(rel) if isinstance(e, RunStart)]
    assert len(starts) == 2  # base → mid, mid → sft
    segments = load(str(CORPUS / rel)).state.segments
    assert [(s.first_iter, s.last_iter) for s in segments] == [(1, 21400), (1, 770), (1, 681)]


def test_nanochat_states_its_gpu_peak_flops_and_time() -> None:
    rel = "nanochat/speedrun-screen-log-1xrtx3090-78h-eta-epoch-format.log"
    values = logged(rel)
    assert (values["gpu_name"], values["gpu_peak_flops"]) == ("NVIDIA GeForce RTX 3090", 7.10e13)
    assert values["flops_per_token"] == pytest.approx(4.945112e9)
    assert values["tokens_per_iter"] == 1048576
    base_end = [e for e in events_of(rel) if isinstance(e, Iteration) and e.iter == 5742][0]
    assert base_end.max_iters == 5742
    assert base_end.train_time_s == pytest.approx(4402.26 * 60)
    assert base_end.eta_s == pytest.approx(0.8 * 60)


def test_nanochat_phase_without_total_estimates_it_from_the_share_done() -> None:
    it = make_parser("nanochat").parse(
        "step 00151 (19.62%) | loss: 1.506816 | lrm: 1.00 | dt: 928.35ms | tok/sec: 282,374 | mfu: 49.85"
        " | total time: 2.21m")
    assert [asdict(e) for e in it] == [pytest.approx(asdict(Iteration(
        151, 1.506816, dt_s=0.92835, mfu=0.4985, max_iters=770, tokens_per_s=282374.0, train_time_s=132.6,
        lr=1.0)))]


def test_hf_quoted_4g_values_and_bare_nan() -> None:
    parser = make_parser("hf")
    assert parser.parse(" 10%|█         | 168/1677 [04:44<42:17,  1.68s/it]")[-1] == Iteration(
        168, None, dt_s=1.68, max_iters=1677, train_time_s=284.0, eta_s=2537.0)
    assert parser.parse("{'loss': '0.7402', 'grad_norm': '0.1367', 'epoch': '0.877'}") == [
        Iteration(168, 0.7402, max_iters=1677)]
    loss = parser.parse("{'loss': nan, 'learning_rate': 1e-05, 'epoch': 0.5}")[0]
    assert isinstance(loss, Iteration) and loss.loss is not None and math.isnan(loss.loss)
    assert parser.parse("{'eval_loss': '0.715', 'eval_runtime': '30.27'}") == [Eval(168, None, 0.715)]


def test_hf_evaluation_bar_is_not_training_progress() -> None:
    parser = make_parser("hf")
    parser.parse("  0%|          | 0/1677 [00:00<?, ?it/s]")
    parser.parse(" 33%|███▎      | 559/1677 [16:11<29:37,  1.59s/it]")
    assert parser.parse("  5%|▌         | 14/280 [00:01<00:28,  9.40it/s]") == []
    assert parser.parse("Map:  34%|███▍      | 34183/99842 [00:02<00:04, 16282.43 examples/s]") == []


# ---- never raise, whatever the text -------------------------------------------------------------------

FRAGMENTS = st.sampled_from([
    "step ", "step:", "Step ", "/", " | ", "loss ", "loss: ", "train_loss:", "val_loss:", "train_time:", "ms",
    "step_avg:", "%", "(", ")", "nan", "-nan", "inf", "1e309", "9" * 30, ",", "| Parameter | Value |",
    "| train_num_batches | ", "[CUDA ERROR] at file x.cu:1:", "s:", " trl:", " tel:", "{'loss': ", "'eval_loss'",
    "'train_runtime'", "}", "{", "  0%|", "| ", " [", "00:01<", "?it/s]", "s/it]", "Validation bpb: ",
    "Total training time: ", "Running Python 3", "- Number of iterations: ", "tok/sec: ", "\r", "\x1b[2K",
    "Traceback (most recent call last):", "generating:", "---",
])
TEXT = st.lists(st.one_of(FRAGMENTS, st.text(max_size=12), st.integers().map(str)), max_size=14).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([*PARSERS, "auto"]), st.lists(TEXT, max_size=25))
def test_no_text_makes_a_parser_or_the_state_raise(fmt: str, lines: list[str]) -> None:
    ingest = Ingest(make_parser(fmt), RunState(format=fmt))
    ingest.feed_lines(lines, None)
    ingest.feed_lines(lines, 1.0)
