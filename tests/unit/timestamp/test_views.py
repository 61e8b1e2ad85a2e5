"""timestamp.views over the Flask test client: the RFC 3161 §3.4 transport, abuse (wrong type, huge,
truncated, garbage -> 4xx or a rejection, never a 500), the verify endpoint, archive, CLI and demo."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import secrets

import pytest
from asn1crypto import tsp
from click.testing import CliRunner
from flask import Flask

from pkicore.errors import PkiError
from racentre import fastpath
from racentre.fastpath import FastPaths
from racentre.web import _http_error, _pki_error
from timestamp import views
from timestamp.cli import tsa_group
from timestamp.models import TimestampToken, find
from timestamp.services import TsaService
from timestamp.tsa import TimeStampResp
from timestamp.views import TsaFastPath
from werkzeug.exceptions import HTTPException
from werkzeug.test import Client

QT = {"Content-Type": "application/timestamp-query"}


def make_app(service: TsaService) -> Flask:
    app = Flask("tsa-test")
    app.register_error_handler(PkiError, _pki_error)
    app.register_error_handler(HTTPException, _http_error)
    views.install(app, service)
    fastpath.install(app, "tsa", TsaFastPath(service))     # as racentre.app.build_app wires it
    return app


@pytest.fixture(scope="module")
def client(tsa_pki):
    return make_app(TsaService(tsa_pki.config, tsa_pki.km)).test_client()


def query(data=b"payload", digest="sm3", nonce=None, cert_req=True) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, data).digest()},
        "nonce": nonce, "cert_req": cert_req}).dump()


def status_of(body: bytes) -> str:
    return TimeStampResp.load(body)["status"]["status"].native


@pytest.mark.parametrize("path", ["/tsa", "/tsa/", "/tsa/ecdsa", "/tsa/rsa"])
def test_post_query(client, path):
    r = client.post(path, data=query(nonce=5), headers=QT)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/timestamp-reply"
    assert status_of(r.data) == "granted"


def test_transport_faults(client):
    assert client.post("/tsa", data=query(), headers={"Content-Type": "application/octet-stream"}).status_code == 415
    assert client.post("/tsa", data=query()).status_code == 415
    assert client.post("/tsa/nosuch", data=query(), headers=QT).status_code == 404
    r = client.post("/tsa", data=b"\x30" * (10 * 1024 * 1024), headers=QT)
    assert r.status_code == 413 and r.is_json
    assert client.get("/tsa").status_code == 405


@pytest.mark.parametrize("body", [b"", b"\x30", query()[:-1], query()[:10], secrets.token_bytes(1000),
                                  b"\x30\x80" + b"\x00" * 10, query() + b"junk", b"\xff" * 16384])
def test_garbage_gets_a_rejection(client, body):
    r = client.post("/tsa", data=body, headers=QT)
    assert r.status_code == 200 and status_of(r.data) == "rejection"
    assert client.post("/tsa", data=query(), headers=QT).status_code == 200   # still serving


def test_verify_endpoint(client, tsa_pki):
    data = b"verify me"
    reply = client.post("/tsa", data=query(data), headers=QT).data
    token = TimeStampResp.load(reply)["time_stamp_token"].dump()
    ok = client.post("/tsa/verify", json={"token": base64.b64encode(token).decode(),
                                          "data": base64.b64encode(data).decode()}).get_json()
    assert ok["ok"] and ok["algorithm"] == "sm2-sm3" and "TSA Test CA sm2-sm3" in ok["chain"][-1]
    bad = client.post("/tsa/verify", json={"token": base64.b64encode(reply).decode(),
                                           "data": base64.b64encode(b"other").decode()}).get_json()
    assert not bad["ok"] and "the message imprint does not match the data" in bad["reasons"]
    form = client.post("/tsa/verify", data={"token": (io.BytesIO(reply), "t.tsr"),
                                            "digest": hashlib.new("sm3", data).hexdigest()},
                       content_type="multipart/form-data").get_json()
    assert form["ok"], form
    # a foreign trust anchor: the chain does not hold
    other = client.post("/tsa/verify", json={"token": base64.b64encode(reply).decode(),
                                             "ca": base64.b64encode(tsa_pki.ca["ecdsa"].certificate).decode()})
    assert not other.get_json()["ok"]
    assert client.post("/tsa/verify", json={"token": "!!"}).status_code == 400
    assert client.post("/tsa/verify", data=b"x").status_code == 400
    garbage = client.post("/tsa/verify", json={"token": base64.b64encode(b"\x30\x03\x02\x01\x00").decode()})
    assert garbage.status_code == 200 and not garbage.get_json()["ok"]


def test_certificate_and_health(client, tsa_pki):
    pem_chain = client.get("/tsa/ecdsa/certificate").data
    assert pem_chain.count(b"BEGIN CERTIFICATE") == 2
    health = client.get("/tsa/health").get_json()
    assert health["status"] == "ok" and set(health["units"]) == {"default", "ecdsa", "rsa"}
    assert health["clock"]["require_sync"] is False


def test_unprovisioned_unit_answers_system_failure(tsa_pki, tmp_path):
    config = dataclasses.replace(tsa_pki.config, certs_dir=str(tmp_path / "empty"))
    c = make_app(TsaService(config, tsa_pki.km)).test_client()
    r = c.post("/tsa", data=query(), headers=QT)
    assert r.status_code == 200 and TimeStampResp.load(r.data)["status"]["fail_info"].native == {"system_failure"}


def test_archive(tsa_pki, db):
    config = dataclasses.replace(tsa_pki.config, archive=True)
    c = make_app(TsaService(config, tsa_pki.km, db)).test_client()
    reply = c.post("/tsa/ecdsa", data=query(b"archived", "sha256"), headers=QT).data
    info = TimeStampResp.load(reply)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    row = find(db, info["serial_number"].native)
    assert isinstance(row, TimestampToken) and row.unit == "ecdsa" and row.imprint_algorithm == "sha256"
    assert row.imprint == hashlib.sha256(b"archived").digest() and row.token in reply


def test_cli_verify(client, tsa_pki, tmp_path):
    data = b"cli data"
    (tmp_path / "d.bin").write_bytes(data)
    (tmp_path / "x.bin").write_bytes(b"not it")
    (tmp_path / "r.tsr").write_bytes(client.post("/tsa/rsa", data=query(data, "sha256"), headers=QT).data)
    runner = CliRunner()
    ok = runner.invoke(tsa_group, ["verify", "--token", str(tmp_path / "r.tsr"), "--data", str(tmp_path / "d.bin"),
                                   "--ca", str(tsa_pki.ca_file("rsa")), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["algorithm"] == "rsa-sha256"
    bad = runner.invoke(tsa_group, ["verify", "--token", str(tmp_path / "r.tsr"), "--data", str(tmp_path / "x.bin")])
    assert bad.exit_code == 1 and "FAILED" in bad.output and "imprint" in bad.output


def test_fast_path_and_flask_view_answer_alike(tsa_pki):
    app = make_app(TsaService(tsa_pki.config, tsa_pki.km))
    assert isinstance(app.wsgi_app, FastPaths) and isinstance(app.wsgi_app.handlers["tsa"], TsaFastPath)
    flask_only = Client(app.wsgi_app.wsgi_app)
    fast = app.test_client()
    for path in ("/tsa", "/tsa/ecdsa"):
        a = fast.post(path, data=query(nonce=11), headers=QT)
        b = flask_only.post(path, data=query(nonce=11), headers=QT)
        assert a.status_code == b.status_code == 200
        assert a.headers["Content-Type"] == b.headers["Content-Type"] == "application/timestamp-reply"
        ia = TimeStampResp.load(a.data)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        ib = TimeStampResp.load(b.data)["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        assert ia["nonce"].native == ib["nonce"].native == 11 and ia["policy"] == ib["policy"]
    for body in (b"", b"\x30\x00"):
        assert status_of(fast.post("/tsa", data=body, headers=QT).data) == \
            status_of(flask_only.post("/tsa", data=body, headers=QT).data) == "rejection"
