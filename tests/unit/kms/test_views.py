"""KMC REST API: GM/T 0014 over HTTP (octet-stream), recovery by officers with their own API tokens,
role checks, KEK rotation, and the CLI group."""
from __future__ import annotations

import base64
import json
import datetime as dt
import secrets
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from access.auth import create_token
from gmt0014 import messages as m
from gmt0014.client import KmcClient
from kms.cli import kms_group
from kms.endpoint import Gmt0014Endpoint
from kms.identity import self_signed_certificate
from kms.recovery import ApprovalBook
from kms.services import KmsParts
from kms.views import bp
from pkicore.envelope import parse_signed_and_enveloped
from racentre.config import Config
from racentre.web import create_app
from tests.unit.kms.conftest import with_recipients
from tests.unit.kms.helpers import audit, escrow_one
from tests.unit.kms.subscriber import (mul, openssl_sm2_certificate, openssl_sm2_key, public_point, sm2_decrypt,
                                       sm4_ecb_decrypt)


@pytest.fixture
def kmc(escrow, court):
    return KmsParts(escrow, ApprovalBook(escrow.db, with_recipients(escrow.config, court[2])), Gmt0014Endpoint(escrow))


@pytest.fixture
def app(kmc, softtoken_km, escrow):
    return create_app(Config(), softtoken_km, escrow.db, services={"kms": kmc}, blueprints=[bp])


@pytest.fixture
def tokens(escrow):
    tag = secrets.token_hex(3)
    with escrow.db() as s, s.begin():
        out = {f"officer-{i}": create_token(s, f"officer-{i}-{tag}", ["key_recovery_officer"]) for i in (1, 2)}
        out["admin"] = create_token(s, f"admin-{tag}", ["ra_admin"])
        out["operator"] = create_token(s, f"operator-{tag}", ["ra_operator"])
    return out


def _auth(token):
    return {"Authorization": f"Bearer {token}"}


class _FlaskTransport:
    def __init__(self, client):
        self.client = client

    def send(self, der):
        resp = self.client.post("/kmc/v1/request", data=der, content_type=m.CONTENT_TYPE)
        assert resp.status_code == 200 and resp.mimetype == m.CONTENT_TYPE
        return resp.data


def test_gmt0014_over_http(app, kmc, softtoken_km, subscriber, escrow):
    label = f"ca-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(label, "sm2")
    ca_cert = self_signed_certificate(softtoken_km, label, (("common_name", "HTTP CA"),))
    kmc.service.trust(ca_cert)
    client = KmcClient(_FlaskTransport(app.test_client()), ca_certificate=ca_cert,
                       sign=lambda d: softtoken_km.sign(label, d), kmc_certificate=escrow.certificate)
    now = dt.datetime.now(dt.timezone.utc)
    got = client.apply_key(12345, subscriber[1], now, now + dt.timedelta(days=10))
    sed = parse_signed_and_enveloped(got.signed_and_enveloped)
    d = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(subscriber[0], sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d) == public_point(got.public_key_info)
    assert app.test_client().post("/kmc/v1/request", data=b"x", content_type="text/plain").status_code == 400
    assert b"BEGIN CERTIFICATE" in app.test_client().get("/kmc/v1/certificate").data


def test_recovery_over_rest(app, escrow, subscriber, tokens, tmp_path, court):
    d_court, court = court[0], court[1]
    archived = escrow_one(escrow, subscriber[1])
    c = app.test_client()
    body = {"purpose": "recover", "key_id": archived.key_id, "reason": "court order 5",
            "recipient_certificate": base64.b64encode(court).decode()}
    assert c.post("/kmc/v1/approval-requests", json=body, headers=_auth(tokens["operator"])).status_code == 403
    resp = c.post("/kmc/v1/approval-requests", json=body, headers=_auth(tokens["admin"]))
    assert resp.status_code == 201
    rid = resp.json["id"]
    assert c.post(f"/kmc/v1/approval-requests/{rid}/approve", headers=_auth(tokens["admin"])).status_code == 403
    assert c.post(f"/kmc/v1/approval-requests/{rid}/approve", headers=_auth(tokens["officer-1"])).status_code == 200
    assert c.post(f"/kmc/v1/approval-requests/{rid}/approve", headers=_auth(tokens["officer-1"])).status_code == 403
    assert c.post(f"/kmc/v1/approval-requests/{rid}/recover", headers=_auth(tokens["admin"])).status_code == 403
    c.post(f"/kmc/v1/approval-requests/{rid}/approve", headers=_auth(tokens["officer-2"]))
    resp = c.post(f"/kmc/v1/approval-requests/{rid}/recover", headers=_auth(tokens["admin"]))
    assert resp.status_code == 200, resp.json
    sed = parse_signed_and_enveloped(base64.b64decode(resp.json["signed_and_enveloped"]))
    d = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_court, sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d) == public_point(archived.public_key_info)
    assert "kms.key.recovered" in audit(escrow, "kms_key", archived.key_id)


