"""The TUI on a remote `serve` (`trainwatch http://host:port`), against a real serve on 127.0.0.1: the same
view as a local one, live, with basic auth and TLS; a lost connection shows as such and comes back."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from prom_fixtures import free_port, self_signed
from prom_fixtures import wait_for as wait_until
from tui_screen import screen_text, wait_for
from web_fixtures import growing_log, start_serve

from exporters.remote import RemoteRuns, parse_url, sse_events
from exporters.tui.app import TrainwatchApp
from exporters.tui.header import RunHeader
from monitor.errors import TrainwatchError

pytestmark = pytest.mark.slow
USER, PASSWORD = "watcher", "s3cret"


def header(app: TrainwatchApp) -> str:
    return " ".join(str(h.render()) for h in app.query(RunHeader))


@pytest.mark.asyncio
async def test_the_tui_follows_a_remote_serve_and_survives_its_restart(tmp_path: Path) -> None:
    log = growing_log(tmp_path, "shakespeare", start=300)
    (tmp_path / "auth").write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    args = (str(log.path), "--basic-auth-file", str(tmp_path / "auth"))
    served = start_serve(tmp_path, *args, port=port)
    remote = RemoteRuns(served.url, auth=(USER, PASSWORD), backoff=(0.2, 1.0))
    remote.start()
    try:
        app = TrainwatchApp(remote.snapshots, refresh_s=0.5)
        async with app.run_test(size=(120, 40)) as pilot:
            last = max(i for line in log.lines[:log.written] if (i := log.iteration(line)) is not None)
            await wait_for(pilot, lambda: f"{last:,} / 2,000" in screen_text(app), timeout=30)
            assert f"shakespeare@127.0.0.1:{port}" in header(app)  # its state may read stalled on a loaded machine
            for _ in range(3):
                new = [i for line in log.more(2) if (i := log.iteration(line)) is not None][-1]
                await wait_for(pilot, lambda n=new: f"{n:,} / 2,000" in screen_text(app), timeout=15)

            served.stop()  # the link goes: the last view stays, marked
            await wait_for(pilot, lambda: "connection lost" in header(app), timeout=30)
            assert f"{new:,} / 2,000" in screen_text(app)

            log.more(4)  # written while nobody watched
            served = start_serve(tmp_path, *args, port=port)
            latest = max(i for line in log.lines[:log.written] if (i := log.iteration(line)) is not None)
            await wait_for(pilot, lambda: f"{latest:,} / 2,000" in screen_text(app), timeout=30)
            await wait_for(pilot, lambda: "connection lost" not in header(app), timeout=15)
    finally:
        remote.close()
        served.stop()


@pytest.mark.asyncio
async def test_an_unreachable_serve_says_so(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = RemoteRuns(url, backoff=(0.2, 0.5))
    remote.start()
    try:
        app = TrainwatchApp(remote.snapshots)
        async with app.run_test(size=(160, 40)) as pilot:
            await wait_for(pilot, lambda: "cannot connect" in header(app), timeout=15)
            assert "Connection refused" in header(app) and "retrying in" in header(app)
    finally:
        remote.close()


def test_wrong_credentials_are_named(tmp_path: Path) -> None:
    log = growing_log(tmp_path, "run", start=100)
    (tmp_path / "auth").write_text(f"{USER}:{PASSWORD}\n")
    served = start_serve(tmp_path, str(log.path), "--basic-auth-file", str(tmp_path / "auth"))
    remote = RemoteRuns(served.url, auth=(USER, "wrong"), backoff=(0.2, 0.5))
    remote.start()
    try:
        wait_until(lambda: "401" in (remote.snapshots()[0].problem or ""), 15, "the 401 to show")
        assert "--basic-auth-file" in (remote.snapshots()[0].problem or "")
    finally:
        remote.close()
        served.stop()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_over_tls_the_certificate_is_checked(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    log = growing_log(tmp_path, "tls", start=100)
    served = start_serve(tmp_path, str(log.path), "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    trusted = RemoteRuns(served.url, cafile=str(cert), backoff=(0.2, 0.5))
    untrusted = RemoteRuns(served.url, backoff=(0.2, 0.5))  # a self-signed certificate, not in the system's trust
    for r in (trusted, untrusted):
        r.start()
    try:
        wait_until(lambda: trusted.snapshots() and trusted.snapshots()[0].run.startswith("tls@"), 30,
                   "the run over TLS")
        assert trusted.snapshots()[0].problem is None and trusted.snapshots()[0].iter is not None
        wait_until(lambda: "TLS" in (untrusted.snapshots()[0].problem or ""), 15, "the refused certificate")
        assert "--tls-ca" in (untrusted.snapshots()[0].problem or "")
    finally:
        for r in (trusted, untrusted):
            r.close()
        served.stop()


# ---- the pieces -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "problem"), [
    ("ftp://host", "not an http:// or https:// URL"), ("http://u:p@host:1", "--basic-auth-file"),
    ("http://host:99999", "not a URL"), ("http://host/?a=1", "no query"),
])
def test_bad_urls_are_one_line_errors(url: str, problem: str) -> None:
    with pytest.raises(TrainwatchError, match=problem.replace("?", r"\?")):
        parse_url(url)


def test_a_url_without_a_port_means_serves_default() -> None:
    e = parse_url("http://gpu-box/")
    assert (e.port, e.prefix, e.label) == (10464, "", "gpu-box")
    assert parse_url("https://proxy.example/trainwatch/").prefix == "/trainwatch"


def test_event_stream_parsing() -> None:
    lines = iter([b"retry: 2000\n", b"\n", b": keepalive\n", b"\n", b"id: 3\n", b"event: runs\n", b'data: {"a":\n',
                  b"data: 1}\n", b"\n", b"data: plain\n", b"\n", b""])
    got = list(sse_events(lambda: next(lines), threading.Event()))
    assert got == [("runs", '{"a":\n1}'), ("message", "plain")]


def test_a_line_cut_by_a_dropped_connection_is_an_error() -> None:
    lines = iter([b"event: runs\n", b'data: {"ids"'])
    with pytest.raises(ConnectionError):
        list(sse_events(lambda: next(lines), threading.Event()))


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_command_shows_remote_and_local_runs_side_by_side(tmp_path: Path) -> None:
    """`trainwatch LOG http://host:port` in a real terminal: the console script, the remote source and the
    local writer together, one tab each."""
    from test_tui_tmux import Tmux, trainwatch

    remote_log = growing_log(tmp_path, "faraway", start=200)
    local_log = growing_log(tmp_path, "nearby", start=150)
    served = start_serve(tmp_path, str(remote_log.path))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX", "TEXTUAL")}
    tmux = Tmux(tmp_path / "tmux.sock", {**env, "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    try:
        command = " ".join(f"'{a}'" for a in [*trainwatch(), str(local_log.path), served.url, "--no-gpu"])
        assert tmux("new-session", "-d", "-s", "tw", "-x", "140", "-y", "40", "-c", str(tmp_path),
                    command + "; sleep 30").returncode == 0
        tmux.wait_for(lambda s: "nearby" in s and f"faraway@127.0.0.1:{served.port}" in s, 60, "both runs")
        tmux("send-keys", "-t", "tw", "2")
        tmux.wait_for(lambda s: "/ 2,000" in s and "⚠" not in s, 30, "the remote run's view")
        tmux("send-keys", "-t", "tw", "q")
    finally:
        tmux("kill-server")
        served.stop()
