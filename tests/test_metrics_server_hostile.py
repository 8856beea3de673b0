"""The metrics endpoint of a real `trainwatch serve` under hostile clients, on loopback only.

It binds 127.0.0.1 unless told otherwise; with basic auth on, a scrape without the credentials gets 401;
oversized, malformed, half-open and slow requests get an error or nothing, and never stop it answering
a normal scrape (during the abuse and after it). Every loop is bounded; every socket and process is
closed by the test itself.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.xdist_group("served")  # one abused serve for the module

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PORT = 10464
USER, PASSWORD = "prometheus", "s3cret"
LOG_LINES = "Overriding: max_iters = 1000\n" + "".join(
    f"iter {i}: loss 2.5000, time 100.00ms, mfu 30.00%\n" for i in range(0, 110, 10))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not met within {timeout}s")


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    err: Path

    def stop(self) -> None:
        """SIGTERM, then exit 0 and no traceback."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(timeout=10) == 0, self.err.read_text()
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
        assert "Traceback" not in self.err.read_text()


def start_serve(tmp: Path, *args: str, port: int = DEFAULT_PORT) -> Served:
    """`trainwatch serve` on a small log; `port` is where `args` make it listen."""
    log = tmp / "run.log"
    log.write_text(LOG_LINES)
    err = tmp / "serve.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp / "cfg")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", str(log), "--no-gpu",
                             "--poll-interval", "0.1", *args], stdin=subprocess.DEVNULL, stderr=err.open("wb"),
                            env=env, cwd=ROOT)
    return Served(proc, port, err)


def listening(pid: int) -> list[tuple[str, int]]:
    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return []
    return [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]


def get(port: int, *, auth: tuple[str, str] | None = (USER, PASSWORD), scheme: str = "http",
        timeout: float = 5.0) -> tuple[int, bytes]:
    """One scrape: (status, body); (0, b"") when nothing answered in time."""
    req = urllib.request.Request(f"{scheme}://127.0.0.1:{port}/metrics")
    if auth is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    ctx = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def scrapes_fine(port: int) -> bool:
    status, body = get(port)
    return status == 200 and b'trainwatch_iteration{run="run"} 100.0' in body


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One serve process with basic auth for every abuse below; it must survive them all."""
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "auth").write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    s = start_serve(tmp, "--listen", f"127.0.0.1:{port}", "--basic-auth-file", str(tmp / "auth"), port=port)
    try:
        wait_for(lambda: scrapes_fine(port), what="a first scrape")
        yield s
        assert s.proc.poll() is None, "serve died: " + s.err.read_text()
        rss = psutil.Process(s.proc.pid).memory_info().rss
        assert rss < 300 << 20, f"serve holds {rss >> 20} MiB after the abuse"
    finally:
        s.stop()


# ---- where it listens, who may scrape ----------------------------------------------------------------

def test_default_listen_is_loopback_on_the_default_port(tmp_path: Path) -> None:
    s = start_serve(tmp_path)
    try:
        wait_for(lambda: bool(listening(s.proc.pid)) or s.proc.poll() is not None, what="a listening socket")
        if s.proc.poll() is not None:  # another process holds 10464: serve must say where it tried
            assert s.proc.returncode == 2
            assert f"cannot serve metrics on 127.0.0.1:{DEFAULT_PORT}" in s.err.read_text()
            return
        assert listening(s.proc.pid) == [("127.0.0.1", DEFAULT_PORT)]
    finally:
        s.stop()


@pytest.mark.parametrize("form", [":{port}", "{port}"], ids=["colon-port", "bare-port"])
def test_a_listen_address_without_host_is_loopback(tmp_path: Path, form: str) -> None:
    port = free_port()
    s = start_serve(tmp_path, "--listen", form.format(port=port), port=port)
    try:
        wait_for(lambda: bool(listening(s.proc.pid)), what="a listening socket")
        assert listening(s.proc.pid) == [("127.0.0.1", port)]
    finally:
        s.stop()


def test_basic_auth_refuses_scrapes_without_the_credentials(served: Served) -> None:
    assert get(served.port, auth=None)[0] == 401
    assert get(served.port, auth=(USER, "wrong"))[0] == 401
    assert get(served.port, auth=("", ""))[0] == 401
    status, body = get(served.port, auth=None)
    assert b"trainwatch_" not in body
    assert scrapes_fine(served.port)


# ---- hostile requests --------------------------------------------------------------------------------

def exchange(port: int, payload: bytes, *, read_timeout: float = 5.0) -> bytes:
    """Send `payload` (the server may hang up midway) and return whatever it answered (maybe nothing)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # reset or broken pipe: the server refused the rest, which is fine
            pass
        got = b""
        try:
            while len(got) < 1 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        return got


def status_of(answer: bytes) -> int | None:
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and answer.startswith(b"HTTP/") and parts[1].isdigit() else None


