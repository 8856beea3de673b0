"""A short, real GPT training on one GPU that prints karpathy/nanoGPT's log lines (written for trainwatch's
GPU check; this is not nanoGPT's code, only its output format).

The data is character level (bytes) from Python's own standard library sources, written as nanoGPT
does: uint16 tokens in data/<dataset>/train.bin and val.bin under the working directory. A few
unprinted warm-up steps measure the speed first, so that max_iters (printed in the config block, as
nanoGPT's config echo does) gives a run of about --seconds. Run it with `python -u`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sysconfig
import time
from pathlib import Path

import numpy as np

A100_BF16_PEAK = 312e12  # nanoGPT's estimate_mfu divides by this whatever the GPU is


def write_dataset(root: Path, dataset: str, size: int) -> Path:
    """data/<dataset>/{train,val}.bin: bytes of the stdlib's .py files as uint16 token ids (vocab 256)."""
    out = root / "data" / dataset
    out.mkdir(parents=True, exist_ok=True)
    text = bytearray()
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            text += path.read_bytes()
        except OSError:
            continue
        if len(text) >= size:
            break
    tokens = np.frombuffer(bytes(text), dtype=np.uint8).astype(np.uint16)
    split = int(len(tokens) * 0.9)
    tokens[:split].tofile(out / "train.bin")
    tokens[split:].tofile(out / "val.bin")
    return out


def config_text(cfg: dict[str, object]) -> str:
    return "\n".join(f"{k} = {v!r}" for k, v in cfg.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=100.0, help="target duration of the training loop")
    ap.add_argument("--dataset", default="pystdlib")
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-embd", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--stats", default="torch_stats.json", help="where to write torch's own memory figures")
    args = ap.parse_args()

    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(1337)
    torch.backends.cuda.matmul.allow_tf32 = True
    data_dir = write_dataset(Path.cwd(), args.dataset, 8 << 20)

    def load(name: str) -> torch.Tensor:
        tokens = np.frombuffer((data_dir / name).read_bytes(), dtype=np.uint16).astype(np.int64)
        return torch.from_numpy(tokens).to(device)

    train, val = load("train.bin"), load("val.bin")
    L, C, B, T = args.n_layer, args.n_embd, args.batch_size, args.block_size
    H = max(1, C // 64)
    vocab = 256

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
            self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
            self.fc, self.out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
            q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, C))
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, C), nn.Embedding(T, C)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.ln = nn.LayerNorm(C)
            self.head = nn.Linear(C, vocab, bias=False)
            self.head.weight = self.wte.weight  # tied, as in nanoGPT

        def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
            for blk in self.blocks:
                x = blk(x)
            logits = self.head(self.ln(x))
            return F.cross_entropy(logits.view(-1, vocab), targets.view(-1))

    model = GPT().to(device)
    for m in model.modules():  # GPT-2's init: with PyTorch's defaults the tied head starts at loss ~270
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
    n_params = sum(p.numel() for p in model.parameters()) - model.wpe.weight.numel()  # nanoGPT's count
    flops_per_token = 6 * n_params + 12 * L * H * (C // H) * T
    decay = [p for p in model.parameters() if p.dim() >= 2]
    nodecay = [p for p in model.parameters() if p.dim() < 2]
    fused = device == "cuda"
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=fused)
    ctx = torch.autocast(device_type=device, dtype=torch.bfloat16)

    def batch(split: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(split) - T - 1, (B,), device=device)
        offs = ix[:, None] + torch.arange(T, device=device)
        return split[offs], split[offs + 1]

    def step(lr: float) -> torch.Tensor:
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train)
        with ctx:
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    @torch.no_grad()
    def estimate_loss(iters: int) -> dict[str, float]:
        model.eval()
        out = {}
        for name, split in (("train", train), ("val", val)):
            losses = torch.zeros(iters, device=device)
            for i in range(iters):
                x, y = batch(split)
                with ctx:
                    losses[i] = model(x, y)
            out[name] = losses.mean().item()
        model.train()
        return out

    # Unprinted warm-up: measures the speed that sizes the run (a real run would load data here).
    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        step(1e-5)
    sync()
    t = time.time()
    for _ in range(5):
        step(1e-5)
    sync()
    iter_s = (time.time() - t) / 5
    log_interval, eval_iters = 10, 20
    max_iters = max(100, int(args.seconds / iter_s) // log_interval * log_interval)
    eval_interval = max(log_interval, max_iters // 4 // log_interval * log_interval)
    warmup, lr_max, lr_min = max_iters // 20, 6e-4, 6e-5

    cfg = {"out_dir": "out-gpu-check", "eval_interval": eval_interval, "log_interval": log_interval,
           "eval_iters": eval_iters, "always_save_checkpoint": False, "dataset": args.dataset,
           "gradient_accumulation_steps": 1, "batch_size": B, "block_size": T, "n_layer": L, "n_head": H,
           "n_embd": C, "dropout": 0.0, "learning_rate": lr_max, "max_iters": max_iters,
           "lr_decay_iters": max_iters, "min_lr": lr_min, "warmup_iters": warmup, "compile": False}
    print("Overriding config with config/gpu_check.py:")
    print(config_text(cfg))
    print()
    print(f"tokens per iteration will be: {B * T:,}")
    print("Initializing a new model from scratch")
    print(f"number of parameters: {n_params / 1e6:.2f}M")
    print(f"num decayed parameter tensors: {len(decay)}, with {sum(p.numel() for p in decay):,} parameters")
    print(f"num non-decayed parameter tensors: {len(nodecay)}, with {sum(p.numel() for p in nodecay):,} parameters")
    print(f"using fused AdamW: {fused}")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def lr_at(it: int) -> float:
        if it < warmup:
            return lr_max * (it + 1) / (warmup + 1)
        ratio = (it - warmup) / max(1, max_iters - warmup)
        return lr_min + 0.5 * (1 + math.cos(math.pi * min(1.0, ratio))) * (lr_max - lr_min)

    running_mfu = -1.0
    t0 = time.time()
    for it in range(max_iters + 1):  # nanoGPT runs iterations 0..max_iters inclusive
        if it % eval_interval == 0:
            losses = estimate_loss(eval_iters)
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}")
        loss = step(lr_at(it))
        t1 = time.time()
        dt, t0 = t1 - t0, t1
        if it % log_interval == 0:
            lossf = loss.item()
            if it >= 5:
                mfu = flops_per_token * B * T / dt / A100_BF16_PEAK
                running_mfu = mfu if running_mfu == -1.0 else 0.9 * running_mfu + 0.1 * mfu
            print(f"iter {it}: loss {lossf:.4f}, time {dt * 1000:.2f}ms, mfu {running_mfu * 100:.2f}%")

    stats = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
             "params": n_params, "flops_per_token": flops_per_token, "max_iters": max_iters,
             "warmup_iter_s": iter_s, "pid": os.getpid()}
    if device == "cuda":
        stats |= {"max_memory_allocated": torch.cuda.max_memory_allocated(),
                  "max_memory_reserved": torch.cuda.max_memory_reserved()}
    Path(args.stats).write_text(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
