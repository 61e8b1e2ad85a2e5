"""Trust services through the REST API on a set-up site (SQLite and PostgreSQL): application keys made in
the HSM and certified by our CA, raw and CMS signing (SM2 with default and given IDs, ECDSA, attached,
detached, GM/T 0010 form, signing time, embedded timestamp), verification with GM/T 0020 codes beside ETSI
indications (tampered, wrong certificate, untrusted, revoked, suspended, expired with and without a
timestamp), certificate information, envelopes, certificate login (replay, expiry, another application's
challenge), and evidence records."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

from asn1crypto import cms, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from gmssl import sm2 as gm_sm2
from sqlalchemy import select, update

from ca_bridge.api import RevocationReason
from pkicore.algorithms import algorithm
from pkicore.audit import AuditEvent
from pkicore.cms import CmsSigner, SignedDataTemplate, verify_signed_data
from pkicore.db import reading, transaction
from pkicore.keys import verify_signature
from pkicore.signatures import raw_to_der
from trust.models import TrustChallenge
from trust.openapi import BODIES, openapi_document
from trust.signing import ID_AA_SIGNATURE_TIMESTAMP
from trust.views import FIELDS
from tests.unit.trust.site import ID_NUMBER, b64, issue_user, unb64

DATA = "电子政务 trust test ".encode() * 10


def _verify(client, who="app1", **body):
    resp = client("POST", "/api/v1/trust/verify", who, json=body)
    assert resp.status_code == 200, resp.json
    return resp.json


def _sign(client, who="app1", **body):
    resp = client("POST", "/api/v1/trust/sign", who, json=body)
    assert resp.status_code == 200, resp.json
    return resp.json


def _actions(services, action):
    with reading(services.db) as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# ---------------------------------------------------------------- keys

def test_keys_are_certified_by_our_ca_and_listed_per_application(services, client, keys):
    cert = x509.Certificate.load(unb64(_sign(client, data=b64(b"x"), form="raw", key_id=keys["sm2"]["id"])["certificate"]))
    roots = services.site.roots()
    assert cert.issuer in [x509.Certificate.load(c).subject for c in services.site.issuing()]
    assert cert.subject.native["common_name"] == "app1.gov.test"
    assert keys["sm2"]["profile"] == "server" and keys["enc"]["profile"] == "app-encryption"
    assert roots
    mine = client("GET", "/api/v1/trust/keys", "app1").json["keys"]
    assert {k["id"] for k in mine} == {keys["sm2"]["id"], keys["ecdsa"]["id"]}
    every = client("GET", "/api/v1/trust/keys", "auditor").json["keys"]
    assert {keys["unit"]["id"], keys["enc"]["id"]} <= {k["id"] for k in every}
    # the private key is in the HSM, not extractable
    info = services.key_manager.find_key(keys["sm2"]["label"])
    assert info.sensitive and not info.extractable
    assert _actions(services, "trust.key.create")


def test_key_creation_is_for_administrators_and_checks_input(client):
    assert client("POST", "/api/v1/trust/keys", "app1", json={"application": "x", "common_name": "x"}).status_code == 403
    bad = client("POST", "/api/v1/trust/keys", "admin", json={"application": "bad name!", "common_name": "x"})
    assert bad.status_code == 400 and "application" in bad.json["error"]["message"]
    no_dns = client("POST", "/api/v1/trust/keys", "admin", json={"application": "appx", "common_name": "x"})
    assert no_dns.status_code == 400 and "DNS" in no_dns.json["error"]["message"]
    assert client("POST", "/api/v1/trust/keys", "admin", json={"application": "a", "common_name": "x",
                                                               "surprise": 1}).status_code == 400


def test_an_application_signs_only_with_its_own_keys(client, keys):
    other = client("POST", "/api/v1/trust/sign", "app2", json={"data": b64(DATA), "key_id": keys["sm2"]["id"]})
    assert other.status_code == 403
    assert client("POST", "/api/v1/trust/sign", "officer", json={"data": b64(DATA)}).status_code == 403
    assert client("POST", "/api/v1/trust/sign", "app1", json={"data": "***"}).status_code == 400


# ---------------------------------------------------------------- raw signatures

def test_raw_sm2_default_and_given_id(services, client, keys):
    out = _sign(client, data=b64(DATA), form="raw", key_id=keys["sm2"]["id"])
    sig, cert = unb64(out["signature"]), unb64(out["certificate"])
    spki = x509.Certificate.load(cert).public_key.dump()
    assert verify_signature(spki, algorithm("sm2-sm3"), DATA, sig)
    report = _verify(client, form="raw", signature=out["signature"], data=b64(DATA), certificate=out["certificate"])
    assert report["valid"] and report["certificate_code"] == 1 and report["indication"] == "TOTAL_PASSED"
    given = _sign(client, data=b64(DATA), form="raw", key_id=keys["sm2"]["id"], user_id="alice@gov")
    sig2 = unb64(given["signature"])
    assert verify_signature(spki, algorithm("sm2-sm3"), DATA, sig2, user_id=b"alice@gov")
    assert not verify_signature(spki, algorithm("sm2-sm3"), DATA, sig2)
    assert _verify(client, form="raw", signature=given["signature"], data=b64(DATA), certificate=given["certificate"],
                   user_id="alice@gov")["valid"]
    wrong = _verify(client, form="raw", signature=given["signature"], data=b64(DATA), certificate=given["certificate"])
    assert not wrong["valid"] and wrong["sub_indication"] == "SIG_CRYPTO_FAILURE"


def test_raw_ecdsa(client, keys):
    out = _sign(client, data=b64(DATA), form="raw", key_id=keys["ecdsa"]["id"])
    cert = cx509.load_der_x509_certificate(unb64(out["certificate"]))
    cert.public_key().verify(unb64(out["signature"]), DATA, ec.ECDSA(hashes.SHA256()))
    assert _verify(client, form="raw", signature=out["signature"], data=b64(DATA),
                   certificate=out["certificate"])["valid"]


def test_raw_sm2_from_pure_python_gmssl_verifies(services, client):
    user = issue_user(services)
    pub = x509.Certificate.load(user.certificate).public_key["public_key"].native[1:].hex()
    signer = gm_sm2.CryptSM2(private_key=format(user.d, "064x"), public_key=pub)
    # gmssl: sign_with_sm3 computes Z with the default ID, returns r||s hex
    rs = signer.sign_with_sm3(DATA)
    der = raw_to_der(bytes.fromhex(rs))
    report = _verify(client, form="raw", signature=b64(der), data=b64(DATA), certificate=b64(user.certificate))
    assert report["valid"], report
    assert _verify(client, form="raw", signature=b64(der), data=b64(DATA + b"!"),
                   certificate=b64(user.certificate))["sub_indication"] == "SIG_CRYPTO_FAILURE"
