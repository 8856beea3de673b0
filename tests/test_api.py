"""The JSON API's shapes (`trainwatch.api/1`): built from the report's builder, pinned by the published
schema, and turned back into the very snapshot they came from (what the remote TUI draws)."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path

import jsonschema
import pytest
from tui_data import from_log, simulated, synthetic

from exporters import api, report
from exporters.sse import EventHub
from exporters.web import page
from monitor.snapshot import Forecast, PlanCheck, Snapshot

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "exporters" / "schemas" / "api-v1.json").read_text())
HOSTILE = '<img src=x onerror=alert(1)></script>"&'


def validate(doc: object, definition: str) -> None:
    jsonschema.validate(doc, {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


def wire(doc: object) -> dict:
    """Through the wire: strict JSON out, parsed back."""
    return json.loads(api.dumps(doc))


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Snapshot]:
    tmp = tmp_path_factory.mktemp("api")
    plan = PlanCheck(gpu="NVIDIA A100-SXM4-80GB", mfu_low=0.3, mfu_high=0.45, time_low_s=3.1e4, time_high_s=4.6e4,
                     energy_low_j=2.1e7, energy_high_j=3.2e7, needs_s=3.9e4, iter_s=2.3, verdict="on-plan")
    return {"synthetic": synthetic(), "planned": replace(synthetic(), plan=plan),
            "example": from_log(Path(__file__).resolve().parents[1] / "examples" / "shakespeare-char.log"),
            "resumed": from_log(simulated(tmp, "resumed", max_iters=3000, resume_at=0.5)),
            "nan": from_log(simulated(tmp, "nan", max_iters=2000, nan_at=0.5))}


# ---- the shape ------------------------------------------------------------------------------------

def test_a_run_is_its_report_plus_the_live_extras(real: dict[str, Snapshot]) -> None:
    s = real["synthetic"]
    doc = wire(api.summary(s))
    rep = json.loads(report.to_json(s))
    for key, value in rep.items():
        if isinstance(value, dict):
            assert value.items() <= doc[key].items(), key
        else:
            assert doc[key] == value, key
    assert doc["id"] == api.run_id(s)
    assert doc["time"]["finish_p10"] == s.forecast.finish_p10 and len(doc["gpus"]) == 2


@pytest.mark.parametrize("name", ["synthetic", "planned", "example", "resumed", "nan"])
def test_answers_match_the_published_schema(real: dict[str, Snapshot], name: str) -> None:
    s = real[name]
    validate(wire(api.runs_document([s, s])), "runs")
    validate(wire(api.detail(s)), "run")
    validate(json.loads(EventHub().message(None, (s,), 1).split(b"data: ", 1)[1]), "event")  # type: ignore[union-attr]


def test_the_schema_refuses_a_run_without_its_id(real: dict[str, Snapshot]) -> None:
    doc = wire(api.summary(real["example"]))
    del doc["id"]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc, "summary")


# ---- the inverse ----------------------------------------------------------------------------------

def test_every_snapshot_field_is_carried() -> None:
    """A field added to Snapshot or Forecast fails here until the API carries it to remote views."""
    assert {f.name for f in fields(Snapshot)} == set(api.SNAPSHOT_PATHS) | api.STRUCTURED | api.LOCAL_ONLY
    assert {f.name for f in fields(Forecast)} == set(api.FORECAST_PATHS)


@pytest.mark.parametrize("name", ["synthetic", "planned", "example", "resumed"])
def test_snapshot_of_a_detail_is_the_snapshot(real: dict[str, Snapshot], name: str) -> None:
    s = real[name]
    assert api.snapshot_of(wire(api.detail(s, limit=10**6))) == s


def test_a_nan_loss_comes_back_as_nan(real: dict[str, Snapshot]) -> None:
    s = real["nan"]
    back = api.snapshot_of(wire(api.detail(s, limit=10**6)))
    assert back.train_loss is not None and math.isnan(back.train_loss)
    assert back.first_nonfinite is not None and math.isnan(back.first_nonfinite[1])
    assert api.dumps(api.detail(back)) == api.dumps(api.detail(s))


def test_a_summary_comes_back_without_history(real: dict[str, Snapshot]) -> None:
    s = real["synthetic"]
    assert api.snapshot_of(wire(api.summary(s))) == replace(s, history=(), evals=(), notes=())


def test_something_else_is_a_shape_error() -> None:
    with pytest.raises(api.ShapeError, match="not a trainwatch.api/1 run"):
        api.snapshot_of({"schema": "something else"})


# ---- history: bounded, incremental ----------------------------------------------------------------

def test_history_is_thinned_to_the_limit_keeping_both_ends(real: dict[str, Snapshot]) -> None:
    s = real["synthetic"]
    doc = api.detail(s, limit=100)
    points = doc["history"]["points"]
    assert len(points) == 100 and doc["history"]["downsampled"]
    assert points[0][0] == s.history[0].iter and points[-1][0] == s.history[-1].iter
    assert len(api.detail(s)["history"]["points"]) == len(s.history) <= api.MAX_POINTS


def test_since_gives_the_points_after_an_iteration(real: dict[str, Snapshot]) -> None:
    s = real["synthetic"]
    doc = api.detail(s, since=8_000)
    assert [p[0] for p in doc["history"]["points"]] == [p.iter for p in s.history if p.iter > 8_000]
    assert api.detail(s, since=s.history[-1].iter)["history"]["points"] == []


def test_since_in_a_resumed_run_includes_the_repeated_iterations(real: dict[str, Snapshot]) -> None:
    s = real["resumed"]
    first = [p for p in s.history if p.segment == 0]
    later = [p for p in s.history if p.segment > 0]
    assert later and later[0].iter < first[-1].iter  # the resume went back to a checkpoint
    doc = api.detail(s, since=first[-1].iter, segment=0)
    assert len(doc["history"]["points"]) == len(later)
    assert api.detail(s, since=later[-1].iter, segment=later[-1].segment)["history"]["points"] == []


@pytest.mark.parametrize(("n", "limit"), [(0, 5), (5, 5), (6, 5), (4096, 2000), (2001, 2000), (10, 1)])
def test_thin(n: int, limit: int) -> None:
    got = api.thin(list(range(n)), limit)
    assert len(got) == min(n, limit) and got == sorted(set(got))
    if n:
        assert got[-1] == n - 1


# ---- ids and escaping -----------------------------------------------------------------------------

def test_run_ids_are_url_safe_stable_and_distinct(real: dict[str, Snapshot]) -> None:
    s = replace(real["example"], run=HOSTILE)
    rid = api.run_id(s)
    assert rid == api.run_id(s) and all(c.isalnum() or c in "._-" for c in rid)
    assert api.run_id(replace(s, log="/other/path.log")) != rid
    assert api.run_id(replace(s, run="../../etc")).startswith("etc-")


def test_the_server_rendered_list_escapes_what_comes_from_the_log(real: dict[str, Snapshot]) -> None:
    s = replace(real["synthetic"], run=HOSTILE, state="running")
    html = page.render(page.template(), [s], s.taken_at).decode()
    assert "<img" not in html.split("<tbody", 1)[1] and "</script>\"" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;/script&gt;&quot;&amp;" in html
    assert "8,350 / 20,000" in html and '<progress value="0.4175"' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline for the CSP to refuse


def test_an_empty_list_says_so() -> None:
    assert "no run yet" in page.render(page.template(), [], 0.0).decode()


# ---- the event stream's messages -------------------------------------------------------------------

def data_of(message: bytes | None) -> dict:
    assert message is not None
    return json.loads(message.split(b"data: ", 1)[1])


def test_messages_carry_what_changed(real: dict[str, Snapshot]) -> None:
    hub = EventHub()
    a, b = real["synthetic"], real["example"]
    first = data_of(hub.message(None, (a, b), 1))
    assert first["ids"] == [api.run_id(a), api.run_id(b)] and len(first["runs"]) == 2
    assert hub.message((a, b), (a, b), 2) is None  # republished, nothing new
    a2 = replace(a, iter=8_360)
    changed = data_of(hub.message((a, b), (a2, b), 3))
    assert [r["progress"]["iter"] for r in changed["runs"]] == [8_360]
    gone = data_of(hub.message((a2, b), (a2,), 4))
    assert gone == {"ids": [api.run_id(a2)], "runs": []}


def test_clients_are_bounded_and_closing_ends_their_streams(real: dict[str, Snapshot]) -> None:
    hub = EventHub(max_clients=2, min_gap_s=0.0)
    hub.publish((real["example"],))
    streams = [hub.stream(), hub.stream()]
    assert hub.stream() is None
    first = streams[0]
    assert first is not None
    assert next(first).startswith(b"retry:")
    assert b"event: runs" in next(first)
    hub.close()
    assert list(first) == []
    for s in streams:
        if s is not None:
            s.close()  # type: ignore[attr-defined]
    assert hub.stream() is not None  # slots given back
