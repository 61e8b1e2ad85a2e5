"""Two `racentre serve --workers 2` nodes on one PostgreSQL (a throw-away schema) and one token directory:
a certificate is issued and then revoked through node A's RA API (four-eyes approvals), and node B's
OCSP answers — POST and GET (RFC 6960 Appendix A.1), fresh with a nonce and pre-produced without one
(RFC 5019, kept in the shared database) — say revoked at once, from every worker; before the
revocation both said good and node B's pre-produced answer was being served byte for byte. The
answers verify with the responder's key, and with Bouncy Castle when it is installed."""
from __future__ import annotations

import base64
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import ocsp, x509

from access.auth import create_token
from pkicore.algorithms import algorithm
from store.db import make_engine, make_session_factory, transaction
from pkicore.keys import verify_signature
from tests.interop.bouncycastle import assert_bc_ok, bc_available, bc_verify_many
from tests.pgschema import database_url
from tests.unit.ca_bridge.helpers import ocsp_request
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key

ROOT = Path(__file__).resolve().parents[2]
ROLES = {"applicant": ["applicant"], "operator": ["ra_operator"], "officer_a": ["ra_officer"],
         "officer_b": ["ra_officer"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One `racentre serve --workers 2` on the shared site configuration, with its own port and node id."""

    def __init__(self, site: Path, env: dict, name: str, database_url: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(site / f"{name}.log", "wb")
        self.application_name = f"racentre-{name}-{secrets.token_hex(4)}"   # its connections in pg_stat_activity
        node_env = dict(env, RACENTRE_AUDIT_NODE_ID=name,
                        RACENTRE_DATABASE_URL=f"{database_url}&application_name={self.application_name}")
        self.proc = subprocess.Popen([sys.executable, "-m", "racentre.cli", "serve", "--workers", "2",
                                      "--port", str(self.port)], cwd=site, env=node_env,
                                     stdout=self.log, stderr=self.log)

    def wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, Path(self.log.name).read_text(errors="replace")
            try:
                with urllib.request.urlopen(self.url + "/hsm/health", timeout=5):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"node on {self.port} did not start")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        return Path(self.log.name).read_text(errors="replace")

    def call(self, method: str, path: str, token: str | None = None, body=None) -> dict:
        headers = {"X-RACentre-API": "1"}
        data = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def kept_alive(self, ca: str, requests: list[tuple[str, bytes]]) -> list[bytes]:
        """Several OCSP exchanges on one kept-alive connection (after the first, the worker's main thread
        answers them itself, batched with whatever other connections sent meanwhile)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        answers = []
        try:
            for method, body in requests:
                if method == "POST":
                    conn.request("POST", f"/ocsp/{ca}", body=body, headers={"Content-Type": "application/ocsp-request"})
                else:
                    conn.request("GET", f"/ocsp/{ca}/" + urllib.parse.quote(base64.b64encode(body).decode(), safe=""))
                resp = conn.getresponse()
                assert resp.status == 200 and resp.getheader("Content-Type") == "application/ocsp-response"
                answers.append(resp.read())
        finally:
            conn.close()
        return answers

    def ocsp(self, ca: str, request: bytes, method: str) -> bytes:
        """One OCSP exchange on a new connection (so the node's workers take turns)."""
        if method == "POST":
            req = urllib.request.Request(f"{self.url}/ocsp/{ca}", data=request, method="POST",
                                         headers={"Content-Type": "application/ocsp-request"})
        else:
            encoded = urllib.parse.quote(base64.b64encode(request).decode(), safe="")
            req = urllib.request.Request(f"{self.url}/ocsp/{ca}/{encoded}")
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "application/ocsp-response"
            return resp.read()


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    root = tmp_path_factory.mktemp("two-nodes")
    with database_url("postgresql", root, "ocsp2") as url:
        (root / "softtoken").mkdir()
        (root / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
        (root / "user.pin").write_text(secrets.token_hex(8) + "\n")
        (root / "so.pin").write_text(secrets.token_hex(8) + "\n")
        (root / "racentre.toml").write_text(
            f'[database]\nurl = "{url}"\n[hsm]\ntoken = "two-nodes"\npin_file = "user.pin"\n'
            '[softtoken]\ndir = "softtoken"\nauto_init = true\nso_pin_file = "so.pin"\n'
            '[service]\npublic_url = "http://ocsp.two-nodes.test"\n[tsa]\npolicy = "1.2.3.4.1"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
        env.update(PYTHONPATH=str(ROOT), RACENTRE_CONFIG=str(root / "racentre.toml"))
        setup = subprocess.run([sys.executable, "-m", "racentre.cli", "setup"], cwd=root, env=env,
                               capture_output=True, text=True, timeout=300)
        assert setup.returncode == 0, setup.stderr
        engine = make_engine(url)
        tag = helpers.tag()
        with transaction(make_session_factory(engine)) as session:
            tokens = {who: create_token(session, f"{who}-{tag}", roles) for who, roles in ROLES.items()}
        engine.dispose()
        nodes = [Node(root, env, "node-a", url), Node(root, env, "node-b", url)]
        try:
            for node in nodes:
                node.wait()
            yield root, nodes, tokens, url
        finally:
            logs = [node.stop() for node in nodes]
        for text in logs:
            assert "Traceback" not in text, text


def _issue_server_certificate(node: Node, tokens: dict) -> tuple[int, bytes]:
    unit = node.call("POST", "/api/v1/ra/units", tokens["operator"],
                     {"name": f"两节点测试局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    host = helpers.host()
    server = node.call("POST", "/api/v1/ra/servers", tokens["operator"],
                       {"host_name": host, "unit_id": unit["id"], "dns_names": [f"www.{host}"],
                        "ip_addresses": [helpers.ipv4()]})
    csr = base64.b64encode(tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host})).decode()
    rid = node.call("POST", "/api/v1/ra/requests", tokens["applicant"],
                    {"type": "server", "subject_id": server["id"], "csr": csr})["id"]
    node.call("POST", f"/api/v1/ra/requests/{rid}/vet", tokens["operator"], {"documents_checked": True})
    for officer in ("officer_a", "officer_b"):
        state = node.call("POST", f"/api/v1/ra/requests/{rid}/approve", tokens[officer], {})["state"]
        if state == "issued":
            break
    assert state == "issued"
    cert = node.call("GET", f"/api/v1/ra/requests/{rid}", tokens["officer_a"])["certificates"][0]
    return rid, int(cert["serial"], 16)


def _revoke(node: Node, tokens: dict, rid: int) -> None:
    revocation = node.call("POST", f"/api/v1/ra/requests/{rid}/revoke", tokens["applicant"],
                           {"reason": "key_compromise"})["id"]
    node.call("POST", f"/api/v1/ra/requests/{revocation}/vet", tokens["operator"], {"documents_checked": True})
    for officer in ("officer_a", "officer_b"):
        state = node.call("POST", f"/api/v1/ra/requests/{revocation}/approve", tokens[officer], {})["state"]
        if state == "revoked":
            return
    raise AssertionError(f"revocation request {revocation} ended {state}")


def _answer(der: bytes, responder: x509.Certificate, serial: int, nonce: bytes | None) -> str:
    """The certificate status an OCSP response states, after checking its signature and nonce."""
    response = ocsp.OCSPResponse.load(der)
    assert response["response_status"].native == "successful"
    basic = response.basic_ocsp_response
    data = basic["tbs_response_data"]
    alg = algorithm(basic["signature_algorithm"]["algorithm"].dotted)
    assert verify_signature(responder.public_key.dump(), alg, data.dump(), basic["signature"].native)
    echoed = [e["extn_value"].parsed.native for e in data["response_extensions"] or ()
              if e["extn_id"].native == "nonce"]
    assert echoed == ([nonce] if nonce is not None else [])
    (single,) = data["responses"]
    assert single["cert_id"]["serial_number"].native == serial
    return single["cert_status"].name


def test_node_b_says_revoked_right_after_node_a_revoked(site):
    root, (node_a, node_b), tokens, url = site
    ca = "issuing-sm2"
    issuer = node_b.call("GET", "/ca")          # the CA list, read from the shared database
    assert ca in {a["name"] for a in issuer["authorities"]}
    with urllib.request.urlopen(f"{node_b.url}/ca/{ca}/cert", timeout=10) as resp:
        issuer_der = resp.read()
    rid, serial = _issue_server_certificate(node_a, tokens)
    from_ca = node_a.call("GET", f"/api/v1/ra/requests/{rid}", tokens["officer_a"])
    assert from_ca["state"] == "issued"
    plain = ocsp_request(issuer_der, [serial], "sha1")
    with_sha256 = ocsp_request(issuer_der, [serial], "sha256")

    # before: good everywhere; node B keeps its pre-produced answer and serves it again byte for byte
    first = node_b.ocsp(ca, plain, "POST")
    signer = x509.Certificate.load(ocsp.OCSPResponse.load(first).basic_ocsp_response["certs"][0].dump())
    assert signer.issuer.dump() == x509.Certificate.load(issuer_der).subject.dump()
    assert _answer(first, signer, serial, None) == "good"
    assert {node_b.ocsp(ca, plain, m) for m in ("POST", "GET", "POST", "GET")} == {first}
    assert node_a.ocsp(ca, plain, "GET") == first                 # one store for every node
    assert _answer(node_b.ocsp(ca, with_sha256, "GET"), signer, serial, None) == "good"
    nonce = secrets.token_bytes(16)
    assert _answer(node_b.ocsp(ca, ocsp_request(issuer_der, [serial], "sha1", nonce), "POST"),
                   signer, serial, nonce) == "good"

    # node B's workers remember the answer they gave on kept-alive connections (their main threads): for it
    # they read only the revocation counters (on PostgreSQL, sent on a non-blocking connection)
    with ThreadPoolExecutor(4) as pool:
        for kept in pool.map(lambda _: node_b.kept_alive(ca, [("POST", plain), ("GET", plain)] * 4), range(8)):
            assert set(kept) == {first}

    _revoke(node_a, tokens, rid)

    # at once, on node B: every form, every worker (new connections), pre-produced path included
    answers = {}
    for i in range(6):
        nonce = secrets.token_bytes(16)
        fresh = ocsp_request(issuer_der, [serial], "sha1", nonce)
        for method in ("POST", "GET"):
            for kind, request, expect_nonce in (("pre", plain, None), ("pre256", with_sha256, None),
                                                ("fresh", fresh, nonce)):
                der = node_b.ocsp(ca, request, method)
                assert _answer(der, signer, serial, expect_nonce) == "revoked", (i, method, kind)
                answers[(method, kind)] = der
    rev = ocsp.OCSPResponse.load(answers[("GET", "pre")]).basic_ocsp_response["tbs_response_data"]["responses"][0]
    assert rev["cert_status"].chosen["revocation_reason"].native == "key_compromise"
    assert answers[("GET", "pre")] == answers[("POST", "pre")] != first   # the new pre-produced answer, kept
    assert _answer(node_a.ocsp(ca, plain, "POST"), signer, serial, None) == "revoked"

    # kept-alive connections in parallel: answered by the workers' main threads, several per status read
    def client(i: int) -> None:
        nonces = [secrets.token_bytes(8 + i) for _ in range(4)]
        sent = [("POST", plain), ("GET", plain), ("POST", with_sha256)] + \
               [(m, ocsp_request(issuer_der, [serial], "sha1", n)) for m, n in zip(("POST", "GET") * 2, nonces)]
        for (method, body), der in zip(sent * 3, node_b.kept_alive(ca, sent * 3), strict=True):
            asked = ocsp.OCSPRequest.load(body)["tbs_request"]["request_extensions"].native
            nonce = asked[0]["extn_value"] if asked else None
            assert _answer(der, signer, serial, nonce) == "revoked", (i, method)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))

    # PostgreSQL ends every connection of node B (a restart, a failover): its answers go on, still revoked
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            ended = conn.exec_driver_sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE application_name = %(name)s",
                                         {"name": node_b.application_name}).scalar()
    finally:
        engine.dispose()
    assert ended >= 2                                     # every worker's connections (a read without waiting's too)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))

    if bc_available():
        files = {}
        for (method, kind), der in answers.items():
            files[(method, kind)] = root / f"{method}-{kind}.ocsp"
            files[(method, kind)].write_bytes(der)
        (root / "issuer.der").write_bytes(issuer_der)
        results = bc_verify_many([["ocsp", path, root / "issuer.der", "--serial", f"{serial:x}"]
                                  for (method, kind), path in files.items() if kind != "fresh"])
        for result in results:
            assert_bc_ok(result)
            assert result.stdout.startswith("revoked")
