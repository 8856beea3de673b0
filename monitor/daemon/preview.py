"""A first look at a big log: its head (the config) and its tail (where the run is now).

Reading a 1 GB log fully takes tens of seconds; its first screen should not. The preview parses the
first and last few MiB as if the middle were unprinted iterations, which gives the config, the
current iteration, loss and speed — a forecast — at once; the full history replaces it when read.
"""

from __future__ import annotations

import os

from monitor.daemon.load import new_ingest
from monitor.follow.lines import LineSplitter
from monitor.model.ingest import Ingest

PREVIEW_ABOVE = 8 << 20  # bytes: the Follower's read slice; a smaller log is read whole in its first step
HEAD = 1 << 20
TAIL = 4 << 20


def preview(path: str, *, format: str | None, user: dict[str, object]) -> Ingest | None:
    """The head-and-tail state of `path`, or None when it is small, unreadable or not worth it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_size <= PREVIEW_ABOVE:
            return None
        head = os.pread(fd, HEAD, 0)
        tail = os.pread(fd, TAIL, st.st_size - TAIL)
    except OSError:
        return None
    finally:
        os.close(fd)
    ingest = new_ingest(head, format=format, user=user)
    head_lines = LineSplitter().feed(head)
    cut = tail.find(b"\n")  # the tail starts mid-line: drop that fragment
    tail_lines = LineSplitter().feed(tail[cut + 1:]) if cut >= 0 else []
    ingest.feed_lines(head_lines, None)
    ingest.feed_lines(tail_lines, None)
    ingest.state.anchor(st.st_mtime)
    return ingest
