"""OCSP responder (RFC 6960): good/revoked/unknown, nonce, SHA-1/SHA-256/SM3 CertIDs, delegated signer,
error statuses, and the HTTP face (GET and POST) through the blueprint."""
from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import quote

import pytest
from asn1crypto import ocsp, x509

from ca_bridge.api import RevocationReason
from ca_bridge.views import bp
from pkicore.algorithms import algorithm
from pkicore.keys import verify_signature
from racentre.web import create_app
from tests.unit.ca_bridge.helpers import ec_spki, ocsp_request, request
from tests.unit.ca_bridge.test_hierarchy import ECDSA_SIG_ALG, SM2_SIG_ALG


@pytest.fixture(scope="module")
def issued(ca):
    good = ca.issue(request("civil-servant-sign"))
    revoked = ca.issue(request("civil-servant-enc"))
    ca.revoke(revoked.ca, revoked.serial, RevocationReason.key_compromise)
    return good, revoked


@pytest.fixture(scope="module")
def client(ca):
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    return app.test_client()


def basic_response(der: bytes, ca, issuing_name: str, sig_alg: bytes = SM2_SIG_ALG) -> ocsp.BasicOCSPResponse:
    resp = ocsp.OCSPResponse.load(der)
    assert resp["response_status"].native == "successful"
    basic = resp.basic_ocsp_response
    issuing = ca.directory.get(issuing_name)
    signer = x509.Certificate.load(basic["certs"][0].dump())
    assert signer.dump() == issuing.ocsp_certificate
    assert basic["signature_algorithm"].dump() == sig_alg
    alg = algorithm(basic["signature_algorithm"]["algorithm"].dotted)
    assert verify_signature(signer.public_key.dump(), alg, basic["tbs_response_data"].dump(),
                            basic["signature"].native)
    assert basic["tbs_response_data"]["responder_id"].chosen.native == hashlib.sha1(
        signer.public_key["public_key"].contents[1:]).digest()
    return basic


def statuses(basic) -> dict[int, str]:
    return {r["cert_id"]["serial_number"].native: r["cert_status"].name
            for r in basic["tbs_response_data"]["responses"]}


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sm3"])
def test_good_revoked_unknown_with_nonce(ca, issued, digest):
    good, revoked = issued
    name = good.ca
    unknown = good.serial ^ 0x5A5A
    nonce = secrets.token_bytes(16)
    der = ca.ocsp.respond(ocsp_request(ca.directory.get(name).certificate, [good.serial, revoked.serial, unknown],
                                       digest, nonce), name)
    basic = basic_response(der, ca, name)
    assert statuses(basic) == {good.serial: "good", revoked.serial: "revoked", unknown: "unknown"}
    data = basic["tbs_response_data"]
    assert data["response_extensions"][0]["extn_id"].native == "nonce"
    assert data["response_extensions"][0]["extn_value"].parsed.native == nonce
    rev = [r for r in data["responses"] if r["cert_status"].name == "revoked"][0]["cert_status"].chosen
    assert rev["revocation_reason"].native == "key_compromise"
    for r in data["responses"]:
        assert r["cert_id"]["hash_algorithm"]["algorithm"].native == digest
        assert r["next_update"].native > r["this_update"].native


def test_ecdsa_responder_and_no_nonce(ca):
    leaf = ca.issue(request("server", ec_spki()))
    der = ca.ocsp.respond(ocsp_request(ca.directory.get(leaf.ca).certificate, [leaf.serial], "sha256"))
    basic = basic_response(der, ca, leaf.ca, ECDSA_SIG_ALG)
    assert statuses(basic) == {leaf.serial: "good"}
    assert not basic["tbs_response_data"]["response_extensions"]


@pytest.mark.parametrize("body,status", [
    (b"", "malformed_request"), (b"\x30\x03\x02\x01\x01", "malformed_request"), (b"garbage" * 10, "malformed_request"),
])
def test_malformed_requests(ca, body, status):
    assert ocsp.OCSPResponse.load(ca.ocsp.respond(body))["response_status"].native == status


def test_malformed_structured_requests(ca, issued):
    good, _ = issued
    issuer = ca.directory.get(good.ca).certificate
    req = ocsp_request(issuer, [good.serial])
    assert ocsp.OCSPResponse.load(ca.ocsp.respond(req + b"\x00"))["response_status"].native == "malformed_request"
    long_nonce = ocsp_request(issuer, [good.serial], nonce=b"n" * 33)
    assert ocsp.OCSPResponse.load(ca.ocsp.respond(long_nonce))["response_status"].native == "malformed_request"
    too_many = ocsp_request(issuer, list(range(1, 70)))
    assert ocsp.OCSPResponse.load(ca.ocsp.respond(too_many))["response_status"].native == "malformed_request"


def test_unknown_issuer_unauthorized(ca, issued):
    good, _ = issued
    root = ca.directory.get(f"{ca.test_tag}root-sm2")
    ecdsa = ca.directory.get(f"{ca.test_tag}issuing-ecdsa")
    for der in (ocsp_request(root.certificate, [good.serial]),             # the root has no responder
                ocsp_request(ecdsa.ocsp_certificate, [good.serial])):      # not a CA of ours
        assert ocsp.OCSPResponse.load(ca.ocsp.respond(der))["response_status"].native == "unauthorized"
    # the right issuer at another CA's URL
    req = ocsp_request(ca.directory.get(good.ca).certificate, [good.serial])
    assert ocsp.OCSPResponse.load(ca.ocsp.respond(req, ecdsa.name))["response_status"].native == "unauthorized"


def test_http_post_and_get(ca, issued, client):
    good, revoked = issued
    name = good.ca
    nonce = secrets.token_bytes(12)
    req = ocsp_request(ca.directory.get(name).certificate, [revoked.serial], "sha256", nonce)
    resp = client.post(f"/ocsp/{name}", data=req, content_type="application/ocsp-request")
    assert resp.status_code == 200 and resp.mimetype == "application/ocsp-response"
    basic = basic_response(resp.data, ca, name)
    assert statuses(basic) == {revoked.serial: "revoked"}
    assert client.post("/ocsp", data=req, content_type="application/ocsp-request").status_code == 200
    encoded = quote(base64.b64encode(ocsp_request(ca.directory.get(name).certificate, [good.serial])).decode(), safe="")
    resp = client.get(f"/ocsp/{name}/{encoded}")
    assert resp.status_code == 200 and statuses(basic_response(resp.data, ca, name)) == {good.serial: "good"}
    # malformed: an OCSP malformedRequest answer, never a 500
    for bad in ("!!!notbase64", "AAAA"):
        resp = client.get(f"/ocsp/{name}/{bad}")
        assert resp.status_code == 200
        assert ocsp.OCSPResponse.load(resp.data)["response_status"].native == "malformed_request"
    resp = client.post(f"/ocsp/{name}", data=b"\x30\x80junk", content_type="application/ocsp-request")
    assert ocsp.OCSPResponse.load(resp.data)["response_status"].native == "malformed_request"
    assert client.post(f"/ocsp/{name}", data=req, content_type="text/plain").status_code == 415
    assert client.post(f"/ocsp/{name}", data=b"\x30" * 70000,
                       content_type="application/ocsp-request").status_code == 413
    assert client.post("/ocsp/no-such-ca", data=req, content_type="application/ocsp-request").status_code == 404
