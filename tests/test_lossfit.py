"""The final-loss prediction (monitor.model.lossfit) on constructed curves, the schedules it reads from logs, and the
prediction as the state and every sink show it."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.daemon.load import load
from monitor.model.build import build_snapshot
from monitor.model.finalloss import final_loss
from monitor.model.lossfit import Curve, power_law, predict
from monitor.model.lrschedule import Schedule
from monitor.snapshot import FinalLoss
from parsers.llmc import LlmcParser
from parsers.nanochat import NanochatParser

T = 5000
CONSTANT = Schedule("config", "constant learning rate (decay_lr=False)")
COSINE = Schedule("config", "cosine to 0.1× (config)", warmup=100, decay_start=100, decay_end=T, floor=0.1,
                  shape="cosine")


def curve(loss: Callable[[int], float], schedule: Schedule, *, known: str | None = None, every: int = 10,
          eval_every: int = 250, offset: float = 0.05) -> Curve:
    train = [(i, loss(i)) for i in range(0, T + 1, every)]
    val = [(i, loss(i) + offset) for i in range(0, T + 1, eval_every)]
    return Curve(train=train, val=val, max_iters=T, lr=schedule.at, known=known or schedule.known,
                 schedule=schedule.words, warmup=schedule.warmup)


def area(schedule: Schedule) -> Callable[[int], float]:
    """S1 in the model's own units: the lr area so far ÷ max_iters."""
    cum = [0.0]
    for i in range(1, T + 1):
        cum.append(cum[-1] + (schedule.at(i - 1) + schedule.at(i)) / 2)
    return lambda i: (schedule.at(0) + cum[i]) / T


def test_a_pure_power_law_is_recovered_to_1e_3() -> None:
    def loss(i: int) -> float:
        return 2.0 + 1.5 * (max(i, 1) / T) ** -0.3

    truth = loss(T) + 0.05
    for now in (2000, 2500, 3500):
        got = predict(curve(loss, CONSTANT), now)
        assert got.p50 is not None and abs(got.p50 - truth) < 1e-3, (now, got)
        assert got.p10 is not None and got.p90 is not None and got.p10 <= truth <= got.p90


