"""GPU telemetry: NvmlSampler's mapping of NVML calls and errors, against (a) monkeypatched pynvml
functions and (b) a fake libnvidia-ml.so.1 compiled from tests/fake_nvml.c, so that pynvml's real
ctypes code runs; and the scripted and background samplers at our own seam."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pynvml
import pytest

from monitor.hardware.gpu import (
    BackgroundSampler,
    NoGpu,
    NvmlSampler,
    ScriptedSampler,
    check_lines,
    make_sample,
    make_sampler,
    throttle_names,
)
from monitor.hardware.peaks import peak_flops
from monitor.snapshot import GpuProcess

FAKE_C = Path(__file__).with_name("fake_nvml.c")
E = pynvml.NVMLError


def wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------- (a) monkeypatched pynvml functions

@pytest.fixture
def patched(monkeypatch):
    """Two GPUs answering through pynvml's own function names; `values` is changed by each test."""
    values: dict[str, object] = {
        "power": 312_000, "energy": 5_000_000, "mem": SimpleNamespace(total=80 << 30, used=9 << 30, free=71 << 30),
        "util": SimpleNamespace(gpu=93, memory=40), "temp": 71, "clock": 1755, "reasons": 0x4 | 0x20 | 0x1,
        "procs": [SimpleNamespace(pid=4242, usedGpuMemory=8 << 30), SimpleNamespace(pid=77, usedGpuMemory=None)],
    }

    def answer(key):
        def fn(*args):
            v = values[key]
            if isinstance(v, E):
                raise v
            return v
        return fn

    for name, key in [("nvmlDeviceGetPowerUsage", "power"), ("nvmlDeviceGetTotalEnergyConsumption", "energy"),
                      ("nvmlDeviceGetMemoryInfo", "mem"), ("nvmlDeviceGetUtilizationRates", "util"),
                      ("nvmlDeviceGetTemperatureV", "temp"), ("nvmlDeviceGetClockInfo", "clock"),
                      ("nvmlDeviceGetCurrentClocksEventReasons", "reasons"),
                      ("nvmlDeviceGetComputeRunningProcesses_v3", "procs")]:
        monkeypatch.setattr(pynvml, name, answer(key))
    monkeypatch.setattr(pynvml, "nvmlInit", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: None)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetCount", lambda: 2)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex", lambda i: ("handle", i))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetName", lambda h: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUUID", lambda h: f"GPU-uuid-{h[1]}")
    monkeypatch.setattr(pynvml, "nvmlSystemGetNVMLVersion", lambda: "12.550.54.15")
    monkeypatch.setattr(pynvml, "nvmlSystemGetDriverVersion", lambda: "550.54.15")
    return values


def test_nvml_values_are_converted_to_base_units(patched):
    sampler = NvmlSampler(clock=lambda: 1000.0)
    s = sampler.sample()[0]
    assert (s.index, s.uuid, s.name, s.at) == (0, "GPU-uuid-0", "NVIDIA H100 80GB HBM3", 1000.0)
    assert s.power_w == 312.0 and s.energy_j == 5000.0
    assert (s.memory_used_bytes, s.memory_total_bytes) == (9 << 30, 80 << 30)
    assert s.utilization == pytest.approx(0.93) and s.temperature_c == 71 and s.sm_clock_mhz == 1755
    assert s.throttle == ("power cap", "thermal")  # GpuIdle (0x1) is not a throttle
    assert s.processes == (GpuProcess(4242, 8 << 30), GpuProcess(77, None))
    assert not s.lost
    assert sampler.status() == "NVML 12.550.54.15, driver 550.54.15, 2 GPUs"


@pytest.mark.parametrize("field, key", [("power_w", "power"), ("energy_j", "energy"), ("temperature_c", "temp"),
                                        ("utilization", "util"), ("sm_clock_mhz", "clock")])
def test_an_unsupported_field_is_none_and_the_rest_still_reads(patched, field, key):
    patched[key] = E(pynvml.NVML_ERROR_NOT_SUPPORTED)
    s = NvmlSampler().sample()[0]
    assert getattr(s, field) is None
    assert s.memory_used_bytes == 9 << 30 and not s.lost


