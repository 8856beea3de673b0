"""The one immutable type exporters read: everything known about a run at one instant."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor import compute
from monitor.forecast import Forecast, forecast, max_iters_known
from monitor.gpu import GpuSample
from monitor.state import EvalPoint, IterPoint, Note, RunState, Setting


@dataclass(frozen=True, slots=True)
class Energy:
    """Energy of the run's GPUs. `source`: nvml-counter | nvml-power | power-flag | none."""

    joules: float | None = None
    source: str = "none"
    estimated_joules: float | None = None  # of `joules`, the part estimated (before trainwatch attached)
    mean_power_w: float | None = None  # the power the rest of the run is expected to draw (recent, steady)


@dataclass(frozen=True, slots=True)
class Snapshot:
    run: str
    log: str
    format: str
    taken_at: float
    state: str  # starting | running | evaluating | finished | crashed | stalled
    iter: int | None
    max_iters: int | None
    max_iters_source: str | None
    fraction: float | None
    train_loss: float | None
    val_loss: float | None
    best_val: float | None
    tokens_per_iter: float | None
    tokens_seen: float | None
    tokens_total: float | None
    dataset_tokens: float | None
    params: float | None
    flops_per_token: float | None
    flops_done: float | None
    flops_total: float | None
    mfu: float | None  # against the run's GPU peak when known
    mfu_logged: float | None  # as the script printed it (nanoGPT: against an A100)
    gpu_peak_flops: float | None
    elapsed_s: float | None
    last_progress_at: float | None
    forecast: Forecast
    energy: Energy
    energy_forecast_j: float | None
    cost: float | None
    checkpoints: int
    error_type: str | None
    error_message: str | None
    lines: int
    parse_errors: int
    settings: dict[str, Setting] = field(default_factory=dict)
    history: tuple[IterPoint, ...] = ()
    evals: tuple[EvalPoint, ...] = ()
    notes: tuple[Note, ...] = ()
    gpus: tuple[GpuSample, ...] = ()  # readings of the run's GPUs
    gpu_memory_peak_bytes: int | None = None  # of the run's processes (or its GPUs when NVML lists none)
    gpu_selection: str | None = None  # how the run's GPUs were chosen, in words
    first_nonfinite: tuple[int, float] | None = None  # the first NaN/inf training loss: (iteration, loss)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def epochs(self) -> float | None:
        if self.tokens_seen is None or not self.dataset_tokens:
            return None
        return self.tokens_seen / self.dataset_tokens

    @property
    def epochs_total(self) -> float | None:
        if self.tokens_total is None or not self.dataset_tokens:
            return None
        return self.tokens_total / self.dataset_tokens


SHOWN_SETTINGS = ("max_iters", "log_interval", "eval_interval", "eval_iters", "batch_size", "block_size",
                  "gradient_accumulation_steps", "n_layer", "n_head", "n_embd", "dataset", "tokens_per_iter",
                  "params", "dataset_tokens")


def build(state: RunState, *, run: str, log: str, now: float, lines: int = 0, parse_errors: int = 0,
          energy: Energy | None = None, gpus: tuple[GpuSample, ...] = (), gpu_peak_flops: float | None = None,
          gpu_memory_peak_bytes: int | None = None, gpu_selection: str | None = None,
          price_per_kwh: float | None = None, power_watts: float | None = None,
          labels: dict[str, str] | None = None, history: bool = True) -> Snapshot:
    """Pure: the snapshot of `state` at `now` (energy and GPU readings come from the caller; without a
    measured `energy`, `power_watts` × the run's time is the estimate)."""
    fc = forecast(state, now)
    last = state.last
    max_iters = max_iters_known(state)
    ms = state.setting("max_iters")
    tpi = compute.tokens_per_iter(state)
    fpt = compute.run_flops_per_token(state)
    iter_ = last.iter if last else None
    done = compute.steps(iter_, state.format) if iter_ is not None else None
    planned = compute.steps(max_iters, state.format) if max_iters is not None else None
    seen = done * tpi if done is not None and tpi else None
    total = planned * tpi if planned is not None and tpi else None
    done_flops = seen * fpt if seen and fpt else None
    total_flops = total * fpt if total and fpt else None
    mfu = None
    gpu_peak_flops = gpu_peak_flops or state.number("gpu_peak_flops")  # nanochat prints its GPU's peak
    if gpu_peak_flops and fc.tokens_per_s and fpt:
        n_gpus = max(1, len(gpus))
        mfu = fc.tokens_per_s * fpt / (gpu_peak_flops * n_gpus)
    elapsed = None
    if state.time_axis == "timestamps" and state.first_wall is not None and state.last_wall is not None:
        elapsed = state.last_wall - state.first_wall
    elif last is not None:
        elapsed = state.clock_s
    if energy is None and power_watts is not None and elapsed is not None:
        # no measurement: the user's stated power over the run's time, labelled as such
        energy = Energy(joules=power_watts * elapsed, source="power-flag", estimated_joules=power_watts * elapsed,
                        mean_power_w=power_watts)
    energy = energy or Energy()
    e_forecast = None
    if energy.joules is not None and energy.mean_power_w and fc.eta_s is not None:
        e_forecast = energy.joules + energy.mean_power_w * fc.eta_s
    cost = energy.joules / 3.6e6 * price_per_kwh if price_per_kwh is not None and energy.joules is not None else None
    status = state.status
    if status == "running":
        if fc.stalled_s is not None:
            status = "stalled"
        elif state.evaluating:
            status = "evaluating"
    return Snapshot(
        run=run, log=log, format=state.format, taken_at=now, state=status,
        iter=iter_, max_iters=max_iters, max_iters_source=ms.source if ms and max_iters is not None else None,
        fraction=min(1.0, done / planned) if done is not None and planned else None,
        train_loss=last.loss if last else None,
        val_loss=state.last_eval.val_loss if state.last_eval else None,
        best_val=state.best_val,
        tokens_per_iter=tpi, tokens_seen=seen, tokens_total=total,
        dataset_tokens=state.number("dataset_tokens"),
        params=state.number("params"), flops_per_token=fpt, flops_done=done_flops, flops_total=total_flops,
        mfu=mfu, mfu_logged=_last_mfu(state), gpu_peak_flops=gpu_peak_flops,
        elapsed_s=elapsed,
        last_progress_at=(last.wall if last.wall is not None else state.last_wall) if last else None,
        forecast=fc, energy=energy, energy_forecast_j=e_forecast, cost=cost,
        checkpoints=state.checkpoints,
        error_type=state.error.type if state.error else None,
        error_message=state.error.message if state.error else None,
        lines=lines, parse_errors=parse_errors,
        settings={k: s for k in SHOWN_SETTINGS if (s := state.setting(k)) is not None},
        history=tuple(state.iters.points) if history else (),
        evals=tuple(state.evals.points) if history else (),
        notes=tuple(state.notes),
        gpus=gpus, gpu_memory_peak_bytes=gpu_memory_peak_bytes, gpu_selection=gpu_selection,
        first_nonfinite=state.first_nonfinite,
        labels=dict(labels or {}),
    )


def _last_mfu(state: RunState) -> float | None:
    for p in reversed(state.iters.points[-5:]):
        if p.mfu is not None:
            return p.mfu
    return None
