"""Framing of one HTTP/1.1 request before any thread is spent on it (RFC 9112 §2-§7): the serving worker's
main thread feeds what a connection sends into an ``IncomingRequest`` until the whole request is there
(header block, then the body by Content-Length or chunked framing, §6.3), and only then hands it to a
thread. A client that sends slowly (slowloris: slow headers, slow bodies) costs a buffer and a socket,
never a thread, and is cut off at its deadline with 408 (RFC 9110 §15.5.9); a header block over the limit
gets 431 (RFC 6585 §5), a body over the limit 413 (RFC 9110 §15.5.14), unframeable input 400.

Memory per connection is bounded: the header block is at most ``max_header_bytes``; a body is held in
memory up to ``SPOOL_BYTES`` and spilled to an anonymous temporary file beyond (at most ``max_body_bytes``).
Standard library only: the small arbiter (``racentre.arbiter``) imports this module.
"""
from __future__ import annotations

import json

import re
import tempfile
import time

MAX_HEADER_BYTES = 32 * 1024          # request line + fields + the empty line
MAX_BODY_BYTES = 16 * 1024 * 1024     # what the Flask app accepts (racentre.web.MAX_BODY)
SPOOL_BYTES = 64 * 1024               # body bytes kept in memory per connection; the rest goes to a temp file
HEADER_TIMEOUT = 10.0                 # seconds from a request's first byte (or the connection) to its last header
REQUEST_TIMEOUT = 60.0                # seconds from a request's first byte to its last body byte

_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,8})[ \t]*(?:;[^\r\n]*)?\Z")


