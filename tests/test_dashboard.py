"""The shipped Grafana dashboard: Grafana's own schema (npm @grafana/schema for Grafana 11, checked by tsc),
valid PromQL (promtool), and only metrics trainwatch exports.

No Grafana server can be installed here (components.md §5), so the dashboard JSON is assigned as an object
literal to the schema's `Dashboard` type, and each panel to its plugin's options type. A literal is checked
for unknown keys and wrong types; a JSON import would not be (it widens literals).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prom_fixtures import as_promql, exprs, full_snapshot, gpu_sample, load_dashboard, panels
from prometheus_client import CollectorRegistry

from exporters.prometheus import TrainwatchCollector

pytestmark = pytest.mark.xdist_group("dashboard")  # one npm install and one tsc run for the module

CHECK_DIR = Path(__file__).parent / "dashboard_check"
PANEL_SCHEMAS = {  # panel type → its options/field-config types in @grafana/schema (the Grafana 11 plugins)
    "timeseries": "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
    "stat": "stat/panelcfg/x/StatPanelCfg_types.gen",
    "bargauge": "bargauge/panelcfg/x/BarGaugePanelCfg_types.gen",
    "table": "table/panelcfg/x/TablePanelCfg_types.gen",
}
WITH_FIELD_CONFIG = {"timeseries", "table"}  # plugins whose schema has a custom FieldConfig
TS_HEADER = """\
import type { Dashboard, FieldConfig, Panel } from '@grafana/schema';
{imports}

// JSON holds an enum's value, not the enum: compare against the enums' literal values.
type Json<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T
  : T extends ReadonlyArray<infer U> ? Array<Json<U>> : T extends object ? {[K in keyof T]: Json<T[K]>} : T;
// Grafana fills in the options a panel leaves out, so those may be missing; present ones must be right.
type DeepPartial<T> = T extends ReadonlyArray<infer U> ? Array<DeepPartial<U>>
  : T extends object ? {[K in keyof T]?: DeepPartial<T[K]>} : T;
