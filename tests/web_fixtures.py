"""Shared by the web tests and benches: a real `trainwatch serve` on a log that grows, and a headless
Chromium driven through Debian's chromedriver with the W3C WebDriver protocol (plain JSON over HTTP:
no client library, and nothing is ever downloaded)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prom_fixtures import free_port, wait_for

from monitor.sim.scenario import SimConfig
from monitor.sim.write import write

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOSTILE = "<img src=x onerror=alert(1)></script>"


# ---- a log that grows -------------------------------------------------------------------------------

@dataclass
class GrowingLog:
    """A simulated nanoGPT run written up to `start` lines; `more(n)` appends the next n lines."""

    path: Path
    lines: list[str]
    written: int

    def more(self, n: int = 1) -> list[str]:
        chunk = self.lines[self.written:self.written + n]
        with open(self.path, "a") as fh:
            fh.writelines(chunk)
            fh.flush()
        self.written += len(chunk)
        return chunk

    @staticmethod
    def iteration(line: str) -> int | None:
        return int(line.split()[1].rstrip(":")) if line.startswith("iter ") else None


def growing_log(tmp: Path, name: str = "shakespeare", *, start: int = 300, max_iters: int = 2000) -> GrowingLog:
    """One line per iteration at 500 ms each, so a line every half second reads as a healthy run."""
    full = tmp / f"{name}.full"
    write(SimConfig(max_iters=max_iters, log_interval=1, eval_interval=100, iter_ms=500.0), str(full), instant=True)
    lines = full.read_text().splitlines(keepends=True)
    log = GrowingLog(tmp / f"{name}.log", lines, 0)
    log.path.write_text("")
    log.more(start)
    return log


# ---- serve --------------------------------------------------------------------------------------------

@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    err: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert "Traceback" not in self.err.read_text(), self.err.read_text()


def start_serve(tmp: Path, *args: str, port: int | None = None, scheme: str = "http") -> Served:
    port = port or free_port()
    err = tmp / f"serve-{port}.err"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(tmp / "cfg"),
           "XDG_STATE_HOME": str(tmp / "state")}
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve", "--no-gpu", "--poll-interval", "0.2",
                             "--listen", f"127.0.0.1:{port}", *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err.open("wb"), env=env, cwd=ROOT)
    served = Served(proc, port, err, scheme)
    try:
        wait_for(lambda: proc.poll() is not None or get(served, "/api/v1/runs")[0] in (200, 401), 30,
                 "serve to answer")
    except BaseException:
        served.stop()
        raise
    assert proc.poll() is None, err.read_text()
    return served


def get(served: Served, path: str, *, headers: dict[str, str] | None = None,
        timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    import ssl

    req = urllib.request.Request(served.url + path, headers=headers or {})
    ctx = ssl._create_unverified_context() if served.scheme == "https" else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except OSError:
        return 0, {}, b""


def config_with_runs(tmp: Path, runs: Sequence[tuple[Path, str]]) -> Path:
    """A config file naming each log's run (a name may be anything: TOML strings are escaped here)."""
    path = tmp / "config.toml"
    path.write_text("".join(f"[[run]]\nlog = {json.dumps(str(log))}\nname = {json.dumps(name)}\n\n"
                            for log, name in runs))
    return path


# ---- a headless browser ---------------------------------------------------------------------------------

class WebDriverError(RuntimeError):
    pass


class Browser:
    """The few WebDriver commands the tests need, over chromedriver's HTTP endpoint."""

    def __init__(self, port: int, session: str) -> None:
        self.base = f"http://127.0.0.1:{port}/session/{session}"

    def _call(self, method: str, path: str, body: object | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            value = json.loads(e.read() or b"{}").get("value", {})
            raise WebDriverError(f"{value.get('error')}: {value.get('message', '')[:300]}") from None

    def open(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def js(self, script: str, *args: object) -> Any:
        return self._call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def text(self, selector: str) -> str:
        return str(self.js("const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", selector))

    def alert_open(self) -> bool:
        try:
            self._call("GET", "/alert/text")
        except WebDriverError as e:
            if str(e).startswith("no such alert"):
                return False
            raise
        return True

    def screenshot(self) -> bytes:
        return base64.b64decode(self._call("GET", "/screenshot"))

    def resize(self, width: int, height: int) -> None:
        self._call("POST", "/window/rect", {"width": width, "height": height})

    def console(self) -> list[dict[str, Any]]:
        """The page's console messages since the last call (CSP violations, script errors)."""
        return list(self._call("POST", "/se/log", {"type": "browser"}))


def have_browser() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


@contextmanager
def browser(tmp: Path, width: int = 1280, height: int = 900) -> Iterator[Browser]:
    """Headless Chromium (`--no-sandbox`: the tests run as root) through the system chromedriver."""
    port = free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=(tmp / "chromedriver.err").open("wb"))
    session = None
    try:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as r:
                    return bool(json.loads(r.read())["value"]["ready"])
            except OSError:
                return False

        wait_for(ready, 30, "chromedriver")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={width},{height}", f"--user-data-dir={tmp / 'chromium-profile'}"]}}}}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/session", data=json.dumps(caps).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            session = json.loads(r.read())["value"]["sessionId"]
        yield Browser(port, session)
    finally:
        if session is not None:  # chromedriver ends its Chromium with the session
            end = urllib.request.Request(f"http://127.0.0.1:{port}/session/{session}", method="DELETE")
            with suppress(OSError):
                urllib.request.urlopen(end, timeout=30).close()
        driver.terminate()
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
