"""Trust verification over `racentre.serve.serve(workers=2)` (gunicorn, racentre.arbiter.FastPathThreadWorker)
on raw sockets: POST /api/v1/trust/verify answered by the fast path (trust.fastpath, a blocking handler: the
worker's batch thread) gives the Flask view's body; a token disabled and a certificate revoked by another
process (the CLI, as another node would) are refused by the very next request."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import BenchServer, free_port, prepare_tsa_site_in_child, server_command
from bench.trust_verify import make_request, prepare_trust
from tests.e2e.test_tsa_serve_fastpath import Conn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    directory = tmp_path_factory.mktemp("trust-serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(PYTHONPATH=ROOT, RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    # the bench's site, made in children: this process's PKCS#11 module serves the suite's token
    config = prepare_tsa_site_in_child(directory, 1, env)
    token, signed = prepare_trust(directory, Path(config), env)
    p = free_port()
    with BenchServer(server_command(config, p, 2, 1, ("timestamp", "trust")), p, directory / "server.log",
                     env=env) as server:
        yield p, str(config), env, token, signed
    assert not server.tracebacks, server.log()


def _cli(config: str, env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "racentre.cli", "--config", config, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_fast_answers_equal_the_views_then_revocation_and_a_disabled_token_are_seen_at_once(site):
    port, config, env, token, signed = site
    request = make_request(token, signed)
    through_flask = request.replace(b"POST /api/v1/trust/verify ", b"POST /api/v1/trust/verify?via=flask ")
    def once(raw: bytes) -> tuple[str, bytes]:
        c = Conn(port)          # a fresh connection: the CLI takes longer than gunicorn's keep-alive
        try:
            c.sock.sendall(raw)
            status, _, body = c.response()
            return status, body
        finally:
            c.close()

    c = Conn(port)
    try:
        answers = []
        for raw in (request, request, through_flask):          # kept alive: the fast path, then Flask
            c.sock.sendall(raw)
            status, headers, body = c.response()
            assert status == "HTTP/1.1 200 OK" and headers["content-type"] == "application/json", (status, body)
            answers.append(body)
    finally:
        c.close()
    assert answers[0] == answers[1] == answers[2]
    report = json.loads(answers[0])
    assert report["valid"] and report["certificate_code"] == 1
    signer = report["signers"][0]["signer"]
    issuer = next(line.split()[0] for line in _cli(config, env, "ca", "list").splitlines()
                  if line.split() and line.split()[0].startswith("issuing-sm2"))
    _cli(config, env, "ca", "revoke", signer["serial"], "--ca", issuer, "--reason", "key_compromise")
    status, body = once(request)
    revoked = json.loads(body)
    assert status == "HTTP/1.1 200 OK" and not revoked["valid"] and revoked["certificate_code"] == -3, revoked
    name = next(line.split()[0] for line in _cli(config, env, "ra", "token", "list").splitlines()
                if line.startswith("bench-app-"))
    _cli(config, env, "ra", "token", "disable", name)
    status, body = once(request)
    assert status == "HTTP/1.1 401 UNAUTHORIZED", (status, body)
