"""karpathy/llm.c output: `train_gpt2.cu` stdout (config table, step lines, NVML lines, C-level fatal
errors), the PyTorch reference `train_gpt2.py`, and the `main.log` that `-o DIR` writes.

Step numbering: stdout prints `step k/N` with k = 1..N right after the k-th optimizer step, so the
parser emits iter = k and max_iters = N, and the run reads as finished exactly at its last step line.
Validation runs at the top of a loop index, i.e. after k steps, so `val loss` becomes Eval(iter=k of
the last step line). main.log counts from 0 (`s:0 trl:` is the first step): training lines map to
iter = s + 1 and `tel` (validation) lines to iter = s, which lines both files up on the same axis.
"""

from __future__ import annotations

import re

from parsers.base import INT, NUM, PLAIN, BulkLine, Fatal, FormatDefaults, finite, to_float, to_int
from parsers.events import Checkpoint, ConfigValue, ErrorEvent, Eval, Event, Iteration, Notice, RunStart

_STEP = re.compile(rf"^step\s+({INT})/({INT})\s*[|:]\s*(?:train )?loss\s+({NUM})")
_STEP_C = re.compile(rf"^step ({INT}): train loss ({NUM}) \(took ({NUM}) ms\)")  # train_gpt2.c, 0-based
_FIELD_SPLIT = re.compile(r"[|(),]")
_VAL = re.compile(rf"^val loss ({NUM})")
_MAINLOG = re.compile(rf"^s:({INT}) (trl|tel):({NUM})(?: lr:({NUM}))?")
_ROW = re.compile(r"^\| (.+?)\s*\| (.*?)\s*\|$")
_NVML = re.compile(
    r"^\s+compute\s+([\d.]+)% \| memory: +[\d.]+% \| fan: +\d+% \| +\d+ MHz / +\d+ MHz \| +(\d+) W / +\d+ W"
    r" \| (-?\d+)°C"
)
_LIB_ERROR = re.compile(r"^\[(CUDA|NCCL|NVML|cuDNN|CUDNN|cuBLAS) ERROR\]:?\s*(.*)$")
_AT_FILE = re.compile(r"^at file (\S+?):?$")
_ASSERT = re.compile(r"^\S+: (\S+:\d+): .*Assertion (.*) failed\.$")
_IO_ERROR = re.compile(r"^Error: (.+ at \S+:\d+)$")
_CKPT = re.compile(r"^Writing model to (.+)$")
_PY_BATCH = re.compile(rf"^total desired batch size: ({INT})")
_PY_MEMORY = re.compile(rf"^peak memory consumption: ({INT}) MiB")
_SUMMARIES = ("total average iteration time:", "skipping update due to", "HellaSwag: ")

_TABLE_ROWS: dict[str, str] = {
    "total batch size": "tokens_per_iter",
    "train_num_batches": "max_iters",  # = max_steps, or one epoch of the data when `-x -1`
    "val_loss_every": "eval_interval",
    "micro batch size B": "batch_size",
    "sequence length T": "block_size",
    "num_layers L": "n_layer",
    "num_heads NH": "n_head",
    "channels C": "n_embd",
    "num_parameters": "params",
    "padded_vocab_size Vp": "vocab_size",
    "num_processes": "world_size",
}
_SCHEDULE_ROWS: dict[str, str] = {  # the learning-rate schedule, for the final-loss prediction
    "learning rate (LR)": "learning_rate",
    "warmup iterations": "warmup_iters",
    "final LR fraction": "final_lr_frac",
}


