"""Issue 15: oversized bodies are 413 everywhere on the real servers — `racentre serve` with one worker
(waitress) and with two (gunicorn, racentre.arbiter) — declared by Content-Length or sent chunked (counted
as read); a chunked body within the limits reaches its route whole (before, gunicorn's chunked uploads
reached the views empty: 200/400/403). Errors are problem+json. A migrated, set-up site on loopback, a
free port, bounded in time."""
from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from asn1crypto import tsp

from racentre.web import MAX_ANY_BODY
from tests.pgschema import migrated

MIB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, method: str, path: str, headers: dict, body=None, *, chunks=None, timeout: float = 60):
    """One request on a fresh connection: ``body`` with its Content-Length, or ``chunks`` sent with
    Transfer-Encoding: chunked, or neither (only the head: a declared length is not sent). Returns
    (status, headers, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if chunks is not None:
            head.append("Transfer-Encoding: chunked")
        elif body is not None:
            head.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            if chunks is not None:
                for chunk in chunks:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sock.sendall(b"0\r\n\r\n")
            elif body is not None:
                sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass                                    # the server answered before reading it all
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        sock.close()


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory, softtoken_module):
    tmp = tmp_path_factory.mktemp("limits")
    (tmp / "softtoken").mkdir()
    (tmp / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    port = _free_port()
    (tmp / "racentre.toml").write_text(
        '[hsm]\ntoken = "limits-test"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
        f'[database]\nurl = "{migrated(f"sqlite:///{tmp}/db.sqlite")}"\n'
        f'[service]\npublic_url = "http://127.0.0.1:{port}"\n[tsa]\npolicy = "1.2.3.4.1"\n# the kernel clock here may be unsynchronised ([tsa] require_sync)\nrequire_sync = false\n')
    env = _env(tmp)
    done = subprocess.run([sys.executable, "-m", "racentre.cli", "setup"], env=env, cwd=tmp, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp, port


def _env(tmp) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(RACENTRE_CONFIG=str(tmp / "racentre.toml"), RACENTRE_HSM_PIN="limits-pin",
               RACENTRE_SOFTTOKEN_SO_PIN="limits-so-pin")
    return env


def _query() -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x05" * 32}, "cert_req": True}).dump()


def _pieces(total: int, size: int = MIB):
    while total > 0:
        yield b"\x00" * min(size, total)
        total -= size


@pytest.mark.parametrize("workers", [1, 2])
def test_oversized_bodies_are_413_on_the_real_servers(site_dir, workers):
    tmp, port = site_dir
    proc = subprocess.Popen([sys.executable, "-m", "racentre.cli", "serve", "--port", str(port), "--workers",
                             str(workers)], env=_env(tmp), cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 150          # token set-up and two workers on a loaded box
        while True:
            try:
                if _request(port, "GET", "/hsm/health", {}, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-3000:]
            time.sleep(0.3)
        seen = []
        # a declared length over the limit: refused from the head, the body never sent
        for path, ctype in [("/seal/verify", "application/pdf"), ("/api/v1/ra/requests", "application/json"),
                            ("/tsa/verify", "application/json"), ("/kmc/v1/request", "application/octet-stream"),
                            ("/ocsp", "application/ocsp-request"), ("/tsa", "application/timestamp-query")]:
            status, headers, body = _request(port, "POST", path, {"Content-Type": ctype,
                                                                  "Content-Length": str(MAX_ANY_BODY + 1)})
            assert status == 413, (workers, path, status, body[:200])
            seen.append(path)
        # chunked past the limit: counted as it arrives
        status, headers, body = _request(port, "POST", "/seal/verify", {"Content-Type": "application/pdf"},
                                         chunks=_pieces(MAX_ANY_BODY + 256 * 1024))
        assert status == 413, (workers, status, body[:200])
        if workers > 1:         # racentre.web.BodyLimit answers; waitress refuses past the same limit itself
            assert headers["Content-Type"] == "application/problem+json" and json.loads(body)["code"] == "too_large"
        # chunked past a route's own limit (RA 256 KiB, OCSP 64 KiB)
        for path, ctype, size in [("/api/v1/ra/requests", "application/json", 300 * 1024),
                                  ("/ocsp", "application/ocsp-request", 65 * 1024)]:
            status, headers, body = _request(port, "POST", path, {"Content-Type": ctype}, chunks=_pieces(size, 16384))
            assert status == 413, (workers, path, status, body[:200])
        # chunked within the limits reaches the route whole
        status, headers, body = _request(port, "POST", "/tsa", {"Content-Type": "application/timestamp-query"},
                                         chunks=[_query()[:10], _query()[10:]])
        assert status == 200 and headers["Content-Type"] == "application/timestamp-reply", (workers, status, body[:200])
        assert tsp.TimeStampResp.load(body)["status"]["status"].native == "granted"
        token = base64.b64encode(tsp.TimeStampResp.load(body)["time_stamp_token"].dump()).decode()
        payload = json.dumps({"token": token, "digest": "05" * 32}).encode()
        status, headers, body = _request(port, "POST", "/tsa/verify", {"Content-Type": "application/json"},
                                         chunks=[payload[:50], payload[50:]])
        assert status == 200 and json.loads(body)["ok"] is True, (workers, status, body[:300])
        status, headers, body = _request(port, "POST", "/seal/verify", {"Content-Type": "application/pdf"},
                                         chunks=[b"not a pdf"])
        assert status == 401 and headers["Content-Type"] == "application/problem+json"     # auth, after the body
        assert len(seen) == 6
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert "limits-pin" not in out