def test_a_cosine_schedule_s_end_drop_is_expected() -> None:
    """Loss that follows the annealing law: at 50 % the fit foresees 90 % or more of the drop the decay still
    brings, which the last val loss and a power law in steps both miss."""
    s1 = area(COSINE)
    decay = [0.0]
    m = 0.0
    for i in range(1, T + 1):  # the annealing area with a memory of 500 steps (0.1 of the run)
        m = m * math.exp(-1 / 500) + max(0.0, COSINE.at(i - 1) - COSINE.at(i))
        decay.append(decay[-1] + m)

    def loss(i: int) -> float:
        return 2.0 + 0.8 * s1(i) ** -0.4 - 0.4 * decay[i] / 500

    truth = loss(T) + 0.05
    half = loss(T // 2) + 0.05
    got = predict(curve(loss, COSINE), T // 2)
    assert got.p50 is not None
    assert half - truth > 0.2  # the decay still has a lot to give
    assert abs(got.p50 - truth) < 0.1 * (half - truth), got
    assert got.p10 is not None and got.p90 is not None and got.p10 <= truth <= got.p90
    baseline = power_law([p for p in curve(loss, COSINE).val if p[0] <= T // 2], T)
    assert baseline is not None and abs(got.p50 - truth) < abs(baseline - truth) / 2


def test_an_unknown_schedule_gives_a_wider_band() -> None:
    s1 = area(COSINE)

    def loss(i: int) -> float:
        return 2.0 + 0.8 * s1(i) ** -0.4

    known = predict(curve(loss, COSINE), 2500)
    unknown = predict(curve(loss, COSINE, known="unknown"), 2500)
    assumed = predict(curve(loss, COSINE, known="assumed"), 2500)
    width = [f.p90 - f.p10 for f in (known, assumed, unknown)]  # type: ignore[operator]
    assert width[0] < width[1] < width[2]
    assert known.p50 == unknown.p50


@pytest.mark.parametrize(("loss", "why"), [
    (lambda i: 3.0 - i / 5000 if i < 2000 else 2.6 + (i - 2000) / 1000, "rising since iter"),
    (lambda i: 3.0 - i / 5000 if i < 2400 else math.nan, "the loss is nan at iter 2,500: diverged"),
    (lambda i: 3.0 - i / 5000 if i < 2400 else math.inf, "the loss is inf"),
], ids=["rising", "nan", "inf"])
def test_a_diverging_run_gets_no_prediction_and_says_why(loss: Callable[[int], float], why: str) -> None:
    got = predict(curve(loss, COSINE, every=100), 2600)
    assert got.p50 is None and got.p10 is None and got.p90 is None
    assert got.reason is not None and why in got.reason


def test_too_early_says_why() -> None:
    got = predict(curve(lambda i: 3.0, COSINE), 200)
    assert got.p50 is None and got.reason == "no validation loss past step 0 yet"


def test_val_points_alone_when_the_log_has_no_training_loss() -> None:
    s1 = area(CONSTANT)
    c = curve(lambda i: 2.0 + 1.5 * s1(i) ** -0.3, CONSTANT)
    got = predict(Curve(train=[], val=c.val, max_iters=T, lr=c.lr, known="config"), 3000)
    assert got.p50 is not None and abs(got.p50 - (2.05 + 1.5 * s1(T) ** -0.3)) < 5e-3
    few = predict(Curve(train=[], val=c.val[:3], max_iters=T, lr=c.lr, known="config"), 3000)
    assert few.p50 is None and few.reason is not None and "fewer than 4 val points" in few.reason


def test_the_path_runs_from_now_to_the_end_inside_the_band() -> None:
    s1 = area(CONSTANT)
    got = predict(curve(lambda i: 2.0 + 1.5 * s1(i) ** -0.3, CONSTANT), 2500)
    assert got.path[0][0] == 2500 and got.path[-1][0] == T
    assert got.path[-1][2] == pytest.approx(got.p50)
    assert all(lo <= mid <= hi for _, lo, mid, hi in got.path)


# ---- schedules from the logs ----------------------------------------------------------------------

def test_llmc_prints_its_lr_and_schedule() -> None:
    p = LlmcParser()
    [it] = p.parse("step    2/19560 | loss 10.956554 (+nanz)| norm 15.2427 (+nanz)| lr 1.71e-06 | 4385.98 ms | "
                   "30.8% bf16 MFU | 119537 tok/s")
    assert it.lr == pytest.approx(1.71e-6)  # type: ignore[union-attr]
    [main] = p.parse("s:1 trl:10.9598 lr:0.000002 norm:15.24")
    assert main.lr == pytest.approx(2e-6)  # type: ignore[union-attr]
    rows = {"| LR scheduler          | cosine     |": ("lr_scheduler", "cosine"),
            "| learning rate (LR)    | 6.000000e-04   |": ("learning_rate", 6e-4),
            "| warmup iterations     | 700        |": ("warmup_iters", 700.0),
            "| final LR fraction     | 0.000000e+00   |": ("final_lr_frac", 0.0)}
    for line, (key, value) in rows.items():
        [ev] = p.parse(line)
        assert (ev.key, ev.value) == (key, value)  # type: ignore[union-attr]


def test_nanochat_prints_its_lr_multiplier() -> None:
    [it] = NanochatParser().parse("step 00001/21400 (0.00%) | loss: 10.807247 | lrm: 0.85 | dt: 874.40ms | "
                                  "tok/sec: 299,799 | mfu: 52.92 | total time: 0.00m")
    assert it.lr == 0.85  # type: ignore[union-attr]


@pytest.mark.parametrize(("log", "known", "words"), [
    ("tests/fixtures/real/plain.log", "config", "cosine to 0.1× at iter 2,500 (config)"),
    ("../shared/corpus/llmc/gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log", "config", "cosine to 0× (config)"),
    ("../shared/corpus/llmc/main-log-train_gpt2cu-trl-lr-norm.log", "log", "cosine to 0× (lr column)"),
    ("../shared/corpus/nanochat/speedrun-screen-log-1xrtx3090-78h-eta-epoch-format.log", "log",
     "linear warm-down from iter"),
    ("../shared/corpus/modded-nanogpt/2025-01-16-sub3min-no-train_loss.log", "assumed", "cooldown"),
    ("../shared/corpus/nanogpt/char-wandb-output-bpc-suffix-no-header.log", "unknown", "schedule unknown"),
], ids=["nanogpt-config", "llmc-table", "llmc-main-log", "nanochat-lrm", "modded", "no-config"])
def test_the_schedule_each_log_gives(log: str, known: str, words: str) -> None:
    from monitor.model.lrschedule import schedule

    root = Path(__file__).resolve().parents[1]
    path = (root / log).resolve()
    if not path.exists():
        pytest.skip(f"{log} is not here")
    ingest = load(str(path), user={"max_iters": 19560} if "main-log" in log else {})
    state = ingest.state
    got = schedule(state, state.max_iters or 1)
    assert got.known == known and words in got.words, got


# ---- the state and every sink ---------------------------------------------------------------------

REAL = Path(__file__).resolve().parent / "fixtures" / "real" / "plain.log"


def half_log(tmp_path: Path) -> Path:
    """plain.log cut at iteration 1,500 of 2,500: a run in progress."""
    lines = REAL.read_text().splitlines()
    cut = next(n for n, line in enumerate(lines) if " iter 1500:" in line)
    out = tmp_path / "half.log"
    out.write_text("\n".join(lines[:cut + 1]) + "\n")
    return out


def test_the_state_predicts_and_refits_only_on_new_points(tmp_path: Path) -> None:
    state = load(str(half_log(tmp_path))).state
    first = final_loss(state)
    assert first.p50 is not None and first.of == "val" and "cosine" in first.schedule
    assert final_loss(state) is first  # nothing new: the cached prediction


def test_report_text_and_json(tmp_path: Path) -> None:
    from exporters import report

    state = load(str(half_log(tmp_path))).state
    s = build_snapshot(state, run="half", log="half.log", now=0.0)
    fl = s.final_loss
    assert fl.p50 is not None and fl.p10 is not None and fl.p90 is not None
    line = f"val → {fl.p50:.2f} ({fl.p10:.2f}–{fl.p90:.2f}) at the end"
    assert line in report.to_text(s)
    loss = report.to_dict(s)["loss"]
    assert (loss["final_p50"], loss["final_p10"], loss["final_p90"], loss["final_of"], loss["final_reason"]) == \
        (fl.p50, fl.p10, fl.p90, "val", None)
    lines = REAL.read_text().splitlines()
    (tmp_path / "early.log").write_text("\n".join(lines[:next(n for n, ln in enumerate(lines) if " iter 200:" in ln)]))
    early = report.to_dict(build_snapshot(load(str(tmp_path / "early.log")).state, run="x", log="x", now=0.0))["loss"]
    assert early["final_p50"] is None and early["final_reason"] == "no validation loss past step 0 yet"


def test_tui_stats_say_the_line(tmp_path: Path) -> None:
    from exporters.tui.stats import stats_text

    s = build_snapshot(load(str(half_log(tmp_path))).state, run="half", log="half.log", now=0.0)
    assert s.final_loss.line() in stats_text(s).plain


def test_prometheus_exports_the_band(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    from exporters.prometheus import TrainwatchCollector

    s = build_snapshot(load(str(half_log(tmp_path))).state, run="half", log="half.log", now=0.0, target_loss=1.5)
    reg = CollectorRegistry()
    reg.register(TrainwatchCollector(lambda: [s], version="test"))
    for pct, v in (("10", s.final_loss.p10), ("50", s.final_loss.p50), ("90", s.final_loss.p90)):
        assert reg.get_sample_value("trainwatch_final_loss_predicted", {"run": "half", "percentile": pct}) == v
    assert reg.get_sample_value("trainwatch_target_loss", {"run": "half"}) == 1.5


def test_backtest_points_carry_the_prediction_and_baselines() -> None:
    from exporters.backtest_report import to_dict, to_text
    from monitor.daemon.load import new_ingest
    from monitor.follow.read import read_batches
    from monitor.model.backtest import replay

    batches = read_batches(str(REAL))
    head, first = next(batches)
    lines = [*first, *(ln for _, more in batches for ln in more)]
    b = replay(new_ingest(head, format=None, user={}), lines, log=str(REAL))
    d = to_dict(b)
    assert d["final_val"] == pytest.approx(1.7633)
    points = d["points"]
    assert all({"final_loss", "final_loss_p10", "final_loss_p90"} <= p.keys() for p in points)
    assert all((p["final_loss"] is None) == (p["final_loss_reason"] is not None) for p in points)
    assert points[0]["final_loss"] is None and points[0]["final_loss_reason"]
    assert any(p["final_loss"] is not None for p in points)
    assert points[-1]["final_loss_baselines"]["stays"] is not None
    text = to_text(b)
    assert "it stays" in text and "power law" in text and "final val loss 1.7633" in text


def test_finalloss_dataclass_is_frozen() -> None:
    with pytest.raises(AttributeError):
        FinalLoss().p50 = 1.0  # type: ignore[misc]


# ---- the target: config, flag, notifications --------------------------------------------------------

def test_target_loss_per_run_in_the_config_and_the_flag_wins(tmp_path: Path) -> None:
    from monitor.daemon.config import load_config, sources

    (tmp_path / "config.toml").write_text(f"target_loss = 3.3\n[[run]]\nlog = '{tmp_path}/a.log'\n"
                                          f"[[run]]\nlog = '{tmp_path}/b.log'\ntarget_loss = 3.28\n")
    cfg = load_config(str(tmp_path / "config.toml"))
    assert {s.name: s.target_loss for s in sources(cfg, [], {})()} == {"a": 3.3, "b": 3.28}
    assert {s.target_loss for s in sources(cfg, [], {"target_loss": 2.5})()} == {2.5}


def test_report_json_carries_the_target_from_the_flag(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "monitor.cli", "report", str(half_log(tmp_path)), "--json",
                        "--target-loss", "1.5"], capture_output=True, text=True, check=True)
    loss = json.loads(r.stdout)["loss"]
    assert loss["target"] == 1.5 and loss["final_p50"] is not None and loss["final_of"] == "val"


def test_target_notification_once_when_out_of_reach_and_once_when_back(tmp_path: Path) -> None:
    from dataclasses import replace

    from monitor.alerts.rules import AlertConfig, AlertMemory, evaluate

    base = replace(build_snapshot(load(str(half_log(tmp_path))).state, run="run", log="half.log", now=0.0),
                   state="running", target_loss=3.28)

    def at(p10: float, p50: float, p90: float) -> object:
        return replace(base, final_loss=FinalLoss(p50=p50, p10=p10, p90=p90))

    memory, sent = AlertMemory(), []
    for s in (at(3.25, 3.30, 3.35), at(3.29, 3.31, 3.34), at(3.30, 3.32, 3.35), at(3.27, 3.30, 3.33),
              at(3.26, 3.29, 3.31), at(3.30, 3.31, 3.34)):
        memory, alerts = evaluate(memory, [s], 0.0, AlertConfig(), quiet=False)  # type: ignore[list-item]
        sent += [a for a in alerts if a.kind == "target"]
    assert [a.key for a in sent] == ["target-missed", "target-in-reach"]
    assert sent[0].body.startswith("The run will most likely end at 3.31 (3.29–3.34), above your target 3.28.")
    assert sent[0].level == "warning" and sent[1].level == "info"


def test_finished_notification_says_what_was_predicted_at_half_way() -> None:
    from monitor.alerts.rules import AlertConfig, AlertMemory, evaluate

    s = build_snapshot(load(str(REAL)).state, run="plain", log=str(REAL), now=0.0)
    half = s.final_loss_halfway
    assert s.state == "finished" and half is not None and half.p50 is not None
    [alert] = [a for a in evaluate(AlertMemory(), [s], 0.0, AlertConfig(), quiet=False)[1] if a.kind == "finished"]
    assert f"val loss {s.val_loss:.4f}" in alert.body
    assert f"at 50 % the predicted final val was {half.p50:.4f}" in alert.body


def test_backtest_truth_is_the_eval_printed_after_the_last_step() -> None:
    """llm.c prints its last val loss after the last step's line: the backtest still reads it as the truth."""
    from monitor.daemon.load import new_ingest
    from monitor.follow.read import read_batches
    from monitor.model.backtest import replay

    log = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "llmc" / \
        "gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log"
    if not log.exists():
        pytest.skip("the corpus is not here")
    batches = read_batches(str(log))
    head, first = next(batches)
    b = replay(new_ingest(head, format=None, user={}), [*first, *(ln for _, more in batches for ln in more)])
    assert b.final_val == pytest.approx(3.264775)
    assert b.median_loss_error("trainwatch") is not None
