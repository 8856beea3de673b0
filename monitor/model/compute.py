"""Tokens, FLOPs and epochs: the arithmetic of "what does this run need", as pure functions."""

from __future__ import annotations

from monitor.model.state import RunState


def flops_per_token(params: float | None, n_layer: float | None, n_head: float | None,
                    n_embd: float | None, block_size: float | None) -> float | None:
    """nanoGPT's own estimate (model.py estimate_mfu, PaLM appendix B): 6·N + 12·L·H·Q·T.

    N is the non-embedding parameter count nanoGPT prints. Without the model's dimensions only 6·N
    is known, which is what is returned then (the attention term is a few to ~20 % more).
    """
    if not params:
        return None
    if n_layer and n_head and n_embd and block_size:
        q = n_embd / n_head
        return 6 * params + 12 * n_layer * n_head * q * block_size
    return 6 * params


def run_flops_per_token(state: RunState) -> float | None:
    stated = state.number("flops_per_token")
    if stated:
        return stated
    return flops_per_token(state.number("params"), state.number("n_layer"), state.number("n_head"),
                           state.number("n_embd"), state.number("block_size"))


def tokens_per_iter(state: RunState) -> float | None:
    """Stated by the log, or from the config: GA × batch × block (GA is global in nanoGPT since 2023-04)."""
    stated = state.number("tokens_per_iter")
    if stated:
        return stated
    ga, bs, block = (state.number(k) for k in ("gradient_accumulation_steps", "batch_size", "block_size"))
    if ga and bs and block and any(state.setting(k) and state.setting(k).source != "default"  # type: ignore[union-attr]
                                   for k in ("gradient_accumulation_steps", "batch_size", "block_size")):
        return ga * bs * block
    return None


def steps(iter_: int, zero_based: bool) -> int:
    """Optimizer steps done once step `iter_` is logged (the parser says whether its steps are 0-based)."""
    return iter_ + 1 if zero_based else iter_


