"""Hugging Face `transformers.Trainer` (and TRL trainers built on it): tqdm bars and logged dicts.

Progress comes from the training bar (`\\r 42%|████▏     | 820/1954 [05:10<07:09,  2.64it/s]`, one
state per `\\r` segment): n/total are `global_step`/`max_steps`, so the parser emits iter = n and
max_iters = total, and the run reads as finished when the bar reaches total. The bar's elapsed and
remaining times are tqdm's wall-clock figures (evaluations included).

The dicts (`{'loss': 1.63, 'grad_norm': …, 'epoch': 0.22}`, `{'eval_loss': …}`, the final
`{'train_runtime': …}`) carry no step. They go to stdout while the bar goes to stderr, so with a
redirected, block-buffered stdout they arrive late and in bursts. A loss dict is therefore attributed
to the latest step the bar showed, and every later bar state carries the latest loss. Dict values may
be numbers or, in transformers ≥ 2025, `.4g`-formatted strings (`'loss': '2.897'`).
"""

from __future__ import annotations

import ast
import re

from parsers.base import INT, NUM, Fatal, FormatDefaults, finite, to_float, to_int
from parsers.events import Checkpoint, ConfigValue, Eval, Event, Iteration, Notice, RunStart

# A bar with no description: the Trainer's (datasets and downloads prefix theirs: `Map: 12%|…`).
_BAR = re.compile(
    rf"^\s*\d+%\|[^|]*\|\s*({INT})/({INT}) \[([\d:]{{1,12}})<([\d:]{{1,12}}|\?)(?:,\s*({NUM}|\?)(it/s|s/it))?"
)
_RUNNING = "***** Running training *****"
_BARE_FLOAT = re.compile(r"(:\s*)(-?(?:nan|inf))(?=\s*[,}])")  # str(dict) writes NaN as a bare `nan`
_TOTAL_STEPS = re.compile(r"Total optimization steps = ([\d,]+)")
_SAVING = re.compile(r"Saving model checkpoint to (.+)$")
_TRAINABLE = re.compile(r"Number of trainable parameters = ([\d,]+)")


class HfParser(FormatDefaults):
    name = "hf"

    def __init__(self) -> None:
        self._fatal = Fatal()
        self._total: int | None = None  # the training bar's total (max_steps)
        self._n = 0  # the training bar's last state
        self._emitted = 0  # the last step sent as an Iteration
        self._loss: float | None = None  # the latest logged training loss
        self._awaiting_bar = False  # a run ended (`train_runtime`) or was announced: a bar from 0 is new

    def parse(self, line: str) -> list[Event]:
        stripped = line.lstrip()
        if stripped.startswith("{'") and line.endswith("}"):
            logged = _dict(stripped)
            if logged is not None:
                return self._logged(logged)
        m = _BAR.match(line)
        events = self._bar(m) if m else []
        # a bar state can be glued to the next real line (`…2.09s/it]Traceback (most recent call last):`)
        fatal = self._fatal.parse(line)
        if fatal is not None:
            return events + fatal
        return events or self._banner(line)

    def _bar(self, m: re.Match[str]) -> list[Event]:
        n, total = int(m.group(1)), int(m.group(2))
        events: list[Event] = []
        if n == 0 and self._awaiting_bar:  # the bar of a new training run in the same log
            self._total, self._n, self._emitted, self._loss, self._awaiting_bar = total, 0, 0, None, False
            events += [RunStart("scratch", "transformers Trainer"), ConfigValue("max_iters", total, "banner")]
        elif self._total is None:  # the first bar (possibly seen part-way, when a transcript kept its last state)
            self._total = total
            events.append(ConfigValue("max_iters", total, "banner"))
        if total != self._total or n <= self._emitted:
            return events  # an evaluation bar, or a redraw of the same state
        self._n = self._emitted = n
        rate, unit = to_float(m.group(5)), m.group(6)
        dt = finite(rate if unit == "s/it" else 1.0 / rate if rate else None)
        events.append(Iteration(
            iter=n, loss=self._loss, dt_s=dt, max_iters=total,
            train_time_s=_clock(m.group(3)), eta_s=_clock(m.group(4)),
        ))
        return events

    def _logged(self, logged: dict[str, float]) -> list[Event]:
        if "loss" in logged:
            self._loss = logged["loss"]
            return [Iteration(self._n, self._loss, max_iters=self._total)]
        if "eval_loss" in logged:
            return [Eval(self._n, None, logged["eval_loss"])]
        if "train_runtime" in logged:
            self._awaiting_bar = True
            events: list[Event] = [Notice("info", f"training finished: train_runtime {logged['train_runtime']:g}s")]
            if self._n and self._total is not None and self._n < self._total:
                events.append(ConfigValue("max_iters", self._n, "banner"))  # stopped early
            return events
        return []

    def _banner(self, line: str) -> list[Event]:
        if _RUNNING in line:
            self._awaiting_bar = True
            return [RunStart("scratch", "transformers Trainer")]
        m = _SAVING.search(line)
        if m:
            return [Checkpoint(m.group(1))]
        for pattern, key in ((_TOTAL_STEPS, "max_iters"), (_TRAINABLE, "params")):
            m = pattern.search(line)
            value = to_int(m.group(1)) if m else None
            if value is not None:
                return [ConfigValue(key, value, "banner")]
        return []


def _dict(text: str) -> dict[str, float] | None:
    """The numbers of a printed log dict; None when the text is not one."""
    try:
        value = ast.literal_eval(_BARE_FLOAT.sub(r"\1'\2'", text[: text.rindex("}") + 1]))
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None
    if not isinstance(value, dict):
        return None
    out: dict[str, float] = {}
    for key, item in value.items():
        number = to_float(item) if isinstance(item, str) else item
        if isinstance(key, str) and isinstance(number, (int, float)) and not isinstance(number, bool):
            out[key] = float(number)
    return out


def _clock(text: str) -> float | None:
    """tqdm's `[H:]MM:SS` as seconds; `?` (not known yet) is None."""
    parts = text.split(":")
    if not all(p.isdigit() for p in parts):
        return None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + int(p)
    return seconds
