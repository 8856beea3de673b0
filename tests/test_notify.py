"""Delivery against a real HTTP receiver on 127.0.0.1 (apprise json://), a fake notify-send, and the alert pump."""

from __future__ import annotations

import logging
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from alert_logs import T0, header, iterations, snap
from http_sink import Sink, closed_port

from exporters.notify import Notifier, redact
from monitor.alerts.pump import AlertPump
from monitor.alerts.rules import AlertConfig
from monitor.alerts.store import AlertStore
from monitor.snapshot import Alert, Snapshot

ALERT = Alert(run="gpt2", kind="crashed", title="gpt2: crashed at iter 300", body="RuntimeError: CUDA error",
              level="failure", key="crashed#1", at=T0)
CFG = AlertConfig(notify_before_s=30)


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def notifiers() -> Iterator[list[Notifier]]:
    made: list[Notifier] = []
    yield made
    for n in made:
        n.close(timeout=0.5)


def notifier(made: list[Notifier], urls: list[str], **kw: object) -> Notifier:
    n = Notifier(urls, desktop=False, **kw)  # type: ignore[arg-type]
    made.append(n)
    return n


# ---- apprise into a real receiver ----------------------------------------------------------------

def test_an_alert_arrives_with_its_content(sink: Sink, notifiers: list[Notifier]) -> None:
    n = notifier(notifiers, [sink.url("hook"), sink.url("hook")])
    assert n.destinations == [f"json://127.0.0.1:{sink.port}/***"], "the same URL twice is one destination"
    n.send(ALERT)
    [post] = sink.wait(lambda posts: len(posts) == 1)
    assert post.path == "/hook"
    assert (post.body["title"], post.body["message"], post.body["type"]) == (ALERT.title, ALERT.body, "failure")


def test_failures_are_retried_with_backoff(notifiers: list[Notifier], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="exporters.notify")
    sink = Sink(statuses=(500, 503))
    try:
        notifier(notifiers, [sink.url()], attempts=4, backoff_s=0.05).send(ALERT)
        posts = sink.wait(lambda posts: len(posts) == 3)
    finally:
        sink.close()
    assert {p.body["title"] for p in posts} == {ALERT.title}
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert [m.split("retrying ")[1] for m in retries] == ["in 0.05s (attempt 1 of 4)", "in 0.1s (attempt 2 of 4)"]


def test_a_receiver_that_is_down_gets_a_bounded_number_of_tries(notifiers: list[Notifier],
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="exporters.notify")
    url = f"json://127.0.0.1:{closed_port()}/hook"
    notifier(notifiers, [url], attempts=3, backoff_s=0.01).send(ALERT)
    _wait_log(caplog, "giving up")
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2
    assert f"json://127.0.0.1:{url.split(':')[2].split('/')[0]}/***: giving up on {ALERT.title!r} after 3 attempts" \
        in caplog.text


def test_a_slow_receiver_blocks_neither_the_caller_nor_other_destinations(notifiers: list[Notifier]) -> None:
    slow, fast = Sink(), Sink()
    slow.hold.set()
    try:
        n = notifier(notifiers, [slow.url(), fast.url()])
        n.send(ALERT)  # returns at once: the slow receiver is still holding the request afterwards
        assert slow.held.wait(20)
        n.send(replace(ALERT, title="second"))
        fast.wait(lambda posts: [p.body["title"] for p in posts] == [ALERT.title, "second"])
        assert slow.posts == [] and not slow.release.is_set()
        n.close(timeout=0.2)  # returns although a request is still held
    finally:
        slow.close()
        fast.close()


