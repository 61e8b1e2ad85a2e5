"""The /seal API: seal making by ra_admin, sealing by authorised staff only (signing record audited), and
verification; malformed documents give 4xx, never 500."""
from __future__ import annotations

import io
import os
import secrets
import tempfile

import pytest

from access.auth import create_token
from audit import trail as audit
from store.db import transaction
from racentre.config import Config
from racentre.web import create_app
from seal import views
from seal.registry import SealMaker, SealRegistry
from racentre.demo.samples import make_pdf
from seal.services import SealService
from seal.timestamps import SealTimestamps
from tests.unit.seal.sealpki import TESTDATA, unit_of


@pytest.fixture()
def client(db, seal_pki, tsa):
    km, m = seal_pki["km"], seal_pki["maker"]
    app = create_app(Config(), km, db, blueprints=[])
    registry = SealRegistry(db, km, SealMaker(m.label, m.certificate, m.alg))
    views.install(app, SealService(registry, trust=(seal_pki["ca"].certificate,),
                                   chain=(seal_pki["ca"].certificate,), timestamps=SealTimestamps.of_authority(tsa),
                                   tsa_trust=(seal_pki["ca"].certificate,)))
    tag = secrets.token_hex(3)
    with transaction(db) as s:
        tokens = {"admin": create_token(s, f"admin-{tag}", ["ra_admin"]),
                  "clerk": create_token(s, f"clerk-{tag}", ["api_client"]),
                  "other": create_token(s, f"other-{tag}", ["api_client"])}
    c = app.test_client()
    c.tokens = {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}
    c.clerk_name = f"clerk-{tag}"
    return c


def _make(client, seal_pki, stamp_png):
    u = seal_pki["unit"]
    r = client.post("/seal/seals", headers=client.tokens["admin"], data={
        "unit": "Unit A", "name": "Unit A 合同专用章", "type": "contract", "key_label": u.label,
        "users": client.clerk_name, "width_mm": "42", "height_mm": "42",
        "certificate": (io.BytesIO(u.certificate), "unit.der"), "picture": (io.BytesIO(stamp_png), "stamp.png")},
        content_type="multipart/form-data")
    assert r.status_code == 201, r.json
    return r.json


