"""`trainwatch plan`: the founding example's figures, nanoGPT's configurator and parameter count, the VRAM
estimate against published measurements, the GPU table, planned vs measured, and bad input."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporters.plan_report import plan_line
from exporters.tui.stats import stats_text
from monitor.daemon.load import load
from monitor.hardware.peaks import lookup
from monitor.model.build import build_snapshot
from monitor.model.plan import (
    DEFAULT_MFU,
    Band,
    Model,
    PlanTarget,
    RunConfig,
    check,
    make_plan,
    param_counts,
    parse_mfu,
    vram,
)
from parsers.nanogpt_config import TRAIN_DEFAULTS, ConfigError, apply_override, read_config_file

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
FOUNDING = ROOT / "examples" / "train_fineweb_4070.py"
GIB = 2**30


def trainwatch(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def founding(**changes: object) -> RunConfig:
    cfg = dict(model=Model(n_layer=12, n_head=6, n_embd=384, block_size=1024, vocab_size=50304, bias=False),
               batch_size=16, gradient_accumulation_steps=32, max_iters=20000, eval_interval=500, eval_iters=200)
    return RunConfig(**{**cfg, **changes})  # type: ignore[arg-type]


# ---------------------------------------------------------------- the founding example, figure by figure

def test_founding_example_figures() -> None:
    p = make_plan(founding(), gpu=lookup("RTX 4070"), dataset_tokens=3.68e9, price_per_kwh=0.30)
    assert p.tokens_per_iter == 524_288
    assert p.steps == 20_001  # nanoGPT runs iterations 0..max_iters: iteration 0 counts
    assert p.tokens_total == 20_001 * 524_288 == 10_486_284_288  # 10.486 B (10.49 B)
    assert round(p.epochs, 2) == 2.85  # type: ignore[arg-type]
    assert p.params == 40_560_000  # "40.56 M" as nanoGPT counts it
    assert p.params_total == 40_560_000 + 1024 * 384  # + the position embeddings
    assert p.flops_total_6nd == pytest.approx(2.55e18, rel=2e-3)  # the hand estimate wrote 2.55e15
    assert p.flops_total == pytest.approx(3.1e18, rel=0.02)
    t = p.time
    assert t is not None and t.basis == "mfu" and (t.mfu.low, t.mfu.high) == DEFAULT_MFU  # type: ignore[union-attr]
    # 3.15e18 FLOPs at 30-50 % of 58.3 TFLOPS: 30-50 h, plus warm-up and 41 evals; not "15-20 h"
    assert (t.train_s.low / 3600, t.train_s.high / 3600) == pytest.approx((29.98, 49.96), abs=0.01)
    assert p.evals == 41
    assert t.iter_s is not None and (t.iter_s.low, t.iter_s.high) == pytest.approx((5.40, 8.99), abs=0.01)
    assert p.energy_j is not None and p.energy_j.low / 3.6e6 == pytest.approx(6.0, abs=0.05)  # 200 W × 30 h
    assert p.cost is not None and p.cost.high == pytest.approx(p.energy_j.high / 3.6e6 * 0.30)


def test_founding_example_vram_parts() -> None:
    v = vram(founding(), param_counts(founding().model)[1])
    assert v.weights == v.gradients == 40_953_216 * 4  # fp32 master weights and gradients
    assert v.optimizer == 40_953_216 * 8  # AdamW's two fp32 moments
    assert v.activations / GIB == pytest.approx(1.69, abs=0.01)  # 12 layers × 16,384 tokens, compiled
    assert (v.logits.low / GIB, v.logits.high / GIB) == pytest.approx((3.07, 6.14), abs=0.01)
    assert (v.total.low / GIB, v.total.high / GIB) == pytest.approx((5.37, 9.29), abs=0.01)
    assert v.total.high < 12 * GIB  # fits the RTX 4070 (the hand estimate said 9-11 GB)
    assert v.total_without_flash.low == pytest.approx(v.total.low + v.attention_matrices)
    eager = vram(founding(compile=False), 40_953_216)
    assert eager.total.low > 12 * GIB  # without torch.compile the logits' fp32 copies do not fit in 12 GB


def test_founding_example_on_the_command_line() -> None:
    out = trainwatch("plan", str(FOUNDING), "--gpu", "RTX 4070", "--dataset-tokens", "3.68e9",
                     "--price-per-kwh", "0.30")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for shown in ("524,288", "10.49 B in 20,001 iterations", "iteration 0", "2.85", "40.56 M as nanoGPT counts",
                  "40.95 M in all", "2.55e18 by 6·N·D", "3.15e18 with attention", "30–50 h at MFU 30–50 %",
                  "58.3 TFLOPS", "5.37 GiB – 9.29 GiB", "weights 0.15 GiB", "AdamW 0.31 GiB", "6.0–10 kWh at 200 W"):
        assert shown in text, shown
    data = json.loads(trainwatch("plan", str(FOUNDING), "--gpu", "RTX 4070", "--dataset-tokens", "3.68e9",
                                 "--json").stdout)
    assert data["schema"] == "trainwatch.plan/1"
    assert data["tokens"] == {"per_iter": 524288, "steps": 20001, "iteration_0_counts": True,
                              "total": 10486284288, "dataset": 3.68e9, "epochs": pytest.approx(2.85, abs=0.005)}
    assert data["params"] == {"nanogpt": 40560000, "total": 40953216}
    assert data["flops"]["total_6nd"] == pytest.approx(2.55e18, rel=2e-3)
    assert data["time"]["mfu"] == {"low": 0.3, "high": 0.5} and data["time"]["basis"] == "mfu"
    assert data["vram"]["fits"] is True and data["gpu"]["memory_bytes"] == 12 * GIB


def test_mfu_narrows_the_band() -> None:
    out = trainwatch("plan", str(FOUNDING), "--gpu", "4070", "--mfu", "0.35", "--json")
    t = json.loads(out.stdout)["time"]
    assert t["mfu"] == {"low": 0.35, "high": 0.35}
    assert t["train_s"]["low"] == t["train_s"]["high"] == pytest.approx(3.1457e18 / (58.3e12 * 0.35), rel=1e-3)
    assert t["total_s"]["high"] - t["total_s"]["low"] == pytest.approx(180)  # only the warm-up allowance is left


# ---------------------------------------------------------------- nanoGPT's configurator and model

def test_config_file_then_overrides_as_configurator_does() -> None:
    values = dict(TRAIN_DEFAULTS)
    read_config_file("batch_size = 16\nmax_iters = 20000\nlr_decay_iters = max_iters  # a name set before\n"
                     "gradient_accumulation_steps = 4 * 8\n'''a docstring'''\n", "c.py", values)
    apply_override(values, "--batch_size=8")
    apply_override(values, "compile=False")
    apply_override(values, "dtype=float16")  # an unquoted string stays a string, as literal_eval's fallback
    assert (values["batch_size"], values["lr_decay_iters"], values["gradient_accumulation_steps"]) == (8, 20000, 32)
    assert values["compile"] is False and values["dtype"] == "float16"
    assert values["n_layer"] == 12 and values["eval_interval"] == 2000  # train.py's defaults where not set


@pytest.mark.parametrize("text, named", [
    ("import time\nbatch_size = 8\n", "c.py:1: `import time` is code"),
    ("batch_size = 8\nwandb_run_name = 'ft-' + str(time.time())\n", "c.py:2: `wandb_run_name = 'ft-' + str(time"),
    ("x = " + "1+" * 100_000 + "1\n", "c.py: an expression nested too deeply"),
    ("for i in range(3):\n    pass\n", "c.py:1: `for i in range(3):` is code"),
    ("batch_size = (\n", "c.py:1: not valid Python"),
    ("a, b = 1, 2\n", "c.py:1: `a, b = 1, 2` is code"),
], ids=["import", "call", "deep", "loop", "syntax", "tuple-target"])
def test_config_with_code_is_refused_naming_the_line(text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=None) as e:
        read_config_file(text, "c.py", dict(TRAIN_DEFAULTS))
    assert str(e.value).startswith(named) and "\n" not in str(e.value)


@pytest.mark.parametrize("arg, named", [
    ("max_iters=2e4", "max_iters is int in nanoGPT, not float"),
    ("nonsense=1", "nanoGPT has no setting 'nonsense'"),
    ("batch_size", "write key=value"),
    ("compile=yes", "compile is bool in nanoGPT, not str"),
], ids=["type", "unknown", "no-value", "bool"])
def test_nonsense_overrides_are_refused(arg: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        apply_override(dict(TRAIN_DEFAULTS), arg)


@pytest.mark.parametrize("model, printed", [
    (Model(12, 12, 768, 1024, 50304, False), "123.59M"),  # GPT-2 124M from scratch (nanoGPT's printout)
    (Model(6, 6, 384, 256, 65, False), "10.65M"),  # config/train_shakespeare_char.py
    (Model(48, 25, 1600, 1024, 50257, True), "1555.97M"),  # gpt2-xl
], ids=["gpt2", "shakespeare-char", "gpt2-xl"])
def test_parameters_as_nanogpt_prints_them(model: Model, printed: str) -> None:
    assert f"{param_counts(model)[0] / 1e6:.2f}M" == printed


def test_total_parameters_equal_llmc_count() -> None:
    """llm.c's GPT-2 (biases, vocabulary padded to 50,304) prints `num_parameters 124475904`."""
    assert param_counts(Model(12, 12, 768, 1024, 50304, True))[1] == 124_475_904


