"""The frozen types that cross a boundary: what exporters, alerts and the daemon read.

Everything here is plain data (standard library only), so a view can import it without importing the
model, the hardware layer or any third-party library. `monitor.model.build` makes a `Snapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Setting:
    value: object
    source: str  # user | log | default


@dataclass(frozen=True, slots=True)
class IterPoint:
    iter: int
    loss: float | None
    dt_s: float | None
    t: float  # position on the run's time axis (see RunState.time_axis), seconds
    wall: float | None  # wall-clock time the line was written, when known
    overhead: bool  # carried an eval/checkpoint/warm-up, so it is not a steady-state sample
    segment: int
    tokens_per_s: float | None = None
    mfu: float | None = None
    lr: float | None = None  # as printed (llm.c's lr, nanochat's multiplier lrm)


@dataclass(frozen=True, slots=True)
class EvalPoint:
    iter: int
    train_loss: float | None
    val_loss: float | None
    wall: float | None


@dataclass(frozen=True, slots=True)
class Note:
    wall: float | None
    iter: int | None
    level: str  # info | warning | error
    text: str


@dataclass(frozen=True, slots=True)
class Forecast:
    iter_s: float | None = None  # steady-state seconds per iteration
    eval_overhead_s: float | None = None  # extra seconds per eval (+ checkpoint), measured
    evals_left: int | None = None
    eta_s: float | None = None
    eta_p10_s: float | None = None
    eta_p90_s: float | None = None
    finish_at: float | None = None  # unix seconds
    finish_p10: float | None = None
    finish_p90: float | None = None
    tokens_per_s: float | None = None
    reason: str | None = None  # why there is no ETA
    stalled_s: float | None = None  # silence beyond what the speed explains, when stalled
    expected_gap_s: float | None = None  # expected time between two progress lines
    slowdown: float | None = None  # current level ÷ the run's earlier steady level, when it changed


@dataclass(frozen=True, slots=True)
class FinalLoss:
    """The predicted validation loss at max_iters: p50 with a p10–p90 band, or a reason for none."""

    p50: float | None = None
    p10: float | None = None
    p90: float | None = None
    of: str = "val"  # val (nats) | bpb (nanochat's bits per byte)
    reason: str | None = None
    schedule: str = ""  # how the lr schedule is known, in words
    path: tuple[tuple[int, float, float, float], ...] = ()  # (iter, p10, p50, p90) from now to max_iters

    def line(self) -> str:
        """`val → 3.28 (3.25–3.31) at the end`: the prediction in the words every view uses."""
        if self.p50 is None or self.p10 is None or self.p90 is None:
            return f"{self.of} → —"
        return f"{self.of} → {self.p50:.2f} ({self.p10:.2f}–{self.p90:.2f}) at the end"


@dataclass(frozen=True, slots=True)
class GpuProcess:
    pid: int  # as NVML reports it: in containers this may be the host's PID (components.md §2)
    used_memory_bytes: int | None


@dataclass(frozen=True, slots=True)
class GpuSample:
    index: int
    uuid: str
    name: str
    at: float  # wall time of the reading
    power_w: float | None
    energy_j: float | None  # NVML total energy counter: joules since the driver was loaded (Volta+)
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    utilization: float | None  # ratio 0..1
    temperature_c: float | None
    sm_clock_mhz: float | None
    throttle: tuple[str, ...]  # active clock-throttle reasons, human names
    processes: tuple[GpuProcess, ...]  # compute processes on this GPU
    lost: bool = False  # the GPU stopped answering: marked, not fatal


@dataclass(frozen=True, slots=True)
class Energy:
    """Energy of the run's GPUs. `source`: nvml-counter | nvml-power | power-flag | none."""

    joules: float | None = None
    source: str = "none"
    estimated_joules: float | None = None  # of `joules`, the part estimated (before trainwatch attached)
    mean_power_w: float | None = None  # the power the rest of the run is expected to draw (recent, steady)