class GateRefusal(Exception):
    """The request cannot be taken: ``status`` (400, 408, 413, 431) and a reason for the client."""

    REASONS = {400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
               431: "Request Header Fields Too Large"}

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> bytes:
        """The whole HTTP/1.1 answer (the connection is closed after it): RFC 9457 problem details, as
        racentre.web answers every other error (with the older ``error`` object beside them)."""
        code = {400: "bad_request", 408: "request_timeout", 413: "too_large",
                431: "request_header_fields_too_large"}[self.status]
        body = json.dumps({"type": f"urn:racentre:problem:{code}", "title": self.REASONS[self.status],
                           "status": self.status, "detail": self.message, "code": code,
                           "error": {"code": code, "message": self.message}}, ensure_ascii=False).encode()
        return (f"HTTP/1.1 {self.status} {self.REASONS[self.status]}\r\nConnection: close\r\n"
                f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


class IncomingRequest:
    """The bytes of the next request on one connection, as they arrive (``feed``), until ``complete``.

    ``deadline`` (``time.monotonic()``) is when the header block must be complete (set at creation: the
    connection's accept, or the moment a kept-alive connection becomes readable); once the headers are in,
    it moves to ``REQUEST_TIMEOUT`` after the first byte. ``take()`` then gives the request — bytes, or a
    temporary file positioned at 0 — with anything the client sent after it (a pipelined request)."""

    __slots__ = ("head", "header_end", "expect_continue", "continue_sent", "_length", "_chunked", "_body",
                 "_body_bytes", "_spool", "_scan", "_done", "_extra", "started", "deadline", "max_body",
                 "max_header", "request_timeout", "body_limit")

    def __init__(self, *, now: float | None = None, header_timeout: float = HEADER_TIMEOUT,
                 request_timeout: float = REQUEST_TIMEOUT, max_header_bytes: int = MAX_HEADER_BYTES,
                 max_body_bytes: int = MAX_BODY_BYTES, body_limit=None):
        now = time.monotonic() if now is None else now
        self.head = bytearray()
        self.header_end = -1
        self.expect_continue = False
        self.continue_sent = False
        self._length = 0
        self._chunked = False
        self._body = bytearray()
        self._body_bytes = 0
        self._spool = None
        self._scan = None
        self._done = False
        self._extra = b""
        self.started = now
        self.deadline = now + header_timeout
        self.request_timeout = request_timeout
        self.max_header = max_header_bytes
        self.max_body = max_body_bytes
        self.body_limit = body_limit            # request target (bytes) -> a lower body limit for it, or None

    @property
    def received(self) -> bool:
        """Whether any byte of this request arrived."""
        return bool(self.head)

    @property
    def complete(self) -> bool:
        return self._done

    def expired(self, now: float) -> bool:
        return now >= self.deadline

    # ----------------------------------------------------------------- feeding
    def feed(self, data: bytes) -> bool:
        """Add received bytes; -> whether the request is complete. GateRefusal when it cannot be taken."""
        if self._done:
            self._extra += data
            return True
        if self.header_end < 0:
            start = max(0, len(self.head) - 3)
            self.head += data
            end = self.head.find(b"\r\n\r\n", start)
            if end < 0:
                if len(self.head) > self.max_header:
                    raise GateRefusal(431, f"the request header block is limited to {self.max_header} bytes")
                return False
            if end + 4 > self.max_header:
                raise GateRefusal(431, f"the request header block is limited to {self.max_header} bytes")
            self.header_end = end + 4
            rest = bytes(self.head[self.header_end:])
            del self.head[self.header_end:]
            self._frame()
            self.deadline = self.started + self.request_timeout
            return self._body_feed(rest)
        return self._body_feed(data)

    def _frame(self) -> None:
        """Content-Length or chunked (RFC 9112 §6.1-§6.3) from the header block; smuggling-prone
        combinations (both, several different lengths, a coding other than chunked last) are 400."""
        lines = bytes(self.head[:self.header_end - 4]).split(b"\r\n")
        if not lines[0] or lines[0][:1] in b" \t":
            raise GateRefusal(400, "malformed request line")
        if self.body_limit is not None:
            target = lines[0].split(b" ")
            limit = self.body_limit(target[1].split(b"?", 1)[0]) if len(target) == 3 else None
            if limit is not None:
                self.max_body = min(self.max_body, limit)
        lengths, codings = set(), []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise GateRefusal(400, "malformed header field")
            key = name.lower()
            value = value.strip(b" \t")
            if key == b"content-length":
                for item in value.split(b","):
                    item = item.strip(b" \t")
                    if not item.isdigit() or len(item) > 12:
                        raise GateRefusal(400, "invalid Content-Length")
                    lengths.add(int(item))
            elif key == b"transfer-encoding":
                codings += [c.strip(b" \t").lower() for c in value.split(b",") if c.strip(b" \t")]
            elif key == b"expect" and value.lower() == b"100-continue":
                self.expect_continue = True
        if codings:
            if lengths:
                raise GateRefusal(400, "both Transfer-Encoding and Content-Length")
            if codings[-1] != b"chunked":
                raise GateRefusal(400, "a request's transfer coding must end with chunked")
            self._chunked = True
            self._scan = _ChunkScanner()
        elif len(lengths) > 1:
            raise GateRefusal(400, "conflicting Content-Length values")
        elif lengths:
            self._length = lengths.pop()
            if self._length > self.max_body:
                raise GateRefusal(413, f"request bodies are limited to {self.max_body} bytes")
        if not self._chunked and self._length == 0:
            self.expect_continue = False

    def _store(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._spool is None and self._body_bytes > SPOOL_BYTES:
            self._spool = tempfile.TemporaryFile()
            self._spool.write(self.head)
            self._spool.write(self._body)
            self._body = bytearray()
        if self._spool is not None:
            self._spool.write(data)
        else:
            self._body += data

    def _body_feed(self, data: bytes) -> bool:
        if not data and (self._chunked or self._length > self._body_bytes):
            return False
        if self._chunked:
            used = self._scan.feed(data)
            if self._body_bytes + (used if used >= 0 else len(data)) > self.max_body:
                raise GateRefusal(413, f"request bodies are limited to {self.max_body} bytes")
            if used < 0:
                self._store(data)
                return False
            self._store(data[:used])
            self._extra = data[used:]
        else:
            need = self._length - self._body_bytes
            self._store(data[:need])
            self._extra = data[need:]
            if self._body_bytes < self._length:
                return False
        self._done = True
        return True

    # ----------------------------------------------------------------- result
    def take(self):
        """The complete request followed by whatever came after it: bytes, or a temporary file at 0."""
        if self._spool is not None:
            self._spool.write(self._extra)
            self._spool.seek(0)
            return self._spool
        return bytes(self.head) + bytes(self._body) + self._extra

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


class _ChunkScanner:
    """Finds where a chunked body ends (RFC 9112 §7.1: chunk-size [ext] CRLF data CRLF ... 0 CRLF
    trailers CRLF) over pieces as they arrive, keeping only a partial size or trailer line."""

    __slots__ = ("_line", "_data", "_crlf", "_trailers")

    def __init__(self):
        self._line = b""        # partial chunk-size or trailer line
        self._data = 0          # chunk data still to pass over
        self._crlf = 0          # bytes of the CRLF after chunk data still to check
        self._trailers = False

    def feed(self, data: bytes) -> int:
        """-> how many bytes of ``data`` end the body, or -1 when it goes on. GateRefusal (400) on bad framing."""
        pos, n = 0, len(data)
        while pos < n:
            if self._data:
                step = min(self._data, n - pos)
                self._data -= step
                pos += step
                if not self._data:
                    self._crlf = 2
                continue
            if self._crlf:
                step = min(self._crlf, n - pos)
                if data[pos:pos + step] != b"\r\n"[2 - self._crlf:2 - self._crlf + step]:
                    raise GateRefusal(400, "chunk data not followed by CRLF")
                self._crlf -= step
                pos += step
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]
                if len(self._line) > 4096:
                    raise GateRefusal(400, "chunk-size or trailer line too long")
                return -1
            line = self._line + data[pos:end + 1]
            self._line = b""
            pos = end + 1
            if not line.endswith(b"\r\n"):
                raise GateRefusal(400, "bare LF in chunked framing")
            line = line[:-2]
            if self._trailers:
                if not line:
                    return pos
                continue
            m = _CHUNK_SIZE.match(line)
            if m is None:
                raise GateRefusal(400, "invalid chunk size")
            size = int(m.group(1), 16)
            if size == 0:
                self._trailers = True
            else:
                self._data = size
        return -1
