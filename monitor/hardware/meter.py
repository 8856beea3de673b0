"""Energy and peak GPU memory of one run, accounted from the GPU samples it is fed: no clock, no I/O.

Per GPU, each interval between two readings is measured by NVML's energy counter when both readings
have it (exact, whatever happened in between), else by the trapezoid of the two power readings. A
counter that goes backwards was reset (driver reload): that one interval falls back to power. Lost
readings are skipped, and the interval across them is bridged the same way. Both integrals are kept
so that a check can compare them. The part of the run before trainwatch attached was not measured: it
is estimated as the measured mean power × that time, and reported as estimated.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from monitor.snapshot import Energy, GpuSample

RECENT_S = 120.0
"""The energy forecast uses the power of this last stretch: a run's start (loading, compiling) draws far
less than its steady state, and a mean since attach would carry that into the rest of the run."""
RECENT_POINTS = 4096


@dataclass
class _Track:
    """One GPU's running totals; keyed by UUID, which survives a driver reset (indexes may not)."""

    last: GpuSample
    joules: float = 0.0  # best estimate: counter where possible, power otherwise
    span_s: float = 0.0  # time covered by `joules`
    counter_j: float = 0.0
    counter_s: float = 0.0
    power_j: float = 0.0
    power_s: float = 0.0
    counter_seen: bool = False
    power_only: bool = False  # had intervals without a counter at both ends (other than resets)
    recent: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=RECENT_POINTS))
    """(reading time, `joules` then): the power of the last RECENT_S, for the forecast."""

    def recent_power_w(self) -> float | None:
        if len(self.recent) < 2:
            return None
        (t0, j0), (t1, j1) = self.recent[0], self.recent[-1]
        return (j1 - j0) / (t1 - t0) if t1 > t0 else None


class EnergyMeter:
    """Feed it the samples of the run's GPUs as they come; ask `energy()` at any time.

    `pids` are the run's processes (both PID forms, see monitor.hardware.procs.Writer); the writer loop may
    replace the set when the process is found later. Duplicate or older readings are ignored, so the
    same latest sample may be fed more than once.
    """

    def __init__(self, pids: Iterable[int] = ()) -> None:
        self.pids = frozenset(pids)
        self.resets = 0  # counter resets seen (driver reloads)
        self._tracks: dict[str, _Track] = {}
        self._proc_peak: int | None = None
        self._gpu_peak: int | None = None

    def update(self, samples: Sequence[GpuSample]) -> None:
        for s in samples:
            if s.lost:
                continue
            self._memory(s)
            track = self._tracks.get(s.uuid)
            if track is None:
                self._tracks[s.uuid] = _Track(last=s, counter_seen=s.energy_j is not None)
            elif s.at > track.last.at:
                self._interval(track, s)

    def _interval(self, t: _Track, b: GpuSample) -> None:
        a, dt = t.last, b.at - t.last.at
        t.last = b
        trapezoid = (a.power_w + b.power_w) / 2 * dt if a.power_w is not None and b.power_w is not None else None
        counter = None
        if a.energy_j is not None and b.energy_j is not None:
            t.counter_seen = True
            if b.energy_j >= a.energy_j:
                counter = b.energy_j - a.energy_j
            else:
                self.resets += 1
        elif trapezoid is not None:
            t.power_only = True
        if trapezoid is not None:
            t.power_j += trapezoid
            t.power_s += dt
        if counter is not None:
            t.counter_j += counter
            t.counter_s += dt
        best = counter if counter is not None else trapezoid
        if best is not None:
            t.joules += best
            t.span_s += dt
            t.recent.append((b.at, t.joules))
            while t.recent and b.at - t.recent[0][0] > RECENT_S:
                t.recent.popleft()

    def _memory(self, s: GpuSample) -> None:
        ours = [p.used_memory_bytes for p in s.processes if p.pid in self.pids and p.used_memory_bytes is not None]
        if ours:
            self._proc_peak = max(self._proc_peak or 0, sum(ours))
        if s.memory_used_bytes is not None:
            self._gpu_peak = max(self._gpu_peak or 0, s.memory_used_bytes)

    @property
    def memory_peak_bytes(self) -> int | None:
        """Highest memory on any one of the run's GPUs: of the run's processes, or of the whole GPU when
        NVML gave no per-process figure for them (other PID namespace, Windows WDDM)."""
        return self._proc_peak if self._proc_peak is not None else self._gpu_peak

    @property
    def memory_peak_source(self) -> str | None:
        """processes | gpu | None."""
        if self._proc_peak is not None:
            return "processes"
        return "gpu" if self._gpu_peak is not None else None

    @property
    def measured_joules(self) -> float:
        return sum(t.joules for t in self._tracks.values())

    @property
    def counter_joules(self) -> float | None:
        """By the energy counter alone (over the intervals it covered), None when no GPU has one."""
        tracks = [t for t in self._tracks.values() if t.counter_s > 0]
        return sum(t.counter_j for t in tracks) if tracks else None

    @property
    def power_joules(self) -> float | None:
        """By integrating power alone (over the intervals it covered), None when power is unknown."""
        tracks = [t for t in self._tracks.values() if t.power_s > 0]
        return sum(t.power_j for t in tracks) if tracks else None

    @property
    def source(self) -> str:
        """nvml-counter when every GPU's energy came from its counter, nvml-power when any relied on power."""
        tracks = [t for t in self._tracks.values() if t.span_s > 0]
        if not tracks:
            return "none"
        return "nvml-power" if any(t.power_only or not t.counter_seen for t in tracks) else "nvml-counter"

    def mean_power_w(self) -> float | None:
        """Sum over the run's GPUs of each one's mean power; the latest reading until an interval exists."""
        total, known = 0.0, False
        for t in self._tracks.values():
            if t.span_s > 0:
                total += t.joules / t.span_s
                known = True
            elif t.last.power_w is not None:
                total += t.last.power_w
                known = True
        return total if known else None

    def energy(self, run_elapsed_before_attach_s: float | None) -> Energy:
        """Energy since the run started: measured since the first sample, plus the estimated part before."""
        mean = self.mean_power_w()
        if mean is None:
            return Energy()
        estimated = None
        if run_elapsed_before_attach_s is not None and run_elapsed_before_attach_s > 0:
            estimated = mean * run_elapsed_before_attach_s
        source = self.source
        if source == "none":  # one reading so far: only its power is known
            source = "nvml-counter" if all(t.counter_seen for t in self._tracks.values()) else "nvml-power"
        return Energy(joules=self.measured_joules + (estimated or 0.0), source=source,
                      estimated_joules=estimated, mean_power_w=self.recent_power_w() or mean)

    def recent_power_w(self) -> float | None:
        """Sum over the run's GPUs of each one's power over the last RECENT_S (what the rest will draw)."""
        powers = [t.recent_power_w() for t in self._tracks.values()]
        known = [p for p in powers if p is not None]
        return sum(known) if known and len(known) == len(powers) else None