def test_kek_rotation_over_rest(app, escrow, subscriber, tokens):
    escrow_one(escrow, subscriber[1])
    c = app.test_client()
    assert c.post("/kmc/v1/kek/rotate", headers=_auth(tokens["officer-1"])).status_code == 403
    assert c.post("/kmc/v1/kek/rotate", headers=_auth(tokens["admin"])).json == {"active_version": 2}
    assert c.post("/kmc/v1/kek/rewrap", headers=_auth(tokens["admin"])).json == {"moved": 1}
    assert c.post("/kmc/v1/kek/rewrap", headers=_auth(tokens["admin"])).json == {"moved": 0}
    states = {k["version"]: k["state"] for k in c.get("/kmc/v1/kek", headers=_auth(tokens["admin"])).json["keks"]}
    assert states == {1: "retired", 2: "active"}


def test_cli_approve_and_recover(kmc, escrow, subscriber, tokens, tmp_path, softtoken_km, court):
    d_court = court[0]
    (tmp_path / "court.der").write_bytes(court[1])
    archived = escrow_one(escrow, subscriber[1])
    obj = {"services": SimpleNamespace(key_manager=softtoken_km, db=escrow.db, kmc=kmc)}
    run = CliRunner().invoke
    r = run(kms_group, ["request", "--key-id", str(archived.key_id), "--recipient-cert", str(tmp_path / "court.der"),
                        "--reason", "case 1", "--token", tokens["admin"]], obj=obj)
    assert r.exit_code == 0, r.output
    rid = json.loads(r.output)["id"]
    for who in ("officer-1", "officer-2"):
        r = run(kms_group, ["approve", str(rid), "--token", tokens[who]], obj=obj)
        assert r.exit_code == 0, r.output
    r = run(kms_group, ["recover", str(rid), "--out-dir", str(tmp_path / "out"), "--token", tokens["admin"]], obj=obj)
    assert r.exit_code == 0, r.output
    sed = parse_signed_and_enveloped((tmp_path / "out" / "recovered-envelope-signed.der").read_bytes())
    d = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_court, sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d) == public_point(archived.public_key_info)
    r = run(kms_group, ["status"], obj=obj)
    assert r.exit_code == 0 and '"active"' in r.output


def test_recovery_names_the_certificate_by_hex_serial_and_bad_numbers_are_400(app, escrow, subscriber, tokens, court):
    """Issue 17: a recovery request names the encryption certificate by its serial as printed on it (hex,
    with or without colons or 0x) or by user_cert_no in decimal; a hex serial given as user_cert_no, or any
    other malformed number, is a 400 saying which form is expected (it was a 500); an unknown serial is 404."""
    serial = 0x1A2B3C4D5E6F7081
    archived = escrow_one(escrow, subscriber[1], serial=serial)
    c = app.test_client()
    base = {"purpose": "recover", "reason": "court order 6", "ca_id": "ca-test",
            "recipient_certificate": base64.b64encode(court[1]).decode()}
    for given in ({"serial": "1A:2B:3C:4D:5E:6F:70:81"}, {"serial": "0x1a2b3c4d5e6f7081"},
                  {"user_cert_no": str(serial)}, {"user_cert_no": serial}):
        resp = c.post("/kmc/v1/approval-requests", json={**base, **given}, headers=_auth(tokens["admin"]))
        assert resp.status_code == 201 and resp.json["key_id"] == archived.key_id, (given, resp.json)
    for given, words in (({"user_cert_no": "1a2b3c4d5e6f7081"}, "decimal"), ({"serial": "not-hex"}, "hexadecimal"),
                         ({"user_cert_no": [1]}, "decimal"), ({"serial": 12}, "hexadecimal"),
                         ({"key_id": "7"}, "integer")):
        resp = c.post("/kmc/v1/approval-requests", json={**base, **given}, headers=_auth(tokens["admin"]))
        assert resp.status_code == 400 and words in resp.json["error"]["message"], (given, resp.json)
    missing = c.post("/kmc/v1/approval-requests", json={**base, "serial": "ffff"}, headers=_auth(tokens["admin"]))
    assert missing.status_code == 404
