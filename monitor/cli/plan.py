"""`trainwatch plan CONFIG.py|LOG`: the numbers of a nanoGPT run before it starts (or from its log once it has).

Kept light at import: a plan from a config file loads no following machinery, so it answers at once.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from typing import TYPE_CHECKING

from monitor.errors import TrainwatchError
from monitor.hardware.peaks import known_names, lookup
from monitor.model.plan import Band, Measured, Model, Plan, RunConfig, make_plan, parse_mfu
from monitor.snapshot import GpuSpec
from parsers.nanogpt_config import TRAIN_DEFAULTS, ConfigError, apply_override, read_config_file

if TYPE_CHECKING:
    from exporters.plan_report import Source

MAX_CONFIG_BYTES = 1 << 20
A100_PEAK = 312e12
"""nanoGPT's estimate_mfu divides by this whatever the GPU: its mfu × 312 TFLOPS is the FLOP/s it reached."""
PLAN_KEYS = {"vocab_size": int}
"""Not train.py settings, but what the model's size depends on: `--set vocab_size=65` for a char-level set."""

PRETRAINED = {"gpt2": (12, 12, 768), "gpt2-medium": (24, 16, 1024), "gpt2-large": (36, 20, 1280),
              "gpt2-xl": (48, 25, 1600)}
