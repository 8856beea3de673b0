"""A run's state at one instant → the immutable `Snapshot` every view reads. Pure."""

from __future__ import annotations

from monitor import limits
from monitor.model import compute, job
from monitor.model.finalloss import final_loss, predicted_at
from monitor.model.forecast import forecast, max_iters_known
from monitor.model.state import RunState
from monitor.snapshot import Energy, Forecast, GpuSample, Snapshot

SHOWN_SETTINGS = ("max_iters", "log_interval", "eval_interval", "eval_iters", "batch_size", "block_size",
                  "gradient_accumulation_steps", "n_layer", "n_head", "n_embd", "dataset", "tokens_per_iter",
                  "params", "dataset_tokens")


def build_snapshot(state: RunState, *, run: str, log: str, now: float, lines: int = 0, parse_errors: int = 0,
          energy: Energy | None = None, gpus: tuple[GpuSample, ...] = (), gpu_peak_flops: float | None = None,
          gpu_memory_peak_bytes: int | None = None, gpu_selection: str | None = None,
          price_per_kwh: float | None = None, power_watts: float | None = None,
          labels: dict[str, str] | None = None, history: bool = True, slurm_state: str | None = None,
          job_end_at: float | None = None, target_loss: float | None = None, source: str | None = None
          ) -> Snapshot:
    """Pure: the snapshot of `state` at `now` (energy and GPU readings come from the caller; without a
    measured `energy`, `power_watts` × the run's time is the estimate). `slurm_state` and `job_end_at`:
    what Slurm says of the run's job (its state word, when its time limit ends it), under --slurm."""
    fc = forecast(state, now)
    last = state.last
    max_iters = max_iters_known(state)
    ms = state.setting("max_iters")
    tpi = compute.tokens_per_iter(state)
    fpt = compute.run_flops_per_token(state)
    iter_ = last.iter if last else None
    done = compute.steps(iter_, state.zero_based) if iter_ is not None else None
    planned = compute.steps(max_iters, state.zero_based) if max_iters is not None else None
    seen = done * tpi if done is not None and tpi else None
    total = planned * tpi if planned is not None and tpi else None
    done_flops = limits.finite(seen * fpt) if seen and fpt else None
    total_flops = limits.finite(total * fpt) if total and fpt else None
    mfu = None
    gpu_peak_flops = gpu_peak_flops or state.number("gpu_peak_flops")  # nanochat prints its GPU's peak
    if gpu_peak_flops and fc.tokens_per_s and fpt:
        n_gpus = max(1, len(gpus))
        mfu = limits.finite(fc.tokens_per_s * fpt / (gpu_peak_flops * n_gpus))
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
        e_forecast = limits.finite(energy.joules + energy.mean_power_w * fc.eta_s)
    cost = energy.joules / 3.6e6 * price_per_kwh if price_per_kwh is not None and energy.joules is not None else None
    status = state.status
    if status == "running":
        if fc.stalled_s is not None:
            status = "stalled"
        elif state.evaluating:
            status = "evaluating"
    ended = job.run_state(status, slurm_state)
    if ended != status:
        status, fc = ended, Forecast(reason=f"the job ended ({ended})")  # Slurm ended it: no finish to forecast
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
        last_checkpoint_iter=state.last_checkpoint_iter,
        job_end_at=job_end_at,
        time_limit=job.time_limit(fc, state=status, iter_=iter_, max_iters=max_iters, job_end_at=job_end_at, now=now),
        final_loss=final_loss(state), target_loss=target_loss,
        final_loss_halfway=predicted_at(state, 0.5) if state.status == "finished" else None,
        source=source if source is not None and source != log else "",
        no_progress=_no_progress(state, log) if lines and not state.events else None,
    )


def _no_progress(state: RunState, log: str) -> str:
    return f"no training progress found in {log} (formats tried: {', '.join(state.formats or (state.format,))})"


def _last_mfu(state: RunState) -> float | None:
    for p in reversed(state.iters.points[-5:]):
        if p.mfu is not None:
            return p.mfu
    return None
