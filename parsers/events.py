"""The typed events parsers emit. Frozen dataclasses: they cross the parser → state boundary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Iteration:
    """One logged optimizer step.

    `dt_s` is the duration of that one step as the script printed it; for nanoGPT it includes an
    eval and checkpoint save that ran at the top of the same iteration.
    """

    iter: int
    loss: float | None
    dt_s: float | None = None
    mfu: float | None = None  # ratio, as printed by the script (nanoGPT: against an A100)
    max_iters: int | None = None  # formats that print `step N/M`
    tokens_per_s: float | None = None
    train_time_s: float | None = None  # cumulative training time the script itself prints
    eta_s: float | None = None  # an ETA the script itself prints
    lr: float | None = None  # the learning rate (or its multiplier, nanochat's lrm) the script printed


@dataclass(frozen=True, slots=True)
class Eval:
    iter: int
    train_loss: float | None
    val_loss: float | None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    path: str


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """A configuration value the log states; `origin` says where in the log it came from."""

    key: str
    value: object
    origin: str = "config-file"  # config-file | override | banner


@dataclass(frozen=True, slots=True)
class RunStart:
    """A process started training: `mode` is scratch, resume or pretrained."""

    mode: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """A fatal error: a traceback's last line, an OOM, a kill."""

    type: str
    message: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A line worth showing a person (warnings, compile, fork-specific prints) that changes no state."""

    level: str  # info | warning
    text: str


Event = Iteration | Eval | Checkpoint | ConfigValue | RunStart | ErrorEvent | Notice