@dataclass(frozen=True, slots=True)
class RunTelemetry:
    """What the machine says about one run at one instant (monitor.daemon.telemetry → the snapshot)."""

    gpus: tuple[GpuSample, ...] = ()  # readings of the run's GPUs
    gpu_peak_flops: float | None = None
    gpu_memory_peak_bytes: int | None = None
    gpu_selection: str | None = None  # how the run's GPUs were chosen, in words
    energy: Energy | None = None  # measured; None lets the snapshot fall back to --power-watts
    writer_exited: bool = False  # the process writing the log has gone: the writer records it
    dataset_tokens: int | None = None  # the size of the dataset the writer's working directory holds


ENDED_STATES = frozenset({"finished", "crashed", "timeout", "preempted", "cancelled", "node_fail", "out_of_memory"})
"""States after which a run makes no more progress: the log says it finished, or its process or job ended."""

JOB_END_STATES = ("timeout", "preempted", "cancelled", "node_fail", "out_of_memory")
"""How a batch scheduler (Slurm) ended a run's job, when the run itself had not finished."""


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """A running job's forecast finish against its time limit: `verdict` "will" when even the early
    (p10) finish is past the job's end, "may" when only the late (p90) one is."""

    verdict: str  # will | may
    job_end_at: float  # unix seconds: when Slurm ends the job
    left_s: float  # from now to then
    needs_s: float | None  # the median forecast of the time the run still needs
    iter_at_end: int | None  # about where the run will be when the job ends
    fraction_at_end: float | None


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """A row of the GPU table (monitor.hardware.peaks): what `plan` and MFU need to know of a GPU."""

    name: str
    peak_flops: float  # dense bf16 (fp16 before Ampere) tensor FLOP/s
    memory_gb: float | None = None
    power_w: float | None = None  # typical board power (TDP/TGP)
    note: str | None = None  # why the peak is uncertain, when it is


@dataclass(frozen=True, slots=True)
class PlanCheck:
    """A plan made for a followed run (`--plan-mfu`, `--gpu NAME`) beside what its measured pace needs."""

    gpu: str | None  # the GPU the plan is for; None: the one NVML found
    mfu_low: float
    mfu_high: float
    time_low_s: float  # the planned duration, start to finish
    time_high_s: float
    energy_low_j: float | None
    energy_high_j: float | None
    needs_s: float | None  # elapsed + the forecast's time left (the run's duration, once finished)
    iter_s: float | None  # the measured steady time per iteration
    verdict: str  # on-plan | slower | faster | unknown


@dataclass(frozen=True, slots=True)
class Snapshot:
    run: str
    log: str
    format: str
    taken_at: float
    state: str  # starting | running | evaluating | stalled | error, or one of ENDED_STATES
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
    plan: PlanCheck | None = None
    problem: str | None = None  # why the run cannot be followed or failed (state `error`), or why this view
    # may be out of date (a remote serve that cannot be reached)
    last_checkpoint_iter: int | None = None  # the iteration the last saved checkpoint holds
    job_end_at: float | None = None  # when the run's batch job (Slurm) is ended by its time limit
    time_limit: TimeLimit | None = None  # set while the forecast finish is past job_end_at
    final_loss: FinalLoss = field(default_factory=FinalLoss)  # the predicted val loss at max_iters
    target_loss: float | None = None  # the val loss the user hopes for (--target-loss)
    final_loss_halfway: FinalLoss | None = None  # once finished: what was predicted at 50 %
    source: str = ""  # the log's path as the OS has it, when escaping made `log` differ: a key, never shown
    no_progress: str | None = None  # lines were read and none of any format tried was recognised: says so

    @property
    def key(self) -> str:
        """The run's identity for whoever keeps something about it (alert memory, saved state)."""
        return self.source or self.log

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


@dataclass(frozen=True, slots=True)
class Alert:
    run: str
    kind: str  # finishing | finish-moved | finished | crashed | stalled | nan | diverging | slowdown | milestone
    #            | time-limit | job-ended | target (the predicted final loss against --target-loss)
    title: str
    body: str
    level: str  # info | success | warning | failure (apprise's notify types)
    key: str  # the episode's identity: the same key never fires twice for a run
    at: float
