"""Issue 15, "No 5xx from bad input, anywhere": each input that answered HTTP 500 now answers a 4xx with
an RFC 9457 problem (application/problem+json, ``type``/``title``/``status``/``detail`` and the stable
``code``), on SQLite and PostgreSQL; oversized bodies are 413 on every route, chunked ones too."""
from __future__ import annotations

import base64
import io
import random

import pytest
from asn1crypto import pem, tsp

from pkicore import inputs
from racentre.web import MAX_ANY_BODY

BIG_IDS = (2 ** 63, 2 ** 64, 10 ** 30)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def assert_problem(r, status: int, code: str | None = None, detail: str = ""):
    assert r.status_code == status, (r.status_code, r.data[:300])
    assert r.mimetype == "application/problem+json", r.mimetype
    body = r.get_json()
    assert body["status"] == status and body["type"].startswith("urn:racentre:problem:")
    assert body["title"] and body["code"] == body["error"]["code"] and body["detail"] == body["error"]["message"]
    if code is not None:
        assert body["code"] == code, body
    assert detail in body["detail"], body


# ------------------------------------------------------------------------------------------- /tsa/verify

def _token(client) -> bytes:
    query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x07" * 32}, "cert_req": True}).dump()
    reply = client.post("/tsa", data=query, content_type="application/timestamp-query")
    assert reply.status_code == 200
    return tsp.TimeStampResp.load(reply.data)["time_stamp_token"].dump()


def test_tsa_verify_malformed_ca_crl_and_tokens(site):
    client = site.client()
    token = _token(client)
    good = client.post("/tsa/verify", json={"token": b64(token), "digest": "07" * 32})
    assert good.status_code == 200 and good.json["ok"] is True, good.json
    garbage_pem = pem.armor("CERTIFICATE", b"\x30\x03\x02\x01\x01")
    for field, value, detail in [
            ("ca", b64(b"\x30\x82\x01\x00" + b"\x00" * 10), "ca is not a DER X.509 certificate"),
            ("ca", b64(garbage_pem), "ca is not a DER X.509 certificate"),
            ("ca", b64(b"-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"), "ca"),
            ("ca", b64(pem.armor("X509 CRL", b"\x30\x00")), "ca holds no certificate"),
            ("crl", b64(b"\x30\x05\x30\x03\x02\x01\x01"), "crl is not a DER CRL"),
            ("crl", b64(token), "crl is not a DER CRL"),
            ("ca", "%%% not base64", "ca is not valid base64"),
            ("ca", 12, "ca must be a base64 string"),
            ("token", ["x"], "token must be a base64 string"),
            ("digest", {"a": 1}, "digest must be a string"),
            ("digest", "zz", "digest has an invalid format")]:
        body = {"token": b64(token), "digest": "07" * 32, field: value}
        assert_problem(client.post("/tsa/verify", json=body), 400, "bad_request", detail)
    for body in ([1, 2], "token", None, {"data": b64(b"x")}, {"token": b64(token), "extra": 1}):
        assert_problem(client.post("/tsa/verify", json=body), 400, "bad_request")
    # malformed tokens: a verdict that says so (HTTP 200, valid false), never an exception
    rng = random.Random(15)
    verdicts = 0
    refused = 0
    for case in range(150):
        blob = bytearray(token)
        if case % 3 == 0:
            blob = blob[:rng.randrange(1, len(blob))]
        else:
            for _ in range(1 + case % 4):
                blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        r = client.post("/tsa/verify", json={"token": b64(bytes(blob)), "digest": "07" * 32})
        assert r.status_code == 200 and isinstance(r.json["ok"], bool), (case, r.status_code, r.data[:200])
        verdicts += 1
        refused += not r.json["ok"]
    # a flip in an unsigned, unchecked place (e.g. inside the certificates bag) may leave a valid token
    assert verdicts == 150 and refused >= 120, refused


# --------------------------------------------------------------------------------------- ids past 2^63

def test_ids_past_the_columns_are_not_found(site):
    client = site.client()
    auth = site.auth()
    cookie, _ = site.console
    for big in BIG_IDS:
        for path in (f"/kmc/v1/approval-requests/{big}", f"/seal/seals/{big}", f"/api/v1/ra/requests/{big}"):
            assert_problem(client.get(path, headers=auth), 404)
        client.set_cookie("racentre_session", cookie)
        for path in (f"/console/seals/{big}/users", f"/console/jobs/{big}", f"/console/requests/{big}"):
            r = client.get(path)
            assert r.status_code in (404, 405), (path, r.status_code)
        client.delete_cookie("racentre_session")
    assert_problem(client.get(f"/seal/seals/{2 ** 63 - 1}", headers=auth), 404, "not_found")
    assert_problem(client.get(f"/kmc/v1/approval-requests/{2 ** 63 - 1}", headers=auth), 404, "not_found")


