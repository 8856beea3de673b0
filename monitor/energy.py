"""Energy of a run when there is no measurement: the user's stated power × the run's time."""

from __future__ import annotations

from monitor.snapshot import Energy


def from_power_flag(watts: float | None, elapsed_s: float | None) -> Energy:
    if watts is None or elapsed_s is None:
        return Energy()
    return Energy(joules=watts * elapsed_s, source="power-flag", estimated_joules=watts * elapsed_s,
                  mean_power_w=watts)
