"""The command line's options, and how they combine with the config file and the log."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from monitor import defaults, limits
from monitor.daemon import config
from monitor.daemon.config import Config, RunConfig, Settings
from monitor.daemon.slurm import DEFAULT_INTERVAL_S, SlurmQuery, SlurmWatch
from monitor.daemon.writer import Sources
from monitor.errors import TrainwatchError
from monitor.follow.read import train_bin_tokens
from monitor.hardware.peaks import known_names, lookup
from monitor.model.plan import DEFAULT_MFU, Band, PlanTarget, parse_mfu
from monitor.units import parse_duration
from parsers.detect import PARSERS


def add_run_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what the log may not say (flags override the log)")
    g.add_argument("--max-iters", type=checked("max_iters"),
                   help="iterations of the run (nanoGPT runs 0..max_iters inclusive)")
    g.add_argument("--tokens-per-iter", type=checked("tokens_per_iter"), help="tokens per optimizer step")
    g.add_argument("--eval-interval", type=checked("eval_interval"), help="iterations between evals")
    g.add_argument("--dataset-tokens", type=checked("dataset_tokens"), help="tokens in the training set, for epochs")
    g.add_argument("--data-dir", help="nanoGPT data directory holding train.bin (uint16 tokens: size/2)")
    g.add_argument("--format", choices=[*PARSERS, "auto"],
                   help="log format: nanogpt, llmc, modded, nanochat, hf, auto (default: detected)")
    g.add_argument("--run-name", help="run label (default: the log's file name without extension)")
    g.add_argument("--power-watts", type=checked("power_watts"), help="GPU power to assume when NVML is absent")
    g.add_argument("--price-per-kwh", type=checked("price_per_kwh"), help="electricity price, for cost")
    g.add_argument("--target-loss", type=checked("target_loss"), metavar="X",
                   help="the final val loss you hope for: notified when the predicted band is above it")


def add_follow_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("following")
    g.add_argument("--config", help="TOML config file (default: $XDG_CONFIG_HOME/trainwatch/config.toml if present)")
    g.add_argument("--poll", action="store_true", default=None, help="poll only (no inotify), e.g. on NFS/Lustre")
    g.add_argument("--poll-interval", type=checked("poll_interval", parse_duration), metavar="DURATION",
                   help=f"how often files are re-read when no file event comes (default {defaults.POLL_INTERVAL_S:g}s)")
    g.add_argument("--keep-finished", type=checked("keep_finished", parse_duration), metavar="DURATION",
                   help="drop finished or crashed runs this long after their last line (default: keep)")
    g.add_argument("--max-runs", type=checked("max_runs"),
                   help=f"follow at most this many logs (default {defaults.MAX_RUNS})")
    g.add_argument("--publish-interval", type=checked("publish_interval", parse_duration), metavar="DURATION",
                   help=f"rebuild snapshots at most this often (default {defaults.PUBLISH_INTERVAL_S:g}s; a line "
                        "after a quiet spell is "
                        "published at once): the CPU guard for logs that print hundreds of lines a second")
    g.add_argument("--no-gpu", action="store_true", help="do not read NVML")
    g.add_argument("--gpu", type=_gpu_arg, metavar="0,1|NAME",
                   help="GPU indexes of the run (default: found from its process), or the GPU a plan is for "
                        '("RTX 4070", with --plan-mfu)')
    g.add_argument("--gpu-interval", type=checked("gpu_interval", parse_duration), metavar="DURATION",
                   help=f"how often GPUs are sampled (default {defaults.GPU_INTERVAL_S:g}s)")
    g.add_argument("--peak-flops", type=checked("peak_flops"),
                   help="the GPU's dense bf16 peak FLOP/s, for MFU (default: from its name)")
    sl = p.add_argument_group("Slurm (or [slurm] in the config file)")
    sl.add_argument("--slurm", action="store_true", default=None,
                    help="also follow your Slurm jobs' output, each job a run, with its time limit")
    sl.add_argument("--slurm-all", action="store_true", default=None,
                    help="every user's jobs, not only yours (an admin's view: see the README's security notes)")
    sl.add_argument("--slurm-partition", metavar="PARTITION", help="only jobs in this partition")
    sl.add_argument("--slurm-name", metavar="GLOB", help="only jobs whose name matches, e.g. 'gpt2-*'")
    sl.add_argument("--slurm-interval", type=checked("slurm_interval", parse_duration), metavar="DURATION",
                    help=f"how often Slurm is asked, one squeue for all jobs (default {DEFAULT_INTERVAL_S:g}s)")
    n = p.add_argument_group("notifications")
    n.add_argument("--notify", action="append", metavar="URL",
                   help="apprise URL (ntfy://topic, slack://…, json://host:port/path…); repeatable")
    n.add_argument("--notify-before", type=checked("notify_before", parse_duration), metavar="DURATION",
                   help=f"'finishing soon' lead time (default {defaults.NOTIFY_BEFORE_S / 60:g}m)")
    n.add_argument("--notify-milestones", type=_fractions, metavar="25,50,75",
                   help="also notify at these percentages of the run (default: none)")


def checked(key: str, parse: Callable[[str], float] | None = None) -> Callable[[str], float]:
    """An argparse `type` that parses a flag's text and checks it against monitor.limits: argparse then
    prints one line naming the flag (`argument --max-iters: must be a whole number from 0 to 1e+15, not -5`)."""
    def convert(text: str) -> float:
        try:
            value = parse(text) if parse is not None else _number(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e) if parse is not None else f"not a number: {text!r}") from None
        try:
            return limits.check(key, value, text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = key  # argparse names the type in some messages
    return convert


def _number(text: str) -> float:
    """`5000`, `1e6`, `3.68e9`: whole numbers stay exact."""
    try:
        return int(text.replace("_", ""))
    except ValueError:
        return float(text)


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) / 100 for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of percentages: {text!r}") from None
    if not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"percentages must be between 0 and 100: {text!r}")
    return values


def _gpu_arg(text: str) -> list[int] | str:
    """`0,1`: the run's GPU indexes; anything else names the GPU a plan is for."""
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        return text


