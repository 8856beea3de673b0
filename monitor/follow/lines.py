"""Bytes to lines: the partial last line is held until its newline arrives; giant lines are capped."""

from __future__ import annotations

from parsers.text import MAX_LINE_BYTES, decode_lines


class LineSplitter:
    """Feeds on chunks of a file and returns its complete lines, decoded (invalid UTF-8 replaced).

    A line longer than MAX_LINE_BYTES keeps its first MAX_LINE_BYTES and drops the rest up to its
    newline, so a 100 MB line costs bounded memory and still counts as one line.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skipping = False  # inside an over-long line, discarding until its newline

    def feed(self, chunk: bytes) -> list[str]:
        head, body = self._complete(chunk)
        out = [_decode(head)] if head is not None else []
        if body:
            out.extend(decode_lines(body[:-1]))
        return out

    def feed_block(self, chunk: bytes) -> bytes:
        """The chunk's complete lines undecoded, each ending in a newline (monitor.model.bulk reads bytes):
        `decode_lines` of it, its last newline left out, is what `feed` returns."""
        head, body = self._complete(chunk)
        return body if head is None else head + b"\n" + body

    def _complete(self, chunk: bytes) -> tuple[bytes | None, bytes]:
        """The line the held part completes (capped, without its newline), and the complete lines after it."""
        head: bytes | None = None
        start = 0
        if chunk and (self._skipping or self._partial):
            nl = chunk.find(b"\n")
            if nl < 0:
                self._extend(chunk)
                return None, b""
            self._extend(chunk[:nl])
            head = bytes(self._partial)
            self._partial.clear()
            self._skipping = False
            start = nl + 1
        body = b""
        end = chunk.rfind(b"\n")
        if end >= start:
            body = chunk[start:end + 1]
            start = end + 1
        if start < len(chunk):
            self._extend(chunk[start:])
        return head, body

    def flush(self) -> str | None:
        """The unterminated last line, if any (a log that ends without a newline)."""
        if not self._partial:
            return None
        line = _decode(bytes(self._partial))
        self._partial.clear()
        self._skipping = False
        return line

    @property
    def pending(self) -> int:
        return len(self._partial)

    def reset(self) -> None:
        self._partial.clear()
        self._skipping = False

    def _extend(self, data: bytes) -> None:
        if self._skipping:
            return
        room = MAX_LINE_BYTES - len(self._partial)
        if len(data) > room:
            self._partial += data[:room]
            self._skipping = True
        else:
            self._partial += data


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").rstrip("\r")