class LlmcParser(FormatDefaults):
    name = "llmc"
    bulk = BulkLine(rf"^step +([0-9]{{1,18}})/([0-9]{{1,18}}) \| loss ({PLAIN}) \([^()|\n]*\)\| norm [^|\n]*\| "
                    rf"lr ([^|(),\n]*)\| ({PLAIN}) ms \| (-?{PLAIN})% bf16 MFU \| ({PLAIN}) tok/s\n",
                    iter=0, ms=4, event=lambda *groups: _bulk_step(*groups), unsafe="ERROR]")
    """train_gpt2.cu's step line, for reading runs of them in bulk (monitor.model.bulk). A library error's `at file`
    line makes the parser take the next line as its message: text holding one is read line by line."""

    def __init__(self) -> None:
        self._fatal = Fatal()
        self._step = 0  # the last step line's k: validation and checkpoints happen after it
        self._table: dict[str, int] = {}
        self._error_kind: str | None = None  # `[CUDA ERROR] at file x:n:` waits for its message line
        self._error_where = ""
        self._sample_rules = 0  # inside `generating:` … `---` text … `---` (model output, not log)

    def parse(self, line: str) -> list[Event]:
        if self._error_kind is not None:
            return [self._library_error(line)]
        if line.startswith("step"):
            events = self._step_line(line)
            if events:
                self._sample_rules = 0
                # a kill can land in the middle of a step line (`... | 3616.slurmstepd: error: ...`)
                return events + (self._fatal.parse(line) or [])
        if self._sample_rules and not _LIB_ERROR.match(line):
            if line == "---":
                self._sample_rules -= 1
            return []
        if line.startswith("s:"):
            m = _MAINLOG.match(line)
            if m:
                return [_mainlog(m)]
        m = _VAL.match(line)
        if m:
            return [Eval(self._step, None, to_float(m.group(1)))]
        if line.startswith("| "):
            return self._row(line)
        fatal = self._fatal.parse(line)
        if fatal is not None:
            return fatal
        return self._other(line)

    def end_block(self, last_iter: int) -> None:
        """Step lines were read in bulk: the last one's step is where evals and checkpoints land."""
        self._step = last_iter
        self._sample_rules = 0

    def _step_line(self, line: str) -> list[Event]:
        m = _STEP.match(line)
        if m:
            self._step = int(m.group(1))
            ms, mfu, tokens, lr = _fields(line[m.end():])
            return [Iteration(
                iter=self._step,
                loss=to_float(m.group(3)),
                dt_s=ms / 1000.0 if ms is not None and ms >= 0 else None,
                # llm.c prints -100% when it has no peak for the GPU
                mfu=mfu / 100.0 if mfu is not None and mfu >= 0 else None,
                max_iters=int(m.group(2)),
                tokens_per_s=tokens,
                lr=lr,
            )]
        m = _STEP_C.match(line)
        if m:
            self._step = int(m.group(1)) + 1
            ms = finite(to_float(m.group(3)))
            return [Iteration(self._step, to_float(m.group(2)), ms / 1000.0 if ms is not None else None)]
        return []

    def _row(self, line: str) -> list[Event]:
        m = _ROW.match(line)
        if not m:
            return []
        key, value = m.group(1), m.group(2)
        if key == "Parameter":  # a new process: `run_gpt2_124M.sh` loops, appending to the same file
            self._table, self._step = {}, 0
            return [RunStart("scratch", "llm.c")]
        if key == "weight init method" and value == "intermediate checkpoint":
            return [RunStart("resume", "llm.c -y 1")]
        if key == "device":
            return [ConfigValue("gpu_name", value, "banner")]
        if key == "LR scheduler":
            return [ConfigValue("lr_scheduler", value, "banner")]
        if key in _SCHEDULE_ROWS:
            number = finite(to_float(value))
            return [ConfigValue(_SCHEDULE_ROWS[key], number, "banner")] if number is not None else []
        if key == "peak TFlops":
            peak = finite(to_float(value))  # -1: llm.c has no figure for this GPU
            return [ConfigValue("gpu_peak_flops", peak * 1e12, "banner")] if peak and 0 < peak < 1e9 else []
        state_key = _TABLE_ROWS.get(key)
        number = to_int(value)
        if state_key is None or number is None:
            return []
        self._table[state_key] = number
        events: list[Event] = [ConfigValue(state_key, number, "banner")]
        if state_key == "params":
            events.extend(self._flops_per_token())
        return events

    def _flops_per_token(self) -> list[Event]:
        """llm.c's own estimate (gpt2_estimate_mfu): 6·N + 6·L·C·T, with N counting all parameters."""
        t = self._table
        if all(k in t for k in ("params", "n_layer", "n_embd", "block_size")):
            value = 6 * t["params"] + 6 * t["n_layer"] * t["n_embd"] * t["block_size"]
            return [ConfigValue("flops_per_token", value, "banner")]
        return []

    def _library_error(self, line: str) -> ErrorEvent:
        kind, where = self._error_kind or "CUDA", self._error_where
        self._error_kind = None
        return _error_event(kind, line.strip(), where)

    def _other(self, line: str) -> list[Event]:
        m = _LIB_ERROR.match(line)
        if m:
            at = _AT_FILE.match(m.group(2))
            if at:  # the message follows on the next line
                self._error_kind, self._error_where = m.group(1), at.group(1)
                return []
            return [_error_event(m.group(1), m.group(2), "")]
        m = _ASSERT.match(line)
        if m:
            return [ErrorEvent("AssertionError", f"{m.group(2)} at {m.group(1)}")]
        m = _IO_ERROR.match(line)
        if m:
            return [ErrorEvent("IOError", m.group(1))]
        m = _NVML.match(line)
        if m:
            return [ConfigValue("gpu_utilization_ratio", float(m.group(1)) / 100.0, "banner"),
                    ConfigValue("gpu_power_watts", float(m.group(2)), "banner"),
                    ConfigValue("gpu_temperature_celsius", float(m.group(3)), "banner")]
        m = _CKPT.match(line)
        if m:
            return [Checkpoint(m.group(1))]
        if line == "generating:":
            self._sample_rules = 2
            return []
        if line.startswith("Running pytorch ") and " compiled for " not in line:
            return [RunStart("scratch", "llm.c train_gpt2.py")]
        m = _PY_BATCH.match(line)
        if m:
            return [ConfigValue("tokens_per_iter", int(m.group(1)), "banner")]
        m = _PY_MEMORY.match(line)
        if m:
            return [ConfigValue("memory_peak_bytes", int(m.group(1)) * 2**20, "banner")]
        if line.startswith(_SUMMARIES):
            return [Notice("info", line)]
        return []


