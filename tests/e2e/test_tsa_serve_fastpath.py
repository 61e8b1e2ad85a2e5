"""The TSA over `racentre.serve.serve(workers=2)` (gunicorn, racentre.arbiter.FastPathThreadWorker) on raw
sockets: the pre-WSGI fast path answers POST /tsa exactly like the WSGI one (status line, headers,
keep-alive rules, granted tokens, rejections), and whatever it does not take still reaches Flask."""
from __future__ import annotations

import hashlib
import os
import socket
import time

import pytest
from asn1crypto import tsp

from bench.common import BenchServer, free_port, prepare_tsa_site_in_child, server_command
from timestamp.tsa import TimeStampResp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def port(tmp_path_factory, softtoken_module):
    directory = tmp_path_factory.mktemp("tsa-serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(PYTHONPATH=ROOT, RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    # the bench's scratch token and TSA, set up in a child: this process's PKCS#11 module serves the suite's token
    config = prepare_tsa_site_in_child(directory, 1, env)
    p = free_port()
    with BenchServer(server_command(config, p, 2, 1), p, directory / "server.log", env=env) as server:
        yield p
    assert not server.tracebacks, server.log()


def query(nonce: int, digest: str = "sm3") -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, b"d%d" % nonce).digest()},
        "nonce": nonce, "cert_req": True}).dump()