AUTH_HEADER = b"Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()) + b"\r\n"
BIG = 10 << 20
ABUSES: dict[str, tuple[bytes, set[int | None]]] = {
    # name: (request bytes, acceptable status of the answer; None = the connection closed without one)
    "1mb-header": (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n", {431, 400, None}),
    "10000-headers": (b"GET /metrics HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(10_000)) + b"\r\n",
                      {431, 400, None}),
    "100kb-url": (b"GET /metrics?name[]=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414, 400, None}),
    "40kb-query": (b"GET /metrics?" + b"&".join(b"name[]=trainwatch_x%d" % i for i in range(2_000)) + b" HTTP/1.0\r\n"
                   + AUTH_HEADER + b"\r\n", {200}),
    "10mb-body": (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % BIG + AUTH_HEADER + b"\r\n"
                  + b"z" * BIG, {200, 400, 405, 413, 501, None}),
    "huge-content-length": (b"GET /metrics HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n" + AUTH_HEADER
                            + b"\r\n", {200, 400, 413, None}),
    "60kb-authorization": (b"GET /metrics HTTP/1.0\r\nAuthorization: Basic " + b"A" * 60_000 + b"\r\n\r\n", {401}),
    "bad-base64-authorization": (b"GET /metrics HTTP/1.0\r\nAuthorization: Basic \xff\xfe!!\r\n\r\n", {401, 400}),
    "garbage": (random.Random(3).randbytes(64 << 10), {400, None}),
    "nul-bytes": (b"\x00" * 70_000, {400, 414, None}),
    "tls-hello-on-plain-http": (bytes.fromhex("16030100a5010000a10303") + random.Random(4).randbytes(160), {400, None}),
    "http-0.9": (b"GET /metrics\r\n", {None, 200, 400, 401}),
    "bad-method-and-version": (b"\x7fELF /metrics HTTP/9.9\r\n\r\n", {400, 501, 505, None}),
    "no-newline-then-close": (b"GET /metrics HTTP/1.1", {None, 400, 401}),
    "request-line-only-spaces": (b" " * 70_000 + b"\r\n\r\n", {400, 414, None}),
    "traversal": (b"GET /../../../../etc/passwd HTTP/1.0\r\n" + AUTH_HEADER + b"\r\n", {200, 404}),
}


@pytest.mark.parametrize("name", ABUSES)
def test_a_hostile_request_does_not_hurt_the_server(served: Served, name: str) -> None:
    payload, acceptable = ABUSES[name]
    answer = exchange(served.port, payload)
    assert status_of(answer) in acceptable, answer[:300]
    assert b"root:" not in answer
    assert served.proc.poll() is None, "serve died: " + served.err.read_text()
    assert scrapes_fine(served.port)


def test_half_open_and_slow_connections_do_not_block_scrapes(served: Served) -> None:
    """20 slowloris connections (a header byte every 0.2 s) and 20 silent ones stay open while scrapes
    are answered; once they are closed, the server's threads go back to what they were."""
    proc = psutil.Process(served.proc.pid)
    threads_before = proc.num_threads()
    silent = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(20)]
    slow = [socket.create_connection(("127.0.0.1", served.port), timeout=5) for _ in range(20)]
    try:
        for s in slow:
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        for tick in range(15):  # 3 s of dribbling, one header byte per connection per tick
            for s in slow:
                s.sendall(b"X-%d: y\r\n" % tick)
            assert scrapes_fine(served.port), f"a scrape failed with {len(silent) + len(slow)} slow connections open"
            time.sleep(0.2)
    finally:
        for s in silent + slow:
            s.close()
    assert scrapes_fine(served.port)
    wait_for(lambda: proc.num_threads() <= threads_before + 1, timeout=15, what="connection threads to end")


def test_a_connection_flood_is_answered(served: Served) -> None:
    """48 connections opened and dropped by 6 threads at once: none is refused, and scrapes go on."""
    refused: list[OSError] = []

    def flood() -> None:
        for _ in range(8):
            try:
                with socket.create_connection(("127.0.0.1", served.port), timeout=15):
                    pass
            except OSError as e:
                refused.append(e)

    workers = [threading.Thread(target=flood, daemon=True) for _ in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert not refused and not any(w.is_alive() for w in workers)
    assert all(scrapes_fine(served.port) for _ in range(20))


def listen_backlog(port: int) -> int | None:
    """The accept queue's size of the socket listening on `port` (ss's Send-Q for a listener)."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout.split()
    return int(out[2]) if len(out) > 2 and out[2].isdigit() else None


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) not installed")
def test_the_accept_queue_holds_a_burst(served: Served) -> None:
    """socketserver's backlog of 5 once made a burst of connections wait for SYN retries
    (300 quick connects: 48 s)."""
    backlog = listen_backlog(served.port)
    assert backlog is not None and backlog >= 64, backlog


# ---- TLS ---------------------------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_tls_one_silent_client_does_not_block_scrapes(tmp_path: Path) -> None:
    """prometheus-client's TLS handshake in accept() once let one silent client block every scrape."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = free_port()
    s = start_serve(tmp_path, "--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert), "--tls-key", str(key),
                    port=port)
    try:
        wait_for(lambda: get(port, auth=None, scheme="https")[0] == 200, what="a first TLS scrape")
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # never sends a ClientHello
            time.sleep(0.2)
            blocked = get(port, auth=None, scheme="https", timeout=5)[0]
        assert blocked == 200
    finally:
        s.stop()


def test_nothing_listens_beyond_loopback(served: Served) -> None:
    assert listening(served.proc.pid) == [("127.0.0.1", served.port)]


def test_scrapes_during_a_burst_of_hostile_requests(served: Served) -> None:
    """Garbage from 4 threads for 2 s while scraping: every scrape is answered."""
    stop = threading.Event()
    sent = [0]

    def hammer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(500):
            if stop.is_set():
                return
            payload = rng.choice([p for p, _ in ABUSES.values() if len(p) < 200_000])
            exchange(served.port, payload, read_timeout=2)
            sent[0] += 1

    workers = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(4)]
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert scrapes_fine(served.port)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert sent[0] > 0 and not any(w.is_alive() for w in workers)