def test_secrets_in_urls_never_reach_the_logs(sink: Sink, notifiers: list[Notifier],
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # apprise and urllib3 log full request URLs and payloads at debug
    good = sink.url("hook/s3cr3t-w3bhook")
    down = f"json://127.0.0.1:{closed_port()}/hook/d0wn-t0ken?token=qu3ry-s3cr3t"
    unknown = "nosuchscheme://admin:pa55w0rd@example.com/x"
    notifier(notifiers, [good, down, unknown], attempts=2, backoff_s=0.01).send(ALERT)
    sink.wait(lambda posts: len(posts) == 1)
    _wait_log(caplog, "giving up")
    _wait_log(caplog, "nothing will be sent there")
    assert any(r.name == "apprise" and "***" in r.getMessage() for r in caplog.records), "apprise's records scrubbed"
    for secret in ("s3cr3t-w3bhook", "d0wn-t0ken", "qu3ry-s3cr3t", "pa55w0rd"):
        assert secret not in caplog.text
    assert "nosuchscheme://***@example.com/***: not a notification URL apprise understands" in caplog.text


@pytest.mark.parametrize(("url", "shown"), [
    ("json://127.0.0.1:9099/hook", "json://127.0.0.1:9099/***"),
    ("ntfy://my-secret-topic", "ntfy://***"),
    ("ntfys://ntfy.sh/my-secret-topic", "ntfys://ntfy.sh/***"),
    ("slack://T0001/B0002/XXXXTOKEN/#general", "slack://***/***"),
    ("https://hooks.slack.com/services/T0001/B0002/XXXX", "https://hooks.slack.com/***"),
    ("discord://1234567/webhooktoken", "discord://***/***"),
    ("mailto://me:app-password@gmail.com", "mailto://***@gmail.com"),
    ("tgram://123456:ABCdef/987654", "tgram://***/***"),
    ("not a url", "***"),
])
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown


# ---- desktop, bell, lazy apprise -----------------------------------------------------------------

def _fake_notify_send(tmp_path: Path) -> Path:
    exe = tmp_path / "bin" / "notify-send"
    exe.parent.mkdir()
    exe.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path / "args"}\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_desktop_notification_through_notify_send(tmp_path: Path, notifiers: list[Notifier]) -> None:
    exe = _fake_notify_send(tmp_path)
    env = {"PATH": str(exe.parent), "DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}
    n = Notifier([], env=env)
    notifiers.append(n)
    assert n.destinations == ["desktop"]
    n.send(ALERT)
    args = tmp_path / "args"
    _wait(lambda: args.exists() and args.read_text().count("\n") == 7)
    assert args.read_text().splitlines() == ["-a", "trainwatch", "-u", "critical", "--", ALERT.title, ALERT.body]


@pytest.mark.parametrize(("env", "why"), [
    ({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus"}, "no notify-send on PATH"),
    ({}, "no session bus"),
], ids=["no-notify-send", "no-session-bus"])
def test_no_desktop_is_skipped_with_one_debug_line(tmp_path: Path, env: dict[str, str], why: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="exporters.notify")
    path = str(_fake_notify_send(tmp_path).parent) if why == "no session bus" else str(tmp_path)
    n = Notifier([], env={**env, "PATH": path})
    assert n.destinations == []
    assert [r.getMessage() for r in caplog.records] == [f"desktop notifications off: {why}"]


def test_the_bell_rings_off_the_callers_thread(notifiers: list[Notifier]) -> None:
    rang: list[threading.Thread] = []
    done = threading.Event()

    def bell() -> None:
        rang.append(threading.current_thread())
        done.set()

    n = notifier(notifiers, [], bell=bell)
    n.send(ALERT)
    assert done.wait(20)
    assert rang and rang[0] is not threading.current_thread()


LAZY = """
import sys
from exporters.notify import Notifier
from monitor.snapshot import Alert
n = Notifier(sys.argv[1:], desktop=False, bell=lambda: None, attempts=1)
n.send(Alert("r", "finished", "t", "b", "success", "finished", 0.0))
n.close(timeout=10)
print("apprise" in sys.modules)
"""


@pytest.mark.parametrize(("urls", "imported"), [([], "False"), (["json://127.0.0.1:1/x"], "True")],
                         ids=["no-url", "a-url"])
def test_apprise_is_imported_only_when_a_url_is_configured(urls: list[str], imported: str) -> None:
    r = subprocess.run([sys.executable, "-c", LAZY, *urls], capture_output=True, text=True, check=True,
                       cwd=Path(__file__).parent.parent, timeout=60)
    assert r.stdout.strip() == imported


# ---- the pump: rules + persistence + delivery ----------------------------------------------------

def _run(p: Path, upto: int, offset: float = 0.0) -> Snapshot:
    return snap(p, header(1000) + iterations(0, upto), offset)


class Busy:
    """Stands in for Monitor.busy(): True while a tail still has part of a backlog to read."""

    def __init__(self) -> None:
        self.on = False

    def __call__(self) -> bool:
        return self.on


def test_pump_backlog_is_quiet_then_news_is_delivered(tmp_path: Path, sink: Sink, notifiers: list[Notifier]) -> None:
    log, busy = tmp_path / "run.log", Busy()
    toasts: list[Alert] = []
    pump = AlertPump(notifier(notifiers, [sink.url()]), CFG, busy=busy, store=AlertStore(str(tmp_path / "state")),
                     toast=toasts.append)
    pump.on_snapshots((_run(log, 200),))  # the first publish: history
    pump.on_snapshots((_run(log, 250),))
    busy.on = True  # a big backlog read in slices: every publish until the one with its last slice is history
    pump.on_snapshots((_run(log, 300, 100),))  # stalled
    pump.on_snapshots((_run(log, 700),))
    busy.on = False
    pump.on_snapshots((_run(log, 760),))  # the last slice: finishing soon already holds
    pump.on_snapshots((_run(log, 800),))
    pump.on_snapshots((_run(log, 1000),))
    sink.wait(lambda posts: len(posts) >= 1)
    assert sink.titles() == ["run: finished"]
    assert [a.key for a in toasts] == ["finished"]


def test_pump_first_publish_is_history(tmp_path: Path) -> None:
    toasts: list[Alert] = []
    pump = AlertPump(None, CFG, busy=lambda: False, store=AlertStore(str(tmp_path / "state")), toast=toasts.append)
    for upto in (1000, 1000):
        pump.on_snapshots((_run(tmp_path / "run.log", upto),))
    assert toasts == []


def test_pump_a_log_added_later_starts_quietly_and_a_dropped_one_is_forgotten(tmp_path: Path) -> None:
    a, b = tmp_path / "a.log", tmp_path / "b.log"
    toasts: list[Alert] = []
    pump = AlertPump(None, CFG, busy=lambda: False, store=AlertStore(str(tmp_path / "state")), toast=toasts.append)
    pump.on_snapshots((_run(a, 500),))
    pump.on_snapshots((_run(a, 510), _run(b, 1000)))  # b came with a config reload, already finished
    pump.on_snapshots((_run(a, 520), _run(b, 1000)))
    assert toasts == []
    pump.on_snapshots((_run(a, 1000),))  # b dropped
    assert [x.run for x in toasts] == ["a"] and set(pump.memory.runs) == {str(a)}


def test_pump_restart_repeats_nothing(tmp_path: Path) -> None:
    """A restarted daemon whose first forecast is not yet within the lead time: only the saved state
    keeps "finishing soon" from going out a second time."""
    log = tmp_path / "run.log"

    def daemon(state: Path) -> list[str]:
        toasts: list[Alert] = []
        pump = AlertPump(None, CFG, busy=lambda: False, store=AlertStore(str(state)), toast=toasts.append)
        first = _run(log, 760)
        pump.on_snapshots((replace(first, forecast=replace(first.forecast, iter_s=1.0)),))  # 4 min left
        pump.on_snapshots((_run(log, 770),))
        return [a.key for a in toasts]

    first_daemon: list[Alert] = []
    pump = AlertPump(None, CFG, busy=lambda: False, store=AlertStore(str(tmp_path / "state")),
                     toast=first_daemon.append)
    pump.on_snapshots((_run(log, 600),))
    pump.on_snapshots((_run(log, 750),))
    assert [a.key for a in first_daemon] == ["finishing"]
    assert daemon(tmp_path / "state") == []
    assert daemon(tmp_path / "no-state") == ["finishing"], "without the state file it would repeat"


def test_pump_keeps_the_saved_state_while_a_big_log_is_read(tmp_path: Path) -> None:
    """A big log is first shown as a preview (its head and tail), then read whole in slices: the line
    count drops when the preview gives way, which is not a new run."""
    log, state = tmp_path / "run.log", AlertStore(str(tmp_path / "state"))
    first: list[Alert] = []
    pump = AlertPump(None, CFG, busy=lambda: False, store=state, toast=first.append)
    pump.on_snapshots((_run(log, 600),))
    pump.on_snapshots((_run(log, 750),))
    assert [a.key for a in first] == ["finishing"]

    busy, toasts = Busy(), list[Alert]()
    pump = AlertPump(None, CFG, busy=busy, store=state, toast=toasts.append)
    preview = _run(log, 760)
    not_yet = replace(preview.forecast, iter_s=1.0)  # the backlog's forecasts: not yet within the lead
    busy.on = True
    pump.on_snapshots((replace(preview, forecast=not_yet, lines=preview.lines + 10_000),))
    pump.on_snapshots((replace(preview, forecast=not_yet, lines=100),))  # the first slice
    busy.on = False
    pump.on_snapshots((replace(preview, forecast=not_yet),))
    pump.on_snapshots((_run(log, 770),))
    assert toasts == []


def test_pump_treats_a_rewritten_file_as_a_new_run(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    toasts: list[Alert] = []
    pump = AlertPump(None, CFG, busy=lambda: False, store=AlertStore(str(tmp_path / "state")), toast=toasts.append)
    for upto in (400, 500, 1000, 100, 1000):  # 100: the file was truncated and a new run began
        pump.on_snapshots((_run(log, upto),))
    assert [a.key for a in toasts] == ["finished", "finished"]


def test_pump_keeps_going_when_the_state_cannot_be_saved(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    log = tmp_path / "run.log"
    toasts: list[Alert] = []
    pump = AlertPump(None, CFG, busy=lambda: False, store=AlertStore(str(blocker / "state")), toast=toasts.append)
    for upto, offset in ((400, 0), (760, 200), (1000, 0), (1000, 0)):  # stalled, then finished
        pump.on_snapshots((_run(log, upto, offset),))
    assert [a.kind for a in toasts] == ["stalled", "finished"]
    assert sum("cannot save alert state" in r.getMessage() for r in caplog.records) == 1


# ---- helpers -------------------------------------------------------------------------------------

def _wait(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        done.wait(0.02)
    raise AssertionError("condition not reached")


def _wait_log(caplog: pytest.LogCaptureFixture, text: str) -> None:
    _wait(lambda: any(text in r.getMessage() for r in list(caplog.records)))

