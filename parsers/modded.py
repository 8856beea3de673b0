"""KellerJordan/modded-nanogpt speedrun logs (`logs/<uuid>.txt` and the console), all record formats.

Step numbering: a training line `step:k/N` is printed after the k-th step (k = 1..N), a validation
line `step:s/N val_loss:` after s steps, so the parser emits iter = k, max_iters = N and Eval(iter=s):
the run reads as finished at its last training line `step:N/N`.

`train_time` is the script's own cumulative training clock (stopped during validation). Records up to
early 2025 reset it after step 10 (compilation happened inside steps 1–10): the printed value drops,
e.g. 77676 ms → 214 ms. Iteration.train_time_s keeps counting across the reset (the time before it is
added back), so it is monotonic and still excludes validation; dt_s is its increase per step.
"""

from __future__ import annotations

import re

from parsers.base import INT, NUM, Fatal, FormatDefaults, to_float
from parsers.events import ConfigValue, Eval, Event, Iteration, Notice, RunStart

# The logfile starts with the script's own source, which holds these f-strings with `{step}`:
# requiring digits keeps the source text from reading as progress.
_STEP = re.compile(
    rf"^step:({INT})/({INT}) (?:val_loss:({NUM}) )?(?:train_loss:({NUM}) )?train_time:({INT})ms step_avg:({NUM})ms"
)
_BANNER = re.compile(r"^Running (?:Python \d|PyTorch \S+ compiled for|pytorch \S+ compiled for)")
_GPU_ROW = re.compile(r"^\|\s+\d+\s+(.+?)\s+(?:On|Off)\s+\|")
_DATASET = re.compile(rf"^Training DataLoader: total number of tokens: ({INT})")
_MEMORY = re.compile(rf"^peak memory allocated: ({INT}) MiB")


class ModdedParser(FormatDefaults):
    name = "modded"

    def __init__(self) -> None:
        self._fatal = Fatal()
        self._last_step = 0  # of the last training line
        self._printed_ms = 0  # train_time as printed on the last training line
        self._offset_ms = 0  # printed time lost to the step-10 reset
        self._cumulative_ms = 0
        self._gpu_named = False

    def parse(self, line: str) -> list[Event]:
        if line.startswith("step:"):
            m = _STEP.match(line)
            if m:
                return [self._step(m)]
        if _BANNER.match(line):
            return self._banner()
        fatal = self._fatal.parse(line)
        if fatal is not None:
            return fatal
        m = _GPU_ROW.match(line)
        if m and not self._gpu_named:
            self._gpu_named = True
            return [ConfigValue("gpu_name", m.group(1), "banner")]
        m = _DATASET.match(line)
        if m:
            return [ConfigValue("dataset_tokens", int(m.group(1)), "banner")]
        m = _MEMORY.match(line)
        if m:
            return [ConfigValue("memory_peak_bytes", int(m.group(1)) * 2**20, "banner")]
        if line.startswith("Compiling model"):
            return [Notice("info", line)]
        return []

    def _banner(self) -> list[Event]:
        self._restart()
        self._gpu_named = False
        return [RunStart("scratch", "modded-nanogpt")]

    def _restart(self) -> None:
        self._last_step = self._printed_ms = self._offset_ms = self._cumulative_ms = 0

    def _step(self, m: re.Match[str]) -> Event:
        step, total = int(m.group(1)), int(m.group(2))
        if m.group(3) is not None:
            return Eval(step, None, to_float(m.group(3)))
        printed = int(m.group(5))
        if step <= self._last_step:  # a new run appended without its banner
            self._restart()
        if printed < self._printed_ms:  # the step-10 reset: keep the clock running
            self._offset_ms += self._printed_ms
        cumulative = printed + self._offset_ms
        gap, dt_ms = step - self._last_step, cumulative - self._cumulative_ms
        self._last_step, self._printed_ms, self._cumulative_ms = step, printed, cumulative
        return Iteration(
            iter=step,
            loss=to_float(m.group(4)),
            dt_s=dt_ms / gap / 1000.0 if gap > 0 else None,  # a step-0 line after a restart: no interval
            max_iters=total,
            train_time_s=cumulative / 1000.0,
        )
