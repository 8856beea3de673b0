"""The TOML config file: defaults for every run and `[[run]]` sections, checked strictly.

Precedence, highest first: command-line flags > this file > what the log states > the format's
defaults. An unknown key is an error that names the key and its line, since a typo silently ignored
(`max_iter = …`) is a forecast silently wrong. So is a value of the wrong type or out of range
(`logs = [5]`, `poll_interval = inf`): every key has a converter in the schema below, numbers are checked
against monitor.limits, and what comes out is frozen and typed (`Settings`, `RunConfig`), so nothing past
this module meets a wrong type or an absurd value.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from monitor import defaults, limits
from monitor.daemon.writer import RunSpec
from monitor.errors import TrainwatchError
from monitor.follow.read import train_bin_tokens
from monitor.units import parse_duration
from parsers.detect import AUTO, PARSERS

SETTINGS = ("max_iters", "tokens_per_iter", "eval_interval", "dataset_tokens")


@dataclass(frozen=True, slots=True)
class Settings:
    """The global keys, typed; each default is the defaults table's (monitor/defaults.py). Flags override
    them through `overridden` (a flag left out is None)."""

    listen: str = defaults.LISTEN
    poll: bool = False
    poll_interval: float = defaults.POLL_INTERVAL_S
    publish_interval: float = defaults.PUBLISH_INTERVAL_S
    gpu_interval: float = defaults.GPU_INTERVAL_S
    keep_finished: float | None = None  # None: keep finished runs for good
    max_runs: int = defaults.MAX_RUNS
    notify_before: float = defaults.NOTIFY_BEFORE_S
    notify: tuple[str, ...] = ()  # apprise URLs, the same for every run
    notify_milestones: tuple[float, ...] = ()  # fractions of the run
    gpu: tuple[int, ...] | None = None  # None: found from the run's process
    peak_flops: float | None = None
    logs: tuple[str, ...] = ()

    def overridden(self, **flags: Any) -> Settings:
        """These settings with every flag that was given (not None) in place of the file's value."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


@dataclass(frozen=True)
class RunConfig:
    """One `[[run]]` (or a log named on the command line) with the defaults folded in."""

    log: str  # a path, a glob, or a directory (its *.log files)
    name: str | None = None
    format: str | None = None
    settings: dict[str, object] = field(default_factory=dict)
    power_watts: float | None = None
    price_per_kwh: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    target_loss: float | None = None


@dataclass(frozen=True)
class Config:
    runs: tuple[RunConfig, ...] = ()
    settings: Settings = Settings()
    path: str | None = None
    run_defaults: dict[str, Any] = field(default_factory=dict)  # top-level run keys, for logs named in flags
    slurm: dict[str, Any] | None = None  # the `[slurm]` table (interval in seconds), None without one


# ---- the schema: one converter per key, raising ValueError("must be …, not …") --------------------

Convert = Callable[[Any], Any]


def _bad(what: str, value: object) -> ValueError:
    shown = repr(value)
    return ValueError(f"must be {what}, not {shown if len(shown) <= 40 else shown[:39] + '…'}")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _bad("text", value)
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _bad("true or false", value)
    return value


