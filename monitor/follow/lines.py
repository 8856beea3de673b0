"""Bytes to lines: the partial last line is held until its newline arrives; giant lines are capped."""

from __future__ import annotations

from parsers.text import MAX_LINE_CHARS

MAX_LINE_BYTES = MAX_LINE_CHARS * 4  # a UTF-8 char is at most 4 bytes


class LineSplitter:
    """Feeds on chunks of a file and returns its complete lines, decoded (invalid UTF-8 replaced).

    A line longer than MAX_LINE_BYTES keeps its first MAX_LINE_BYTES and drops the rest up to its
    newline, so a 100 MB line costs bounded memory and still counts as one line.
    """

    def __init__(self) -> None:
        self._partial = bytearray()
        self._skipping = False  # inside an over-long line, discarding until its newline

    def feed(self, chunk: bytes) -> list[str]:
        if not chunk:
            return []
        out: list[str] = []
        start = 0
        if self._skipping or self._partial:
            nl = chunk.find(b"\n")
            if nl < 0:
                self._extend(chunk)
                return out
            self._extend(chunk[:nl])
            out.append(_decode(bytes(self._partial)))
            self._partial.clear()
            self._skipping = False
            start = nl + 1
        end = chunk.rfind(b"\n")
        if end >= start:
            out.extend(_decode_lines(chunk[start:end]))
            start = end + 1
        if start < len(chunk):
            self._extend(chunk[start:])
        return out

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


def _decode_lines(body: bytes) -> list[str]:
    text = body.decode("utf-8", "replace")
    lines = text.split("\n")
    if len(body) > MAX_LINE_BYTES and max(map(len, lines)) > MAX_LINE_BYTES:
        lines = [ln[:MAX_LINE_BYTES] for ln in lines]
    if "\r\n" in text:  # CRLF line ends (screen logs)
        lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    return lines
