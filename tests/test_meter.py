"""EnergyMeter: a run's energy and peak memory from scripted GPU readings (counter, power, resets, gaps)."""

from __future__ import annotations

import pytest

from monitor.hardware.gpu import ScriptedSampler, make_sample
from monitor.hardware.meter import EnergyMeter
from monitor.snapshot import Energy, GpuProcess


def frames(*readings):
    """One GPU: (at, power_w, energy_j) per frame; `None` for a lost reading."""
    out = []
    for i, r in enumerate(readings):
        if r is None:
            out.append((make_sample(0, 100.0 + i / 2, lost=True),))  # a lost GPU has no energy or power
        else:
            at, power, energy = r
            out.append((make_sample(0, at, power_w=power, energy_j=energy),))
    return out


def play(meter, scripted, n):
    """The writer loop: feed the sampler's latest frame n times."""
    for _ in range(n):
        meter.update(scripted.sample())


@pytest.mark.parametrize("readings, joules, source, counter, power", [
    pytest.param([(0, 300, 1000), (1, 300, 1300), (2, 300, 1600)], 600, "nvml-counter", 600, 600, id="counter"),
    pytest.param([(0, 100, None), (2, 300, None), (3, 300, None)], 700, "nvml-power", None, 700,
                 id="no-counter-integrates-power-trapezoid"),
    pytest.param([(0, 300, 5000), (1, 300, 5300), (2, 300, 20), (3, 300, 320)], 900, "nvml-counter", 600, 900,
                 id="counter-reset-interval-falls-back-to-power"),
    pytest.param([(0, 300, 0), None, None, (10, 300, 2900)], 2900, "nvml-counter", 2900, 3000,
                 id="lost-readings-bridged-by-the-counter"),
    pytest.param([(0, None, 0), (1, None, 250)], 250, "nvml-counter", 250, None, id="counter-without-power"),
    pytest.param([(0, 200, 0), (1, 200, 200), (2, 200, None), (3, 200, None)], 600, "nvml-power", 200, 600,
                 id="counter-stops-answering"),
])
def test_energy_by_source(readings, joules, source, counter, power):
    meter = EnergyMeter()
    fs = frames(*readings)
    play(meter, ScriptedSampler(fs), len(fs) + 2)  # the last frame repeats: duplicates must not count
    e = meter.energy(None)
    assert e.joules == pytest.approx(joules)
    assert e.source == source and e.estimated_joules is None
    assert meter.counter_joules == (pytest.approx(counter) if counter is not None else None)
    assert meter.power_joules == (pytest.approx(power) if power is not None else None)


def test_counter_reset_is_counted():
    meter = EnergyMeter()
    play(meter, ScriptedSampler(frames((0, 300, 5000), (1, 300, 20), (2, 300, 320))), 3)
    assert meter.resets == 1


def test_part_before_attach_is_estimated_from_mean_power_and_marked():
    meter = EnergyMeter()
    play(meter, ScriptedSampler(frames((0, 250, 0), (4, 250, 1000))), 2)
    e = meter.energy(run_elapsed_before_attach_s=60)
    assert e == Energy(joules=1000 + 250 * 60, source="nvml-counter", estimated_joules=250 * 60, mean_power_w=250)
    assert meter.energy(0).estimated_joules is None


def test_one_reading_gives_power_but_no_measured_energy_yet():
    meter = EnergyMeter()
    meter.update(frames((0, 180, None))[0])
    assert meter.energy(None) == Energy(joules=0.0, source="nvml-power", estimated_joules=None, mean_power_w=180)
    assert meter.energy(10).joules == 1800


def test_nothing_known_is_source_none():
    meter = EnergyMeter()
    assert meter.energy(100) == Energy()
    meter.update((make_sample(0, 1.0),))  # a GPU with neither power nor counter
    meter.update((make_sample(0, 2.0),))
    assert meter.energy(100) == Energy() and meter.source == "none"


def test_two_gpus_add_up_and_one_without_counter_labels_the_whole_as_power():
    def frame(at, e1):
        return (make_sample(0, at, power_w=300.0, energy_j=at * 300.0),
                make_sample(1, at, power_w=100.0, energy_j=e1))

    meter = EnergyMeter()
    play(meter, ScriptedSampler([frame(0, 0.0), frame(2, 200.0)]), 2)
    assert meter.energy(None) == Energy(joules=800, source="nvml-counter", mean_power_w=400)
    mixed = EnergyMeter()
    play(mixed, ScriptedSampler([frame(0, None), frame(2, None)]), 2)
    assert mixed.energy(None) == Energy(joules=800, source="nvml-power", mean_power_w=400)


def test_gpus_are_told_apart_by_uuid_not_index():
    """After a driver reload the same GPU may come back under another index: its total continues."""
    meter = EnergyMeter()
    meter.update((make_sample(0, 0.0, uuid="GPU-a", power_w=100.0, energy_j=0.0),))
    meter.update((make_sample(1, 1.0, uuid="GPU-a", power_w=100.0, energy_j=100.0),))
    assert meter.energy(None).joules == 100


def procs_frame(at, used, *procs):
    return (make_sample(0, at, memory_used_bytes=used, processes=tuple(GpuProcess(p, m) for p, m in procs)),)


def test_memory_peak_of_the_runs_processes():
    meter = EnergyMeter(pids=[10, 11])
    meter.update(procs_frame(0, 30 << 30, (10, 6 << 30), (11, 1 << 30), (99, 20 << 30)))
    meter.update(procs_frame(1, 32 << 30, (10, 9 << 30), (11, 1 << 30), (99, 20 << 30)))
    meter.update(procs_frame(2, 25 << 30, (10, 2 << 30), (99, 20 << 30)))
    assert meter.memory_peak_bytes == 10 << 30 and meter.memory_peak_source == "processes"


def test_memory_peak_of_the_gpu_when_no_process_matches():
    meter = EnergyMeter(pids=[10])
    meter.update(procs_frame(0, 30 << 30, (4242, None)))
    meter.update(procs_frame(1, 31 << 30, (10, None)))  # ours, but NVML has no figure (WDDM, MIG)
    assert meter.memory_peak_bytes == 31 << 30 and meter.memory_peak_source == "gpu"


def test_memory_unknown():
    meter = EnergyMeter()
    meter.update((make_sample(0, 0.0),))
    assert meter.memory_peak_bytes is None and meter.memory_peak_source is None


def test_the_energy_forecast_uses_recent_power_not_the_idle_start() -> None:
    """A run's first minute (loading, compiling) draws little; the rest of the run draws what it draws now."""
    from monitor.hardware.meter import RECENT_S

    meter = EnergyMeter()
    t, energy = 0.0, 0.0
    for second in range(400):
        power = 100.0 if second < 60 else 600.0
        energy += power
        t = float(second)
        meter.update([make_sample(0, t, power_w=power, energy_j=energy)])
    e = meter.energy(None)
    assert e.mean_power_w == pytest.approx(600.0)
    assert (meter.mean_power_w() or 0) < 600.0  # the overall mean is dragged down by the start
    assert RECENT_S < 340