@pytest.mark.parametrize("log, printed", [
    ("nanogpt/gpt2-124m-owt-ddp2-linesearch-sigterm.log", 123.59e6),
    ("nanogpt/char-tmux-pane-capture-ansi-shell-session.log", 10.65e6),
    ("nanogpt/char-windows-cli-overrides-log-interval-1.log", None),
], ids=["gpt2-ddp2", "char", "char-cli-overrides"])
def test_plan_from_a_log_reads_its_settings(log: str, printed: float | None) -> None:
    path = CORPUS / log
    out = trainwatch("plan", str(path), "--json", "--gpus", "2" if "ddp2" in log else "1")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    logged = load(str(path)).state.logged
    assert data["source"]["kind"] == "log"
    assert data["config"]["max_iters"] == logged["max_iters"]
    assert data["tokens"]["per_iter"] == logged.get("tokens_per_iter", data["tokens"]["per_iter"])
    assert data["params"]["nanogpt"] == pytest.approx(logged.get("params", printed or data["params"]["nanogpt"]),
                                                      abs=5e3)
    assert data["time"]["basis"] == "measured"  # the log's own pace, not an assumed MFU


def test_plan_from_a_crashed_log_extrapolates_its_pace() -> None:
    data = json.loads(trainwatch("plan", str(CORPUS / "nanogpt/gpt2-124m-owt-ddp2-linesearch-sigterm.log"),
                                 "--gpus", "2", "--gpu", "A100 40GB", "--json").stdout)
    # 8 h 56 m for iterations 0..9,840 of 0..10,000: its average pace, evals included, over all 10,001
    assert data["time"]["total_s"]["low"] / 3600 == pytest.approx(9.08, abs=0.05)
    assert data["time"]["mfu"]["low"] == pytest.approx(0.2043, abs=1e-3)  # nanoGPT's own mfu: against an A100