# ---------------------------------------------------------------------------------------------- KMC

CERT_ERRORS = [
    (5, "recipient_certificate must be PEM or base64 DER text"),
    (["MIIB"], "recipient_certificate must be PEM or base64 DER text"),
    ("***", "recipient_certificate is not valid base64"),
    (b64(b"\x30\x03\x02\x01\x01"), "recipient_certificate is not a DER X.509 certificate"),
]


@pytest.mark.parametrize("body, detail", [
    ({"key_id": 2 ** 63, "reason": "r"}, "key_id must be in the range 0..9223372036854775807"),
    ({"key_id": 10 ** 40, "reason": "r"}, "key_id must be in the range"),
    ({"key_id": -1, "reason": "r"}, "key_id must be in the range"),
    ({"key_id": "7", "reason": "r"}, "key_id must be an integer"),
    ({"key_id": 1.5, "reason": "r"}, "key_id must be an integer"),
    ({"key_id": True, "reason": "r"}, "key_id must be an integer"),
    ({"key_id": [1], "reason": "r"}, "key_id must be an integer"),
    *[({"key_id": 1, "reason": "r", "recipient_certificate": v}, d) for v, d in CERT_ERRORS],
    ({"user_cert_no": "0xzz", "ca_id": "x", "reason": "r"}, "user_cert_no must be a hexadecimal serial"),
    ({"user_cert_no": "0x" + "f" * 41, "ca_id": "x", "reason": "r"}, "at most 20 octets"),
    ({"user_cert_no": 2 ** 161, "ca_id": "x", "reason": "r"}, "user_cert_no must be in the range"),
    ({"user_cert_no": {"x": 1}, "reason": "r"}, "user_cert_no must be a decimal integer"),
    ({"purpose": "steal", "key_id": 1, "reason": "r"}, "purpose must be one of: recover, destroy, export"),
    ({"purpose": "destroy", "reason": "r"}, "a destroy request names an archived key"),
    ({"key_id": 1, "reason": 5}, "reason must be a string"),
    ({"key_id": 1, "reason": "r", "colour": "red"}, "unknown fields: colour"),
    ([1, 2], "the body must be a JSON object"),
    ("text", "the body must be a JSON object"),
])
def test_kmc_approval_request_input(site, body, detail):
    r = site.client().post("/kmc/v1/approval-requests", headers=site.auth("key_recovery_officer"), json=body)
    assert_problem(r, 400, "bad_request", detail)


def test_kmc_lookup_by_hex_serial_is_not_found_not_500(site):
    client = site.client()
    for number in ("0x1F", "0x" + "ab" * 20, 31, "31"):
        r = client.post("/kmc/v1/approval-requests", headers=site.auth("key_recovery_officer"),
                        json={"ca_id": "sm2-issuing", "user_cert_no": number, "reason": "case 1", "purpose": "destroy"})
        assert_problem(r, 404, "not_found", "no archived key for certificate")


@pytest.mark.parametrize("body, detail", [
    ({}, "missing fields: export, exporter_certificate"),
    ({"export": b64(b"{}")}, "missing fields: exporter_certificate"),
    ({"export": "%%%", "exporter_certificate": "MIIB"}, "export is not valid base64"),
    ({"export": 5, "exporter_certificate": "MIIB"}, "export must be a base64 string"),
    ({"export": b64(b"{}"), "exporter_certificate": 7}, "exporter_certificate must be PEM or base64 DER text"),
    ({"export": b64(b"{}"), "exporter_certificate": b64(b"\x30\x00")}, "exporter_certificate is not a DER X.509"),
    ({"export": None, "exporter_certificate": None}, "export is required"),
    ([], "the body must be a JSON object"),
])
def test_kmc_import_input(site, body, detail):
    r = site.client().post("/kmc/v1/import", headers=site.auth("ra_admin"), json=body)
    assert_problem(r, 400, "bad_request", detail)