"""nanoGPT model.py from_pretrained: (n_layer, n_head, n_embd); vocab 50257, block 1024, bias True."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="CONFIG.py|LOG", help="a nanoGPT config file, or the log of a started run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a train.py setting, as `--KEY=VALUE` on nanoGPT's command line (repeatable)")
    p.add_argument("--gpu", metavar="NAME", help='the GPU, e.g. "RTX 4070", "A100 80GB", H100 (default: none: no time)')
    p.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs of the run (torchrun; default 1)")
    p.add_argument("--dataset-tokens", type=float, metavar="N", help="tokens in the training set, for epochs")
    p.add_argument("--data-dir", metavar="DIR", help="nanoGPT data directory (train.bin; meta.pkl for the vocab); "
                                                     "default data/<dataset> when it exists")
    p.add_argument("--mfu", metavar="F[-F]",
                   help="model FLOPs utilisation to assume, e.g. 0.35 or 0.3-0.45 (default 0.3-0.5)")
    p.add_argument("--price-per-kwh", type=float, metavar="P", help="electricity price, for cost")
    p.add_argument("--json", action="store_true", help="print trainwatch.plan/1 JSON")


def cmd_plan(args: argparse.Namespace) -> int:
    from exporters.plan_report import to_json, to_text

    if args.gpus < 1:
        raise TrainwatchError(f"--gpus {args.gpus}: a run has at least one GPU")
    if args.mfu is not None:
        args.mfu = parse_mfu(args.mfu)
    gpu = lookup(args.gpu) if args.gpu else None
    unknown = None
    if args.gpu and gpu is None:
        unknown = f"unknown GPU {args.gpu!r}"
        print(f"trainwatch: warning: {unknown}: time and energy left out (known: {', '.join(known_names())})",
              file=sys.stderr)
    try:
        plan, src = (_from_config if args.source.endswith(".py") else _from_log)(args, gpu, unknown)
    except ConfigError as e:  # the config's or an override's problem: the user's to fix
        raise TrainwatchError(str(e)) from None
    print(to_json(plan, src, args.price_per_kwh) if args.json else to_text(plan, src, args.price_per_kwh))
    return 0


def _from_config(args: argparse.Namespace, gpu: GpuSpec | None, unknown: str | None) -> tuple[Plan, Source]:
    from exporters.plan_report import Source

    values = dict(TRAIN_DEFAULTS)
    read_config_file(_read_text(args.source), args.source, values)
    for arg in args.set:
        apply_override(values, arg, PLAN_KEYS)
    notes: list[str] = []
    cfg = _run_config(values, _model_of(values, args, notes), args.gpus)
    dataset = args.dataset_tokens or _dataset_tokens(values, args, notes)
    plan = make_plan(cfg, gpu=gpu, n_gpus=args.gpus, mfu=args.mfu, dataset_tokens=dataset,
                     price_per_kwh=args.price_per_kwh, unknown_gpu=unknown)
    return plan, Source("config", args.source, tuple(args.set), tuple(notes))


def _from_log(args: argparse.Namespace, gpu: GpuSpec | None, unknown: str | None) -> tuple[Plan, Source]:
    """The run's own settings (its echoed config and overrides) and its measured pace, through the
    same ingest path as `report`."""
    import time

    from exporters.plan_report import Source
    from monitor.daemon.load import load
    from monitor.model.build import build_snapshot

    ingest = load(args.source, user={"dataset_tokens": args.dataset_tokens} if args.dataset_tokens else None)
    state = ingest.state
    if state.format != "nanogpt":
        raise TrainwatchError(f"{args.source}: a {state.format} log; plan reads nanoGPT configs and logs "
                              f"(trainwatch report {args.source} shows what this one says)")
    values = dict(TRAIN_DEFAULTS)
    values.update({k: v for k, v in state.logged.items() if k in values and type(v) is type(values[k])})
    for arg in args.set:
        apply_override(values, arg, PLAN_KEYS)
    notes = ["settings from the log's config echo and Overriding: lines; the rest are train.py's defaults"]
    logged_vocab = state.logged.get("vocab_size")
    if isinstance(logged_vocab, int) and not any(a.startswith("vocab_size=") for a in args.set):
        values["vocab_size"] = logged_vocab
    cfg = _run_config(values, _model_of(values, args, notes), args.gpus)
    snap = build_snapshot(state, run=args.source, log=args.source, now=time.time(), history=False,
                          gpu_peak_flops=gpu.peak_flops if gpu else None)
    fc = snap.forecast
    eta = None
    if snap.state == "finished":
        eta = Band(0.0, 0.0)
    elif snap.state in ("running", "evaluating") and fc.eta_p10_s is not None and fc.eta_p90_s is not None:
        eta = Band(fc.eta_p10_s, fc.eta_p90_s)
    iter_s, overhead = fc.iter_s, fc.eval_overhead_s
    if iter_s is None and snap.elapsed_s and snap.iter:
        iter_s, overhead = snap.elapsed_s / (snap.iter + 1), None  # the average, evals included
    measured = None
    if iter_s is not None or eta is not None:
        mfu = snap.mfu
        if mfu is None and snap.mfu_logged is not None and gpu is not None:
            mfu = snap.mfu_logged * A100_PEAK / gpu.peak_flops  # nanoGPT's figure is per GPU, against an A100
        measured = Measured(iter_s=iter_s, mfu=mfu, elapsed_s=snap.elapsed_s, eta_s=eta, eval_overhead_s=overhead)
        if eta is None:
            notes.append(f"the run is {snap.state}: the time is its measured pace over all {cfg.max_iters + 1:,} "
                         "iterations")
    plan = make_plan(cfg, gpu=gpu, n_gpus=args.gpus, mfu=args.mfu, dataset_tokens=snap.dataset_tokens,
                     price_per_kwh=args.price_per_kwh, measured=measured, unknown_gpu=unknown)
    if measured is None:
        notes.append("too little progress for a measured pace: the time is from the MFU range")
    return plan, Source("log", args.source, tuple(args.set), tuple(notes))


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise TrainwatchError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise TrainwatchError(f"{path}: is a directory, not a config file") from None
    except OSError as e:
        raise TrainwatchError(f"{path}: {e.strerror}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise TrainwatchError(f"{path}: over 1 MiB: not a nanoGPT config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TrainwatchError(f"{path}: not a text file (invalid UTF-8)") from None


def _int(values: dict[str, object], key: str, minimum: int = 1) -> int:
    v = values[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise TrainwatchError(f"{key} = {v!r}: must be a whole number ≥ {minimum}")
    return v


def _run_config(values: dict[str, object], model: Model, gpus: int) -> RunConfig:
    ga = _int(values, "gradient_accumulation_steps")
    if ga % gpus:
        raise TrainwatchError(f"gradient_accumulation_steps = {ga} is not a multiple of --gpus {gpus} "
                              "(nanoGPT asserts it: each GPU takes an equal share)")
    dtype = values["dtype"]
    if dtype not in ("bfloat16", "float16", "float32"):
        raise TrainwatchError(f"dtype = {dtype!r}: nanoGPT knows float32, bfloat16, float16")
    return RunConfig(model=model, batch_size=_int(values, "batch_size"), gradient_accumulation_steps=ga,
                     max_iters=_int(values, "max_iters", 0), eval_interval=_int(values, "eval_interval"),
                     eval_iters=_int(values, "eval_iters", 0), dtype=str(dtype), compile=bool(values["compile"]))


def _model_of(values: dict[str, object], args: argparse.Namespace, notes: list[str]) -> Model:
    """The model as train.py builds it: the pretrained shape for init_from gpt2*, else the config's, with the
    vocabulary of meta.pkl (a char-level set) or GPT-2's padded 50304."""
    init = str(values["init_from"])
    if init in PRETRAINED:
        layers, heads, embd = PRETRAINED[init]
        notes.append(f"init_from={init}: GPT-2's shape (vocab 50257, bias), block cropped to block_size")
        return _model(values, layers, heads, embd, min(1024, _int(values, "block_size")), 50257, True)
    if init == "resume":
        notes.append("init_from=resume: the checkpoint's model is taken to be the config's")
    vocab = values.get("vocab_size")
    if not isinstance(vocab, int):
        meta = _meta_vocab(_data_dir(values, args))
        vocab = meta or 50304
        notes.append(f"vocab_size {vocab:,} from meta.pkl" if meta else
                     "vocab_size 50,304 (GPT-2's 50,257 padded, as nanoGPT does without meta.pkl)")
    return _model(values, _int(values, "n_layer"), _int(values, "n_head"), _int(values, "n_embd"),
                  _int(values, "block_size"), vocab, bool(values["bias"]))


