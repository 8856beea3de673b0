"""The non-metric text of a simulated nanoGPT run: the startup banner (once per rank) and a CUDA OOM traceback.

Formats follow shared/notes/log-formats.md §1.1 and §1.7 and the real logs in shared/corpus/nanogpt.
"""

from __future__ import annotations

import random

from monitor.sim.scenario import Scenario

HOME = "/home/user/nanoGPT"
SITE = "/home/user/.venv/lib/python3.11/site-packages"

Phase = tuple[float, str, list[str]]  # (seconds since the previous phase, stream, physical lines)
Print = tuple[str, ...]  # the lines one print() call writes


def banner_phases(p: Scenario, mode: str, rng: random.Random) -> list[Phase]:
    """What train.py prints before its loop, phase by phase (each phase is printed at one moment).

    Every rank prints all of it (nothing before the loop is guarded by `master_process`), so with
    DDP the ranks' lines interleave, and where print()'s text and newline are split by another rank's
    write they land on one line: `using fused AdamW: Trueusing fused AdamW: True` + an empty line.
    """
    n, s = p.world, p.settings
    overrides = p.overrides + ((("init_from", "resume"),) if mode == "resume" else ())
    config: list[Print] = [(f"Overriding config with {p.preset.config_file}:",),
                           tuple(p.preset.config_text.split("\n")),
                           *((f"Overriding: {k} = {v}",) for k, v in overrides)]
    setup: list[Print] = [(f"tokens per iteration will be: {p.tokens_per_iter:,}",)]
    if p.preset.vocab_size:
        setup.append((f"found vocab_size = {p.preset.vocab_size} (inside data/{s['dataset']}/meta.pkl)",))
    if mode == "resume":
        setup.append((f"Resuming training from {s['out_dir']}",))
    else:
        setup.append(("Initializing a new model from scratch",))
        if not p.preset.vocab_size:
            setup.append(("defaulting to vocab_size of GPT-2 to 50304 (50257 rounded up for efficiency)",))
    build_s = 0.3 + p.params / 1e8 + (0.5 + 2 * p.save_s if mode == "resume" else 0.0)  # + torch.load(ckpt.pt)
    params: list[Print] = [(f"number of parameters: {p.params / 1e6:.2f}M",)]
    warning: list[Print] = [(f"{HOME}/train.py:196: FutureWarning: `torch.cuda.amp.GradScaler(args...)` is deprecated. "
               "Please use `torch.amp.GradScaler('cuda', args...)` instead.",
               "  scaler = torch.cuda.amp.GradScaler(enabled=(dtype == 'float16'))")]
    optim: list[Print] = [(f"num decayed parameter tensors: {p.decayed[0]}, with {p.decayed[1]:,} parameters",),
             (f"num non-decayed parameter tensors: {p.nondecayed[0]}, with {p.nondecayed[1]:,} parameters",)]
    phases: list[Phase] = [
        (2.4 + (1.2 if n > 1 else 0.0), "out", _merge([config] * n, rng)),  # python + torch imports (+ torchrun)
        (1.5 if n > 1 else 0.05, "out", _merge([setup] * n, rng)),  # DDP init, data, meta.pkl
        (build_s, "out", _merge([params] * n, rng)),
        (0.7, "err", _merge([warning] * n, rng)),  # model.to(device), GradScaler
        (0.05, "out", _merge([optim] * n, rng)),
        (0.0, "out", ["using fused AdamW: True" * n] + [""] * (n - 1)),
    ]
    if s["compile"]:
        phases.append((0.02, "out", _glued("compiling the model... (takes a ~minute)", n, rng)))
    phases.append((0.3, "out", []))  # torch.compile() returns at once (it compiles lazily), DDP wraps the model
    return phases


def _merge(per_rank: list[list[Print]], rng: random.Random, switch: float = 0.35) -> list[str]:
    """The ranks' prints (each a tuple of lines, written whole) in the order they happened to land."""
    pos = [0] * len(per_rank)
    out: list[str] = []
    rank = rng.randrange(len(per_rank))
    while True:
        live = [r for r, units in enumerate(per_rank) if pos[r] < len(units)]
        if not live:
            return out
        if rank not in live or rng.random() < switch:
            rank = rng.choice(live)
        out.extend(per_rank[rank][pos[rank]])
        pos[rank] += 1


def _glued(text: str, n: int, rng: random.Random) -> list[str]:
    """n ranks print `text` at once; print() writes the text and the newline separately."""
    pieces = _merge([[(text,), ("\n",)]] * n, rng, switch=0.6)
    return "".join(pieces).split("\n")[:-1]


def oom_traceback(p: Scenario) -> list[str]:
    """A torch.compile'd forward running out of GPU memory, as Python prints it to stderr."""
    s = p.settings
    b, t, d = int(s["batch_size"]), int(s["block_size"]), int(s["n_embd"])  # type: ignore[call-overload]
    need_mib = b * t * 4 * d * 2 / 2**20  # a bf16 MLP activation
    gib = p.preset.gpu_gib
    frames = [
        (f"{HOME}/train.py", 299, "<module>", "logits, loss = model(X, Y)"),
        (f"{SITE}/torch/nn/modules/module.py", 1739, "_wrapped_call_impl", "return self._call_impl(*args, **kwargs)"),
        (f"{SITE}/torch/nn/modules/module.py", 1750, "_call_impl", "return forward_call(*args, **kwargs)"),
        (f"{SITE}/torch/_dynamo/eval_frame.py", 574, "_fn", "return fn(*args, **kwargs)"),
        (f"{HOME}/model.py", 170, "forward", "def forward(self, idx, targets=None):"),
        (f"{SITE}/torch/_functorch/aot_autograd.py", 1201, "forward", "return compiled_fn(full_args)"),
        (f"{SITE}/torch/_functorch/_aot_autograd/runtime_wrappers.py", 328, "runtime_wrapper",
         "all_outs = call_func_at_runtime_with_args("),
        (f"{SITE}/torch/_inductor/output_code.py", 466, "__call__", "return self.current_callable(inputs)"),
        ("/tmp/torchinductor_user/q7/cq7xk2vd5mzl3yq4ifr6hxw2gvnb7cso4je5wzt3ua6pyl7dmkfh.py", 1187, "call",
         f"buf42 = empty_strided_cuda(({b}, {t}, {4 * d}), ({t * 4 * d}, {4 * d}, 1), torch.bfloat16)"),
    ]
    lines = ["Traceback (most recent call last):"]
    for path, line, func, code in frames:
        lines += [f'  File "{path}", line {line}, in {func}', f"    {code}"]
    lines.append(
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {need_mib:.2f} MiB. GPU 0 has a total "
        f"capacity of {gib:.2f} GiB of which 19.06 MiB is free. Including non-PyTorch memory, this process has "
        f"{gib - 0.02:.2f} GiB memory in use. Of the allocated memory {gib - 0.91:.2f} GiB is allocated by PyTorch, "
        "and 612.40 MiB is reserved by PyTorch but unallocated. If reserved but unallocated memory is large try "
        "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
        "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")
    return lines
