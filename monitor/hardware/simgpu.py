"""A simulated GPU for `trainwatch demo`: plausible readings with an energy counter, clearly named as such."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable

from monitor.hardware.gpu import make_sample
from monitor.snapshot import GpuProcess, GpuSample

GIB = 1 << 30


class SimulatedGpu:
    """One A100-class GPU whose only compute process is this one (the demo writes its log from here)."""

    NAME = "NVIDIA A100-SXM4-80GB (simulated)"

    def __init__(self, seed: int = 1, clock: Callable[[], float] = time.time, watts: float = 300.0) -> None:
        self._rng = random.Random(seed)
        self._clock = clock
        self._watts = watts
        self._energy_j = 1.2e6  # the counter counts since the driver loaded, not since the run started
        self._last: float | None = None

    def sample(self) -> tuple[GpuSample, ...]:
        now = self._clock()
        power = self._watts * self._rng.uniform(0.93, 1.05)
        if self._last is not None:
            self._energy_j += power * (now - self._last)
        self._last = now
        memory = int(9.6 * GIB + self._rng.uniform(0, 0.3) * GIB)
        return (make_sample(0, now, name=self.NAME, uuid="GPU-5e1a7ed0-0000-demo", power_w=power,
                            energy_j=self._energy_j, memory_used_bytes=memory, memory_total_bytes=80 * GIB,
                            utilization=self._rng.uniform(0.94, 0.99), temperature_c=self._rng.uniform(66, 72),
                            sm_clock_mhz=1410.0, processes=(GpuProcess(os.getpid(), memory - GIB // 2),)),)

    def status(self) -> str:
        return "simulated GPU (demo): no NVML is used"

    def close(self) -> None:
        self._last = None
