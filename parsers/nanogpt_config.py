"""nanoGPT's configuration as its `train.py` sees it, read without running anything.

train.py defines its settings as globals, then `configurator.py` runs each config file named on the
command line (`exec`) and applies each `--key=value` (`ast.literal_eval`, else the raw string; the key must
already exist and the value must have the default's type). Here a config file is parsed with `ast` and
every statement must be a plain assignment whose value is a literal, simple arithmetic, or a name set
before it; anything else is an error naming its line, since guessing what code would do is worse.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from parsers.pyconfig import literal_value, override_value

# karpathy/nanoGPT train.py's globals (unchanged since 2023-04). dtype is 'bfloat16' where the GPU supports
# it, else 'float16'; a plan assumes bf16.
TRAIN_DEFAULTS: dict[str, object] = {
    "out_dir": "out", "eval_interval": 2000, "log_interval": 1, "eval_iters": 200, "eval_only": False,
    "always_save_checkpoint": True, "init_from": "scratch",
    "wandb_log": False, "wandb_project": "owt", "wandb_run_name": "gpt2",
    "dataset": "openwebtext", "gradient_accumulation_steps": 5 * 8, "batch_size": 12, "block_size": 1024,
    "n_layer": 12, "n_head": 12, "n_embd": 768, "dropout": 0.0, "bias": False,
    "learning_rate": 6e-4, "max_iters": 600000, "weight_decay": 1e-1, "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0,
    "decay_lr": True, "warmup_iters": 2000, "lr_decay_iters": 600000, "min_lr": 6e-5,
    "backend": "nccl", "device": "cuda", "dtype": "bfloat16", "compile": True,
}


class ConfigError(ValueError):
    """A config file or override trainwatch will not guess at; the message names the line or the key."""


def read_config_file(text: str, name: str, values: dict[str, object]) -> None:
    """Apply the assignments of config file `name` (its `text`) to `values`, in order, as exec would."""
    try:
        tree = ast.parse(text, filename=name)
    except SyntaxError as e:
        raise ConfigError(f"{name}:{e.lineno}: not valid Python ({e.msg})") from None
    except (RecursionError, MemoryError):
        raise ConfigError(f"{name}: an expression nested too deeply to read") from None
    lines = text.splitlines()
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or a bare literal does nothing
        source = _short(lines[stmt.lineno - 1].strip() if stmt.lineno <= len(lines) else "")
        where = f"{name}:{stmt.lineno}"
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
            raise ConfigError(f"{where}: `{source}` is code, not a setting: trainwatch reads config files "
                              "without running them (give the value with --set key=value)")
        key = stmt.targets[0].id
        value = _evaluate(stmt.value, values)
        if value is None:
            raise ConfigError(f"{where}: `{source}`: trainwatch reads numbers, strings, booleans, simple arithmetic "
                              "and names set above, without running the file (give the value with --set key=value)")
        values[key] = value


def apply_override(values: dict[str, object], arg: str, extra_keys: Mapping[str, type] | None = None) -> None:
    """`key=value` as configurator.py applies `--key=value`: an existing key, the default's type.

    `extra_keys` are keys train.py does not have but the caller understands (with their type).
    """
    key, sep, text = arg.partition("=")
    key = key.strip().removeprefix("--")
    if not sep or not key.isidentifier():
        raise ConfigError(f"--set {arg}: write key=value (e.g. --set batch_size=8)")
    value = override_value(text.strip())
    if key in values:
        expected: type = type(values[key])
    elif extra_keys and key in extra_keys:
        expected = extra_keys[key]
    else:
        raise ConfigError(f"--set {arg}: nanoGPT has no setting {key!r} (Unknown config key)")
    if type(value) is not expected:
        raise ConfigError(f"--set {arg}: {key} is {expected.__name__} in nanoGPT, not {type(value).__name__} "
                          f"({text.strip()!r})")
    values[key] = value


def _short(line: str, width: int = 60) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _evaluate(node: ast.expr, values: dict[str, object]) -> object | None:
    """A literal or simple arithmetic; a name set earlier stands for its value (`lr_decay_iters = max_iters`)."""
    class Names(ast.NodeTransformer):
        def visit_Name(self, n: ast.Name) -> ast.AST:
            v = values.get(n.id)
            return ast.Constant(v) if isinstance(v, (int, float, str, bool)) else n

    return literal_value(ast.unparse(Names().visit(node)))
