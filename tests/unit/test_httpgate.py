"""racentre.httpgate: the main thread's framing of one HTTP/1.1 request (RFC 9112 §6), fed in pieces."""
from __future__ import annotations

import random

import pytest

from racentre.httpgate import SPOOL_BYTES, GateRefusal, IncomingRequest


def feed_in_pieces(incoming: IncomingRequest, data: bytes, seed: int = 0) -> bool:
    rng = random.Random(seed)
    pos, done = 0, False
    while pos < len(data):
        step = rng.randint(1, 7)
        done = incoming.feed(data[pos:pos + step])
        pos += step
        if done:
            break
    if pos < len(data):
        incoming.feed(data[pos:])
    return done


def taken(incoming: IncomingRequest) -> bytes:
    out = incoming.take()
    return out if isinstance(out, bytes) else out.read()


@pytest.mark.parametrize("seed", range(5))
def test_content_length_request_in_pieces_with_a_pipelined_rest(seed):
    request = b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    incoming = IncomingRequest()
    assert feed_in_pieces(incoming, request + b"GET / HTTP/1.1\r\n", seed)
    assert incoming.complete and taken(incoming) == request + b"GET / HTTP/1.1\r\n"


def test_incomplete_until_the_last_byte():
    incoming = IncomingRequest()
    assert not incoming.feed(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert not incoming.feed(b"\r")
    assert incoming.feed(b"\n") and taken(incoming) == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    body = IncomingRequest()
    assert not body.feed(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab")
    assert body.feed(b"c")


@pytest.mark.parametrize("seed", range(8))
def test_chunked_body_ends_where_the_framing_says(seed):
    body = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: t\r\n\r\n"
    request = b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + body
    incoming = IncomingRequest()
    assert feed_in_pieces(incoming, request + b"NEXT", seed)
    assert taken(incoming) == request + b"NEXT"


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),    # smuggling shape
    (b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 400),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY", 400),                 # no CRLF after data
    (b"POST / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n", 413),
    (b"POST /tsa HTTP/1.1\r\nContent-Length: 20000\r\n\r\n", 413),                           # the path's own limit
    (b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 40000, 431),
    (b" GET / HTTP/1.1\r\n\r\n", 400),
])
def test_refusals(request_bytes, status):
    incoming = IncomingRequest(body_limit=lambda target: 16384 if target == b"/tsa" else None)
    with pytest.raises(GateRefusal) as refused:
        incoming.feed(request_bytes)
    assert refused.value.status == status
    head = refused.value.response()
    assert head.startswith(b"HTTP/1.1 %d " % status) and b"Connection: close" in head


def test_chunked_body_over_the_limit_is_413():
    incoming = IncomingRequest(max_body_bytes=100)
    incoming.feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(GateRefusal) as refused:
        for _ in range(10):
            incoming.feed(b"10\r\n" + b"x" * 16 + b"\r\n")
    assert refused.value.status == 413


def test_large_bodies_spill_to_a_file_not_memory():
    body = bytes(range(256)) * (4 * SPOOL_BYTES // 256)
    request = b"POST /seal HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    incoming = IncomingRequest()
    for i in range(0, len(request), 4096):
        incoming.feed(request[i:i + 4096])
        assert len(incoming._body) <= SPOOL_BYTES
    out = incoming.take()
    assert not isinstance(out, bytes) and out.read() == request
    incoming.close()


def test_deadlines_header_then_whole_request():
    incoming = IncomingRequest(now=100.0, header_timeout=10, request_timeout=60)
    assert not incoming.expired(109.9) and incoming.expired(110.0)
    incoming.feed(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
    assert not incoming.expired(159.9) and incoming.expired(160.0)
    assert incoming.expect_continue is False
    waiting = IncomingRequest()
    waiting.feed(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert waiting.expect_continue and not waiting.complete
