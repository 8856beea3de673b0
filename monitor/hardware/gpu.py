"""GPU telemetry behind one narrow seam: the only module that imports pynvml (from nvidia-ml-py).

NVML is initialised on first use, never at import: `import pynvml` costs ~50 ms and a machine without a
driver must still start. A field the GPU does not support is None (shown as "—", never exported as 0);
a GPU that stops answering (Xid, driver reset) is marked `lost`, never fatal. Readers get frozen
`GpuSample`s; a background thread refreshes them so no view ever waits on the driver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from monitor.snapshot import GpuProcess, GpuSample

log = logging.getLogger(__name__)






class GpuSampler(Protocol):
    def sample(self) -> tuple[GpuSample, ...]: ...

    def status(self) -> str: ...

    def close(self) -> None: ...


# nvmlClocksEventReason* bits (nvml.h). GpuIdle (0x1) is left out: an idle GPU is not being held back.
THROTTLE_REASONS = (
    (0x2, "applications clocks"),
    (0x4, "power cap"),
    (0x8, "hardware slowdown"),
    (0x10, "sync boost"),
    (0x20, "thermal"),
    (0x40, "hardware thermal"),
    (0x80, "power brake"),
    (0x100, "display clock"),
)
_LOST = frozenset({15, 16})  # NVML_ERROR_GPU_IS_LOST, NVML_ERROR_RESET_REQUIRED
_FUNCTION_NOT_FOUND = 13
_TEMPERATURE_GPU = 0  # NVML_TEMPERATURE_GPU
_CLOCK_SM = 1  # NVML_CLOCK_SM
_INIT_REASONS = {
    12: "no NVIDIA driver: NVML library not found (libnvidia-ml.so.1)",
    9: "NVIDIA driver not loaded: NVML is installed but the kernel driver is not running",
    4: "no permission to use NVML (the /dev/nvidia* devices)",
    18: "NVML library and kernel driver versions differ (reload the driver or reboot)",
}


class NvmlUnavailable(Exception):
    """NVML cannot be used on this machine; str() says why in one line."""


class _Lost(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Device:
    index: int
    handle: Any
    uuid: str
    name: str


class NvmlSampler:
    """Reads every visible GPU through NVML. `nvml` is the pynvml module (a test seam; real by default)."""

    def __init__(self, nvml: ModuleType | None = None, clock: Callable[[], float] = time.time) -> None:
        self._nvml = nvml
        self._clock = clock
        self._devices: tuple[_Device, ...] | None = None
        self._status = "NVML not initialised yet"
        self._failure: str | None = None

    def open(self) -> None:
        """Initialise NVML now; raises NvmlUnavailable with the reason. Later calls do nothing."""
        if self._devices is not None:
            return
        if self._failure is not None:
            raise NvmlUnavailable(self._failure)
        try:
            nv = self._nvml = self._nvml or _import_pynvml()
            try:
                nv.nvmlInit()
            except nv.NVMLError as e:
                raise NvmlUnavailable(init_reason(e)) from e
            try:
                devices = []
                for i in range(nv.nvmlDeviceGetCount()):
                    h = nv.nvmlDeviceGetHandleByIndex(i)
                    uuid = self._get(("nvmlDeviceGetUUID",), h) or f"GPU-{i}"
                    name = self._get(("nvmlDeviceGetName",), h) or f"GPU {i}"
                    devices.append(_Device(i, h, str(uuid), str(name)))
            except (nv.NVMLError, _Lost) as e:
                nv.nvmlShutdown()
                raise NvmlUnavailable(init_reason(e)) from e
        except NvmlUnavailable as e:
            self._failure = self._status = str(e)
            raise
        self._devices = tuple(devices)
        version = self._get(("nvmlSystemGetNVMLVersion",))
        driver = self._get(("nvmlSystemGetDriverVersion",))
        n = len(devices)
        self._status = (f"NVML {version or '(version unknown)'}, driver {driver or '(unknown)'}, "
                        f"{n} GPU{'' if n == 1 else 's'}" + ("" if n else " visible (no devices in this container?)"))

    def sample(self) -> tuple[GpuSample, ...]:
        try:
            self.open()
        except NvmlUnavailable:
            return ()
        assert self._devices is not None
        return tuple(self._read(d) for d in self._devices)

    def status(self) -> str:
        return self._status

    def close(self) -> None:
        if self._devices is not None and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as e:
                log.debug("nvmlShutdown: %s", e)
        self._devices = None

    def _read(self, d: _Device) -> GpuSample:
        at = self._clock()
        h = d.handle
        try:
            power = self._get(("nvmlDeviceGetPowerUsage",), h)
            energy = self._get(("nvmlDeviceGetTotalEnergyConsumption",), h)
            mem = self._get(("nvmlDeviceGetMemoryInfo",), h)
            util = self._get(("nvmlDeviceGetUtilizationRates",), h)
            temp = self._get(("nvmlDeviceGetTemperatureV", "nvmlDeviceGetTemperature"), h, _TEMPERATURE_GPU)
            clock = self._get(("nvmlDeviceGetClockInfo",), h, _CLOCK_SM)
            reasons = self._get(("nvmlDeviceGetCurrentClocksEventReasons",
                                 "nvmlDeviceGetCurrentClocksThrottleReasons"), h)
            procs = self._get(("nvmlDeviceGetComputeRunningProcesses_v3",
                               "nvmlDeviceGetComputeRunningProcesses_v2"), h)
        except _Lost:
            return make_sample(d.index, at, name=d.name, uuid=d.uuid, lost=True)
        return GpuSample(
            index=d.index, uuid=d.uuid, name=d.name, at=at,
            power_w=power / 1000 if power is not None else None,  # mW
            energy_j=energy / 1000 if energy is not None else None,  # mJ
            memory_used_bytes=int(mem.used) if mem is not None else None,
            memory_total_bytes=int(mem.total) if mem is not None else None,
            utilization=util.gpu / 100 if util is not None else None,
            temperature_c=float(temp) if temp is not None else None,
            sm_clock_mhz=float(clock) if clock is not None else None,
            throttle=throttle_names(reasons),
            processes=tuple(GpuProcess(int(p.pid), _bytes(p.usedGpuMemory)) for p in procs or ()),
        )

    def _get(self, names: Iterable[str], *args: Any) -> Any:
        """The first of `names` that the library has: its value, or None when the GPU does not support it.

        Newer symbols come first (nvmlDeviceGetTemperatureV); older drivers lack them (FunctionNotFound).
        """
        nv = self._nvml
        assert nv is not None
        for name in names:
            fn = getattr(nv, name, None)
            if fn is None:
                continue
            try:
                return fn(*args)
            except getattr(nv, "NVMLLibraryMismatchError", ()):  # an unversioned name the driver lacks
                continue
            except nv.NVMLError as e:
                if e.value in _LOST:
                    raise _Lost(str(e)) from e
                if e.value == _FUNCTION_NOT_FOUND:
                    continue
                log.debug("%s: %s", name, e)
                return None
        return None


def _bytes(v: object) -> int | None:
    return int(v) if isinstance(v, int) else None  # pynvml gives None for NVML_VALUE_NOT_AVAILABLE


def throttle_names(mask: int | None) -> tuple[str, ...]:
    if not mask:
        return ()
    return tuple(name for bit, name in THROTTLE_REASONS if mask & bit)


def make_sample(index: int, at: float, *, name: str = "GPU", uuid: str | None = None, **fields: Any) -> GpuSample:
    """A reading with every field unknown except those given (lost GPUs, scripted playback, the demo)."""
    base: dict[str, Any] = dict(power_w=None, energy_j=None, memory_used_bytes=None, memory_total_bytes=None,
                                utilization=None, temperature_c=None, sm_clock_mhz=None, throttle=(), processes=())
    return GpuSample(index=index, uuid=uuid or f"GPU-{index}", name=name, at=at, **(base | fields))


def init_reason(e: BaseException) -> str:
    """One line saying why NVML could not start, from its error code."""
    value = getattr(e, "value", None)
    if isinstance(value, int) and value in _INIT_REASONS:
        return _INIT_REASONS[value]
    return f"NVML unavailable: {e}"


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as e:
        raise NvmlUnavailable("nvidia-ml-py is not installed (it provides `import pynvml`)") from e
    return pynvml


class NoGpu:
    """No telemetry; `status()` says why (the NVML error, or that sampling is off)."""

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def sample(self) -> tuple[GpuSample, ...]:
        return ()

    def status(self) -> str:
        return self._reason

    def close(self) -> None:
        pass


class ScriptedSampler:
    """Plays back frames (for tests and the demo). An exception in the list is raised by that `sample()`;
    after the last frame the last one repeats, as a GPU that keeps reporting the same reading would."""

    def __init__(self, frames: Sequence[tuple[GpuSample, ...] | BaseException], status: str = "scripted GPUs") -> None:
        self._frames = list(frames)
        self._next = 0
        self._status = status
        self.closed = False

    def sample(self) -> tuple[GpuSample, ...]:
        if not self._frames:
            return ()
        frame = self._frames[min(self._next, len(self._frames) - 1)]
        self._next += 1
        if isinstance(frame, BaseException):
            raise frame
        return frame

    def status(self) -> str:
        return self._status

    def close(self) -> None:
        self.closed = True


def make_sampler(enabled: bool = True, nvml: ModuleType | None = None) -> GpuSampler:
    """NVML when it works, otherwise NoGpu with the reason (the boring fallback)."""
    if not enabled:
        return NoGpu("GPU sampling is off")
    sampler = NvmlSampler(nvml)
    try:
        sampler.open()
    except NvmlUnavailable as e:
        return NoGpu(str(e))
    return sampler


class BackgroundSampler:
    """Samples in a daemon thread every `interval_s`; `latest()` never blocks on the driver.

    Owns `sampler` (closes it on `stop()`). A failing sample is logged and the previous reading kept:
    its `at` shows how stale it is.
    """

    def __init__(self, sampler: GpuSampler, interval_s: float = 1.0) -> None:
        self._sampler = sampler
        self._interval = interval_s
        self._latest: tuple[GpuSample, ...] = ()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
        self._thread.start()

    def latest(self) -> tuple[GpuSample, ...]:
        return self._latest

    def wait_first(self, timeout: float) -> bool:
        """True once the first sample was attempted (so `latest()` reflects the machine)."""
        return self._ready.wait(timeout)

    def status(self) -> str:
        return self._sampler.status()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sampler.close()

    def _loop(self) -> None:
        last_error = ""
        while not self._stop.is_set():
            try:
                self._latest = self._sampler.sample()
            except Exception as e:  # a driver hiccup must not end sampling
                if str(e) != last_error:
                    log.warning("GPU sampling failed: %s", e)
                    last_error = str(e)
            self._ready.set()
            self._stop.wait(self._interval)


def check_lines(sampler: GpuSampler | None = None) -> list[str]:
    """What `trainwatch check` prints about GPUs: the binding, NVML's state (and why), each GPU."""
    from importlib.metadata import PackageNotFoundError, version

    from monitor.hardware.peaks import peak_flops

    try:
        lines = [f"nvidia-ml-py: {version('nvidia-ml-py')}"]
    except PackageNotFoundError:
        lines = ["nvidia-ml-py: not installed (no GPU telemetry; --power-watts gives an energy estimate)"]
    own = sampler is None
    sampler = sampler or make_sampler()
    try:
        samples = sampler.sample()
        lines.append(f"NVML: {sampler.status()}")
        for s in samples:
            peak = peak_flops(s.name)
            mem = f"{s.memory_total_bytes / 2**30:.0f} GiB" if s.memory_total_bytes else "memory —"
            lines.append(
                f"GPU {s.index}: {s.name}, {mem}, "
                + ("LOST (not answering)" if s.lost else
                   f"power {'—' if s.power_w is None else f'{s.power_w:.0f} W'}, "
                   f"energy counter {'yes' if s.energy_j is not None else 'no (power is integrated)'}, "
                   f"peak {'unknown (use --peak-flops)' if peak is None else f'{peak / 1e12:.0f} TFLOP/s'}"))
    finally:
        if own:
            sampler.close()
    return lines