def _number(key: str) -> Convert:
    def convert(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(limits.LIMITS[key].describe(), value)
        return limits.check(key, value)
    return convert


def _seconds(key: str) -> Convert:
    """A duration: `"90s"`, `"1h30m"` or a number of seconds, in the key's range."""
    def convert(value: object) -> float:
        what = 'a duration ("90s", "10m") or a number of seconds'
        if isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError:
                raise _bad(what, value) from None
            return limits.check(key, seconds, value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(what, value)
        return limits.check(key, value)
    return convert


def _texts(what: str) -> Convert:
    def convert(value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _bad(f"a list of {what}", value)
        return tuple(value)
    return convert


def _percentages(value: Any) -> tuple[float, ...]:
    ok = isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 100 for v in value)
    if not ok:
        raise _bad("a list of percentages between 0 and 100 ([25, 50, 75])", value)
    return tuple(v / 100 for v in value)


def _gpus(value: Any) -> tuple[int, ...]:
    ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1024
                                         for v in value)
    if not ok:
        raise _bad("a list of GPU indexes ([0, 1])", value)
    return tuple(value)


def _labels(value: Any) -> dict[str, str]:
    ok = isinstance(value, dict) and all(isinstance(v, str) and re.fullmatch(r"[a-zA-Z_]\w*", k)
                                         for k, v in value.items())
    if not ok:
        raise _bad('name = "text" pairs ({ cluster = "a" })', value)
    return dict(value)


def _format(value: object) -> str:
    if value not in (*PARSERS, AUTO):
        raise _bad(f"one of {', '.join(sorted([*PARSERS, AUTO]))}", value)
    return str(value)


RUN_SCHEMA: dict[str, Convert] = {
    "log": _text, "name": _text, "format": _format, "data_dir": _text, "labels": _labels,
    **{k: _number(k) for k in (*SETTINGS, "power_watts", "price_per_kwh", "target_loss")},
}
GLOBAL_SCHEMA: dict[str, Convert] = {
    **{k: v for k, v in RUN_SCHEMA.items() if k not in ("log", "name")},
    "listen": _text, "poll": _flag, "max_runs": _number("max_runs"), "peak_flops": _number("peak_flops"),
    **{k: _seconds(k) for k in ("poll_interval", "publish_interval", "gpu_interval", "notify_before",
                                "keep_finished")},
    "gpu": _gpus, "logs": _texts("log paths or globs"), "notify": _texts("notification URLs"),
    "notify_milestones": _percentages,  # notifications go to the same places for every run
}
SLURM_SCHEMA: dict[str, Convert] = {
    "enabled": _flag, "all_users": _flag, "partition": _text, "name": _text, "interval": _seconds("slurm_interval"),
}
"""`[slurm]`: its presence follows the Slurm jobs (`enabled = false` keeps the table but turns it off)."""
_SETTINGS_KEYS = frozenset(f.name for f in fields(Settings))


def default_path() -> str:
    return os.path.join(defaults.xdg_dir("config"), "config.toml")


def load_config(path: str | None, *, required: bool = False) -> Config:
    """The file at `path` (or the default location, if it exists); an empty Config when there is none."""
    where = path or default_path()
    try:
        with open(where, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        if required or path:
            raise TrainwatchError(f"{where}: no such config file") from None
        return Config()
    except OSError as e:
        raise TrainwatchError(f"{where}: {e.strerror}") from None
    text = raw.decode("utf-8", "replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise TrainwatchError(f"{where}: {e}") from None
    except RecursionError:
        line, key = _deepest(text)
        raise TrainwatchError(f"{where}:{line}: `{key}` is nested too deeply (arrays or tables within each other)") \
            from None
    return parse(doc, text, where)


def parse(doc: dict[str, Any], text: str, where: str) -> Config:
    runs_raw = doc.pop("run", [])
    if not isinstance(runs_raw, list) or not all(isinstance(r, dict) for r in runs_raw):
        raise TrainwatchError(f"{where}:{_line(text, 'run')}: `run` must be [[run]] tables")
    slurm_raw = doc.pop("slurm", None)
    if slurm_raw is not None and not isinstance(slurm_raw, dict):
        raise TrainwatchError(f"{where}:{_line(text, 'slurm')}: `slurm` must be a [slurm] table")
    slurm = None if slurm_raw is None else _check(slurm_raw, SLURM_SCHEMA, text, where, "slurm.")
    options = _check(doc, GLOBAL_SCHEMA, text, where, "")
    run_defaults = {k: v for k, v in options.items() if k in RUN_SCHEMA}
    runs = [_run({**run_defaults, **_check(r, RUN_SCHEMA, text, where, "run.")}, text, where) for r in runs_raw]
    runs += [_run({**run_defaults, "log": log}, text, where) for log in options.get("logs", ())]
    settings = Settings(**{k: v for k, v in options.items() if k in _SETTINGS_KEYS})
    return Config(runs=tuple(runs), settings=settings, path=where, run_defaults=run_defaults, slurm=slurm)


def _run(values: dict[str, Any], text: str, where: str) -> RunConfig:
    if "log" not in values:
        raise TrainwatchError(f"{where}: a [[run]] needs `log = \"path or glob\"`")
    settings = {k: values[k] for k in SETTINGS if k in values}
    if "data_dir" in values:
        try:
            settings["dataset_tokens"] = train_bin_tokens(values["data_dir"])
        except OSError as e:
            raise TrainwatchError(f"{where}:{_line(text, 'data_dir')}: cannot read {e.filename}: {e.strerror}") \
                from None
    return RunConfig(log=os.path.expanduser(values["log"]), name=values.get("name"), format=values.get("format"),
                     settings=settings, power_watts=values.get("power_watts"),
                     price_per_kwh=values.get("price_per_kwh"), labels=dict(values.get("labels", {})),
                     target_loss=values.get("target_loss"))


def _check(table: dict[str, Any], schema: dict[str, Convert], text: str, where: str, prefix: str) -> dict[str, Any]:
    """Every key known and every value converted, or one error naming the key and its line."""
    out = {}
    for key, value in table.items():
        if key not in schema:
            raise TrainwatchError(f"{where}:{_line(text, key)}: unknown key `{prefix}{key}` "
                                  f"(known: {', '.join(sorted(schema))})")
        try:
            out[key] = schema[key](value)
        except ValueError as e:
            raise TrainwatchError(f"{where}:{_line(text, key)}: `{prefix}{key}` {e}") from None
    return out


def _deepest(text: str, limit: int = 100) -> tuple[int, str]:
    """The line and key of the first value nested more than `limit` deep (brackets in strings and
    comments are counted too: the file is already known to be broken there)."""
    depth = 0
    for pos, ch in enumerate(text):
        depth += (ch in "[{") - (ch in "]}")
        if depth > limit:
            start = text.rfind("\n", 0, pos) + 1
            m = re.match(r"[ \t]*([\w.\"'-]+)[ \t]*=", text[start:pos])
            return text.count("\n", 0, pos) + 1, m.group(1).strip("\"'") if m else "?"
    return 1, "?"


def _line(text: str, key: str) -> int:
    """The first line that assigns `key` (tomllib gives no positions for keys)."""
    pattern = re.compile(rf"^[ \t]*(?:\[\[?[ \t]*)?\"?{re.escape(key)}\"?[ \t]*(?:=|\]\])", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def expand(pattern: str) -> list[str]:
    """A log path, a glob (`runs/*/out.log`) or a directory (its `*.log` files), as sorted paths.

    A plain path that does not exist yet is kept: the tail waits for it to appear. A path that exists is
    that path, even when it looks like a glob (`r[1].log`).
    """
    if os.path.isdir(pattern):
        return sorted(glob.glob(os.path.join(glob.escape(pattern), "*.log")))
    if is_glob(pattern):
        return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return [pattern]


def is_glob(pattern: str) -> bool:
    return glob.has_magic(pattern) and not os.path.lexists(pattern)


def sources(cfg: Config, logs: list[str], flags: dict[str, Any],
            jobs: Callable[[RunSpec], list[RunSpec]] | None = None) -> Callable[[], list[RunSpec]]:
    """What to follow, re-evaluated on each call (globs find new logs): the config's runs, then the logs
    named on the command line (with the config's defaults), then the outputs of Slurm `jobs` (given the
    settings every job shares); `flags` (settings, format, power_watts, price_per_kwh,
    target_loss; None = not given)
    override all of them."""
    entries = [*cfg.runs, *(_run({**cfg.run_defaults, "log": os.path.expanduser(p)}, "", "") for p in logs)]
    settings = {k: v for k, v in flags.get("settings", {}).items() if v is not None}

    def spec(rc: RunConfig, path: str, name: str) -> RunSpec:
        return RunSpec(log=path, name=name, format=flags.get("format") or rc.format,
                       user={**rc.settings, **settings}, labels=dict(rc.labels),
                       power_watts=_first(flags.get("power_watts"), rc.power_watts),
                       price_per_kwh=_first(flags.get("price_per_kwh"), rc.price_per_kwh), plan=flags.get("plan"),
                       target_loss=_first(flags.get("target_loss"), rc.target_loss))

    job_base = spec(_run({**cfg.run_defaults, "log": ""}, "", ""), "", "")

    def resolve() -> list[RunSpec]:
        specs: dict[str, RunSpec] = {}
        for rc in entries:
            paths = expand(rc.log)
            for path in paths:
                if path in specs:
                    continue
                name = rc.name if rc.name and len(paths) == 1 and not is_glob(rc.log) else \
                    default_name(path, rc.log)
                specs[path] = spec(rc, path, name)
        specs.update((s.log, s) for s in (jobs(job_base) if jobs is not None else ()))  # a job's own word wins
        return _unique_names(list(specs.values()))

    return resolve


def default_name(path: str, pattern: str) -> str:
    """The file name without extension; for a glob whose file name is fixed (`runs/*/out.log`), the
    folder name instead, since every match would otherwise be called `out`."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if is_glob(pattern) and not glob.has_magic(os.path.basename(pattern)):
        return os.path.basename(os.path.dirname(path)) or stem
    return stem


def _unique_names(specs: list[RunSpec]) -> list[RunSpec]:
    """Two logs of the same name in different folders get `name`, `name-2`… in path order (stable)."""
    seen: dict[str, int] = {}
    out = []
    for spec in sorted(specs, key=lambda s: s.log):
        n = seen.get(spec.name, 0) + 1
        seen[spec.name] = n
        out.append(spec if n == 1 else replace(spec, name=f"{spec.name}-{n}"))
    return out


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)
