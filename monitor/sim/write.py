"""`trainwatch simulate`: a simulated nanoGPT run's log, written live at real or accelerated speed.

The lines and their true times come from monitor/sim/emit.py; this module is the edge that sleeps and
writes. Lines appear at simulated time ÷ speed, while the `time` they print stays the true duration,
as the real script's dt would. The file is opened for append, like `python train.py >> out.log`.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from monitor.errors import TrainwatchError
from monitor.sim.emit import ERR, EXIT, KILLED, OUT, STALLED, Emission, emissions
from monitor.sim.presets import PRESETS
from monitor.sim.scenario import SimConfig
from monitor.units import parse_duration

BLOCK = 8192  # Python's buffer for stdout redirected to a file or pipe (io.DEFAULT_BUFFER_SIZE)


class Output:
    """The bytes of the simulated processes as they reach the log file.

    stdout is flushed line by line (`python -u`) or, `buffered`, held in an 8192-byte block like a
    Python stdout redirected without -u: print() writes its text and its newline separately, and a
    write that does not fit flushes the block first, so now and then a chunk ends mid-line. stderr
    (tracebacks, warnings) is line-buffered and overtakes buffered stdout; a killed process loses its
    block. With `stamp_origin`, lines go through `ts '%.s'`, which stamps each line when it has read
    all of it: at its true time, or when its block was flushed.
    """

    def __init__(self, sink: Callable[[bytes], object], *, buffered: bool = False,
                 stamp_origin: float | None = None) -> None:
        self._sink = sink
        self._buffered = buffered
        self._origin = stamp_origin
        self._block = bytearray()
        self._partial = b""  # what `ts` has read of a line whose newline has not come yet

    def emit(self, e: Emission) -> None:
        if e.stream == OUT and self._buffered:
            self._buffer(e.t, e.text.encode())
            self._buffer(e.t, b"\n")
        elif e.stream in (OUT, ERR):
            self._put(e.t, e.text.encode() + b"\n")
        elif e.stream == EXIT:
            self.end(e.t, flush=True)
        elif e.stream == KILLED:
            self.end(e.t, flush=False)

    def end(self, t: float, *, flush: bool) -> None:
        """The process is gone: a normal exit flushes its block, a kill loses it; `ts` sees end of input."""
        if flush and self._block:
            self._put(t, bytes(self._block))
        self._block.clear()
        if self._partial:
            self._sink(self._stamp(t) + self._partial)
            self._partial = b""

    def _buffer(self, t: float, data: bytes) -> None:
        if len(self._block) + len(data) > BLOCK:
            self._put(t, bytes(self._block))
            self._block.clear()
        self._block += data

    def _put(self, t: float, data: bytes) -> None:
        if not data:
            return
        if self._origin is None:
            self._sink(data)
            return
        *lines, self._partial = (self._partial + data).split(b"\n")
        if lines:
            stamp = self._stamp(t)
            self._sink(b"".join(stamp + line + b"\n" for line in lines))

    def _stamp(self, t: float) -> bytes:
        return f"{self._origin + t:.6f} ".encode() if self._origin is not None else b""


def play(items: Iterable[Emission], out: Output, *, speed: float = 1.0, instant: bool = False,
         stop: threading.Event | None = None, clock: Callable[[], float] = time.monotonic) -> bool:
    """Emit each item at its time ÷ speed after the start. True when the run has written all it ever
    will, False when `stop` was set first (the process is then treated as killed)."""
    stop = stop or threading.Event()
    began = clock()
    for e in items:
        if not instant:
            wait = None if e.stream == STALLED else began + e.t / speed - clock()
            if (wait is None or wait > 0) and stop.wait(wait):
                out.end(e.t, flush=False)
                return False
        elif stop.is_set():
            out.end(e.t, flush=False)
            return False
        out.emit(e)
    return True


def open_out(path: str) -> BinaryIO:
    try:
        return open(path, "ab", buffering=0)
    except OSError as e:
        raise TrainwatchError(f"{path}: {e.strerror}") from None


def write(cfg: SimConfig, path: str, *, speed: float = 1.0, instant: bool = False, buffered: bool = False,
          timestamps: bool = False, start_time: float | None = None, stop: threading.Event | None = None) -> bool:
    """Append the simulated run to `path`, live (see play)."""
    with open_out(path) as fh:
        return _write_to(fh, cfg, speed=speed, instant=instant, buffered=buffered, timestamps=timestamps,
                         start_time=start_time, stop=stop)


def _write_to(fh: BinaryIO, cfg: SimConfig, *, speed: float, instant: bool, buffered: bool, timestamps: bool,
              start_time: float | None, stop: threading.Event | None) -> bool:
    origin = (time.time() if start_time is None else start_time) if timestamps else None
    return play(emissions(cfg), Output(fh.write, buffered=buffered, stamp_origin=origin),
                speed=speed, instant=instant, stop=stop)


@dataclass
class Background:
    """A simulation writing in a thread of this process (what `trainwatch demo` runs)."""

    thread: threading.Thread
    stop_event: threading.Event

    @property
    def done(self) -> bool:
        return not self.thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self.thread.join(timeout)


def start(cfg: SimConfig, path: str, *, speed: float = 1.0, buffered: bool = False, timestamps: bool = False,
          start_time: float | None = None) -> Background:
    """Start writing `path` in a daemon thread; the file is opened here, so a bad path raises here."""
    fh = open_out(path)
    stop = threading.Event()

    def body() -> None:
        with fh:
            _write_to(fh, cfg, speed=speed, instant=False, buffered=buffered, timestamps=timestamps,
                      start_time=start_time, stop=stop)

    thread = threading.Thread(target=body, name="trainwatch-simulate", daemon=True)
    thread.start()
    return Background(thread, stop)


# ---- command line ------------------------------------------------------------------------------

def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v <= 1.0:
        raise ValueError(text)
    return v


def _positive(text: str) -> float:
    v = float(text)
    if not 0 < v <= 1e9:  # NaN and inf too: they would reach the simulated clock
        raise ValueError(text)
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", metavar="OUT", help="log file to append to (created if missing)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="shakespeare-char",
                   help="which run to simulate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="same seed and options, same log (default: %(default)s)")
    p.add_argument("--speed", type=_positive, default=1.0, help="times faster than real (default: %(default)s)")
    p.add_argument("--instant", action="store_true", help="write everything at once, no waiting")
    g = p.add_argument_group("the run (printed as nanoGPT `Overriding:` lines)")
    g.add_argument("--max-iters", type=int, help="last iteration (nanoGPT runs 0..max_iters)")
    g.add_argument("--log-interval", type=int, help="iterations between iter lines")
    g.add_argument("--eval-interval", type=int, help="iterations between evals")
    g.add_argument("--iter-ms", type=_positive, help="steady-state milliseconds per iteration")
    g.add_argument("--ddp", type=int, metavar="N", help="ranks: startup lines printed N times, some interleaved")
    g.add_argument("--no-compile", dest="compile", action="store_false", default=None,
                   help="compile = False: no torch.compile warm-up in the first iteration")
    f = p.add_argument_group("failures (AT is a fraction of max_iters)")
    f.add_argument("--crash-at", type=_fraction, metavar="AT", help="die with a CUDA out-of-memory traceback")
    f.add_argument("--nan-at", type=_fraction, metavar="AT", help="losses become nan")
    f.add_argument("--stall-at", type=_fraction, metavar="AT", help="hang: alive, no output")
    f.add_argument("--stall-seconds", type=parse_duration, metavar="DURATION",
                   help="how long the hang lasts, in simulated time (default: for good)")
    f.add_argument("--slowdown-at", type=_fraction, metavar="AT", help="iterations get slower from there")
    f.add_argument("--slowdown-factor", type=_positive, default=1.4, help="how much slower (default: %(default)s)")
    f.add_argument("--resume-at", type=_fraction, metavar="AT",
                   help="die silently, then a run resumed from the last checkpoint appends to the same file")
    f.add_argument("--resume-delay", type=parse_duration, default=45.0, metavar="DURATION",
                   help="simulated time until the resumed run starts (default: 45s)")
    o = p.add_argument_group("output")
    o.add_argument("--buffered", action="store_true",
                   help="block-buffered stdout (8192-byte chunks, like python without -u)")
    o.add_argument("--timestamps", action="store_true",
                   help="prefix each line with its simulated unix time, like `| ts '%%.s'`")
    o.add_argument("--start-time", type=float, metavar="UNIX",
                   help="simulated start time for --timestamps (default: now)")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    try:
        return SimConfig(
            preset=args.preset, seed=args.seed, max_iters=args.max_iters, eval_interval=args.eval_interval,
            log_interval=args.log_interval, iter_ms=args.iter_ms, ddp=args.ddp, crash_at=args.crash_at,
            nan_at=args.nan_at, stall_at=args.stall_at, stall_s=args.stall_seconds, slowdown_at=args.slowdown_at,
            slowdown_factor=args.slowdown_factor, resume_at=args.resume_at, resume_delay_s=args.resume_delay,
            compile=args.compile)
    except ValueError as e:
        raise TrainwatchError(str(e)) from None


class _Signalled(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run(args: argparse.Namespace) -> int:
    """Write the log; SIGINT/SIGTERM end it quietly (exit 128 + signal number), as a killed trainer would."""
    cfg = config_from_args(args)
    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum: int, frame: object) -> None:
            raise _Signalled(signum)
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        write(cfg, args.out, speed=args.speed, instant=args.instant, buffered=args.buffered,
              timestamps=args.timestamps, start_time=args.start_time)
    except _Signalled as s:
        return 128 + s.signum
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)  # type: ignore[arg-type]
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m monitor.sim.write", description="Write a simulated nanoGPT log live.")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except TrainwatchError as e:
        print(f"trainwatch: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
