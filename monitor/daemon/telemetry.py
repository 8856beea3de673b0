"""Per run: which process writes the log, which GPUs it uses, and the energy they have used.

Runs as the Monitor's `extras` hook in the writer thread: it reads the background GPU sampler's
latest readings (never NVML itself) and looks for the writer process again only while it is unknown,
at most every `rescan_s`, since a /proc scan costs milliseconds to tens of milliseconds. It returns a
`RunTelemetry` and changes no run state: the writer records what it reports (the process exited).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.daemon.writer import Follower
from monitor.hardware import procs
from monitor.hardware.gpu import BackgroundSampler
from monitor.hardware.meter import EnergyMeter
from monitor.hardware.peaks import peak_flops
from monitor.snapshot import GpuSample, RunTelemetry


@dataclass
class _Run:
    meter: EnergyMeter = field(default_factory=EnergyMeter)
    writer: procs.Writer | None = None
    looked_at: float | None = None
    gpus: tuple[int, ...] = ()
    how: str = ""
    matched: bool = False  # the GPUs were chosen by the run's own PIDs: stop re-choosing
    clock_at_attach: float | None = None  # training time already elapsed when measuring began


class Telemetry:
    def __init__(self, sampler: BackgroundSampler | None, *, fallback_gpus: Sequence[int] | None = None,
                 peak_override: float | None = None, rescan_s: float = 10.0,
                 find_writer: Callable[[str], procs.Writer | None] = procs.find_writer,
                 alive: Callable[[int], bool] = procs.alive) -> None:
        self.sampler = sampler
        self.fallback = list(fallback_gpus or [])
        self.peak_override = peak_override
        self.rescan_s = rescan_s
        self._find = find_writer
        self._alive = alive
        self._runs: dict[str, _Run] = {}

    def status(self) -> str:
        return self.sampler.status() if self.sampler is not None else "GPU sampling is off"

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()

    def __call__(self, follower: Follower, now: float) -> RunTelemetry:
        run = self._runs.setdefault(follower.spec.log, _Run())
        exited, dataset_tokens = self._track_writer(run, follower, now)
        samples = self.sampler.latest() if self.sampler is not None else ()
        if samples and not run.matched:
            run.gpus, run.how = procs.run_gpus(run.writer, samples, self.fallback)
            run.matched = "NVML lists the run's process" in run.how
        ours = tuple(s for s in samples if s.index in run.gpus)
        state = follower.ingest.state if follower.ingest is not None else None
        energy = None
        if ours:  # measured; otherwise the snapshot falls back to --power-watts, if given
            if run.clock_at_attach is None and state is not None:
                run.clock_at_attach = state.clock_s
            run.meter.update(ours)
            energy = run.meter.energy(run.clock_at_attach)
        return RunTelemetry(gpus=ours, gpu_peak_flops=self.peak_override or _peak(ours),
                            gpu_memory_peak_bytes=run.meter.memory_peak_bytes, gpu_selection=run.how or None,
                            energy=energy, writer_exited=exited, dataset_tokens=dataset_tokens)

    def _track_writer(self, run: _Run, follower: Follower, now: float) -> tuple[bool, int | None]:
        """(the writer known before has exited, the dataset's tokens when a writer was just found)."""
        state = follower.ingest.state if follower.ingest is not None else None
        exited = False
        if run.writer is not None:
            if self._alive(run.writer.training_pids[0]):
                return False, None
            run.writer, run.matched, exited = None, False, True
        if run.looked_at is not None and now - run.looked_at < self.rescan_s:
            return exited, None
        run.looked_at = now
        run.writer = self._find(follower.spec.log)
        tokens = None
        if run.writer is not None:
            run.meter.pids = frozenset(run.writer.training_pids) | frozenset(run.writer.ns_pids)
            if state is not None and state.number("dataset_tokens") is None and run.writer.cwd:
                dataset = state.setting("dataset")
                tokens = procs.dataset_tokens(run.writer.cwd, str(dataset.value)) if dataset else None
        return exited, tokens


def _peak(gpus: Sequence[GpuSample]) -> float | None:
    peaks = [peak_flops(g.name) for g in gpus]
    return peaks[0] if peaks and all(p == peaks[0] for p in peaks) else None
