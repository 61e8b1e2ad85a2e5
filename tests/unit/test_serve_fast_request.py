"""racentre.arbiter.simple_request: the main thread's reader of the bytes read from a kept-alive connection
takes only one complete, plain POST /tsa[/<unit>], POST /ocsp[/<ca>], POST /api/v1/trust/verify or GET
/ocsp/<ca>/<request> and
leaves everything else to gunicorn's parser."""
from __future__ import annotations

import pytest

from racentre.arbiter import simple_request

CT = b"Content-Type: application/timestamp-query\r\n"
OT = b"Content-Type: application/ocsp-request\r\n"


def req(body=b"\x30\x00", *, line=b"POST /tsa HTTP/1.1", fields=b"Host: x\r\n" + CT, length=None) -> bytes:
    n = len(body) if length is None else length
    return line + b"\r\n" + fields + b"Content-Length: %d\r\n\r\n" % n + body


def test_plain_requests_are_read():
    assert simple_request(req(b"abc")) == ("POST", "/tsa", (1, 1), "application/timestamp-query", "3", None, b"abc", None)
    assert simple_request(req(line=b"POST /tsa/ecdsa HTTP/1.0", fields=CT + b"Connection: Keep-Alive\r\n")) == \
        ("POST", "/tsa/ecdsa", (1, 0), "application/timestamp-query", "2", b"keep-alive", b"\x30\x00", None)
    assert simple_request(req(line=b"POST /tsa/ HTTP/1.1", fields=b"content-type:  x/y ; a=b \t\r\n")) == \
        ("POST", "/tsa/", (1, 1), "x/y ; a=b", "2", None, b"\x30\x00", None)


