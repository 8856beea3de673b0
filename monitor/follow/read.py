"""Reading a log file as bytes and lines, once (report, backtest, the first look): no parsing here."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from monitor.errors import TrainwatchError
from monitor.follow.lines import LineSplitter
from parsers.text import decode_lines

CHUNK = 1 << 20
"""The first read, whose lines detect the format; later reads are READ bytes (monitor.model.bulk takes them whole)."""
READ = 8 << 20


def open_log(path: str) -> int:
    """An fd for reading `path`, or a TrainwatchError that says in one line what is wrong."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise TrainwatchError(f"{path}: no such file") from None
    except OSError as e:
        raise TrainwatchError(f"{path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise TrainwatchError(f"{path}: is a directory, not a log file")
    if not stat.S_ISREG(st.st_mode):
        raise TrainwatchError(f"{path}: not a regular file (a FIFO or device is not a log trainwatch can read)")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise TrainwatchError(f"{path}: permission denied") from None
    except OSError as e:
        raise TrainwatchError(f"{path}: {e.strerror}") from None
    return fd


def looks_binary(sample: bytes) -> bool:
    """Binary data rather than a text log: many control bytes or much invalid UTF-8.

    Leading NULs are ignored: a log truncated under a `>` writer legitimately starts with a NUL run.
    """
    body = sample.lstrip(b"\x00")[:65536]
    if not body:
        return False
    control = sum(1 for b in body if b < 32 and b not in (9, 10, 13, 27) or b == 127)
    invalid = body.decode("utf-8", "replace").count("\ufffd")
    return control > 0.05 * len(body) or invalid > 0.1 * len(body)


def read_blocks(path: str, max_bytes: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """The file's complete lines in blocks of undecoded bytes, each line ending in a newline (an
    unterminated last line gets one), with the first chunk's raw bytes (for format detection).

    Raises TrainwatchError for a missing, unreadable, empty or binary file.
    """
    fd = open_log(path)
    try:
        with os.fdopen(fd, "rb", closefd=True) as fh:
            head = fh.read(CHUNK)
            if not head:
                raise TrainwatchError(f"{path}: the file is empty")
            if looks_binary(head[:65536]):
                raise TrainwatchError(f"{path}: not a text log (binary data)")
            splitter = LineSplitter()
            chunk, read = head, len(head)
            while chunk:
                yield head, splitter.feed_block(chunk)
                if max_bytes is not None and read >= max_bytes:
                    break
                chunk = fh.read(READ if max_bytes is None else min(READ, max(max_bytes - read, 1)))
                read += len(chunk)
            tail = splitter.flush()
            if tail is not None:
                yield head, tail.encode() + b"\n"
    except OSError as e:
        raise TrainwatchError(f"{path}: {e.strerror or e}") from None


def read_batches(path: str, max_bytes: int | None = None) -> Iterator[tuple[bytes, list[str]]]:
    """`read_blocks` as decoded lines, for what replays a log line by line (backtest)."""
    for head, block in read_blocks(path, max_bytes):
        yield head, decode_lines(block[:-1]) if block else []


def train_bin_tokens(data_dir: str) -> int:
    """Tokens in nanoGPT's `DATA_DIR/train.bin`, which holds uint16 token ids: its size / 2.

    Raises OSError when the file cannot be read: each caller says in its own words where it came from.
    """
    return os.path.getsize(os.path.join(os.path.expanduser(data_dir), "train.bin")) // 2
