"""The page, the JSON API and the event stream on a real `trainwatch serve`: routes, headers, the same
basic auth as /metrics, a read-only server, live events as lines are appended, a bounded number of
stream clients that never block a scrape, and a page that weighs under 200 KB."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from prom_fixtures import wait_for
from web_fixtures import GrowingLog, Served, get, growing_log, start_serve

from exporters.sse import MAX_CLIENTS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "exporters" / "schemas" / "api-v1.json").read_text())
USER, PASSWORD = "watcher", "pa:ss word"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
PAGE = ("/", "/static/app.js", "/static/style.css", "/static/favicon.svg")


def validate(doc: object, definition: str) -> None:
    jsonschema.validate(doc, {"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"})


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, GrowingLog]]:
    tmp = tmp_path_factory.mktemp("web")
    log = growing_log(tmp, "shakespeare", start=300)
    (tmp / "auth").write_text(f"{USER}:{PASSWORD}\n")
    served = start_serve(tmp, str(log.path), "--basic-auth-file", str(tmp / "auth"))
    try:
        wait_for(lambda: json.loads(get(served, "/api/v1/runs", headers=AUTH)[2] or b"{}").get("runs"), 30,
                 "the run in the API")
        yield served, log
    finally:
        served.stop()


def run_of(served: Served) -> dict:
    return json.loads(get(served, "/api/v1/runs", headers=AUTH)[2])["runs"][0]


# ---- routes and headers ----------------------------------------------------------------------------

def test_the_api_answers_in_its_published_shape(live: tuple[Served, GrowingLog]) -> None:
    served, _ = live
    status, headers, body = get(served, "/api/v1/runs", headers=AUTH)
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    validate(doc, "runs")
    run = doc["runs"][0]
    assert run["run"] == "shakespeare" and run["state"] in ("running", "evaluating", "stalled")
    status, _, body = get(served, f"/api/v1/runs/{run['id']}", headers=AUTH)
    detail = json.loads(body)
    validate(detail, "run")
    points = detail["history"]["points"]
    assert status == 200 and points[-1][0] == detail["progress"]["iter"]
    since = points[-5][0]
    tail = json.loads(get(served, f"/api/v1/runs/{run['id']}?since={since}&segment=0", headers=AUTH)[2])
    assert [p[0] for p in tail["history"]["points"]] == [p[0] for p in points[-4:]]
    few = json.loads(get(served, f"/api/v1/runs/{run['id']}?limit=10", headers=AUTH)[2])
    assert len(few["history"]["points"]) == 10 and few["history"]["downsampled"]


@pytest.mark.parametrize(("path", "status"), [
    ("/api/v1/runs/no-such-run", 404), ("/api/v1/runs/{id}?since=ten", 400), ("/api/v1/runs/{id}?limit=5000", 400),
    ("/api/v1/nothing", 404), ("/static/../index.html", 404), ("/static/app.js/../../../etc/passwd", 404),
    ("/api/v1/runs/..%2F..%2Fetc%2Fpasswd", 404),
])
def test_bad_requests_get_a_json_error(live: tuple[Served, GrowingLog], path: str, status: int) -> None:
    served, _ = live
    got, headers, body = get(served, path.format(id=run_of(served)["id"]), headers=AUTH)
    assert got == status and "error" in json.loads(body) and b"root:" not in body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_it_is_read_only(live: tuple[Served, GrowingLog], method: str) -> None:
    served, _ = live
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    conn.request(method, "/api/v1/runs", body=b"{}", headers=AUTH)
    resp = conn.getresponse()
    assert resp.status == 405 and resp.getheader("Allow") == "GET"
    conn.close()


@pytest.mark.parametrize("path", [*PAGE, "/api/v1/runs"])
def test_every_answer_forbids_inline_script_and_sniffing(live: tuple[Served, GrowingLog], path: str) -> None:
    served, _ = live
    status, headers, _ = get(served, path, headers=AUTH)
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_page_weighs_under_200_kb_and_loads_nothing_from_elsewhere(live: tuple[Served, GrowingLog]) -> None:
    served, _ = live
    bodies = {p: get(served, p, headers=AUTH)[2] for p in PAGE}
    assert sum(len(b) for b in bodies.values()) <= 200_000
    text = b"".join(bodies.values())
    assert b"http://" not in text.replace(b"http://www.w3.org/", b"") and b"https://" not in text
    assert b"<script>" not in bodies["/"] and b"innerHTML" not in bodies["/static/app.js"]


@pytest.mark.parametrize("path", [*PAGE, "/api/v1/runs", "/api/v1/events", "/metrics"])
def test_the_same_basic_auth_guards_every_route(live: tuple[Served, GrowingLog], path: str) -> None:
    served, _ = live
    status, _, body = get(served, path)
    assert status == 401 and b"shakespeare" not in body
    wrong = {"Authorization": "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()}
    assert get(served, path, headers=wrong)[0] == 401


# ---- the event stream ------------------------------------------------------------------------------

class Stream:
    """A raw event-stream client: (event, data) messages as they come."""

    def __init__(self, served: Served, headers: dict[str, str] = AUTH) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
        self.conn.request("GET", "/api/v1/events", headers=headers)
        self.resp = self.conn.getresponse()

    def next(self) -> tuple[str, dict]:
        name, data = "message", ""
        while True:
            line = self.resp.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if not line:
                if data:
                    return name, json.loads(data)
                continue
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data = value

    def close(self) -> None:
        self.resp.close()  # the response holds the socket open, not only the connection
        self.conn.close()


def test_the_stream_sends_a_message_per_change(live: tuple[Served, GrowingLog]) -> None:
    served, log = live
    stream = Stream(served)
    try:
        assert stream.resp.status == 200
        assert stream.resp.getheader("Content-Type") == "text/event-stream; charset=utf-8"
        name, first = stream.next()
        assert name == "runs" and len(first["runs"]) == 1 and first["ids"] == [first["runs"][0]["id"]]
        validate(first, "event")
        target = [i for line in log.more(4) if (i := log.iteration(line)) is not None][-1]
        seen = first["runs"][0]["progress"]["iter"]
        while seen != target:
            _, msg = stream.next()
            seen = msg["runs"][0]["progress"]["iter"] if msg["runs"] else seen
    finally:
        stream.close()


def test_stream_clients_are_bounded_and_never_block_a_scrape(live: tuple[Served, GrowingLog]) -> None:
    served, _ = live
    streams: list[Stream] = []

    def fill() -> bool:
        """Open streams up to the bound (a stream closed by an earlier test frees its slot at its next write)."""
        while len(streams) < MAX_CLIENTS:
            s = Stream(served)
            if s.resp.status != 200:
                s.close()
                return False
            streams.append(s)
        return True

    try:
        wait_for(fill, 60, f"{MAX_CLIENTS} streams")
        status, headers, body = get(served, "/api/v1/events", headers=AUTH)
        assert status == 503 and headers["Retry-After"] == "10"
        assert get(served, "/metrics", headers=AUTH)[0] == 200
        assert get(served, "/api/v1/runs", headers=AUTH)[0] == 200
    finally:
        for s in streams:
            s.close()
    wait_for(lambda: opens(served), 60, "a stream slot to come back")


def opens(served: Served) -> bool:
    s = Stream(served)
    s.close()
    return s.resp.status == 200


def test_a_silent_stream_client_does_not_hold_the_writer(live: tuple[Served, GrowingLog]) -> None:
    """A client that connects, asks for events and never reads: scrapes and other streams go on."""
    served, log = live
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    auth = AUTH["Authorization"].encode()
    sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n\r\n")
    try:
        reader = Stream(served)
        reader.next()
        before = run_of(served)["progress"]["iter"]
        log.more(3)
        wait_for(lambda: run_of(served)["progress"]["iter"] != before, 20, "the run to move on")
        done = threading.Event()

        def read() -> None:
            while True:
                _, msg = reader.next()
                if msg["runs"] and msg["runs"][0]["progress"]["iter"] != before:
                    done.set()
                    return

        threading.Thread(target=read, daemon=True).start()
        assert done.wait(20)
        assert get(served, "/metrics", headers=AUTH)[0] == 200
        reader.close()
    finally:
        sock.close()