def test_make_sign_verify_pdf_and_ofd(client, seal_pki, stamp_png, db):
    seal = _make(client, seal_pki, stamp_png)
    before = set(os.listdir(tempfile.gettempdir()))
    r = client.post(f"/seal/seals/{seal['id']}/sign?page=1&x_mm=100&y_mm=50", headers=client.tokens["clerk"],
                    data=make_pdf(), content_type="application/pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    v = client.post("/seal/verify", headers=client.tokens["clerk"], data=r.data)
    assert v.status_code == 200 and v.json["ok"], v.json
    assert v.json["seals"][0]["timestamp_time"] and v.json["seals"][0]["seal_name"] == "Unit A 合同专用章"
    o = client.post(f"/seal/seals/{seal['id']}/sign", headers=client.tokens["clerk"],
                    data=(TESTDATA / "helloworld.ofd").read_bytes(), content_type="application/ofd")
    assert o.status_code == 200 and o.mimetype == "application/ofd"
    vo = client.post("/seal/verify?format=text", headers=client.tokens["clerk"], data=o.data)
    assert vo.status_code == 200 and "OFD document: TOTAL_PASSED" in vo.get_data(as_text=True), vo.get_data(as_text=True)
    assert set(os.listdir(tempfile.gettempdir())) <= before | set()
    recs = client.get(f"/seal/seals/{seal['id']}/records", headers=client.tokens["admin"]).json["records"]
    assert [x["document_type"] for x in recs] == ["pdf", "ofd"] and recs[0]["signer"] == client.clerk_name
    with db() as s:
        actions = [e.action for e in audit.events_for(s, "seal", seal["id"])]
    assert actions == ["seal.make", "seal.sign", "seal.sign"]


def test_authorisation_per_seal(client, seal_pki, stamp_png):
    seal = _make(client, seal_pki, stamp_png)
    assert client.post(f"/seal/seals/{seal['id']}/sign", headers=client.tokens["other"], data=make_pdf()).status_code == 403
    assert client.post("/seal/seals", headers=client.tokens["clerk"], data={}).status_code == 403
    assert client.post("/seal/verify", data=make_pdf()).status_code == 401
    r = client.post(f"/seal/seals/{seal['id']}/suspend", headers=client.tokens["admin"], json={"reason": "x"})
    assert r.status_code == 200 and r.json["status"] == "suspended"
    assert client.post(f"/seal/seals/{seal['id']}/sign", headers=client.tokens["clerk"], data=make_pdf()).status_code == 400
    assert client.post(f"/seal/seals/{seal['id']}/suspend", headers=client.tokens["admin"]).status_code == 409
    assert client.post("/seal/seals/999999/sign", headers=client.tokens["clerk"], data=make_pdf()).status_code == 404


def test_bad_picture_refused(client, seal_pki):
    u = seal_pki["unit"]
    r = client.post("/seal/seals", headers=client.tokens["admin"], data={
        "unit": unit_of(u.certificate), "name": "N", "type": "official", "key_label": u.label,
        "certificate": (io.BytesIO(u.certificate), "c.der"), "picture": (io.BytesIO(b"GIF89a broken"), "p.gif")},
        content_type="multipart/form-data")
    assert r.status_code == 400 and "picture" in r.json["error"]["message"]


@pytest.mark.parametrize("blob", [b"", b"%PDF-1.7\ngarbage", make_pdf()[:300], b"PK\x03\x04garbage",
                                  b"random bytes", (TESTDATA / "helloworld.ofd").read_bytes()[:500]])
def test_malformed_documents_are_4xx(client, seal_pki, stamp_png, blob):
    seal = _make(client, seal_pki, stamp_png)
    r = client.post(f"/seal/seals/{seal['id']}/sign", headers=client.tokens["clerk"], data=blob)
    assert 400 <= r.status_code < 500, r.data
    v = client.post("/seal/verify", headers=client.tokens["clerk"], data=blob)
    assert v.status_code == 400 if not blob else v.status_code == 200 and not v.json["ok"]


def test_verify_reports_indications_over_rest(client, seal_pki, stamp_png):
    """Issue 13 through REST: JSON and text say the same indication; the registry's state counts (a
    suspended seal cannot be trusted now); a bare seal (.esl) gets a report too; an OFD whose signer
    chains to a root we do not trust is INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND, signature intact."""
    seal = _make(client, seal_pki, stamp_png)
    doc = client.post(f"/seal/seals/{seal['id']}/sign", headers=client.tokens["clerk"],
                      data=(TESTDATA / "helloworld.ofd").read_bytes(), content_type="application/ofd").data
    ok = client.post("/seal/verify", headers=client.tokens["clerk"], data=doc).json
    assert (ok["indication"], ok["seals"][0]["signature_intact"], ok["seals"][0]["time_proven"]) == \
        ("TOTAL_PASSED", True, True), ok
    esl = client.get(f"/seal/seals/{seal['id']}/esl", headers=client.tokens["admin"]).data
    r = client.post("/seal/verify", headers=client.tokens["clerk"], data=esl).json
    assert r["document_type"] == "esl" and r["indication"] == "TOTAL_PASSED", r
    foreign = client.post("/seal/verify", headers=client.tokens["clerk"],
                          data=(TESTDATA / "v4signed.ofd").read_bytes()).json
    assert (foreign["seals"][0]["indication"], foreign["seals"][0]["sub_indication"],
            foreign["seals"][0]["signature_intact"]) == ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND", True)
    text = client.post("/seal/verify?format=text", headers=client.tokens["clerk"],
                       data=(TESTDATA / "v4signed.ofd").read_bytes()).get_data(as_text=True)
    assert "INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND" in text and "signature intact" in text
    assert client.post(f"/seal/seals/{seal['id']}/suspend", headers=client.tokens["admin"],
                       json={"reason": "lost"}).status_code == 200
    held = client.post("/seal/verify", headers=client.tokens["clerk"], data=doc).json
    assert (held["indication"], held["sub_indication"]) == ("INDETERMINATE", "TRY_LATER"), held
    big = client.post("/seal/verify", headers=client.tokens["clerk"], data=b"%PDF-" + bytes(33 * 1024 * 1024))
    assert big.status_code == 413, big.status_code