def add_plan_options(p: argparse.ArgumentParser, gpu_name: bool) -> None:
    g = p.add_argument_group("a plan for the run: planned time and energy beside the live forecast")
    g.add_argument("--plan-mfu", metavar="F[-F]", help="the MFU the plan assumes, e.g. 0.35 or 0.3-0.45 "
                   "(default 0.3-0.5), on the GPU of --gpu NAME (default: the one NVML finds)")
    if gpu_name:
        g.add_argument("--gpu", metavar="NAME", help='the GPU the plan is for, e.g. "RTX 4070"')


def plan_target(args: argparse.Namespace) -> PlanTarget | None:
    """The plan `--plan-mfu` / `--gpu NAME` ask for, or None."""
    gpu = getattr(args, "gpu", None)
    name = gpu if isinstance(gpu, str) else None
    mfu = getattr(args, "plan_mfu", None)
    if mfu is None and name is None:
        return None
    spec = lookup(name) if name else None
    if name and spec is None:
        raise TrainwatchError(f"--gpu {name!r}: not a GPU trainwatch knows (known: {', '.join(known_names())})")
    return PlanTarget(spec, parse_mfu(mfu) if mfu else Band(*DEFAULT_MFU))


def add_listen_option(p: argparse.ArgumentParser, flag: str, optional: bool, help: str) -> None:
    if optional:  # an optional feature: the bare flag turns it on at the default address
        p.add_argument(flag, nargs="?", const=defaults.LISTEN, metavar="HOST:PORT",
                       help=f"{help} (default {defaults.LISTEN})")
    else:
        p.add_argument(flag, metavar="HOST:PORT", help=f"{help} (default {defaults.LISTEN})")
    p.add_argument("--tls-cert", help="serve metrics over TLS with this certificate (PEM)")
    p.add_argument("--tls-key", help="the certificate's private key (PEM)")
    p.add_argument("--basic-auth-file", help="file holding USER:PASSWORD: scrapes, the page and the API must "
                   "authenticate (and `trainwatch URL` sends it)")