def _model(values: dict[str, object], layers: int, heads: int, embd: int, block: int, vocab: int,
           bias: bool) -> Model:
    if embd % heads:
        raise TrainwatchError(f"n_embd = {embd} is not a multiple of n_head = {heads} (nanoGPT asserts it)")
    if vocab < 1:
        raise TrainwatchError(f"vocab_size = {vocab}: must be ≥ 1")
    return Model(layers, heads, embd, block, vocab, bias)


def _data_dir(values: dict[str, object], args: argparse.Namespace) -> str | None:
    if args.data_dir:
        return str(args.data_dir)
    default = os.path.join("data", str(values["dataset"]))
    return default if os.path.isdir(default) else None


def _meta_vocab(data_dir: str | None) -> int | None:
    """meta.pkl's vocab_size, unpickled with every class refused: a dict of ints and strings loads, code does not."""
    if data_dir is None:
        return None
    path = os.path.join(data_dir, "meta.pkl")
    try:
        with open(path, "rb") as fh:
            meta = _PlainUnpickler(fh).load()
    except FileNotFoundError:
        return None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise TrainwatchError(f"{path}: not readable as nanoGPT's meta.pkl ({e})") from None
    vocab = meta.get("vocab_size") if isinstance(meta, dict) else None
    return vocab if isinstance(vocab, int) and vocab > 0 else None


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        raise pickle.UnpicklingError(f"it refers to {module}.{name}, which trainwatch does not load")


def _dataset_tokens(values: dict[str, object], args: argparse.Namespace, notes: list[str]) -> float | None:
    data_dir = _data_dir(values, args)
    if data_dir is None:
        return None
    from monitor.follow.read import train_bin_tokens

    path = os.path.join(data_dir, "train.bin")
    try:
        tokens = train_bin_tokens(data_dir)
    except OSError as e:
        if args.data_dir:
            raise TrainwatchError(f"--data-dir: cannot read {path}: {e.strerror}") from None
        return None
    notes.append(f"dataset tokens from {path} (uint16: size / 2)")
    return float(tokens)
