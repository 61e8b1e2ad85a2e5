"""Slow clients against `racentre serve --workers 2` (gunicorn, racentre.arbiter.FastPathThreadWorker with the
request gate of racentre.httpgate) on loopback: with 200 slowloris connections open (100 trickling a header
block, 100 trickling a body), health and TSA requests are still answered at once; the slow ones get 408
at their deadline, an oversized header block 431, an oversized body 413; a request sent slowly but in time,
a chunked one and two pipelined ones are answered as usual. Bounded: well under 60 s."""
from __future__ import annotations

import hashlib
import os
import socket
import threading
import time

import pytest
from asn1crypto import tsp

from bench.common import BenchServer, free_port, prepare_tsa_site_in_child, server_command
from timestamp.tsa import TimeStampResp

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEADER_TIMEOUT = 4
REQUEST_TIMEOUT = 8
THREADS = 2          # per worker: 200 slow clients would starve these many times over without the gate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, softtoken_module):
    directory = tmp_path_factory.mktemp("slow-clients")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(PYTHONPATH=ROOT, RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    config = prepare_tsa_site_in_child(directory, 2, env)
    port = free_port()
    env.update(RACENTRE_SERVICE_HEADER_TIMEOUT=str(HEADER_TIMEOUT), RACENTRE_SERVICE_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT),
               RACENTRE_TSA_REQUIRE_SYNC="false")      # this box's kernel clock is unsynchronised
    with BenchServer(server_command(config, port, 2, THREADS), port, directory / "server.log", env=env) as server:
        yield port
    assert not server.tracebacks, server.log()


def tsq(nonce: int) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sm3"}, "hashed_message": hashlib.new("sm3", b"%d" % nonce).digest()},
        "nonce": nonce, "cert_req": True}).dump()


def tsa_post(body: bytes, extra: str = "") -> bytes:
    return (f"POST /tsa HTTP/1.1\r\nHost: t\r\nContent-Type: application/timestamp-query\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, dict, bytes, bytes]:
    """(status, headers, body, what follows) of one response; 1xx responses are skipped."""
    while True:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before a response ({buf[:80]!r})"
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        if 100 <= status < 200:
            continue
        headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(buf) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed inside a body"
            buf += chunk
        return status, headers, buf[:length], buf[length:]


def exchange(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        status, headers, body, _ = read_response(sock)
        return status, headers, body


def granted(body: bytes, nonce: int) -> bool:
    resp = TimeStampResp.load(body)
    if resp["status"]["status"].native != "granted":
        return False
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    return info["nonce"].native == nonce


class Slowloris:
    """``count`` connections that each send a request a few bytes at a time and never finish it:
    ``body=False`` trickles header fields, ``body=True`` sends the header block and trickles the body."""

    def __init__(self, port: int, count: int, body: bool):
        self.socks, self.answers = [], {}
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(tsa_post(b"", "")[:-2].replace(b"Content-Length: 0", b"Content-Length: 10000")
                      + (b"\r\n" if body else b"X-Slow: "))
            self.socks.append(s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)
        self._thread.start()

    def _trickle(self):
        gone = set()
        while not self._stop.wait(0.5):
            for s in self.socks:
                if s not in gone:
                    try:
                        s.send(b"a")
                    except OSError:        # the server answered and closed: collect() reads the answer
                        gone.add(s)

    def collect(self, deadline: float) -> dict:
        """Each connection's outcome: the status the server answered with, or 'reset'/'open'."""
        for s in self.socks:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                status, _, _, _ = read_response(s)
                self.answers[s] = status
            except (AssertionError, OSError) as exc:
                self.answers[s] = "open" if isinstance(exc, socket.timeout) else "reset"
        self._stop.set()
        self._thread.join()
        outcome: dict = {}
        for s in self.socks:
            outcome[self.answers[s]] = outcome.get(self.answers[s], 0) + 1
            s.close()
        return outcome


def test_answers_health_and_tsa_with_200_slow_clients(server):
    started = time.monotonic()
    headers = Slowloris(server, 100, body=False)
    bodies = Slowloris(server, 100, body=True)
    time.sleep(1.0)                                  # every slow connection accepted and trickling
    assert time.monotonic() - started < HEADER_TIMEOUT - 1
    latencies = []
    for i in range(40):
        t = time.monotonic()
        status, _, body = exchange(server, b"GET /tsa/health HTTP/1.1\r\nHost: t\r\n\r\n" if i % 2 else
                                   tsa_post(tsq(i)))
        latencies.append(time.monotonic() - t)
        assert status == 200
        assert i % 2 or granted(body, i)
    assert max(latencies) < 2.0, latencies
    # the slow ones are cut off at their deadlines with 408 (headers at HEADER_TIMEOUT, bodies at REQUEST_TIMEOUT)
    assert headers.collect(started + HEADER_TIMEOUT + 4) == {408: 100}
    assert bodies.collect(started + REQUEST_TIMEOUT + 4) == {408: 100}
    assert time.monotonic() - started < 30


def test_header_and_body_limits(server):
    big = "X-Big: " + "a" * 8000 + "\r\n"
    status, _, body = exchange(server, tsa_post(tsq(1), big * 5))
    assert status == 431 and b"header" in body
    status, _, _ = exchange(server, b"POST /seal/verify HTTP/1.1\r\nHost: t\r\nContent-Type: application/pdf\r\n"
                                    b"Content-Length: 99999999\r\n\r\n")
    assert status == 413
    status, _, _ = exchange(server, b"POST /tsa HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status == 400


def test_slow_but_timely_chunked_and_pipelined_requests(server):
    request = tsa_post(tsq(7))
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        for i in range(0, len(request), 40):          # the whole request over ~1.5 s, in time
            sock.sendall(request[i:i + 40])
            time.sleep(0.05)
        status, _, body, rest = read_response(sock)
        assert status == 200 and granted(body, 7) and rest == b""
        sock.sendall(tsa_post(tsq(8)) + tsa_post(tsq(9)))     # two pipelined on the kept-alive connection
        status, _, body, rest = read_response(sock)
        assert status == 200 and granted(body, 8)
        status, _, body, rest = read_response(sock, rest)
        assert status == 200 and granted(body, 9)
    query = tsq(10)
    chunked = (b"POST /tsa HTTP/1.1\r\nHost: t\r\nContent-Type: application/timestamp-query\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 10 + query[:10] + b"\r\n"
               + b"%x\r\n" % (len(query) - 10) + query[10:] + b"\r\n0\r\n\r\n")
    status, _, body = exchange(server, chunked)
    assert status == 200 and granted(body, 10)
    status, _, body = exchange(server, tsa_post(tsq(11), "Expect: 100-continue\r\n"))
    assert status == 200 and granted(body, 11)
