"""What a nanoGPT run will need before it starts, and whether a running one keeps to its plan. Pure.

Counts follow nanoGPT's own code: its model (tied embeddings, optional biases), its loop (iterations
0..max_iters inclusive: max_iters + 1 optimizer steps, iteration 0 included), its FLOPs per token
(model.py estimate_mfu: 6·N + 12·L·H·Q·T, N without the position embeddings). Time is FLOPs over the
GPU's dense bf16 peak × an MFU range; memory is what PyTorch saves for the backward pass, part by part.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import TrainwatchError
from monitor.snapshot import GpuSpec, PlanCheck, Snapshot

DEFAULT_MFU = (0.30, 0.50)
"""What nanoGPT-sized models reach on one GPU with torch.compile and flash attention: nanoGPT's logs show
25–40 % against an A100 (its own printout), an RTX 3080 ~39 % of its own peak (nanoGPT PR #376: 7.48 %
of 312 TFLOPS at 59.5), llm.c ~31–50 %. `--mfu` narrows it."""

WARMUP_S = {True: (60.0, 240.0), False: (10.0, 30.0)}
"""Time before the loop runs at speed: torch.compile's first pass is inside iteration 0 ("takes a
~minute", nanoGPT; 87 s and 254 s in the corpus logs), CUDA context and allocator warm-up without it."""

RESERVED_OVER_ALLOCATED = 1.10
"""PyTorch's caching allocator holds more than the live tensors (fragmentation): the band's top."""

ADAMW_BYTES = 8  # fp32 exp_avg and exp_avg_sq per parameter
MASTER_BYTES = 4  # nanoGPT keeps fp32 parameters and gradients; autocast computes in bf16/fp16


@dataclass(frozen=True, slots=True)
class Band:
    low: float
    high: float

    def scale(self, k: float) -> Band:
        return Band(self.low * k, self.high * k)

    def plus(self, other: Band) -> Band:
        return Band(self.low + other.low, self.high + other.high)


@dataclass(frozen=True, slots=True)
class Model:
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int
    bias: bool


@dataclass(frozen=True, slots=True)
class RunConfig:
    """The numbers of a nanoGPT run a plan needs (train.py's settings after config files and overrides)."""

    model: Model
    batch_size: int  # per GPU, per micro-step
    gradient_accumulation_steps: int  # global (nanoGPT divides it by the number of GPUs)
    max_iters: int
    eval_interval: int
    eval_iters: int
    dtype: str = "bfloat16"
    compile: bool = True


@dataclass(frozen=True, slots=True)
class Vram:
    """Peak memory of one GPU, bytes, by part. Activations are per micro-batch (batch_size × block_size)."""

    weights: float
    gradients: float
    optimizer: float
    activations: float  # saved for the backward pass, with flash attention (PyTorch ≥ 2.0)
    attention_matrices: float  # added without flash attention: the T×T scores, softmax in fp32
    logits: Band  # the output layer: logits and the loss's softmax, the largest part for small models
    total: Band  # with flash attention
    total_without_flash: Band


@dataclass(frozen=True, slots=True)
class TimeBand:
    basis: str  # mfu: from the GPU's peak × the MFU range | measured: elapsed + the live forecast
    mfu: Band | None
    iter_s: Band | None
    train_s: Band
    warmup_s: Band | None  # the measured basis has them inside the forecast
    eval_s: Band | None
    total_s: Band


@dataclass(frozen=True, slots=True)
class Measured:
    """What a started run's log shows: its steady speed and the forecast of the time left."""

    iter_s: float | None
    mfu: float | None
    elapsed_s: float | None
    eta_s: Band | None  # None when the run is not going on (crashed, stalled): then steps × iter_s
    eval_overhead_s: float | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    config: RunConfig
    n_gpus: int
    tokens_per_iter: int
    steps: int  # max_iters + 1: iteration 0 is a full optimizer step
    tokens_total: int
    dataset_tokens: float | None
    epochs: float | None
    params: int  # nanoGPT's count (get_num_params: position embeddings left out)
    params_total: int
    flops_per_token_6n: float
    flops_per_token: float  # with attention: 6·N + 12·L·H·Q·T
    flops_total_6nd: float
    flops_total: float
    evals: int
    gpu: GpuSpec | None
    time: TimeBand | None
    no_time_reason: str | None
    energy_j: Band | None
    cost: Band | None
    vram: Vram


def param_counts(m: Model) -> tuple[int, int]:
    """(nanoGPT's count, the total): the token embedding is tied to the output layer, so counted once."""
    c = m.n_embd
    block = 12 * c * c + (13 * c if m.bias else 2 * c)  # attention and MLP weights, two LayerNorms
    total = m.vocab_size * c + m.block_size * c + m.n_layer * block + (2 * c if m.bias else c)
    return total - m.block_size * c, total