type Typed<Options, Custom> = Omit<Json<Panel>, 'options' | 'fieldConfig'> & {
  options?: DeepPartial<Json<Options>>;
  fieldConfig?: {
    defaults: Omit<Json<FieldConfig>, 'custom'> & {custom?: DeepPartial<Json<Custom>>};
    overrides: NonNullable<Json<Panel>['fieldConfig']>['overrides'];
  };
};
"""


# ---- structure --------------------------------------------------------------------------------


def test_variables() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    run = variables["run"]
    assert run["query"]["query"] == "label_values(trainwatch_run_info, run)"
    assert run["multi"] and run["includeAll"] and run["datasource"]["uid"] == "${datasource}"


def test_every_panel_uses_the_datasource_variable_and_the_run_variable() -> None:
    dash = load_dashboard()
    for p in panels(dash):
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and '$run' in t["expr"], (p["title"], t["expr"])


def test_layout_has_unique_ids_and_no_overlaps() -> None:
    dash = load_dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]


@pytest.mark.parametrize(("what", "metric"), [
    ("run state", "trainwatch_run_state"),
    ("progress", "trainwatch_progress_ratio"),
    ("ETA with band", 'trainwatch_eta_seconds{run=~"$run",percentile="90"}'),
    ("expected finish time", "trainwatch_expected_finish_timestamp_seconds"),
    ("train loss", "trainwatch_train_loss"),
    ("val loss", "trainwatch_val_loss"),
    ("iteration time", "trainwatch_iteration_duration_seconds"),
    ("tokens/s", "trainwatch_tokens_per_second"),
    ("MFU", "trainwatch_mfu_ratio"),
    ("energy so far", "trainwatch_energy_joules_total"),
    ("energy forecast", "trainwatch_energy_forecast_joules"),
    ("GPU power", "trainwatch_gpu_power_watts"),
    ("GPU memory", "trainwatch_gpu_memory_used_bytes"),
    ("GPU utilization", "trainwatch_gpu_utilization_ratio"),
    ("GPU temperature", "trainwatch_gpu_temperature_celsius"),
])
def test_panels_of_issue_6(what: str, metric: str) -> None:
    assert any(metric in e for e in exprs(load_dashboard())), what


# ---- only metrics trainwatch exports ---------------------------------------------------------------


def exported_names() -> set[str]:
    reg = CollectorRegistry()
    reg.register(TrainwatchCollector(lambda: (full_snapshot(),), lambda: (gpu_sample(0),), version="test"))
    return {s.name for m in reg.collect() for s in m.samples}


def test_every_metric_in_the_dashboard_is_exported() -> None:
    dash = load_dashboard()
    named = {m for text in [*exprs(dash), json.dumps(dash["templating"])] for m in re.findall(r"trainwatch_\w+", text)}
    assert named and named <= exported_names(), sorted(named - exported_names())


# ---- PromQL ---------------------------------------------------------------------------------------


def promtool_check(expressions: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:expr_{i}", "expr": as_promql(e)}
                                                        for i, e in enumerate(expressions)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    return subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_every_expression_parses(tmp_path: Path) -> None:
    found = exprs(load_dashboard())
    r = promtool_check(found, tmp_path)
    assert r.returncode == 0 and f"SUCCESS: {len(found)} rules found" in r.stdout, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
def test_a_broken_expression_is_caught(tmp_path: Path) -> None:
    r = promtool_check(['rate(trainwatch_energy_joules_total{run=~"$run"}[$__rate_interval]'], tmp_path)
    assert r.returncode != 0 and "parse error" in r.stdout + r.stderr


# ---- Grafana's schema -----------------------------------------------------------------------------


def typescript(dash: dict[str, Any]) -> str:
    """check.ts: the dashboard as a `Dashboard` literal, and every panel as a literal of its plugin's types."""
    imports = "\n".join(f"import type * as {name} from '@grafana/schema/dist/esm/raw/composable/{path}.js';"
                        for name, path in PANEL_SCHEMAS.items())
    out = [TS_HEADER.replace("{imports}", imports), f"export const dashboard: Json<Dashboard> = {json.dumps(dash)};"]
    for p in panels(dash):
        kind = p["type"]
        if kind not in PANEL_SCHEMAS:
            raise AssertionError(f"panel type {kind!r} has no schema in PANEL_SCHEMAS: add its panelcfg types")
        custom = f"{kind}.FieldConfig" if kind in WITH_FIELD_CONFIG else "Record<string, unknown>"
        out.append(f"export const panel_{p['id']}: Typed<{kind}.Options, {custom}> = {json.dumps(p)};")
    return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def tsc() -> list[str]:
    """The pinned typescript + @grafana/schema (tests/dashboard_check/package-lock.json), installed on first use."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: apt-get install nodejs npm")
    if not (CHECK_DIR / "node_modules" / "@grafana" / "schema").is_dir():
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CHECK_DIR, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"npm ci in {CHECK_DIR} failed:\n{r.stdout}{r.stderr}"
    return ["node", str(CHECK_DIR / "node_modules" / "typescript" / "bin" / "tsc")]


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(dash: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = dash
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[last] = value
    return change


BROKEN = {  # a mistake in the dashboard → what tsc must say about it
    "gridpos-type": (_set("panels.1.gridPos.h", "tall"), "not assignable to type 'number'"),
    "unknown-key": (_set("panels.1.tpye", "stat"), '"tpye"\' does not exist'),
    "refresh-type": (_set("refresh", 30), "not assignable to type 'string'"),
    "variable-type": (_set("templating.list.1.type", "dropdown"), "not assignable"),
    "stat-option": (_set("panels.1.options.textMode", "huge"), "not assignable"),
    "legend-mode": (_set("panels.6.options.legend.displayMode", "lst"), "not assignable"),
    "custom-typo": (_set("panels.6.fieldConfig.defaults.custom.lineWidht", 2), '"lineWidht"\' does not exist'),
    "color-mode": (_set("panels.6.fieldConfig.defaults.color.mode", "rainbow"), "not assignable"),
}


@pytest.fixture(scope="module")
def tsc_errors(tsc: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One tsc run over the shipped dashboard (ok.ts) and each BROKEN variant (<id>.ts): errors by file."""
    work = tmp_path_factory.mktemp("tsc")
    (work / "node_modules").symlink_to(CHECK_DIR / "node_modules", target_is_directory=True)
    sources = {"ok": load_dashboard()}
    for name, (change, _) in BROKEN.items():
        sources[name] = load_dashboard()
        change(sources[name])
    for name, dash in sources.items():
        (work / f"{name}.ts").write_text(typescript(dash))
    config = json.loads((CHECK_DIR / "tsconfig.json").read_text())
    (work / "tsconfig.json").write_text(json.dumps({**config, "files": [f"{n}.ts" for n in sources]}))
    r = subprocess.run([*tsc, "-p", str(work)], capture_output=True, text=True, timeout=120)
    errors = {name: "" for name in sources}
    current = None
    for line in r.stdout.splitlines():
        m = re.match(r"(?:.*/)?([\w-]+)\.ts\(\d+,\d+\): error", line)
        current = m.group(1) if m else current
        assert current is not None, r.stdout + r.stderr
        errors[current] += line + "\n"
    assert r.returncode != 0 or not any(errors.values())
    return errors


def test_dashboard_matches_grafana_schema(tsc_errors: dict[str, str]) -> None:
    assert tsc_errors["ok"] == ""


@pytest.mark.parametrize("name", BROKEN)
def test_schema_check_catches(tsc_errors: dict[str, str], name: str) -> None:
    assert BROKEN[name][1] in tsc_errors[name], tsc_errors[name] or "no error"