def _fields(rest: str) -> tuple[float | None, float | None, float | None, float | None]:
    """(ms, MFU %, tok/s, lr) from the fields after the loss, in any of the step line's historical layouts.

    Split rather than searched: a search for a number before `ms` costs a scan per position."""
    ms = mfu = tokens = lr = None
    for part in _FIELD_SPLIT.split(rest):
        part = part.strip()
        if part.endswith(" ms"):
            ms = finite(to_float(part[:-3]))
        elif part.endswith("MFU"):
            mfu = finite(to_float(part.partition("%")[0]))
        elif part.endswith(" tok/s"):
            tokens = finite(to_float(part[:-6]))
        elif part.startswith("lr "):
            lr = finite(to_float(part[3:]))
    return ms, mfu, tokens, lr


def _bulk_step(step: str, total: str, loss: str, lr: str, ms: str, mfu: str, tokens: str) -> Iteration:
    """What `_step_line` gives for a line of `LlmcParser.bulk` (plain numbers only)."""
    mfu_pct = float(mfu)
    return Iteration(iter=int(step), loss=float(loss), dt_s=float(ms) / 1000.0,
                     mfu=mfu_pct / 100.0 if mfu_pct >= 0 else None, max_iters=int(total), tokens_per_s=float(tokens),
                     lr=finite(to_float(lr.strip())))


def _mainlog(m: re.Match[str]) -> Event:
    s, value = int(m.group(1)), to_float(m.group(3))
    if m.group(2) == "trl":
        return Iteration(s + 1, value, lr=finite(to_float(m.group(4))))
    return Eval(s, None, value)


def _error_event(kind: str, message: str, where: str) -> ErrorEvent:
    text = f"{message} (at {where})" if where else message
    if "out of memory" in message.lower():
        return ErrorEvent("OutOfMemoryError", text)
    return ErrorEvent(f"{kind}Error", text)
