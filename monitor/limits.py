"""The one validation layer for numbers from outside: a log's values, flags and the config file.

A number trainwatch did not compute itself is checked here before any arithmetic sees it: finite, in a
range no real run leaves, and non-zero where it divides. A user's number that fails is an error that
names the option; a log's number that fails is unknown (None), never an exception or an inf further on.
The ranges are wide on purpose (a 10^15-iteration run, a 1 MW node): they exist to keep products of a
few of these numbers far from overflow, not to second-guess a real configuration. Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    low: float
    high: float
    integer: bool = False
    above_low: bool = False  # the low bound itself is excluded (a divisor, a rate)

    def holds(self, value: float) -> bool:
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return False
        if self.above_low and value == self.low:
            return False
        return not self.integer or value == int(value)

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        if self.above_low:
            return f"{kind} above {self.low:g}, at most {self.high:g}"
        return f"{kind} from {self.low:g} to {self.high:g}"


_COUNT = Limit(1, 1e15, integer=True)  # iterations, intervals: also divisors
_SIZE = Limit(1, 1e9, integer=True)  # model and batch dimensions
DAY = 86400.0

LIMITS: dict[str, Limit] = {
    # what the log or the user says about the run
    "max_iters": Limit(0, 1e15, integer=True),
    "eval_interval": _COUNT,
    "log_interval": _COUNT,
    "eval_iters": Limit(0, 1e15, integer=True),
    "tokens_per_iter": Limit(1, 1e12),
    "batch_size": _SIZE, "block_size": _SIZE, "gradient_accumulation_steps": _SIZE,
    "n_layer": _SIZE, "n_head": _SIZE, "n_embd": _SIZE, "vocab_size": _SIZE,
    "params": Limit(1, 1e15),
    "dataset_tokens": Limit(1, 1e16),
    "flops_per_token": Limit(1, 1e18),
    "gpu_peak_flops": Limit(1e6, 1e19),
    "peak_flops": Limit(1e6, 1e19),
    "power_watts": Limit(0, 1e6, above_low=True),
    "price_per_kwh": Limit(0, 1e6),
    "target_loss": Limit(0, 1e6, above_low=True),  # a validation loss to hope for
    # how trainwatch runs (seconds)
    "poll_interval": Limit(0.01, 3600),
    "gpu_interval": Limit(0.05, 3600),
    "publish_interval": Limit(0, 60),
    "notify_before": Limit(0, 30 * DAY),
    "keep_finished": Limit(0, 3650 * DAY),
    "max_runs": Limit(1, 100_000, integer=True),
    "slurm_interval": Limit(0.1, DAY),
}

# What one iteration line may say (values outside are unknown: the line still counts, its number does not).
MAX_STEP_S = 7 * DAY  # one optimizer step
MIN_STEP_S = 1e-9
"""A printed step time above 0 but below a nanosecond is no measurement (and a denormal like 1e-323 s
overflows whatever divides by it): unknown. 0 itself stays, as some scripts print it for step 0."""
MAX_TRAIN_TIME_S = 100 * 365 * DAY
MAX_ITER = 10**15
MAX_RATE = 1e15  # tokens per second
MAX_ETA_S = 100 * 365 * DAY
"""An ETA beyond this is no forecast (and past it, finish times leave what clocks can show)."""


def number(value: object) -> float | None:
    """`value` as a finite float, or None (bool, text, inf, NaN and out-of-float-range ints are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        v = float(value)
    except OverflowError:  # an int past 1e308
        return None
    return v if math.isfinite(v) else None


def sane(key: str, value: object) -> float | None:
    """A value from a log as a float when it is one a run can have, else None (unknown)."""
    v = number(value)
    if v is None:
        return None
    limit = LIMITS.get(key)
    return v if limit is None or limit.holds(v) else None


def check(key: str, value: object, given: str | None = None) -> float:
    """A user's value for `key`, or ValueError saying what it must be (the caller names the option);
    `given` is the text the user wrote, when there was one."""
    v = number(value)
    limit = LIMITS[key]
    if v is None or not limit.holds(v):
        raise ValueError(f"must be {limit.describe()}, not {_show(value if given is None else given)}")
    return int(v) if limit.integer else v


def within(value: float | None, low: float, high: float) -> float | None:
    """A measured or parsed quantity when it is finite and in [low, high], else None."""
    return value if value is not None and math.isfinite(value) and low <= value <= high else None


def finite(value: float | None) -> float | None:
    """None for anything a JSON document or a gauge cannot carry as a fact."""
    return value if value is not None and math.isfinite(value) else None


def _show(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"