def flops_per_token(params: float, m: Model) -> tuple[float, float]:
    """(6·N, 6·N + 12·L·H·Q·T): forward and backward per token, without and with attention's scores."""
    q = m.n_embd // m.n_head
    return 6 * params, 6 * params + 12 * m.n_layer * m.n_head * q * m.block_size


def vram(cfg: RunConfig, params_total: int) -> Vram:
    """What PyTorch holds at the peak, at the start of the backward pass of a micro-step.

    Per token and layer, eager autocast saves: the two LayerNorm inputs (fp32: the residual stream),
    the half-precision copies of the linear layers' inputs, q/k/v, attention's output (flash returns it
    in the layout `transpose(1, 2).contiguous()` wants: no copy), the MLP's hidden layer before and after
    GELU: 8·C + 14·d·C bytes (d = 2 for bf16/fp16); torch.compile recomputes the casts and GELU:
    8·C + 8·d·C. The output layer holds the logits
    (d·V per token); eager cross-entropy adds the fp32 copy, log-softmax and their gradients (12·V),
    compiled keeps the logits and their gradient (d·V, + 4·V when an fp32 intermediate is kept).
    """
    m = cfg.model
    d = 4 if cfg.dtype == "float32" else 2
    tokens = cfg.batch_size * m.block_size
    c, v = m.n_embd, m.vocab_size
    per_layer = 8 * c + (8 if cfg.compile else 14) * d * c + 4 * m.n_head  # + flash's logsumexp
    activations = float(m.n_layer * per_layer * tokens)
    if not cfg.compile and d == 2:
        activations += d * params_total  # autocast's cached half-precision weights
    scores = float(m.n_layer * (4 + d) * m.n_head * m.block_size * tokens)
    logits = Band(2 * d * v * tokens, (2 * d + 4) * v * tokens) if cfg.compile else \
        Band((d + 12) * v * tokens, (d + 12) * v * tokens)
    static = float(params_total * (2 * MASTER_BYTES + ADAMW_BYTES))
    base = Band(static + activations, static + activations).plus(logits)
    total = Band(base.low, base.high * RESERVED_OVER_ALLOCATED)
    return Vram(weights=params_total * MASTER_BYTES, gradients=params_total * MASTER_BYTES,
                optimizer=params_total * ADAMW_BYTES, activations=activations, attention_matrices=scores,
                logits=logits, total=total, total_without_flash=Band(total.low + scores, total.high + scores))


def parse_mfu(text: str) -> Band:
    """`0.35` or `0.3-0.45` (also `0.3,0.45`): a fraction of the GPU's peak, or a range of them."""
    parts = [x for x in text.replace(",", "-").split("-") if x.strip()]
    try:
        values = [float(x) for x in parts]
    except ValueError:
        raise TrainwatchError(f"MFU {text!r}: write a fraction of the peak like 0.35, or a range 0.3-0.45") from None
    if len(values) not in (1, 2) or not all(0 < v <= 1 for v in values):
        raise TrainwatchError(f"MFU {text!r}: a fraction of the peak between 0 and 1, like 0.35 (not a percentage)")
    return Band(min(values), max(values))


def evals_of(max_iters: int, eval_interval: int) -> int:
    """nanoGPT evaluates at every multiple of eval_interval from 0 to max_iters."""
    return max_iters // eval_interval + 1 if eval_interval > 0 else 0


def time_band(*, flops_total: float, flops_per_token: float, tokens_per_iter: float, eval_tokens: float,
              peak_flops: float, n_gpus: int, mfu: Band, compile: bool) -> TimeBand:
    """Training at the MFU range on all GPUs; evals (forward only, a third of the FLOPs) on rank 0 alone."""
    rate = Band(peak_flops * n_gpus * mfu.low, peak_flops * n_gpus * mfu.high)
    train = Band(flops_total / rate.high, flops_total / rate.low)
    per_iter = Band(tokens_per_iter * flops_per_token / rate.high, tokens_per_iter * flops_per_token / rate.low)
    eval_flops = eval_tokens * flops_per_token / 3
    evals = Band(eval_flops / (peak_flops * mfu.high), eval_flops / (peak_flops * mfu.low))
    warm = Band(*WARMUP_S[compile])
    return TimeBand("mfu", mfu, per_iter, train, warm, evals, train.plus(warm).plus(evals))