def test_older_symbols_are_used_when_the_driver_lacks_the_new_ones(patched, monkeypatch):
    patched["temp"] = E(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetTemperature", lambda h, sensor: 64)
    monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses_v3",
                        lambda h: (_ for _ in ()).throw(E(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetComputeRunningProcesses_v2",
                        lambda h: [SimpleNamespace(pid=1, usedGpuMemory=1 << 20)])
    s = NvmlSampler().sample()[0]
    assert s.temperature_c == 64
    assert s.processes == (GpuProcess(1, 1 << 20),)


def test_gpu_lost_mid_run_is_marked_not_fatal_and_recovers(patched):
    sampler = NvmlSampler()
    assert not sampler.sample()[0].lost
    patched["power"] = E(pynvml.NVML_ERROR_GPU_IS_LOST)
    lost = sampler.sample()
    assert [g.lost for g in lost] == [True, True]
    assert lost[0].name == "NVIDIA H100 80GB HBM3" and lost[0].uuid == "GPU-uuid-0"  # still identifiable
    assert lost[0].power_w is None and lost[0].processes == ()
    patched["power"] = 300_000
    assert sampler.sample()[0].power_w == 300.0


@pytest.mark.parametrize("code, reason", [
    (pynvml.NVML_ERROR_LIBRARY_NOT_FOUND, "no NVIDIA driver: NVML library not found (libnvidia-ml.so.1)"),
    (pynvml.NVML_ERROR_DRIVER_NOT_LOADED, "NVIDIA driver not loaded"),
    (pynvml.NVML_ERROR_NO_PERMISSION, "no permission to use NVML"),
    (pynvml.NVML_ERROR_UNKNOWN, "NVML unavailable: Unknown Error"),
], ids=["library-not-found", "driver-not-loaded", "no-permission", "unknown"])
def test_nvml_that_cannot_start_gives_nogpu_with_the_reason(monkeypatch, code, reason):
    def init():
        raise E(code)
    monkeypatch.setattr(pynvml, "nvmlInit", init)
    sampler = make_sampler()
    assert isinstance(sampler, NoGpu)
    assert sampler.status().startswith(reason)
    assert sampler.sample() == ()
    lazy = NvmlSampler()
    assert lazy.sample() == () and lazy.status().startswith(reason)  # a sampler used directly degrades too


def test_importing_the_module_neither_loads_nor_initialises_nvml():
    code = ("import sys, monitor.hardware.gpu as g; s = g.NvmlSampler(); "
            "print('pynvml' in sys.modules, s.status())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False NVML not initialised yet"


def test_sampling_can_be_switched_off():
    s = make_sampler(enabled=False)
    assert isinstance(s, NoGpu) and s.status() == "GPU sampling is off" and s.sample() == ()


# ---------------------------------------------------------------- (b) a compiled fake libnvidia-ml.so.1

@pytest.fixture(scope="session")
def fake_nvml_lib(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: cannot compile tests/fake_nvml.c into a fake libnvidia-ml.so.1")
    out = tmp_path_factory.mktemp("nvml") / "libnvidia-ml.so.1"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(out), str(FAKE_C)], check=True)
    return out


@pytest.fixture
def fake_nvml(fake_nvml_lib, monkeypatch):
    """Load the fake in this process: pynvml then marshals real structs through ctypes into C."""
    monkeypatch.setenv("FAKE_NVML_PIDS", str(os.getpid()))  # read at nvmlInit
    monkeypatch.setenv("FAKE_NVML_COUNT", "2")
    monkeypatch.setattr(pynvml, "nvmlLib", ctypes.CDLL(str(fake_nvml_lib)))
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    samplers: list[NvmlSampler] = []
    yield samplers
    for s in samplers:
        s.close()


def open_sampler(samplers):
    s = make_sampler()
    assert isinstance(s, NvmlSampler), s.status()
    samplers.append(s)
    return s


def test_fake_library_through_real_pynvml(fake_nvml):
    sampler = open_sampler(fake_nvml)
    assert sampler.status() == "NVML 13.999.99, driver 999.99-fake, 2 GPUs"
    g0, g1 = sampler.sample()
    assert (g0.name, g0.uuid) == ("Fake GPU 0", "GPU-00000000-0000-0000-0000-000000000000")
    assert g0.power_w == 250.0 and g0.energy_j is not None and g0.energy_j >= 1000.0
    assert (g0.memory_total_bytes, g0.memory_used_bytes) == (80 << 30, (512 << 20) + (1 << 30))
    assert g0.utilization == pytest.approx(0.87) and g0.sm_clock_mhz == 1980
    assert g0.temperature_c == 60  # through the fallback: the fake has no nvmlDeviceGetTemperatureV
    assert g0.throttle == ("power cap",) and g1.throttle == ()
    assert g0.processes == (GpuProcess(os.getpid(), 1 << 30),) and g1.processes == ()


def test_fake_energy_counter_grows_with_power_times_time(fake_nvml):
    sampler = open_sampler(fake_nvml)
    first = sampler.sample()[0]
    assert wait_for(lambda: time.time() - first.at >= 0.3)
    second = sampler.sample()[0]
    watts = (second.energy_j - first.energy_j) / (second.at - first.at)
    assert 0.8 * 250 < watts < 1.2 * 250


def test_fake_pre_volta_gpu_has_no_energy_counter(fake_nvml, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_ENERGY_UNSUPPORTED", "1")
    s = open_sampler(fake_nvml).sample()[0]
    assert s.energy_j is None and s.power_w == 250.0


def test_fake_driver_not_loaded(fake_nvml, monkeypatch):
    monkeypatch.setenv("FAKE_NVML_INIT_RC", str(pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    s = make_sampler()
    assert isinstance(s, NoGpu) and s.status().startswith("NVIDIA driver not loaded")


def test_fake_gpu_lost_after_an_xid(fake_nvml, monkeypatch):
    sampler = open_sampler(fake_nvml)
    assert not any(g.lost for g in sampler.sample())
    monkeypatch.setenv("FAKE_NVML_LOST", "1")
    lost = sampler.sample()
    assert all(g.lost for g in lost) and lost[0].name == "Fake GPU 0"
    monkeypatch.delenv("FAKE_NVML_LOST")
    assert sampler.sample()[0].power_w == 250.0


def test_check_lines_with_the_fake_library(fake_nvml):
    lines = check_lines(open_sampler(fake_nvml))
    assert lines[0].startswith("nvidia-ml-py: ")
    assert lines[1] == "NVML: NVML 13.999.99, driver 999.99-fake, 2 GPUs"
    assert lines[2] == ("GPU 0: Fake GPU 0, 80 GiB, power 250 W, energy counter yes, "
                        "peak unknown (use --peak-flops)")


# ---------------------------------------------------------------- our own seam: scripted and background

def test_check_lines_say_why_there_is_no_gpu():
    lines = check_lines(NoGpu("no NVIDIA driver: NVML library not found (libnvidia-ml.so.1)"))
    assert lines[1:] == ["NVML: no NVIDIA driver: NVML library not found (libnvidia-ml.so.1)"]


def test_check_lines_name_the_peak_and_a_lost_gpu():
    frame = (make_sample(0, 1.0, name="NVIDIA H100 80GB HBM3", power_w=700.0, energy_j=1.0,
                         memory_total_bytes=80 << 30),
             make_sample(1, 1.0, name="NVIDIA H100 80GB HBM3", lost=True))
    lines = check_lines(ScriptedSampler([frame], status="scripted"))
    assert lines[2:] == ["GPU 0: NVIDIA H100 80GB HBM3, 80 GiB, power 700 W, energy counter yes, peak 990 TFLOP/s",
                         "GPU 1: NVIDIA H100 80GB HBM3, memory —, LOST (not answering)"]


def test_scripted_sampler_plays_back_raises_and_then_holds_the_last_frame():
    a, b = (make_sample(0, 1.0),), (make_sample(0, 2.0),)
    s = ScriptedSampler([a, RuntimeError("driver hiccup"), b])
    assert s.sample() == a
    with pytest.raises(RuntimeError):
        s.sample()
    assert s.sample() == b and s.sample() == b


def test_background_sampler_survives_a_failing_sample_and_closes_its_sampler():
    a, b = (make_sample(0, 1.0),), (make_sample(0, 2.0),)
    scripted = ScriptedSampler([a, RuntimeError("driver hiccup"), b], status="scripted")
    bg = BackgroundSampler(scripted, interval_s=0.01)
    try:
        assert bg.wait_first(5)
        assert wait_for(lambda: bg.latest() == b)
        assert bg.status() == "scripted"
    finally:
        bg.stop()
    assert scripted.closed


def test_throttle_mask_names():
    assert throttle_names(None) == () and throttle_names(0x1) == ()
    assert throttle_names(0x4 | 0x40 | 0x80) == ("power cap", "hardware thermal", "power brake")


# ---------------------------------------------------------------- the peak table, by NVML's names

@pytest.mark.parametrize("name, tflops", [
    ("NVIDIA H100 80GB HBM3", 989.5), ("NVIDIA H100 PCIe", 756.5), ("NVIDIA H100 NVL", 835.5),
    ("NVIDIA H200", 989.5), ("NVIDIA H200 NVL", 835.5), ("NVIDIA GH200 480GB", 989.5), ("NVIDIA B200", 2250),
    ("NVIDIA A100-SXM4-40GB", 312), ("NVIDIA A100-SXM4-80GB", 312), ("NVIDIA A100-PCIE-40GB", 312),
    ("NVIDIA A100 80GB PCIe", 312), ("NVIDIA A10", 125), ("NVIDIA A10G", 70), ("NVIDIA L4", 121),
    ("NVIDIA L40S", 362.05), ("NVIDIA L40", 181.05), ("Tesla V100-SXM2-16GB", 125), ("Tesla V100-PCIE-32GB", 112),
    ("Tesla V100S-PCIE-32GB", 130), ("Tesla T4", 65), ("NVIDIA GeForce RTX 4090", 165.2),
    ("NVIDIA GeForce RTX 4080", 97.5), ("NVIDIA GeForce RTX 4080 SUPER", 104.4),
    ("NVIDIA GeForce RTX 4070 Ti", 80.2), ("NVIDIA GeForce RTX 4070 SUPER", 71), ("NVIDIA GeForce RTX 4070", 58.3),
    ("NVIDIA GeForce RTX 3090", 71), ("NVIDIA GeForce RTX 3080", 59.5), ("NVIDIA RTX 6000 Ada Generation", 364.25),
    ("NVIDIA RTX A6000", 154.8), ("Quadro RTX 6000", 130.5), ("NVIDIA GeForce RTX 5090", 209.5),
])
def test_peak_flops_by_nvml_name(name, tflops):
    assert peak_flops(name) == pytest.approx(tflops * 1e12)


@pytest.mark.parametrize("name", ["NVIDIA GeForce RTX 4090 Laptop GPU", "NVIDIA GeForce RTX 4060", "Fake GPU 0",
                                  "NVIDIA A2", "NVIDIA GeForce RTX 4090 D", ""])
def test_unknown_cards_have_no_peak(name):
    assert peak_flops(name) is None


def test_a_gpu_that_fails_while_listing_stops_nvml_again(patched, monkeypatch):
    calls = []
    monkeypatch.setattr(pynvml, "nvmlShutdown", lambda: calls.append("shutdown"))
    monkeypatch.setattr(pynvml, "nvmlDeviceGetHandleByIndex",
                        lambda i: (_ for _ in ()).throw(E(pynvml.NVML_ERROR_GPU_IS_LOST)))
    s = make_sampler()
    assert isinstance(s, NoGpu) and s.status() == "NVML unavailable: GPU is lost" and calls == ["shutdown"]