def test_char_level_vocab_from_meta_pkl(tmp_path: Path) -> None:
    data = tmp_path / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    (data / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": 65, "itos": {0: "\n"}, "stoi": {"\n": 0}}))
    (data / "train.bin").write_bytes(b"\0\0" * 1000)
    (tmp_path / "c.py").write_text("dataset = 'shakespeare_char'\nn_layer = 6\nn_head = 6\nn_embd = 384\n"
                                   "block_size = 256\n")
    out = json.loads(trainwatch("plan", "c.py", "--json", cwd=tmp_path).stdout)
    assert out["config"]["vocab_size"] == 65 and out["params"]["nanogpt"] == 10_646_784
    assert out["tokens"]["dataset"] == 1000


def test_a_meta_pkl_with_code_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"vocab_size": Evil()}))
    (tmp_path / "c.py").write_text("batch_size = 4\n")
    out = trainwatch("plan", "c.py", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert out.returncode == 2 and "meta.pkl: not readable as nanoGPT's meta.pkl" in out.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- VRAM against published measurements

def _gpt2(batch: int, **changes: object) -> RunConfig:
    return RunConfig(**{"model": Model(12, 12, 768, 1024, 50304, False), "batch_size": batch,  # type: ignore[arg-type]
                        "gradient_accumulation_steps": 40, "max_iters": 600000, "eval_interval": 2000,
                        "eval_iters": 200, **changes})


def test_vram_static_parts_match_llmc_allocations() -> None:
    """llm.c prints what it allocates (shared/corpus/llmc/gpt2-124m-fineweb-1xA100-full-run-slurm-stdout.log,
    from karpathy/llm.c train_gpt2.cu): 237 MiB parameters + 237 gradients (bf16) + 474 m + 474 v + 474 master
    weights (fp32) = 1,896 MiB for 124,475,904 parameters: the same 16 bytes a parameter as nanoGPT's fp32
    weights, gradients and AdamW moments."""
    v = vram(_gpt2(32, model=Model(12, 12, 768, 1024, 50304, True)), 124_475_904)
    assert (v.weights + v.gradients + v.optimizer) / 2**20 == pytest.approx(1896, rel=0.01)


@pytest.mark.parametrize("cfg, params, gpu_gib, fits, source", [
    # config/train_gpt2.py: "GPT-2 (124M) ... on 1 node of 8X A100 40GB", batch 12 × 1024 a GPU (nanoGPT README)
    (_gpt2(12), 124_373_760, 40.0, True, "karpathy/nanoGPT config/train_gpt2.py"),
    # `python train.py --batch_size=32 --compile=False` on a 16 GB V100 (fp16): out of memory
    (_gpt2(32, compile=False, dtype="float16"), 124_373_760, 15.78, False, "karpathy/nanoGPT#88"),
    # config/finetune_shakespeare.py (gpt2-xl, batch 1 × 1024) on a 24 GB card: out of memory
    (RunConfig(Model(48, 25, 1600, 1024, 50257, True), 1, 32, 20, 5, 40), 1_559_249_600, 23.68, False,
     "karpathy/nanoGPT#208"),
    # GPT-2 124M from scratch on an RTX 4070 (16 GB), batch 4, gradient accumulation 4: "around 9GB"
    (_gpt2(4, gradient_accumulation_steps=4), 124_373_760, 16.0, True, "karpathy/nanoGPT#437"),
], ids=["gpt2-a100-batch12", "gpt2-v100-batch32-oom", "gpt2xl-finetune-24gb-oom", "gpt2-4070-batch4"])
def test_vram_agrees_with_published_fits_and_ooms(cfg: RunConfig, params: int, gpu_gib: float, fits: bool,
                                                  source: str) -> None:
    v = vram(cfg, params)
    if fits:
        assert v.total.high < gpu_gib * GIB, source
    else:
        assert v.total.low > gpu_gib * GIB, source


@pytest.mark.xfail(strict=True, reason="the one published point measurement of nanoGPT's eager activations "
                   "(karpathy/nanoGPT#88: 10.16 GiB allocated when the fp32 logits of batch 32 were requested) "
                   "is ~27 % below the eager estimate: unexplained without a GPU to measure on")
def test_vram_eager_forward_against_nanogpt_issue_88() -> None:
    cfg = _gpt2(32, compile=False, dtype="float16")
    v = vram(cfg, 124_373_760)
    fp16_logits = 2 * 50304 * 32 * 1024
    allocated = v.weights + v.activations + fp16_logits  # no gradients or AdamW state before the first step
    assert allocated == pytest.approx(10.16 * GIB, rel=0.20)


# ---------------------------------------------------------------- the GPU table

REQUIRED_GPUS = ["RTX 3060", "RTX 3080", "RTX 3090", "RTX 4060 Ti", "RTX 4070", "RTX 4070 Ti", "RTX 4080",
                 "RTX 4090", "RTX 5090", "A10", "A100 40GB", "A100 80GB", "H100 PCIe", "H100 SXM", "H200", "L4",
                 "L40S", "B200"]


@pytest.mark.parametrize("name", REQUIRED_GPUS)
def test_gpu_table_has_peak_memory_and_power(name: str) -> None:
    spec = lookup(name)
    assert spec is not None and spec.name.startswith(name.split(" SXM")[0])
    assert spec.peak_flops > 0 and spec.memory_gb and spec.power_w
    if name.startswith("RTX"):
        assert spec.note and "half" in spec.note  # GeForce: bf16 with fp32 accumulate is the half rate


@pytest.mark.parametrize("typed, name", [("4090", "RTX 4090"), ("NVIDIA GeForce RTX 4070", "RTX 4070"),
                                         ("A100-SXM4-80GB", "A100 80GB"), ("h100", "H100 SXM"),
                                         ("NVIDIA H100 PCIe", "H100 PCIe"), ("rtx 4060 ti 16gb", "RTX 4060 Ti 16GB")])
def test_gpu_names_as_people_type_them(typed: str, name: str) -> None:
    assert lookup(typed).name == name  # type: ignore[union-attr]


# ---------------------------------------------------------------- planned vs measured

def _seed_log(tmp_path: Path, iter_ms: float) -> Path:
    """The founding run's log, 1,000 iterations in, at a steady pace."""
    text = FOUNDING.read_text()
    lines = [f"Overriding config with {FOUNDING.name}:", text, "tokens per iteration will be: 524,288",
             "Initializing a new model from scratch", "number of parameters: 40.56M",
             "step 0: train loss 10.9000, val loss 10.9000", "iter 0: loss 10.9000, time 60000.00ms, mfu -100.00%"]
    lines += [f"iter {i}: loss 5.0000, time {iter_ms:.2f}ms, mfu 20.00%" for i in range(10, 1010, 10)]
    log = tmp_path / "fineweb.log"
    log.write_text("\n".join(lines) + "\n")
    return log


@pytest.mark.parametrize("iter_ms, verdict", [(9900.0, "slower"), (6500.0, "on-plan"), (3900.0, "faster")])
def test_check_says_when_the_pace_makes_the_plan_wrong(tmp_path: Path, iter_ms: float, verdict: str) -> None:
    snap = build_snapshot(load(str(_seed_log(tmp_path, iter_ms))).state, run="r", log="l", now=0.0)
    c = check(snap, PlanTarget(lookup("RTX 4070"), Band(*DEFAULT_MFU)))
    assert c is not None and c.verdict == verdict
    assert (c.time_low_s / 3600, c.time_high_s / 3600) == pytest.approx((30.25, 50.45), abs=0.01)
    assert c.energy_low_j == pytest.approx(c.time_low_s * 200)
    line = plan_line(c)
    if verdict == "slower":
        # 19,000 iterations × 9.9 s = 52 h 15 m, plus the evals ahead as the forecaster prices them
        assert re.match(r"at 9.9 s/iter this run needs 5[2-8]h \d\dm, not 30–50 h: slower than planned", line), line
    elif verdict == "faster":  # ~21 h 40 m as the issue says, plus the evals ahead
        assert re.match(r"at 3.9 s/iter this run needs 2[12]h \d\dm, less than the planned 30–50 h", line), line
    assert "plan: MFU 30–50 % on RTX 4070" in line


def test_report_and_tui_show_the_plan(tmp_path: Path) -> None:
    log = _seed_log(tmp_path, 9900.0)
    out = trainwatch("report", str(log), "--gpu", "RTX 4070", "--plan-mfu", "0.35")
    assert out.returncode == 0, out.stderr
    assert re.search(r"\nplan +at 9.9 s/iter this run needs 5[2-8]h \d\dm, not 43 h: slower than planned "
                     r"\(plan: MFU 35 % on RTX 4070, 8.6–8.7 kWh\)", out.stdout), out.stdout
    data = json.loads(trainwatch("report", str(log), "--gpu", "RTX 4070", "--plan-mfu", "0.35", "--json").stdout)
    assert data["plan"]["verdict"] == "slower" and data["plan"]["mfu"] == {"low": 0.35, "high": 0.35}
    snap = build_snapshot(load(str(log)).state, run="r", log="l", now=0.0)
    target = PlanTarget(lookup("RTX 4070"), parse_mfu("0.35"))
    from dataclasses import replace
    shown = stats_text(replace(snap, plan=check(snap, target))).plain
    assert "plan    at 9.9 s/iter this run needs" in shown
    assert "plan" not in stats_text(snap).plain.split("\n")[-2]  # no plan asked: no line


# ---------------------------------------------------------------- bad input: one line naming the problem

@pytest.mark.parametrize("args, named", [
    (["missing.py"], "missing.py: no such file"),
    (["{cfg_code}"], ":1: `import os` is code, not a setting"),
    (["{founding}", "--set", "batch_size=big"], "batch_size is int in nanoGPT, not str"),
    (["{founding}", "--set", "n_embd=385"], "n_embd = 385 is not a multiple of n_head = 6"),
    (["{founding}", "--mfu", "35"], "MFU '35': a fraction of the peak between 0 and 1"),
    (["{founding}", "--gpus", "3"], "gradient_accumulation_steps = 32 is not a multiple of --gpus 3"),
    (["{llmc}"], "a llmc log; plan reads nanoGPT configs and logs"),
    (["{dir}"], "is a directory"),
], ids=["missing", "code", "override-type", "heads", "mfu-percent", "gpus", "other-format", "directory"])
def test_bad_input_gets_one_line(tmp_path: Path, args: list[str], named: str) -> None:
    code = tmp_path / "code.py"
    code.write_text("import os\n")
    subst = {"{cfg_code}": str(code), "{founding}": str(FOUNDING), "{dir}": str(tmp_path),
             "{llmc}": str(CORPUS / "llmc/gpt2-124m-oom-at-startup.log")}
    out = trainwatch("plan", *[subst.get(a, a) for a in args])
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and named in out.stderr, out.stderr


def test_unknown_gpu_gives_everything_but_time_and_energy() -> None:
    out = trainwatch("plan", str(FOUNDING), "--gpu", "RTX 9090")
    assert out.returncode == 0
    assert out.stderr.count("\n") == 1 and "unknown GPU 'RTX 9090': time and energy left out" in out.stderr
    assert "time         — (unknown GPU 'RTX 9090')" in out.stdout and "40.56 M" in out.stdout
    assert "kWh" not in out.stdout
    data = json.loads(trainwatch("plan", str(FOUNDING), "--gpu", "RTX 9090", "--json").stdout)
    assert data["time"] == {"reason": "unknown GPU 'RTX 9090'"} and data["energy"]["joules"] is None
    assert data["vram"]["total"]["low"] > 0


def test_plan_loads_none_of_the_following_machinery() -> None:
    """`plan` must answer in a blink (bench/README.md): no Textual, watchdog, NVML or writer loop."""
    code = ("import sys; from monitor.cli import main; main(['plan', sys.argv[1]]); "
            "heavy = {'textual', 'watchdog', 'pynvml', 'prometheus_client', 'apprise', 'psutil'}; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), "
            "sorted(m for m in sys.modules if m.startswith('monitor.daemon')))")
    out = subprocess.run([sys.executable, "-c", code, str(FOUNDING)], capture_output=True, text=True, cwd=ROOT,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip().endswith("[] []"), out.stdout[-300:] + out.stderr


def test_followed_run_carries_its_plan(tmp_path: Path) -> None:
    """`trainwatch LOG --plan-mfu 0.35 --gpu "RTX 4070"`: the live writer's snapshots carry the check, and a
    pace that breaks the plan turns it to "slower" as the lines arrive."""
    import time

    from monitor.cli import build_parser
    from monitor.cli.options import follow_sources
    from monitor.daemon.config import Config
    from monitor.daemon.writer import Monitor

    log = _seed_log(tmp_path, 6500.0)
    args = build_parser().parse_args(["watch", str(log), "--plan-mfu", "0.3-0.5", "--gpu", "RTX 4070", "--no-gpu"])
    assert args.gpu == "RTX 4070"
    mon = Monitor(sources=follow_sources(args, Config()), poll_interval=0.05)
    mon.start()
    try:
        deadline = time.monotonic() + 120  # generous: a loaded CI machine
        while not (mon.snapshots() and mon.snapshots()[0].plan and mon.snapshots()[0].iter == 1000):
            assert time.monotonic() < deadline, "the plan never reached the snapshot"
            time.sleep(0.02)
        assert mon.snapshots()[0].plan.verdict == "on-plan"  # type: ignore[union-attr]
        with log.open("a") as fh:  # the run slows to 13 s an iteration
            fh.write("".join(f"iter {i}: loss 5.0000, time 13000.00ms, mfu 10.00%\n" for i in range(1010, 3010, 10)))
        while mon.snapshots()[0].plan.verdict != "slower":  # type: ignore[union-attr]
            assert time.monotonic() < deadline, mon.snapshots()[0].plan
            time.sleep(0.02)
    finally:
        mon.stop()


def test_report_says_when_no_plan_can_be_made() -> None:
    out = trainwatch("report", str(ROOT / "examples" / "shakespeare-char.log"), "--plan-mfu", "0.3")
    assert out.returncode == 0 and "\nplan " not in out.stdout
    assert out.stderr.count("\n") == 1 and "no plan for this run: its GPU (give --gpu NAME)" in out.stderr
    bad = trainwatch("report", str(ROOT / "examples" / "shakespeare-char.log"), "--gpu", "RTX 9090")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--gpu 'RTX 9090': not a GPU" in bad.stderr