def make_plan(cfg: RunConfig, *, gpu: GpuSpec | None, n_gpus: int = 1, mfu: Band | None = None,
              dataset_tokens: float | None = None, price_per_kwh: float | None = None,
              measured: Measured | None = None, unknown_gpu: str | None = None) -> Plan:
    """The plan of `cfg` on `n_gpus` × `gpu` (None: everything but time and energy, `unknown_gpu` says why)."""
    m = cfg.model
    tokens_per_iter = cfg.gradient_accumulation_steps * cfg.batch_size * m.block_size
    steps = cfg.max_iters + 1
    tokens_total = steps * tokens_per_iter
    params, params_total = param_counts(m)
    fpt_6n, fpt = flops_per_token(params, m)
    evals = evals_of(cfg.max_iters, cfg.eval_interval)
    time: TimeBand | None = None
    reason = unknown_gpu
    total = _measured_total(measured, steps, evals) if measured is not None else None
    if measured is not None and total is not None:
        time = TimeBand("measured", None if measured.mfu is None else Band(measured.mfu, measured.mfu),
                        None if measured.iter_s is None else Band(measured.iter_s, measured.iter_s),
                        total, None, None, total)
    elif gpu is not None:
        lo, hi = (mfu.low, mfu.high) if mfu else DEFAULT_MFU
        time = time_band(flops_total=tokens_total * fpt, flops_per_token=fpt, tokens_per_iter=tokens_per_iter,
                         eval_tokens=evals * 2 * cfg.eval_iters * cfg.batch_size * m.block_size,
                         peak_flops=gpu.peak_flops, n_gpus=n_gpus, mfu=Band(lo, hi), compile=cfg.compile)
    elif reason is None:
        reason = "no GPU named (--gpu NAME)"
    energy = cost = None
    if time is not None and gpu is not None and gpu.power_w:
        energy = time.total_s.scale(gpu.power_w * n_gpus)
        cost = energy.scale(price_per_kwh / 3.6e6) if price_per_kwh is not None else None
    return Plan(config=cfg, n_gpus=n_gpus, tokens_per_iter=tokens_per_iter, steps=steps, tokens_total=tokens_total,
                dataset_tokens=dataset_tokens, epochs=tokens_total / dataset_tokens if dataset_tokens else None,
                params=params, params_total=params_total, flops_per_token_6n=fpt_6n, flops_per_token=fpt,
                flops_total_6nd=tokens_total * fpt_6n, flops_total=tokens_total * fpt, evals=evals, gpu=gpu,
                time=time, no_time_reason=None if time else reason, energy_j=energy, cost=cost,
                vram=vram(cfg, params_total))


def _measured_total(m: Measured, steps: int, evals: int) -> Band | None:
    """Elapsed + the live forecast's p10–p90; for a run that is not going on, its measured pace over all steps."""
    if m.eta_s is not None and m.elapsed_s is not None:
        return m.eta_s.plus(Band(m.elapsed_s, m.elapsed_s))
    if m.iter_s is not None:
        t = steps * m.iter_s + evals * (m.eval_overhead_s or 0.0)
        return Band(t, t)
    return None


@dataclass(frozen=True, slots=True)
class PlanTarget:
    """A plan made for a followed run: its GPU (None: the one NVML found) and MFU range."""

    gpu: GpuSpec | None
    mfu: Band


def check(s: Snapshot, target: PlanTarget) -> PlanCheck | None:
    """The plan of the run `s` follows, from its own numbers, beside what its pace says it needs."""
    peak = target.gpu.peak_flops if target.gpu else s.gpu_peak_flops
    if not peak or not s.flops_total or not s.flops_per_token or not s.tokens_per_iter:
        return None
    n_gpus = max(1, len(s.gpus))
    evals = eval_tokens = 0.0
    numbers = {k: v.value for k, v in s.settings.items()}
    mi, ei, iters, bs, bl = (numbers.get(k) for k in ("max_iters", "eval_interval", "eval_iters", "batch_size",
                                                        "block_size"))
    if all(isinstance(x, int) and not isinstance(x, bool) for x in (mi, ei, iters, bs, bl)):
        evals = evals_of(mi, ei)  # type: ignore[arg-type]
        eval_tokens = evals * 2 * iters * bs * bl  # type: ignore[operator]
    band = time_band(flops_total=s.flops_total, flops_per_token=s.flops_per_token, tokens_per_iter=s.tokens_per_iter,
                     eval_tokens=eval_tokens, peak_flops=peak, n_gpus=n_gpus, mfu=target.mfu, compile=True)
    power = (target.gpu.power_w * n_gpus) if target.gpu and target.gpu.power_w else s.energy.mean_power_w
    fc = s.forecast
    needs = None
    if s.state == "finished":
        needs = s.elapsed_s
    elif s.elapsed_s is not None and fc.eta_s is not None:
        needs = s.elapsed_s + fc.eta_s
    verdict = "unknown" if needs is None else \
        "slower" if needs > band.total_s.high else "faster" if needs < band.total_s.low else "on-plan"
    return PlanCheck(gpu=target.gpu.name if target.gpu else None, mfu_low=target.mfu.low, mfu_high=target.mfu.high,
                     time_low_s=band.total_s.low, time_high_s=band.total_s.high,
                     energy_low_j=band.total_s.low * power if power else None,
                     energy_high_j=band.total_s.high * power if power else None,
                     needs_s=needs, iter_s=fc.iter_s, verdict=verdict)
