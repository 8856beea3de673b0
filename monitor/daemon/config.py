"""The TOML config file: defaults for every run and `[[run]]` sections, checked strictly.

Precedence, highest first: command-line flags > this file > what the log states > the format's
defaults. An unknown key is an error that names the key and its line, since a typo silently ignored
(`max_iter = …`) is a forecast silently wrong.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from monitor.daemon.writer import RunSpec
from monitor.errors import TrainwatchError
from monitor.follow.read import train_bin_tokens
from monitor.units import parse_duration

RUN_KEYS: dict[str, type | tuple[type, ...]] = {
    "log": str, "name": str, "format": str, "max_iters": int, "tokens_per_iter": int, "eval_interval": int,
    "dataset_tokens": (int, float), "data_dir": str, "power_watts": (int, float), "price_per_kwh": (int, float),
    "labels": dict, "target_loss": (int, float),
}
GLOBAL_KEYS: dict[str, type | tuple[type, ...]] = {
    **{k: v for k, v in RUN_KEYS.items() if k not in ("log", "name")},
    "listen": str, "poll": bool, "poll_interval": (str, int, float), "notify_before": (str, int, float),
    "keep_finished": (str, int, float), "max_runs": int, "gpu": list, "peak_flops": (int, float),
    "publish_interval": (str, int, float),
    "logs": list, "notify": list, "notify_milestones": list,  # notifications go to the same places for every run
}
SLURM_KEYS: dict[str, type | tuple[type, ...]] = {
    "enabled": bool, "all_users": bool, "partition": str, "name": str, "interval": (str, int, float),
}
"""`[slurm]`: its presence follows the Slurm jobs (`enabled = false` keeps the table but turns it off)."""
SETTINGS = ("max_iters", "tokens_per_iter", "eval_interval", "dataset_tokens")


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
    options: dict[str, Any] = field(default_factory=dict)  # global keys: listen, poll_interval, …
    path: str | None = None
    slurm: dict[str, Any] | None = None  # the `[slurm]` table (interval in seconds), None without one


def default_path() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "trainwatch", "config.toml")


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
    return parse(doc, text, where)


def parse(doc: dict[str, Any], text: str, where: str) -> Config:
    runs_raw = doc.pop("run", [])
    if not isinstance(runs_raw, list):
        raise TrainwatchError(f"{where}:{_line(text, 'run')}: `run` must be [[run]] tables")
    slurm_raw = doc.pop("slurm", None)
    if slurm_raw is not None and not isinstance(slurm_raw, dict):
        raise TrainwatchError(f"{where}:{_line(text, 'slurm')}: `slurm` must be a [slurm] table")
    slurm = None if slurm_raw is None else _check(slurm_raw, SLURM_KEYS, text, where, "slurm.")
    if slurm is not None and isinstance(slurm.get("interval"), str):
        slurm["interval"] = _duration(slurm["interval"], "interval", text, where)
    options = _check(doc, GLOBAL_KEYS, text, where, "")
    for key in ("poll_interval", "notify_before", "keep_finished", "publish_interval"):
        if key in options and isinstance(options[key], str):
            options[key] = _duration(options[key], key, text, where)
    defaults = {k: v for k, v in options.items() if k in RUN_KEYS}
    runs = [_run({**defaults, **_check(r, RUN_KEYS, text, where, "run.")}, text, where) for r in runs_raw]
    runs += [_run({**defaults, "log": log}, text, where) for log in options.get("logs", [])]
    return Config(runs=tuple(runs), options=options, path=where, slurm=slurm)


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
    labels = values.get("labels", {})
    if not all(isinstance(v, str) and re.fullmatch(r"[a-zA-Z_]\w*", k) for k, v in labels.items()):
        raise TrainwatchError(f"{where}:{_line(text, 'labels')}: labels must be name = \"text\" pairs")
    return RunConfig(log=os.path.expanduser(values["log"]), name=values.get("name"), format=values.get("format"),
                     settings=settings, power_watts=values.get("power_watts"),
                     price_per_kwh=values.get("price_per_kwh"), labels=dict(labels),
                     target_loss=values.get("target_loss"))


def _check(table: dict[str, Any], allowed: dict[str, type | tuple[type, ...]], text: str, where: str,
           prefix: str) -> dict[str, Any]:
    for key, value in table.items():
        if key not in allowed:
            raise TrainwatchError(f"{where}:{_line(text, key)}: unknown key `{prefix}{key}` "
                                  f"(known: {', '.join(sorted(allowed))})")
        want = allowed[key]
        if isinstance(value, bool) and want is not bool and bool not in (want if isinstance(want, tuple) else ()):
            raise TrainwatchError(f"{where}:{_line(text, key)}: `{prefix}{key}` must not be true/false")
        if not isinstance(value, want):
            raise TrainwatchError(f"{where}:{_line(text, key)}: `{prefix}{key}` has the wrong type "
                                  f"({type(value).__name__})")
    return dict(table)


def _duration(value: str, key: str, text: str, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise TrainwatchError(f"{where}:{_line(text, key)}: {e}") from None


def _line(text: str, key: str) -> int:
    """The first line that assigns `key` (tomllib gives no positions for keys)."""
    pattern = re.compile(rf"^[ \t]*(?:\[\[?[ \t]*)?\"?{re.escape(key)}\"?[ \t]*(?:=|\]\])", re.M)
    m = pattern.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def expand(pattern: str) -> list[str]:
    """A log path, a glob (`runs/*/out.log`) or a directory (its `*.log` files), as sorted paths.

    A plain path that does not exist yet is kept: the tail waits for it to appear.
    """
    if os.path.isdir(pattern):
        return sorted(glob.glob(os.path.join(glob.escape(pattern), "*.log")))
    if glob.has_magic(pattern):
        return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    return [pattern]


def sources(cfg: Config, logs: list[str], flags: dict[str, Any],
            jobs: Callable[[RunSpec], list[RunSpec]] | None = None) -> Callable[[], list[RunSpec]]:
    """What to follow, re-evaluated on each call (globs find new logs): the config's runs, then the logs
    named on the command line (with the config's defaults), then the outputs of Slurm `jobs` (given the
    settings every job shares); `flags` (settings, format, power_watts, price_per_kwh,
    target_loss; None = not given)
    override all of them."""
    defaults = {k: v for k, v in cfg.options.items() if k in RUN_KEYS}
    entries = [*cfg.runs, *(_run({**defaults, "log": os.path.expanduser(p)}, "", "") for p in logs)]
    settings = {k: v for k, v in flags.get("settings", {}).items() if v is not None}

    def spec(rc: RunConfig, path: str, name: str) -> RunSpec:
        return RunSpec(log=path, name=name, format=flags.get("format") or rc.format,
                       user={**rc.settings, **settings}, labels=dict(rc.labels),
                       power_watts=_first(flags.get("power_watts"), rc.power_watts),
                       price_per_kwh=_first(flags.get("price_per_kwh"), rc.price_per_kwh), plan=flags.get("plan"),
                       target_loss=_first(flags.get("target_loss"), rc.target_loss))

    job_base = spec(_run({**defaults, "log": ""}, "", ""), "", "")

    def resolve() -> list[RunSpec]:
        specs: dict[str, RunSpec] = {}
        for rc in entries:
            paths = expand(rc.log)
            for path in paths:
                if path in specs:
                    continue
                name = rc.name if rc.name and len(paths) == 1 and not glob.has_magic(rc.log) else \
                    default_name(path, rc.log)
                specs[path] = spec(rc, path, name)
        specs.update((s.log, s) for s in (jobs(job_base) if jobs is not None else ()))  # a job's own word wins
        return _unique_names(list(specs.values()))

    return resolve


def default_name(path: str, pattern: str) -> str:
    """The file name without extension; for a glob whose file name is fixed (`runs/*/out.log`), the
    folder name instead, since every match would otherwise be called `out`."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if glob.has_magic(pattern) and not glob.has_magic(os.path.basename(pattern)):
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
