"""The generic top-level names belong to trainwatch alone, and headless code never loads the UI."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _editable() -> bool:
    direct = importlib.metadata.distribution("trainwatch").read_text("direct_url.json") or ""
    return json.loads(direct or "{}").get("dir_info", {}).get("editable", False)


@pytest.mark.parametrize("name", ["monitor", "parsers", "exporters"])
def test_top_level_package_is_owned_by_trainwatch_alone(name: str) -> None:
    owners = importlib.metadata.packages_distributions().get(name, [])
    assert set(owners) <= {"trainwatch"}, f"{name} is also provided by {owners}: install trainwatch in its own venv"
    if not _editable():  # an editable install records only a .pth file, so it maps no names
        assert owners == ["trainwatch"]


def test_console_script_is_declared() -> None:
    eps = importlib.metadata.entry_points(group="console_scripts")
    assert any(ep.name == "trainwatch" and ep.value == "monitor.cli:entry" for ep in eps)


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("monitor.cli", ["textual", "prometheus_client", "apprise", "pynvml"]),
        ("monitor.daemon.load", ["textual", "prometheus_client", "apprise", "watchdog", "pynvml"]),
        ("exporters.report", ["textual", "watchdog", "pynvml", "apprise"]),
        ("exporters.remote", ["textual", "watchdog", "pynvml", "apprise", "prometheus_client"]),
        ("exporters.web.routes", ["textual", "watchdog", "pynvml", "apprise"]),
        ("parsers.detect", ["textual", "watchdog", "pynvml", "apprise", "prometheus_client", "monitor", "exporters"]),
    ],
)
def test_importing_a_headless_module_loads_no_heavy_library(module: str, forbidden: list[str]) -> None:
    code = (f"import sys, {module}; bad = [m for m in {forbidden!r} if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, f"{module} imports {out.stdout.strip()} {out.stderr}"