def test_kmc_export_and_rewrap_input(site):
    client = site.client()
    admin = site.auth("ra_admin")
    assert_problem(client.post("/kmc/v1/approval-requests/1/export", headers=admin, json={"dr_public_key_info": 3}),
                   400, "bad_request", "dr_public_key_info must be PEM or base64 DER text")
    assert_problem(client.post("/kmc/v1/approval-requests/1/export", headers=admin,
                               json={"dr_public_key_info": b64(b"\x30\x00")}), 400, "bad_request", "SubjectPublicKeyInfo")
    for limit in ("x", "0", str(2 ** 64), "-3"):
        assert_problem(client.post(f"/kmc/v1/kek/rewrap?limit={limit}", headers=admin), 400, "bad_request", "limit")


# ---------------------------------------------------------------------------------------- serials

def test_hex_serials(site):
    client = site.client()
    auth = site.auth("api_client")
    ca = next(iter(site.services.ca.authorities()))
    for serial in ("zz", "-1", "0x", "1" * 43, "f" * 41, "12_34"):
        assert_problem(client.get(f"/api/v1/certificates/{ca}/{serial}", headers=auth), 400, "bad_request",
                       "serial must be a hexadecimal serial number")
    for serial in ("1f", "0x1F", "1F:2E", "7fffffffffffffffffffffffffffffffffffffff"):
        assert_problem(client.get(f"/api/v1/certificates/{ca}/{serial}", headers=auth), 404, "not_found")
    cookie, _ = site.console
    client.set_cookie("racentre_session", cookie)
    for serial in ("zz", "f" * 60):
        assert client.get(f"/console/certificates/{ca}/{serial}").status_code == 400
    assert client.get(f"/console/certificates/{ca}/0x1f").status_code == 404


def test_hex_serial_helper():
    assert inputs.hex_serial("0x1f") == inputs.hex_serial("1F") == inputs.hex_serial("1f") == 31
    assert inputs.hex_serial("01:02") == 0x102
    assert inputs.hex_serial("ff" * 20) == 2 ** 160 - 1
    for bad in ("", "g", "ff" * 21, "-1", 31, None, "1 _2"):
        with pytest.raises(inputs.InputError):
            inputs.hex_serial(bad)
    assert inputs.serial("0x10") == 16 and inputs.serial("10") == 10 and inputs.serial(10) == 10


# ------------------------------------------------------------------------------------------- seals

@pytest.mark.parametrize("body", ["[1]", '["principal"]', '"text"', "5", "true", "null", "{"])
def test_seal_bodies_that_are_not_objects(site, body):
    client = site.client()
    admin = site.auth("ra_admin")
    r = client.post("/seal/seals/1/users", headers=admin, data=body, content_type="application/json")
    assert_problem(r, 400, "bad_request", "must be a JSON object")
    for action in ("suspend", "resume", "revoke"):
        r = client.post(f"/seal/seals/1/{action}", headers=admin, data=body, content_type="application/json")
        assert_problem(r, 400, "bad_request", "must be a JSON object")


def test_seal_field_checks(site):
    client = site.client()
    admin = site.auth("ra_admin")
    assert_problem(client.post("/seal/seals/1/users", headers=admin, json={"principal": 5}), 400, "bad_request",
                   "principal must be a string")
    assert_problem(client.post("/seal/seals/1/users", headers=admin, json={"principal": " "}), 400, "bad_request",
                   "principal is required")
    assert_problem(client.post("/seal/seals/1/suspend", headers=admin, json={"reason": "r" * 300}), 400,
                   "bad_request", "reason must be at most 256 characters")
    assert_problem(client.post("/seal/seals/1/suspend", headers=admin, json={"reason": "r"}), 404, "not_found")
    for query in ("page=abc", f"page={2 ** 70}", "x_mm=nan", "x_mm=inf", "y_mm=1e400", "anchor=" + "a" * 300):
        assert_problem(client.post(f"/seal/seals/1/sign?{query}", headers=admin, data=b"%PDF-1.7",
                                   content_type="application/pdf"), 400, "bad_request")
    assert_problem(client.get("/seal/seals?status=lost", headers=admin), 400, "bad_request", "status must be one of")
    form = {"unit": "U", "name": "N", "type": "official", "key_label": "k", "valid_days": str(10 ** 12),
            "picture": (io.BytesIO(b"x"), "p.png"), "certificate": (io.BytesIO(b"x"), "c.pem")}
    assert_problem(client.post("/seal/seals", headers=admin, data=form), 400, "bad_request", "valid_days")


