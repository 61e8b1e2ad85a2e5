"""ca_bridge.views (CA certificates, CRLs, certificate look-up with roles) and the ``ca`` click group."""
from __future__ import annotations

import secrets
from types import SimpleNamespace

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import pem, x509
from click.testing import CliRunner

from access.auth import create_token
from ca_bridge.api import RevocationReason
from ca_bridge.cli import ca_group
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import HierarchyExists
from ca_bridge.views import bp
from store.db import transaction
from racentre.web import create_app
from tests.unit.ca_bridge.helpers import request


@pytest.fixture(scope="module")
def client(ca):
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    return app.test_client()


def token(db, *roles) -> dict:
    with transaction(db) as session:
        value = create_token(session, f"tok-{secrets.token_hex(4)}", list(roles))
    return {"Authorization": f"Bearer {value}"}


def test_ca_certificates_and_crls(ca, client):
    name = f"{ca.test_tag}issuing-sm2"
    info = ca.directory.get(name)
    resp = client.get(f"/ca/{name}/cert")
    assert resp.status_code == 200 and resp.mimetype == "application/pkix-cert" and resp.data == info.certificate
    resp = client.get(f"/ca/{name}/cert.pem")
    assert pem.unarmor(resp.data)[2] == info.certificate
    chain = client.get(f"/ca/{name}/chain.pem").data
    assert chain.count(b"BEGIN CERTIFICATE") == 2
    resp = client.get(f"/ca/{name}/crl")
    assert resp.status_code == 200 and resp.mimetype == "application/pkix-crl"
    assert asn1_crl.CertificateList.load(resp.data).issuer == x509.Certificate.load(info.certificate).subject
    resp = client.get(f"/ca/{name}/delta-crl")
    assert resp.status_code == 200 and asn1_crl.CertificateList.load(resp.data).delta_crl_indicator_value is not None
    assert client.get("/ca/no-such-ca/crl").status_code == 404
    assert client.get("/ca/no-such-ca/cert").status_code == 404
    names = {a["name"] for a in client.get("/ca").get_json()["authorities"]}
    assert {name, f"{ca.test_tag}root-sm2"} <= names


def test_certificate_lookup_needs_a_role(ca, client, db):
    issued = ca.issue(request("server"))
    url = f"/api/v1/certificates/{issued.ca}/{issued.serial:x}"
    assert client.get(url).status_code == 401
    assert client.get(url, headers=token(db, "applicant")).status_code == 403
    body = client.get(url, headers=token(db, "auditor")).get_json()
    assert body["status"] == "good" and body["serial"] == f"{issued.serial:x}" and body["profile"] == "server"
    assert pem.unarmor(body["certificate"].encode())[2] == issued.certificate
    ca.revoke(issued.ca, issued.serial, RevocationReason.superseded)
    body = client.get(url, headers=token(db, "api_client")).get_json()
    assert body["status"] == "revoked" and body["reason"] == "superseded"
    headers = token(db, "ra_officer")
    assert client.get(f"/api/v1/certificates/{issued.ca}/zz", headers=headers).status_code == 400
    assert client.get(f"/api/v1/certificates/{issued.ca}/{issued.serial + 1:x}", headers=headers).status_code == 404


def test_cli(softtoken_km, db, tmp_path):
    tag = f"k{secrets.token_hex(4)}-"
    authority = EmbeddedCA(softtoken_km, db, "http://cli.test", name_prefix=tag)
    runner = CliRunner()
    obj = {"services": SimpleNamespace(key_manager=softtoken_km, db=db, ca=authority)}
    authority.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    result = runner.invoke(ca_group, ["list"], obj=obj)
    assert result.exit_code == 0 and f"{tag}issuing-sm2" in result.output
    issued = authority.issue(request("tsa"))
    result = runner.invoke(ca_group, ["revoke", f"{issued.serial:x}", "--ca", issued.ca, "--reason", "key_compromise"],
                           obj=obj)
    assert result.exit_code == 0 and "revoked (key_compromise)" in result.output
    out = tmp_path / "ca.crl"
    result = runner.invoke(ca_group, ["crl", issued.ca, "--out", str(out)], obj=obj)
    assert result.exit_code == 0
    assert asn1_crl.CertificateList.load(out.read_bytes())["tbs_cert_list"]["revoked_certificates"][0][
        "user_certificate"].native == issued.serial
    result = runner.invoke(ca_group, ["init", "--with-ecdsa"], obj=obj)   # names taken: refused before any key
    assert result.exit_code != 0 and isinstance(result.exception, HierarchyExists)
    result = runner.invoke(ca_group, ["revoke", "xyz", "--ca", issued.ca], obj=obj)
    assert result.exit_code != 0
