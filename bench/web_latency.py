"""Benchmark: a line written to the log → shown on the open web page, and in the remote TUI.

A real `trainwatch serve` follows a simulated nanoGPT log; lines are appended at `--rate` lines a second.
The page runs in headless Chromium (Debian's chromium + chromedriver); a MutationObserver in the page notes
when each iteration first appears in the run's facts. The remote TUI (exporters.remote.RemoteRuns feeding
the Textual app, headless) is read at the same time: the iteration on screen is the app's own snapshot.
Both clocks are this machine's.

    .venv/bin/python bench/web_latency.py [--lines 100] [--rate 2]

Targets (issue 20): p99 ≤ 1 s for the page and for the remote TUI.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from prom_fixtures import wait_for  # noqa: E402
from web_fixtures import browser, growing_log, start_serve  # noqa: E402

from exporters.remote import RemoteRuns  # noqa: E402
from exporters.tui.app import TrainwatchApp  # noqa: E402

OBSERVE = """
window.seenAt = {};
const note = () => {
  const m = /iter ([\\d,]+) of/.exec(document.getElementById('facts').innerText);
  if (m) { const n = m[1].replace(/,/g, ''); if (!(n in window.seenAt)) window.seenAt[n] = Date.now() / 1000; }
};
new MutationObserver(note).observe(document.getElementById('facts'),
                                   {childList: true, subtree: true, characterData: true});
note();
"""


def summary(name: str, latencies: list[float]) -> str:
    s = sorted(latencies)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return (f"{name}: n={len(s)}  p50 {1000 * statistics.median(s):.0f} ms  p99 {1000 * p99:.0f} ms  "
            f"max {1000 * s[-1]:.0f} ms")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=100)
    ap.add_argument("--rate", type=float, default=2.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        log = growing_log(tmp, "bench", start=300, max_iters=2000)
        served = start_serve(tmp, str(log.path))
        remote = RemoteRuns(served.url)
        remote.start()
        tui_seen: dict[int, float] = {}
        try:
            with browser(tmp) as b:
                b.open(served.url + "/")
                wait_for(lambda: "of 2,000" in b.text("#facts"), 30, "the page")
                b.js(OBSERVE)
                app = TrainwatchApp(remote.snapshots, refresh_s=0.5)
                async with app.run_test(size=(120, 40)) as pilot:
                    written: dict[int, float] = {}
                    start = time.monotonic()
                    k = 0
                    while k < args.lines:
                        due = start + k / args.rate
                        while time.monotonic() < due:
                            for s in app.snapshots:
                                if s.iter is not None:
                                    tui_seen.setdefault(s.iter, time.time())
                            await pilot.pause(0.005)
                        for line in log.more(1):
                            i = log.iteration(line)
                            if i is not None:
                                written[i] = time.time()
                                k += 1
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        for s in app.snapshots:
                            if s.iter is not None:
                                tui_seen.setdefault(s.iter, time.time())
                        await pilot.pause(0.005)
                page_seen = {int(k): v for k, v in b.js("return window.seenAt;").items()}
        finally:
            remote.close()
            served.stop()
    # an iteration replaced on screen before its turn came (two lines within one refresh) is not counted
    page = [page_seen[i] - t for i, t in written.items() if i in page_seen]
    tui = [tui_seen[i] - t for i, t in written.items() if i in tui_seen]
    print(f"{len(written)} lines at {args.rate:g}/s")
    print(summary("log → page", page))
    print(summary("log → remote TUI", tui))


if __name__ == "__main__":
    asyncio.run(main())