# ------------------------------------------------------------------------------ problem+json, 413

def test_errors_are_problem_details(site):
    client = site.client()
    assert_problem(client.get("/api/v1/ra/requests"), 401, "unauthorized")
    assert_problem(client.get("/api/v1/ra/requests", headers=site.auth("applicant")), 403, "forbidden")
    assert_problem(client.get("/nowhere"), 404, "not_found")
    r = client.delete("/api/v1/ra/requests", headers=site.auth())
    assert_problem(r, 405, "method_not_allowed")
    assert {"GET", "POST"} <= set(r.headers["Allow"].split(", "))
    r = client.post("/api/v1/ra/requests", headers=site.auth("applicant"), data="[" * 5000,
                    content_type="application/json")
    assert_problem(r, 400, "bad_request")


def test_oversized_bodies_are_413_everywhere(site):
    client = site.client()
    big = b"\x00" * (MAX_ANY_BODY + 1)
    routes = [(rule.rule, m) for rule in site.app.url_map.iter_rules() for m in rule.methods & {"POST", "PUT"}
              if not rule.arguments]
    assert len(routes) >= 12
    for path, method in routes:
        r = client.open(path, method=method, headers=site.auth(), data=big, content_type="application/octet-stream")
        assert_problem(r, 413, "too_large")
    # per-route limits below the global one: the RA (256 KiB), the TSA, OCSP; the seal takes up to 32 MiB
    for path, ctype, size in [("/api/v1/ra/requests", "application/json", 300 * 1024),
                              ("/tsa", "application/timestamp-query", 1024 * 1024),
                              ("/ocsp", "application/ocsp-request", 65 * 1024),
                              ("/seal/verify", "application/pdf", 32 * 1024 * 1024 + 1)]:
        r = client.post(path, headers=site.auth(), data=b"\x00" * size, content_type=ctype)
        assert r.status_code == 413 and r.mimetype == "application/problem+json", (path, r.status_code)
    # the route's limit is checked before its authentication: no token, still 413
    assert_problem(client.post("/api/v1/ra/requests", data=b"{" + b" " * (300 * 1024) + b"}",
                               content_type="application/json"), 413)


def _chunked(client, path: str, body: bytes, auth: dict, ctype: str):
    return client.post(path, headers={**auth, "Transfer-Encoding": "chunked"}, input_stream=io.BytesIO(body),
                       content_type=ctype, environ_overrides={"wsgi.input_terminated": True})


def test_chunked_bodies_are_counted(site):
    """A chunked body (no Content-Length, as gunicorn hands it on) is counted as read: past the limit 413,
    else the route sees the whole body."""
    client = site.client()
    auth = site.auth()
    r = _chunked(client, "/seal/verify", b"\x00" * (MAX_ANY_BODY + 10), auth, "application/pdf")
    assert_problem(r, 413, "too_large")
    r = _chunked(client, "/api/v1/ra/requests", b"{" + b" " * (300 * 1024) + b"}", site.auth("applicant"),
                 "application/json")
    assert_problem(r, 413)
    r = _chunked(client, "/api/v1/ra/units", b'{"name": "x"}', site.auth("ra_operator"), "application/json")
    assert_problem(r, 400, "bad_request", "missing fields: uscc, legal_representative")   # the body arrived
    r = _chunked(client, "/seal/verify", b"not a pdf", auth, "application/pdf")
    assert r.status_code == 200 and r.json["ok"] is False and r.json["document_type"] == "unknown"   # all 9 bytes



def test_nul_characters_are_refused(site):
    """PostgreSQL text cannot hold NUL: found by the fuzz run (a 500 from /console/audit?actor=...%00)."""
    client = site.client()
    assert_problem(client.get("/seal/seals?unit=a%00b", headers=site.auth()), 400, "bad_request", "NUL")
    assert_problem(client.get("/api/v1/audit?target=ra_request:1%00", headers=site.auth()), 400, "bad_request", "NUL")
    assert_problem(client.post("/api/v1/ra/units", headers=site.auth("ra_operator"),
                               json={"name": "a\x00", "uscc": "x", "legal_representative": "y"}), 400, "bad_request",
                   "name must not contain NUL")
    cookie, _ = site.console
    client.set_cookie("racentre_session", cookie)
    r = client.get("/console/audit?actor=%00x&verify=1")
    assert r.status_code == 400
    assert client.get("/console/audit?actor=x").status_code == 200
