"""``/.well-known/cmp`` over HTTP (RFC 6712): the malformed-message corpus (tests/vectors/cmp_malformed.json)
gets 400 or a CMP error, never a 500; a wrong media type 415, an oversized body 413; the profile label."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ca_bridge.cmp import asn1
from ca_bridge.cmp.views import bp
from racentre.config import Config, ServiceConfig
from racentre.web import create_app
from tests.cmp_support import cmp_server

CORPUS = json.loads((Path(__file__).parents[2] / "vectors" / "cmp_malformed.json").read_text())


@pytest.fixture(scope="module")
def client(ca):
    app = create_app(Config(service=ServiceConfig(public_url="http://ca.test:8600")), ca.km, ca.db,
                     services={"cmp": cmp_server(ca)}, blueprints=[bp])
    return app.test_client()


@pytest.mark.parametrize("case", CORPUS, ids=[c["name"] for c in CORPUS])
def test_malformed_corpus_never_500(client, case):
    response = client.post("/.well-known/cmp", data=bytes.fromhex(case["der"]),
                           headers={"Content-Type": "application/pkixcmp"})
    assert response.status_code == case["http"]
    assert response.mimetype == "application/pkixcmp"
    answer = asn1.PKIMessage.load(response.data)
    assert answer["body"].name == "error"
    assert answer["body"].chosen["pki_status_info"]["status"].native == 2
    assert answer["body"].chosen["pki_status_info"]["status_string"].native        # says why


def test_media_type_size_and_label(client):
    assert client.post("/.well-known/cmp", data=b"\x30\x00", headers={"Content-Type": "text/plain"}).status_code == 415
    big = client.post("/.well-known/cmp", data=b"\x30" * (256 * 1024 + 1), headers={"Content-Type": "application/pkixcmp"})
    assert big.status_code == 413
    odd = client.post("/.well-known/cmp/p/..%2Fetc", data=b"\x30\x00", headers={"Content-Type": "application/pkixcmp"})
    assert odd.status_code == 404
    labelled = client.post("/.well-known/cmp/p/server", data=b"\x30\x00", headers={"Content-Type": "application/pkixcmp"})
    assert labelled.status_code == 400
    assert client.get("/.well-known/cmp").status_code == 405
