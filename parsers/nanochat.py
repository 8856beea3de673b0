"""karpathy/nanochat: `base_train`, `mid_train`, `chat_sft`, `chat_rl` output, whole speedrun logs (every
phase in one file, usually a `screen -L` capture) and the `report.md` written at the end.

Step numbering, so that iter is "optimizer steps finished" and a phase reads as finished at its last
training line:
- base_train `step 00012/21400 (…%)` is printed before the step counter moves (0-based, last 21399):
  iter = step + 1, max_iters = N; `Step 21400 | Validation bpb` then lands on iter 21400.
- mid_train / newer chat_sft `step 00012 (…%)` (no total) is printed after it moves: iter = step. The
  total is data-driven; the percentage is the share of the data consumed, so max_iters is re-estimated
  on every line as step / share, and fixed to the last step when the phase prints its `Total training
  time` summary.
- older chat_sft `Step 00012/00682 | Training loss` is 0-based and its loop stops at N-1 without
  training (the last index only evaluates): iter = step + 1, max_iters = N - 1.
- chat_rl `Step 12/100 | … Average reward` is printed while step 12 (0-based) runs: iter = step + 1.
Each phase restarts its counter; when a step number falls back a RunStart opens a new segment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from parsers.base import INT, NUM, Fatal, FormatDefaults, finite, to_float, to_int
from parsers.events import Checkpoint, ConfigValue, Eval, Event, Iteration, Notice, RunStart

_STEP = re.compile(rf"^step ({INT})(?:/({INT}))? \(({NUM})%\) \| loss: ({NUM})")
_SFT_OLD = re.compile(rf"^Step ({INT})/({INT}) \| Training loss: ({NUM})")
_RL = re.compile(rf"^Step ({INT})/({INT}) \| (?:Example step \d+ \| Pass \d+ \| loss: ({NUM}) \| )?Average reward")
_VAL = re.compile(rf"^Step ({INT}) \| Validation (?:bpb|loss): ({NUM})")
_DT = re.compile(rf"\| dt: ({NUM})ms")
_TOK = re.compile(r"\| tok/sec: ([\d,]+)")
_MFU = re.compile(rf"\| (?:bf16_)?mfu: ({NUM})")
_TOTAL = re.compile(rf"\| total time: ({NUM})m")
_ETA = re.compile(rf"\| eta: ({NUM})m")
_LRM = re.compile(rf"\| lrm: ({NUM})")


def _real(text: str) -> float | None:
    return finite(to_float(text))


def _mib(text: str) -> int | None:
    value = _real(text)
    return round(value * 2**20) if value is not None else None


_CONFIG: tuple[tuple[re.Pattern[str], str, Callable[[str], object]], ...] = (  # line → state key, value
    (re.compile(r"^(?:Using user-provided|Calculated) number of iterations(?: from [^:]*)?: ([\d,]+)$"),
     "max_iters", to_int),
    (re.compile(r"^Total batch size ([\d,]+) => gradient accumulation steps"), "tokens_per_iter", to_int),
    (re.compile(rf"^(?:- )?(?:Estimated|Number of) FLOPs per token: ({NUM})$"), "flops_per_token", _real),
    (re.compile(r"^(?:- )?Number of parameters: ([\d,]+)$"), "params", to_int),
    (re.compile(r"^total\s+: ([\d,]+)$"), "params", to_int),  # the `Parameter counts:` block
    (re.compile(r"^Vocab size: ([\d,]+)$"), "vocab_size", to_int),
    (re.compile(r"Distributed world size: (\d+)$"), "world_size", to_int),
    (re.compile(rf"^Peak memory usage: ({NUM})MiB"), "memory_peak_bytes", _mib),
)
_GPU = re.compile(rf"^GPU: (.+?) \| Peak FLOPS \(BF16\): ({NUM})")
_SAVED = re.compile(r" - Saved model (?:file|parameters) to: (.+)$")  # nanochat.checkpoint_manager's log line
_PHASE_END = re.compile(rf"^Total training time: ({NUM})m")
# report.md: each training section ends its phase with its step count and last validation value
_REPORT_STEPS = re.compile(r"^- (?:Calculated )?[Nn]umber of iterations: ([\d,]+)$")
_REPORT_VAL = re.compile(rf"^- (?:Final validation bpb|Validation loss): ({NUM})$")


class NanochatParser(FormatDefaults):
    name = "nanochat"

    def __init__(self) -> None:
        self._fatal = Fatal()
        self._last: int | None = None  # the phase's last step number, training or validation

    def parse(self, line: str) -> list[Event]:
        if line.startswith(("step ", "Step ")):
            events = self._progress(line)
            if events:
                return events
        fatal = self._fatal.parse(line)
        if fatal is not None:
            return fatal
        return self._banner(line)

    def _progress(self, line: str) -> list[Event]:
        m = _STEP.match(line)
        if m:
            iteration = _step_line(m, line)
            return self._at(iteration.iter, iteration)
        m = _VAL.match(line)
        if m:
            return self._at(int(m.group(1)), Eval(int(m.group(1)), None, to_float(m.group(2))))
        m = _SFT_OLD.match(line)
        if m:
            step = int(m.group(1)) + 1
            return self._at(step, Iteration(step, to_float(m.group(3)), max_iters=int(m.group(2)) - 1))
        m = _RL.match(line)
        if m:
            step = int(m.group(1)) + 1
            return self._at(step, Iteration(step, to_float(m.group(3)), max_iters=int(m.group(2))))
        if " | CORE metric: " in line or " | ChatCORE: " in line:
            return [Notice("info", line)]
        return []

    def _at(self, step: int, event: Event) -> list[Event]:
        """The event, after a RunStart when the step counter fell back (a new phase began)."""
        restarted = self._last is not None and step < self._last
        self._last = step
        return [RunStart("scratch", "nanochat phase"), event] if restarted else [event]

    def _banner(self, line: str) -> list[Event]:
        for pattern, key, convert in _CONFIG:
            m = pattern.search(line)
            if m:
                value = convert(m.group(1))
                return [ConfigValue(key, value, "banner")] if value is not None else []
        if line.startswith("Resuming optimization from step "):
            self._last = None  # the resumed counter is not a new phase
            return [RunStart("resume", line.rsplit(" ", 1)[-1])]
        m = _SAVED.search(line)
        if m:
            return [Checkpoint(m.group(1))]
        m = _GPU.match(line)
        if m:
            events: list[Event] = [ConfigValue("gpu_name", m.group(1), "banner")]
            peak = _real(m.group(2))  # `inf` for a GPU nanochat has no figure for
            return events + [ConfigValue("gpu_peak_flops", peak, "banner")] if peak else events
        if _PHASE_END.match(line) and self._last is not None:
            # printed once the loop is over: the phase ran exactly the steps seen so far
            return [ConfigValue("max_iters", self._last, "banner"), Notice("info", line)]
        m = _REPORT_STEPS.match(line)
        if m:
            steps = to_int(m.group(1)) or 0
            return self._at(steps, Iteration(steps, None, max_iters=steps))
        m = _REPORT_VAL.match(line)
        if m and self._last is not None:
            return [Eval(self._last, None, to_float(m.group(1)))]
        return []


def _step_line(m: re.Match[str], line: str) -> Iteration:
    step, total, pct = int(m.group(1)), m.group(2), to_float(m.group(3))
    it = step + 1 if total else step
    max_iters: int | None = int(total) if total else None
    estimate = step * 100.0 / pct if not total and pct and pct > 0 else math.nan
    if math.isfinite(estimate):  # the share of the data consumed estimates the phase's length
        max_iters = math.ceil(estimate)
    dt_ms = finite(_number(_DT, line))
    minutes = finite(_number(_TOTAL, line))
    eta = finite(_number(_ETA, line))
    mfu = finite(_number(_MFU, line))
    lrm = finite(_number(_LRM, line))
    tok = _TOK.search(line)
    return Iteration(
        iter=it,
        loss=to_float(m.group(4)),
        dt_s=dt_ms / 1000.0 if dt_ms is not None else None,
        mfu=mfu / 100.0 if mfu is not None else None,
        max_iters=max_iters,
        tokens_per_s=_real(tok.group(1)) if tok else None,
        train_time_s=minutes * 60.0 if minutes is not None else None,
        eta_s=eta * 60.0 if eta is not None else None,
        lr=lrm,
    )


def _number(pattern: re.Pattern[str], line: str) -> float | None:
    m = pattern.search(line)
    return to_float(m.group(1)) if m else None
