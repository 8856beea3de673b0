"""The web page in a real browser (Debian's headless Chromium): a real `serve` on a growing log, the page
shows the run, updates without a reload as lines are appended, shows a hostile run name as text, and
fits a phone's width. `TRAINWATCH_SCREENSHOT=1` also writes the README's screenshot, docs/web.png."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest
from prom_fixtures import free_port, wait_for
from tui_data import synthetic
from web_fixtures import HOSTILE, ROOT, Browser, browser, config_with_runs, growing_log, have_browser, start_serve

from exporters import api, report
from exporters.prometheus import TrainwatchCollector, start_server
from exporters.sse import EventHub
from exporters.web.routes import with_web
from monitor.snapshot import Snapshot

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not have_browser(), reason="chromium and chromium-driver are not installed")]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def pick(b: Browser, name: str) -> None:
    """Click the run's row in the list, as a user would."""
    b.js("[...document.querySelectorAll('#run-rows tr')].find((tr) => tr.cells[0].textContent === arguments[0])"
         ".click();", name)


def test_the_page_follows_a_live_run_and_shows_log_text_as_text(tmp_path: Path) -> None:
    run = growing_log(tmp_path, "shakespeare", start=400)
    hostile = growing_log(tmp_path, "hostile", start=50)
    cfg = config_with_runs(tmp_path, [(run.path, "shakespeare-char"), (hostile.path, HOSTILE)])
    served = start_serve(tmp_path, "--config", str(cfg), "--power-watts", "250", "--price-per-kwh", "0.30")
    try:
        with browser(tmp_path) as b:
            b.open(served.url + "/")
            wait_for(lambda: "shakespeare-char" in b.text("#run-rows"), 90, "the run list")
            pick(b, "shakespeare-char")
            last = max(i for line in run.lines[:run.written] if (i := run.iteration(line)) is not None)
            wait_for(lambda: f"iter {last:,} of 2,000" in b.text("#facts"), 90, "the page to show the run")
            b.js("window.notReloaded = true;")
            for _ in range(6):
                new = [i for line in run.more(2) if (i := run.iteration(line)) is not None]
                wait_for(lambda n=new[-1]: f"iter {n:,} of 2,000" in b.text("#facts"), 60,
                         f"the page to show iteration {new[-1]}")
            assert b.js("return window.notReloaded === true;"), "the page reloaded"
            assert b.text("#link") == "live"

            # the hostile name is text in the run list, nothing ran, nothing was parsed as markup
            wait_for(lambda: HOSTILE in b.text("#run-rows"), 60, "the hostile run in the list")
            assert b.js("return document.querySelectorAll('img, #run-rows script').length;") == 0
            assert not b.alert_open()
            pick(b, HOSTILE)
            wait_for(lambda: b.text("#run-name") == HOSTILE, 60, "the hostile run's own view")
            assert b.js("return document.title;") == f"{HOSTILE} — trainwatch"
            assert b.js("return document.querySelectorAll('img').length;") == 0 and not b.alert_open()
            pick(b, "shakespeare-char")
            wait_for(lambda: b.text("#run-name") == "shakespeare-char", 60, "back to the first run")

            # the charts are drawn; the console has no CSP violation or script error
            assert b.js("return document.querySelector('#loss-chart path.smooth').getAttribute('d').length;") > 100
            assert b.js("return document.querySelectorAll('#time-chart path.step').length;") == 1
            problems = [m for m in b.console() if m.get("level") == "SEVERE" or "Content Security" in m["message"]]
            assert not problems, problems

            shot = b.screenshot()
            width, height = png_size(shot)
            assert width == 1280 and height > 500
            (tmp_path / "web.png").write_bytes(shot)
            if os.environ.get("TRAINWATCH_SCREENSHOT"):
                (ROOT / "docs" / "web.png").write_bytes(shot)

            b.resize(390, 844)  # a phone
            wait_for(lambda: b.js("return document.documentElement.scrollWidth <= window.innerWidth + 1;"), 60,
                     "the page to fit a phone's width")
            assert "of 2,000" in b.text("#facts")
    finally:
        served.stop()


def test_without_javascript_the_server_rendered_list_reads(tmp_path: Path) -> None:
    run = growing_log(tmp_path, "plain", start=200)
    served = start_serve(tmp_path, str(run.path))
    try:
        with browser(tmp_path) as b:
            b.open(served.url + "/")
            wait_for(lambda: "plain" in b.text("#run-rows"), 90, "the run list")
            # the script replaces the list from the API; the server's own rows say the same
            b.open(f"view-source:{served.url}/")
            src = b.text("body")
            assert "plain" in src and "/ 2,000" in src and "<progress" in src
    finally:
        served.stop()


def test_the_predicted_final_loss_is_drawn_when_the_snapshot_carries_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The report's `loss.final_p50/p10/p90` (the final-loss forecast): a dashed path to max_iters and its band."""
    def with_final(s: Snapshot) -> dict:
        d = report.to_dict(s)
        d["loss"].update(final_p50=3.05, final_p10=2.98, final_p90=3.14, final_of="val")
        return d

    monkeypatch.setattr(api, "to_dict", with_final)
    snap = synthetic(now=time.time())
    hub = EventHub()
    hub.publish((snap,))
    server, _ = start_server(TrainwatchCollector(lambda: (snap,)), port=0,
                             routes=lambda metrics: with_web(metrics, lambda: (snap,), hub))
    try:
        with browser(tmp_path) as b:
            b.open(f"http://127.0.0.1:{server.server_port}/")
            wait_for(lambda: "predicted final val loss" in b.text("#facts"), 90, "the prediction in the facts")
            assert "3.0500 (2.9800 – 3.1400)" in b.text("#facts")
            assert b.js("return document.querySelectorAll('#loss-chart path.pred, #loss-chart polygon.pred-band')"
                        ".length;") == 2
            assert b.js("return document.getElementById('pred-key').hidden;") is False
            assert "NVIDIA A100-SXM4-80GB" in b.text("#gpus") and "kWh" in b.text("#energy")
    finally:
        hub.close()
        server.shutdown()
        server.server_close()


def test_the_page_says_when_the_server_is_gone_and_comes_back_with_it(tmp_path: Path) -> None:
    run = growing_log(tmp_path, "restarted", start=200)
    port = free_port()
    served = start_serve(tmp_path, str(run.path), port=port)
    try:
        with browser(tmp_path) as b:
            b.open(served.url + "/")
            wait_for(lambda: b.text("#link") == "live" and "of 2,000" in b.text("#facts"), 90, "the live page")
            served.stop()
            wait_for(lambda: "connection lost" in b.text("#link"), 90, "the lost link to show")
            run.more(6)
            served = start_serve(tmp_path, str(run.path), port=port)
            last = max(i for line in run.lines[:run.written] if (i := run.iteration(line)) is not None)
            wait_for(lambda: f"iter {last:,} of 2,000" in b.text("#facts"), 90, "the page to catch up")
            assert b.text("#link") == "live"
    finally:
        served.stop()