def post(body: bytes, *, path: str = "/tsa", version: str = "1.1", ctype: str = "application/timestamp-query",
         extra: str = "") -> bytes:
    return (f"POST {path} HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


class Conn:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def response(self) -> tuple[str, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed before a response"
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed inside a body"
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        return lines[0], headers, body

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


def granted_nonce(body: bytes) -> int:
    resp = TimeStampResp.load(body)
    assert resp["status"]["status"].native == "granted"
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    return info["nonce"].native


def test_keep_alive_answers_and_headers(port):
    c = Conn(port)
    try:
        for nonce in (101, 102, 103):
            c.sock.sendall(post(query(nonce)))
            status, headers, body = c.response()
            assert status == "HTTP/1.1 200 OK"
            assert headers["content-type"] == "application/timestamp-reply"
            assert headers["connection"] == "keep-alive" and headers["server"] == "gunicorn"
            assert headers["date"].endswith(" GMT") and int(headers["content-length"]) == len(body)
            assert granted_nonce(body) == nonce
    finally:
        c.close()


def test_pipelined_queries_each_answered(port):
    c = Conn(port)
    try:
        c.sock.sendall(post(query(201)) + post(query(202, "sha256")) + post(b"\x30\x00"))
        assert granted_nonce(c.response()[2]) == 201
        assert granted_nonce(c.response()[2]) == 202
        status, _, body = c.response()
        assert status == "HTTP/1.1 200 OK" and TimeStampResp.load(body)["status"]["status"].native == "rejection"
    finally:
        c.close()


def test_connection_close_and_http10_close(port):
    for request, status_line in ((post(query(301), extra="Connection: close\r\n"), "HTTP/1.1 200 OK"),
                                 (post(query(302), version="1.0"), "HTTP/1.0 200 OK")):
        c = Conn(port)
        try:
            c.sock.sendall(request)
            status, headers, body = c.response()
            assert status == status_line and headers["connection"] == "close"
            assert granted_nonce(body) in (301, 302)
            assert c.closed()
        finally:
            c.close()


def test_rejections_and_faults_never_500(port):
    c = Conn(port)
    try:
        for body in (b"", b"\x30\x00", b"\x30\x82\xff\xff", b"garbage" * 10, query(5)[:-3]):
            c.sock.sendall(post(body))
            status, headers, reply = c.response()
            assert status == "HTTP/1.1 200 OK" and headers["connection"] == "keep-alive"
            assert TimeStampResp.load(reply)["status"]["status"].native == "rejection"
        c.sock.sendall(post(query(6), ctype="application/octet-stream"))     # Flask: 415
        assert c.response()[0].startswith("HTTP/1.1 415")
        c.sock.sendall(post(query(7), path="/tsa/nosuchunit"))             # Flask: 404
        assert c.response()[0].startswith("HTTP/1.1 404")
        c.sock.sendall(b"GET /tsa/health HTTP/1.1\r\nHost: x\r\n\r\n")    # Flask view
        status, headers, body = c.response()
        assert status == "HTTP/1.1 200 OK" and b'"status":"ok"' in body.replace(b" ", b"")
        c.sock.sendall(post(query(8), path="/ts%61"))                     # escaped path: the WSGI path
        status, _, body = c.response()
        assert status == "HTTP/1.1 200 OK" and granted_nonce(body) == 8
    finally:
        c.close()
    big = Conn(port)
    try:
        big.sock.sendall(b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
                         b"Content-Length: 10485760\r\n\r\n" + b"\x00" * 65536)
        assert big.response()[0].startswith("HTTP/1.1 413")
    finally:
        big.close()


def test_expect_continue_goes_through_gunicorn(port):
    c = Conn(port)
    try:
        body = query(401)
        c.sock.sendall(post(b"", extra="Expect: 100-continue\r\n").replace(b"Content-Length: 0",
                                                                          b"Content-Length: %d" % len(body)))
        status, _, _ = c.response()
        assert status == "HTTP/1.1 100 Continue"
        c.sock.sendall(body)
        status, headers, reply = c.response()
        assert status == "HTTP/1.1 200 OK" and granted_nonce(reply) == 401
    finally:
        c.close()


def test_many_connections_both_workers(port):
    conns = [Conn(port) for _ in range(16)]
    try:
        deadline = time.monotonic() + 30
        for round_ in range(3):
            for i, c in enumerate(conns):
                c.sock.sendall(post(query(1000 + 100 * round_ + i)))
            for i, c in enumerate(conns):
                assert granted_nonce(c.response()[2]) == 1000 + 100 * round_ + i
        assert time.monotonic() < deadline
    finally:
        for c in conns:
            c.close()


def test_kept_alive_connection_follow_ups(port):
    """After the first request a connection is kept alive on the worker's poller, where the main thread
    answers plain POST /tsa itself: Connection: close, HTTP/1.0 keep-alive, a request arriving in two
    pieces and odd syntax (handed to gunicorn's parser) all behave as on the first request."""
    c = Conn(port)
    try:
        c.sock.sendall(post(query(501)))
        assert granted_nonce(c.response()[2]) == 501
        whole = post(query(502))
        c.sock.sendall(whole[:40])                                        # incomplete: gunicorn waits for it
        time.sleep(0.2)
        c.sock.sendall(whole[40:])
        assert granted_nonce(c.response()[2]) == 502
        c.sock.sendall(post(query(503), extra="X-Folded: a\r\n b\r\n"))   # obs-fold: gunicorn's answer
        status, _, _ = c.response()
        assert status.startswith("HTTP/1.1 400")
    finally:
        c.close()
    c = Conn(port)
    try:
        c.sock.sendall(post(query(504), version="1.0", extra="Connection: keep-alive\r\n"))
        status, headers, body = c.response()
        assert status == "HTTP/1.0 200 OK" and headers["connection"] == "keep-alive" and granted_nonce(body) == 504
        c.sock.sendall(post(query(505), version="1.0", extra="Connection: keep-alive\r\n"))
        status, headers, body = c.response()
        assert status == "HTTP/1.0 200 OK" and headers["connection"] == "keep-alive" and granted_nonce(body) == 505
        c.sock.sendall(post(query(506), extra="Connection: close\r\n"))
        status, headers, body = c.response()
        assert headers["connection"] == "close" and granted_nonce(body) == 506
        assert c.closed()
    finally:
        c.close()
    c = Conn(port)
    try:
        for nonce in (507, 508):
            c.sock.sendall(post(query(nonce), path="/tsa/"))
            assert granted_nonce(c.response()[2]) == nonce
        c.sock.sendall(post(query(509), version="1.0"))                   # HTTP/1.0 without keep-alive: closed
        status, headers, body = c.response()
        assert status == "HTTP/1.0 200 OK" and headers["connection"] == "close" and granted_nonce(body) == 509
        assert c.closed()
    finally:
        c.close()
