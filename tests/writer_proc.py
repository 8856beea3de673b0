"""A log writer in its own process, driven by commands on stdin, for the tail tests and benchmarks.

    python tests/writer_proc.py PATH [--no-append] [--start N]

Every line it writes is `seq NNNNNN <padding>`, numbered from --start, so a reader can check that each
line arrived exactly once and in order. It writes with os.write (no buffering) and answers each command
with `ok <next seq>` once the command's effect is on disk. --no-append opens the file the way a shell
`>` does (O_TRUNC, no O_APPEND): after an outside truncation it goes on writing at its old offset.

Commands, one per line:
    lines N        append N lines, one write() each (a burst: the reader sees the events merge)
    block N        append N lines in a single write()
    half           write the first half of the next line, no newline
    rest           write the rest of that line and its newline
    raw HEX        write these bytes as they are (invalid UTF-8, a line without its number)
    bigline MB     write MB MiB of 'y' with no newline, 1 MiB per write (a newline comes with `raw 0a`)
    stamp N GAP    append N lines carrying `t=<time.monotonic()>` written just before each write, GAP
                   seconds apart (the latency benchmark)
    truncate       truncate PATH to 0 in place (`> out.log`); the writer keeps its descriptor
    copytruncate   copy PATH to PATH.1, then truncate PATH in place (logrotate copytruncate)
    rename         rename PATH to PATH.1 and open a new PATH (logrotate create + a writer that reopens)
    delete         close and unlink PATH
    create         open PATH again (after delete)
    quit
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time


class Writer:
    def __init__(self, path: str, *, append: bool, start: int) -> None:
        self.path = path
        self.flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self.seq = start
        self.fd: int | None = os.open(path, self.flags, 0o644)
        self.half: bytes = b""

    def line(self) -> bytes:
        text = f"seq {self.seq:06d} " + "x" * (self.seq % 41)
        self.seq += 1
        return (text + "\n").encode()

    def write(self, data: bytes) -> None:
        assert self.fd is not None, "no file open: send `create` first"
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def run(self, cmd: str, args: list[str]) -> None:
        if cmd == "lines":
            for _ in range(int(args[0])):
                self.write(self.line())
        elif cmd == "block":
            self.write(b"".join(self.line() for _ in range(int(args[0]))))
        elif cmd == "half":
            whole = self.line()
            cut = len(whole) // 2
            self.write(whole[:cut])
            self.half = whole[cut:]
        elif cmd == "rest":
            self.write(self.half)
            self.half = b""
        elif cmd == "raw":
            self.write(bytes.fromhex(args[0]))
        elif cmd == "bigline":
            block = b"y" * (1 << 20)
            for _ in range(int(args[0])):
                self.write(block)
        elif cmd == "stamp":
            gap = float(args[1])
            for _ in range(int(args[0])):
                self.write(f"seq {self.seq:06d} t={time.monotonic():.9f}\n".encode())
                self.seq += 1
                time.sleep(gap)
        elif cmd == "truncate":
            os.truncate(self.path, 0)
        elif cmd == "copytruncate":
            shutil.copyfile(self.path, self.path + ".1")
            os.truncate(self.path, 0)
        elif cmd == "rename":
            os.rename(self.path, self.path + ".1")
            self.reopen()
        elif cmd == "delete":
            self.close()
            os.unlink(self.path)
        elif cmd == "create":
            self.reopen()
        else:
            raise SystemExit(f"unknown command {cmd!r}")

    def reopen(self) -> None:
        self.close()
        self.fd = os.open(self.path, self.flags, 0o644)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("--no-append", action="store_true")
    ap.add_argument("--start", type=int, default=0)
    opts = ap.parse_args()
    writer = Writer(opts.path, append=not opts.no_append, start=opts.start)
    print(f"ok {writer.seq}", flush=True)
    for request in sys.stdin:
        cmd, *args = request.split()
        if cmd == "quit":
            break
        writer.run(cmd, args)
        print(f"ok {writer.seq}", flush=True)
    writer.close()


if __name__ == "__main__":
    main()
