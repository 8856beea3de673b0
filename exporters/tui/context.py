"""What every panel needs besides the snapshot: the app's clock and settings at this refresh."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ViewContext:
    now: float  # the app's clock, injected so that tests and screenshots are reproducible
    title: str = "trainwatch"
    gpu_status: str | None = None  # why there is no GPU reading, e.g. "NVML: driver not loaded"
    following: bool = True  # False while the view is frozen with `f`

    @property
    def no_gpu(self) -> str:
        return self.gpu_status or "no NVIDIA GPU"
