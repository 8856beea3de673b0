"""The runs `trainwatch simulate` knows how to fake: their config files, hardware and loss curves.

The loss curves were fitted (least squares, by hand once) to the eval losses of real runs in
shared/corpus/nanogpt: stock shakespeare_char on one GPU, and GPT-2 124M on OpenWebText. The config
texts are written for trainwatch in the style of nanoGPT's `config/*.py` (they say they are simulated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LossCurve:
    """Mean cross-entropy (nats/token) as a function of the iteration: a fast drop, then a slow power-law decay.

    train(i) = floor + (start − floor − amp)·e^(−i/fast) + amp·(1 + i/tau)^(−alpha)
    Val sits above train by a gap that grows linearly when the model memorises its data (char models).
    """

    start: float
    floor: float
    amp: float
    fast: float
    tau: float
    alpha: float
    gap: float = 0.0  # val − train reached early in training
    overfit_per_iter: float = 0.0  # how fast val − train grows afterwards
    batch_noise: float = 0.015  # relative spread of one micro-batch's loss (the printed `iter` loss)

    def train(self, i: int) -> float:
        return (self.floor + (self.start - self.floor - self.amp) * math.exp(-i / self.fast)
                + self.amp * (1.0 + i / self.tau) ** -self.alpha)

    def val_gap(self, i: int) -> float:
        return self.gap * (1.0 - math.exp(-i / 300.0)) + self.overfit_per_iter * i

    def batch(self, i: int, dropout: float) -> float:
        """The training-mode loss of one batch, before noise: dropout makes it worse than the eval loss,
        and more so once the model starts to memorise (0.84 vs 0.63 at the end of shakespeare_char)."""
        penalty = (0.03 + 0.15 * self.val_gap(i)) * dropout / 0.2 if dropout > 0 else 0.0
        return self.train(i) + penalty


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    config_file: str  # as nanoGPT prints it: `Overriding config with config/train_gpt2.py:`
    config_text: str  # the file's text, echoed verbatim (it ends with a newline, so a blank line follows)
    vocab_size: int | None  # from data/<dataset>/meta.pkl; None: no meta.pkl, GPT-2's padded 50304
    mfu: float  # per-GPU model FLOPs utilisation the simulated hardware reaches, nanoGPT's A100 yardstick
    world: int  # ranks (GPUs) by default
    compile_s: float  # torch.compile's lazy compilation, paid inside the first iteration of each process
    gpu_gib: float  # the GPU's capacity as the CUDA OOM message states it
    loss: LossCurve


SHAKESPEARE_CHAR = """\
# a baby character-level GPT on the works of Shakespeare: trains in minutes on one GPU
# (simulated by trainwatch: nanoGPT's log format, made-up numbers)

out_dir = 'out-shakespeare-char'
eval_interval = 250 # evaluate often, this model overfits
eval_iters = 200
log_interval = 10 # print every 10 iterations

# it overfits the small dataset, so only keep checkpoints that improve val loss
always_save_checkpoint = False

wandb_log = False # can be switched on from the command line
wandb_project = 'shakespeare-char'
wandb_run_name = 'mini-gpt'

dataset = 'shakespeare_char'
gradient_accumulation_steps = 1
batch_size = 64
block_size = 256 # characters of context

# a small model
n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2

learning_rate = 1e-3 # a small network tolerates a higher rate
max_iters = 5000
lr_decay_iters = 5000 # usually the same as max_iters
min_lr = 1e-4 # usually learning_rate / 10
beta2 = 0.99 # few tokens per iteration, so average over more of them

warmup_iters = 100
"""

GPT2_124M = """\
# GPT-2 small (124M) on OpenWebText
# launch: torchrun --standalone --nproc_per_node=2 train.py config/train_gpt2.py
# (simulated by trainwatch: nanoGPT's log format, made-up numbers)

wandb_log = False
wandb_project = 'owt'
wandb_run_name = 'gpt2-124M'

# 12 sequences * 1024 tokens * 40 micro-steps (split across the GPUs) = 491,520 tokens per step
batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8

# 600k steps of ~0.5M tokens is about 300B tokens
max_iters = 600000
lr_decay_iters = 600000

# evaluation
eval_interval = 1000
eval_iters = 200
log_interval = 10

# weight decay
weight_decay = 1e-1
"""

PRESETS: dict[str, Preset] = {
    "shakespeare-char": Preset(
        name="shakespeare-char", config_file="config/train_shakespeare_char.py", config_text=SHAKESPEARE_CHAR,
        vocab_size=65, mfu=0.305, world=1, compile_s=27.0, gpu_gib=79.15,
        loss=LossCurve(start=4.29, floor=0.16, amp=2.58, fast=7.3, tau=320.0, alpha=0.57,
                       gap=0.07, overfit_per_iter=2.0e-4, batch_noise=0.012),
    ),
    "gpt2-124m": Preset(
        name="gpt2-124m", config_file="config/train_gpt2.py", config_text=GPT2_124M,
        vocab_size=None, mfu=0.226, world=2, compile_s=58.0, gpu_gib=39.38,
        loss=LossCurve(start=11.0, floor=2.91, amp=4.28, fast=15.3, tau=289.0, alpha=0.98,
                       gap=0.012, batch_noise=0.02),
    ),
}