def test_ocsp_requests_are_read():
    assert simple_request(req(line=b"POST /ocsp HTTP/1.1", fields=OT)) == \
        ("POST", "/ocsp", (1, 1), "application/ocsp-request", "2", None, b"\x30\x00", None)
    assert simple_request(req(line=b"POST /ocsp/issuing-sm2 HTTP/1.1", fields=OT)) == \
        ("POST", "/ocsp/issuing-sm2", (1, 1), "application/ocsp-request", "2", None, b"\x30\x00", None)
    get = b"GET /ocsp/issuing-sm2/MEUw%2BQ/A= HTTP/1.1\r\nHost: x\r\n\r\n"
    assert simple_request(get) == ("GET", "/ocsp/issuing-sm2/MEUw%2BQ/A=", (1, 1), "", "", None, b"", None)
    assert simple_request(get.replace(b"\r\n\r\n", b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")) == \
        ("GET", "/ocsp/issuing-sm2/MEUw%2BQ/A=", (1, 1), "", "0", b"close", b"", None)


def test_trust_verify_requests_are_read_with_their_authorization():
    line, ct = b"POST /api/v1/trust/verify HTTP/1.1", b"Content-Type: application/json\r\n"
    assert simple_request(req(b"{}", line=line, fields=ct + b"Authorization: Bearer rac_x\r\n")) == \
        ("POST", "/api/v1/trust/verify", (1, 1), "application/json", "2", None, b"{}", "Bearer rac_x")
    assert simple_request(req(b"{}", line=line, fields=ct))[-1] is None
    twice = ct + b"Authorization: Bearer a\r\nAuthorization: Bearer b\r\n"
    assert simple_request(req(b"{}", line=line, fields=twice)) is None         # duplicate: gunicorn's parser
    for other in (b"POST /api/v1/trust/sign HTTP/1.1", b"POST /api/v1/trust/verify?x=1 HTTP/1.1"):
        assert simple_request(req(b"{}", line=other, fields=ct)) is None


@pytest.mark.parametrize("data", [
    b"",
    req()[:-1],                                                     # body incomplete
    req()[:20],                                                     # head incomplete
    req() + req(),                                                  # pipelined: gunicorn's parser
    req(line=b"GET /tsa HTTP/1.1"),
    req(line=b"POST /tsafoo HTTP/1.1"),
    req(line=b"POST /tsa?x=1 HTTP/1.1"),
    req(line=b"POST /ts%61 HTTP/1.1"),
    req(line=b"POST /tsa/%2e HTTP/1.1"),
    req(line=b"POST /tsa HTTP/2.0"),
    req(line=b"POST  /tsa HTTP/1.1"),
    req(line=b"POST /tsa HTTP/1.1 x"),
    req(fields=b"Host: x\r\n"),                                      # no content type
    req(fields=CT + CT),                                            # duplicate content type
    req(fields=CT + b"Content-Length: 2\r\n"),                      # duplicate length
    req(fields=CT + b"Transfer-Encoding: chunked\r\n"),
    req(fields=CT + b"Expect: 100-continue\r\n"),
    req(fields=CT + b"SCRIPT_NAME: /x\r\n"),
    req(fields=CT + b"Upgrade: h2c\r\nConnection: Upgrade\r\n"),
    req(fields=CT + b"Connection: keep-alive, upgrade\r\n"),
    req(fields=CT + b"X-A: 1\r\n b\r\n"),                           # obs-fold
    req(fields=CT + b"X A: 1\r\n"),
    req(fields=CT + b"X-A : 1\r\n"),
    req(fields=CT + b"X_A: 1\r\n"),
    req(fields=CT + b"NoColon\r\n"),
    req(fields=CT + b"X-A: a\nb\r\n"),
    req(fields=CT + b"X-A: a\x00b\r\n"),
    req(fields=CT + b"X-A: " + b"a" * 9000 + b"\r\n"),               # over gunicorn's field size limit
    b"POST /tsa HTTP/1.1\r\n" + CT + b"Content-Length: +2\r\n\r\n\x30\x00",
    b"POST /tsa HTTP/1.1\r\n" + CT + b"Content-Length: 0x2\r\n\r\n\x30\x00",
    b"POST /tsa HTTP/1.1\r\n" + CT + b"Content-Length: 1234567890\r\n\r\n",
    b"POST /tsa HTTP/1.1\n" + CT + b"Content-Length: 2\n\n\x30\x00",
    req(line=b"POST /ocsp/ HTTP/1.1", fields=OT),
    req(line=b"POST /ocsp/a/b HTTP/1.1", fields=OT),
    req(line=b"POST /ocsp/%61 HTTP/1.1", fields=OT),
    req(line=b"GET /ocsp/a HTTP/1.1", fields=OT),                   # a GET with a body
    b"GET /ocsp/a HTTP/1.1\r\n\r\n",                                  # no request in the path
    b"GET /ocsp/a/ HTTP/1.1\r\n\r\n",
    b"GET /ocsp/a/MEUw?x=1 HTTP/1.1\r\n\r\n",
    b"GET /ocsp/a/MEUw HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    b"GET /ocsp/a/MEUw HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HEAD /ocsp/a/MEUw HTTP/1.1\r\n\r\n",
    b'GET /ocsp/a/MEUw HTTP/1.1\r\nIf-None-Match: "x"\r\n\r\n',         # conditional: Flask may answer 304
    b"GET /ocsp/a/MEUw HTTP/1.1\r\nif-modified-since: Mon, 07 Dec 2026 10:00:00 GMT\r\n\r\n",
    b"GET /tsa HTTP/1.1\r\n\r\n",
])
def test_everything_else_is_left_to_gunicorn(data):
    assert simple_request(data) is None


class _Handler:
    """A blocking fast path that records which stage ran; ``staged`` decides whether it has stages."""

    blocking = True

    def __init__(self, staged: bool):
        self.calls: list[str] = []
        if staged:
            self.stage_many = self._stage_many

    def answer(self, method, path, content_type, length, read):
        return "x/y", read(int(length))

    def answer_many(self, requests):
        self.calls.append("answer_many")
        return [("x/y", body) for *_, body in requests]

    def _stage_many(self, requests):
        handler = self

        class Stages:
            def read(self):
                handler.calls.append("read")

            def answers(self):
                handler.calls.append("answers")
                return [("x/y", body.upper()) for *_, body in requests]

            def writes(self):
                return True

            def write(self):
                handler.calls.append("write")
        return Stages()


def test_stage_many_keeps_the_order_and_runs_each_handler_s_stages():
    """racentre.fastpath.FastPaths.stage_many (the worker's batch thread runs read/write, its main thread
    answers): the answers of several handlers come back in the requests' order; a handler without stages
    is answered whole in ``read``; paths without a handler get None."""
    from racentre.fastpath import FastPaths
    paths = FastPaths(None)
    staged, whole = _Handler(True), _Handler(False)
    paths.handlers.update(ocsp=staged, tsa=whole)
    requests = [("POST", "/ocsp", "a/b", "1", b"a"), ("POST", "/tsa", "a/b", "1", b"b"),
                ("POST", "/other", "a/b", "1", b"c"), ("POST", "/ocsp/x", "a/b", "1", b"d")]
    assert paths.blocking("/ocsp/x") and not paths.blocking("/other")
    stages = paths.stage_many(requests)
    stages.read()
    assert staged.calls == ["read"] and whole.calls == ["answer_many"]
    assert stages.answers() == [("x/y", b"A"), ("x/y", b"b"), None, ("x/y", b"D")]
    assert stages.writes()
    stages.write()
    assert staged.calls == ["read", "answers", "write"] and whole.calls == ["answer_many"]
