"""karpathy/nanoGPT `train.py` output, its forks' variants, and its echoed config file."""

from __future__ import annotations

import re

from parsers.base import INT, NUM, PLAIN, BulkLine, Fatal, FormatDefaults, finite, to_float
from parsers.events import Checkpoint, ConfigValue, Eval, Event, Iteration, Notice, RunStart
from parsers.nanogpt_config import TRAIN_DEFAULTS
from parsers.pyconfig import override_value, parse_assignment

# nanoGPT's train.py defaults used only for what the log does not state, and always marked as defaults.
DEFAULTS: dict[str, object] = {k: TRAIN_DEFAULTS[k] for k in (
    "max_iters", "log_interval", "eval_interval", "eval_iters", "eval_only", "always_save_checkpoint", "batch_size",
    "block_size", "gradient_accumulation_steps", "n_layer", "n_head", "n_embd", "dataset", "out_dir", "init_from",
    "learning_rate", "decay_lr", "warmup_iters", "lr_decay_iters", "min_lr")}

_ITER = re.compile(
    rf"iter ({INT}): loss ({NUM})(?: [A-Za-z]+)?, time ({NUM})ms(?:, mfu ({NUM})%)?"
)
_EVAL = re.compile(
    rf"^step ({INT})(?:, tokens [\d,]+)?: train loss ({NUM})(?: [A-Za-z]+)?, val loss ({NUM})"
)
_TOKENS = re.compile(r"(?:tokens per iteration will be|total number of tokens per iteration):? (\d[\d,]{0,24})")
_PARAMS = re.compile(r"^number of parameters: ([\d.]+)M")
_CKPT = re.compile(r"^saving checkpoint (?:to|->) (.+)$")
_CONFIG_FILE = re.compile(r"^Overriding config with (.+):$")
_OVERRIDE = re.compile(r"^Overriding: (\w+) = (.*)$")
_VOCAB = re.compile(rf"^found vocab_size = ({INT})")
_DECAYED = re.compile(r"^num (decayed|non-decayed) parameter tensors: \d+, with (\d[\d,]{0,24}) parameters")
_FUSED = re.compile(r"^using fused AdamW: (True|False)")


class NanoGptParser(FormatDefaults):
    name = "nanogpt"
    defaults = DEFAULTS
    zero_based = True  # train.py runs iterations 0..max_iters: `iter N` is step N+1
    bulk = BulkLine(rf"^iter ([0-9]{{1,18}}): loss ({PLAIN}), time ({PLAIN})ms(?:, mfu (-?{PLAIN})%)?\n", iter=0, ms=2,
                    event=lambda *groups: _iteration_of(*groups))
    """The plain iteration line, for reading runs of them in bulk (monitor.model.bulk)."""

    def __init__(self) -> None:
        self._fatal = Fatal()
        self._in_config = False

    def parse(self, line: str) -> list[Event]:
        if line.startswith("iter ") or "iter " in line:
            m = _ITER.search(line)
            if m:
                self._in_config = False
                return [_iteration(m)]
        if line.startswith("step "):
            m = _EVAL.match(line)
            if m:
                self._in_config = False
                return [Eval(int(m.group(1)), to_float(m.group(2)), to_float(m.group(3)))]
        fatal = self._fatal.parse(line)
        if fatal is not None:
            return fatal
        event = self._startup(line)
        if event is not None:
            self._in_config = isinstance(event, ConfigValue) and event.key == "config_file"
            return [event]
        if self._in_config:
            kv = parse_assignment(line)
            if kv is not None:
                return [ConfigValue(kv[0], kv[1], "config-file")]
        return []

    def end_block(self, last_iter: int) -> None:
        """A run of iteration lines was read in bulk: they end a config block as parse() would."""
        self._in_config = False

    def _startup(self, line: str) -> Event | None:
        m = _CKPT.match(line)
        if m:
            return Checkpoint(m.group(1))
        m = _TOKENS.search(line)
        if m:
            return ConfigValue("tokens_per_iter", int(m.group(1).replace(",", "")), "banner")
        m = _PARAMS.match(line)
        if m:
            return ConfigValue("params", round(float(m.group(1)) * 1e6), "banner")
        m = _CONFIG_FILE.match(line)
        if m:
            return ConfigValue("config_file", m.group(1), "banner")
        m = _OVERRIDE.match(line)
        if m:
            return ConfigValue(m.group(1), override_value(m.group(2)), "override")
        if line.startswith("Initializing a new model from scratch"):
            return RunStart("scratch")
        if line.startswith("Resuming training from "):
            return RunStart("resume", line[len("Resuming training from "):])
        if line.startswith("Initializing from OpenAI GPT-2 weights: "):
            return RunStart("pretrained", line.rsplit(" ", 1)[-1])
        m = _VOCAB.match(line)
        if m:
            return ConfigValue("vocab_size", int(m.group(1)), "banner")
        if line.startswith("defaulting to vocab_size of GPT-2"):
            return ConfigValue("vocab_size", 50304, "banner")
        m = _DECAYED.match(line)
        if m:
            return ConfigValue(f"{m.group(1).replace('-', '_')}_params", int(m.group(2).replace(",", "")), "banner")
        m = _FUSED.match(line)
        if m:
            return ConfigValue("fused_adamw", m.group(1) == "True", "banner")
        if line.startswith("compiling the model"):
            return Notice("info", "compiling the model (torch.compile warm-up is inside iteration 0)")
        if line.startswith("WARNING: using slow attention"):
            return Notice("warning", line)
        return None


def _iteration(m: re.Match[str]) -> Iteration:
    return _iteration_of(m.group(1), m.group(2), m.group(3), m.group(4))


def _iteration_of(it: str, loss: str, time_ms: str, mfu_pct: str | None) -> Iteration:
    ms = finite(to_float(time_ms))
    mfu = finite(to_float(mfu_pct))
    return Iteration(
        iter=int(it),
        loss=to_float(loss),
        dt_s=ms / 1000.0 if ms is not None and ms >= 0 else None,
        # nanoGPT prints -100.00% until it has measured five iterations of its own.
        mfu=mfu / 100.0 if mfu is not None and mfu >= 0 and mfu == mfu else None,
    )