def read_basic_auth(path: str) -> tuple[str, str]:
    """USER:PASSWORD from a file (kept out of the command line, which `ps` shows)."""
    try:
        with open(path) as fh:
            user, _, password = fh.read().strip().partition(":")
    except OSError as e:
        raise TrainwatchError(f"--basic-auth-file: {e.strerror}") from None
    if not user or not password:
        raise TrainwatchError("--basic-auth-file must hold USER:PASSWORD")
    return user, password


def user_settings(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    for key in ("max_iters", "tokens_per_iter", "eval_interval", "dataset_tokens"):
        v = getattr(args, key, None)
        if v is not None:
            out[key] = v
    data_dir = getattr(args, "data_dir", None)
    if data_dir:
        try:
            out["dataset_tokens"] = train_bin_tokens(data_dir)
        except OSError as e:
            raise TrainwatchError(f"--data-dir: cannot read {e.filename}: {e.strerror}") from None
    return out


def run_name(args: argparse.Namespace, log: str) -> str:
    return getattr(args, "run_name", None) or os.path.splitext(os.path.basename(log))[0]


def follow_sources(args: argparse.Namespace, cfg: Config, slurm: SlurmWatch | None = None) -> Sources:
    """The runs to follow: the config's, the command line's and the Slurm jobs', flags overriding all."""
    if not args.logs and not cfg.runs and slurm is None:
        raise TrainwatchError("no log to follow: name one (trainwatch LOG), add [[run]] to the config file, "
                              "or follow your Slurm jobs (--slurm)")
    if args.run_name and len(args.logs) == 1 and not cfg.runs:
        cfg = replace(cfg, runs=(RunConfig(log=args.logs[0], name=args.run_name),))
        args = argparse.Namespace(**{**vars(args), "logs": []})
    flags = {"settings": user_settings(args), "format": args.format, "power_watts": args.power_watts,
             "price_per_kwh": args.price_per_kwh, "plan": plan_target(args),
             "target_loss": args.target_loss}
    return config.sources(cfg, list(args.logs), flags, jobs=slurm.specs if slurm is not None else None)


def slurm_wanted(args: argparse.Namespace, cfg: Config) -> bool:
    """--slurm, a narrowing --slurm-… flag, or a `[slurm]` table that is not `enabled = false`."""
    table = cfg.slurm is not None and cfg.slurm.get("enabled", True)
    return bool(table or args.slurm or args.slurm_all or args.slurm_partition or args.slurm_name)


def slurm_watch(args: argparse.Namespace, cfg: Config) -> SlurmWatch | None:
    """The Slurm jobs to follow, when --slurm (or a narrowing --slurm-… flag, or `[slurm]`) asks for them."""
    if not slurm_wanted(args, cfg):
        return None
    table = cfg.slurm if cfg.slurm is not None and cfg.slurm.get("enabled", True) else {}
    query = SlurmQuery(all_users=bool(args.slurm_all or table.get("all_users", False)),
                       partition=args.slurm_partition or table.get("partition"),
                       name=args.slurm_name or table.get("name"))
    return SlurmWatch(query, interval_s=args.slurm_interval or table.get("interval", DEFAULT_INTERVAL_S),
                      keep_s=effective(args, cfg).keep_finished)


def effective(args: argparse.Namespace, cfg: Config) -> Settings:
    """The settings a following command runs with: each flag given, else the config file's value, else the
    defaults table's."""
    def flag(name: str) -> Any:
        return getattr(args, name, None)

    notify, gpu = flag("notify"), flag("gpu")
    return cfg.settings.overridden(
        listen=flag("listen"), poll=flag("poll"), poll_interval=flag("poll_interval"),
        publish_interval=flag("publish_interval"), gpu_interval=flag("gpu_interval"),
        keep_finished=flag("keep_finished"), max_runs=flag("max_runs"), notify_before=flag("notify_before"),
        notify=tuple(notify) if notify else None, notify_milestones=flag("notify_milestones") or None,
        gpu=tuple(gpu) if isinstance(gpu, list) and gpu else None,  # a name (`--gpu "RTX 4070"`) is a plan's
        peak_flops=flag("peak_flops"))
