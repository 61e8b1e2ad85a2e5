"""OCSP responder (RFC 6960): good/revoked/unknown, nonce, SHA-1/SHA-256/SM3 CertIDs, delegated signer,
error statuses, the HTTP face (GET and POST) through the blueprint and through the fast path, the
hand-written request reader (agrees with asn1crypto) and writer (canonical DER), and pre-produced
responses (RFC 5019): kept, shared, renewed, never served for a status the database no longer holds."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from urllib.parse import quote

import pytest
from asn1crypto import core, crl, ocsp, x509
from werkzeug.test import Client

from ca_bridge import ocsp as ocsp_module
from ca_bridge.api import RevocationReason
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.revinfo import revocation_info
from ca_bridge.store import StoredResponse
from ca_bridge.views import OcspFastPath, bp
from pkicore.algorithms import algorithm
from store.db import Base, make_engine, make_session_factory, utcnow
from pkicore.keys import verify_signature
from racentre import fastpath
from racentre.migrate import import_models
from racentre.web import create_app
from tests.unit.ca_bridge.helpers import ec_spki, ocsp_request, request, sm2_spki
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


# ---------------------------------------------------------------- the hand-written reader and writer

def _request(issuer_der: bytes, serials, digest="sha1", nonce=None, *, null_params=False, **tbs_extra) -> bytes:
    issuer = x509.Certificate.load(issuer_der)
    alg = {"algorithm": digest, "parameters": core.Null()} if null_params else {"algorithm": digest}
    tbs = {"request_list": [{"req_cert": {
        "hash_algorithm": alg, "issuer_name_hash": hashlib.new(digest, issuer.subject.dump()).digest(),
        "issuer_key_hash": hashlib.new(digest, issuer.public_key["public_key"].contents[1:]).digest(),
        "serial_number": s}} for s in serials]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    tbs.update(tbs_extra)
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def test_plain_reader_agrees_with_asn1crypto(ca, issued):
    good, revoked = issued
    issuer = ca.directory.get(good.ca).certificate
    plain = [_request(issuer, [good.serial]), _request(issuer, [good.serial], "sm3", b"n" * 32),
             _request(issuer, [good.serial, revoked.serial, 1, 0x80, 2 ** 159], "sha256", b"\x00"),
             _request(issuer, [good.serial], "sha512", null_params=True)]
    for body in plain:
        assert ocsp_module._read_plain(body) == ocsp_module._read_asn1(body)
    unusual = [_request(issuer, [good.serial], requestor_name={"dns_name": "x.test"}),
               ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": ocsp.OCSPRequest.load(
                   _request(issuer, [good.serial]))["tbs_request"]["request_list"][0]["req_cert"],
                   "single_request_extensions": [{"extn_id": "service_locator", "critical": False,
                                                  "extn_value": {"issuer": x509.Certificate.load(issuer).subject,
                                                                 "locator": []}}]}]}}).dump(),
               _request(issuer, [good.serial], request_extensions=[
                   {"extn_id": "acceptable_responses", "critical": False, "extn_value": ["basic_ocsp_response"]}]),
               _request(issuer, [good.serial], request_extensions=[
                   {"extn_id": "nonce", "critical": True, "extn_value": b"n" * 8}]),
               _request(issuer, [good.serial], "md5")]
    for body in unusual:
        assert ocsp_module._read_plain(body) is None
        assert ocsp_module._read_asn1(body).serials == (good.serial,)


def test_responses_are_canonical_der(ca, issued):
    good, revoked = issued
    issuer = ca.directory.get(good.ca).certificate
    for body in (_request(issuer, [good.serial, revoked.serial, 77], "sm3", b"n" * 16),
                 _request(issuer, [revoked.serial], "sha1", null_params=True)):
        der = ca.ocsp.respond(body)
        again = ocsp.OCSPResponse.load(der)
        basic = again.basic_ocsp_response
        assert basic["tbs_response_data"].dump(force=True) == basic["tbs_response_data"].dump()
        assert ocsp.OCSPResponse.load(der).dump(force=True) == der
        # each SingleResponse repeats its request's CertID byte for byte (RFC 5019 §2.2.1)
        asked = [r["req_cert"].dump() for r in ocsp.OCSPRequest.load(body)["tbs_request"]["request_list"]]
        assert [r["cert_id"].dump() for r in basic["tbs_response_data"]["responses"]] == asked


# ---------------------------------------------------------------- pre-produced responses (RFC 5019)

def test_pre_produced_answer_is_kept_and_never_stale(ca):
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    plain = _request(ca.directory.get(name).certificate, [leaf.serial])
    first = ca.ocsp.respond(plain, name)
    assert statuses(basic_response(first, ca, name)) == {leaf.serial: "good"}
    assert ca.ocsp.respond(plain, name) == first == ca.ocsp.respond(plain)          # served from the store
    fresh = ca.ocsp.respond(_request(ca.directory.get(name).certificate, [leaf.serial], nonce=b"n" * 8), name)
    assert fresh != first                                                           # a nonce: signed anew

    # a slow node that read "good" before the revocation and stores its answer after it commits
    before = ca.store.current(name, [leaf.serial])[leaf.serial].status
    ca.revoke(name, leaf.serial, RevocationReason.certificate_hold)
    stale = StoredResponse(ocsp.OCSPRequest.load(plain)["tbs_request"]["request_list"][0]["req_cert"].dump(),
                           ca.ocsp.kept_key(ca.directory.get(name), before), utcnow() + dt.timedelta(hours=1), first)
    ca.store.keep_responses(name, [(leaf.serial, "sha1", stale)])
    held = ca.ocsp.respond(plain, name)
    basic = basic_response(held, ca, name)
    assert statuses(basic) == {leaf.serial: "revoked"}
    assert basic["tbs_response_data"]["responses"][0]["cert_status"].chosen["revocation_reason"].native == \
        "certificate_hold"
    assert ca.ocsp.respond(plain, name) == held
    # hold made permanent: same revocation time, another reason -> another answer
    ca.revoke(name, leaf.serial, RevocationReason.key_compromise)
    compromised = basic_response(ca.ocsp.respond(plain, name), ca, name)
    assert compromised["tbs_response_data"]["responses"][0]["cert_status"].chosen["revocation_reason"].native == \
        "key_compromise"


def test_pre_produced_answer_is_renewed_half_way_and_per_certid(ca):
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    issuer = ca.directory.get(name).certificate
    plain = _request(issuer, [leaf.serial])
    first = ca.ocsp.respond(plain, name)
    later = utcnow() + ca.ocsp.validity / 2 + dt.timedelta(seconds=5)
    renewed = ca.ocsp.respond(plain, name, now=later)
    assert renewed != first and ca.ocsp.respond(plain, name, now=later) == renewed
    produced = basic_response(renewed, ca, name)["tbs_response_data"]["produced_at"].native
    assert abs(produced - later.replace(microsecond=0)) < dt.timedelta(seconds=1)
    # the same certificate asked with explicit NULL hash parameters: its own CertID echoed, not the kept one
    with_null = _request(issuer, [leaf.serial], null_params=True)
    answer = basic_response(ca.ocsp.respond(with_null, name), ca, name)
    assert answer["tbs_response_data"]["responses"][0]["cert_id"].dump() == \
        ocsp.OCSPRequest.load(with_null)["tbs_request"]["request_list"][0]["req_cert"].dump()
    # an unknown serial is answered, never kept
    unknown = _request(issuer, [leaf.serial ^ 0xFFFF])
    assert statuses(basic_response(ca.ocsp.respond(unknown, name), ca, name)) == {leaf.serial ^ 0xFFFF: "unknown"}
    assert not ca.store.current(name, [leaf.serial ^ 0xFFFF])[leaf.serial ^ 0xFFFF].responses


def test_fast_path_answers_as_the_views_do(ca, issued):
    good, revoked = issued
    name = good.ca
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    fastpath.install(app, "ocsp", OcspFastPath(ca))
    flask_only = Client(app.wsgi_app.wsgi_app)
    fast = app.test_client()
    plain = _request(ca.directory.get(name).certificate, [revoked.serial])
    encoded = quote(base64.b64encode(plain).decode(), safe="")
    kept = ca.ocsp.respond(plain, name)
    for client_ in (fast, flask_only):
        for resp in (client_.post(f"/ocsp/{name}", data=plain, content_type="application/ocsp-request"),
                     client_.post("/ocsp", data=plain, content_type="Application/OCSP-Request; x=y"),
                     client_.get(f"/ocsp/{name}/{encoded}"),
                     client_.get(f"/ocsp/{name}/{base64.urlsafe_b64encode(plain).decode().rstrip('=')}")):
            assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/ocsp-response"
            assert resp.data == kept
        assert ocsp.OCSPResponse.load(client_.get(f"/ocsp/{name}/!!").data)["response_status"].native == \
            "malformed_request"
    handler = OcspFastPath(ca)
    for method, path, ctype, length in (("POST", f"/ocsp/{name}", "text/plain", "5"),
                                        ("POST", f"/ocsp/{name}", "application/ocsp-request", "70000"),
                                        ("POST", f"/ocsp/{name}", "application/ocsp-request", ""),
                                        ("POST", "/ocsp/no-such-ca", "application/ocsp-request", "5"),
                                        ("POST", "/ocsp/", "application/ocsp-request", "5"),
                                        ("GET", "/ocsp/no-such-ca/MAA=", "", ""),
                                        ("GET", f"/ocsp/{name}/", "", ""),
                                        ("GET", f"/ocsp/{name}/" + "A" * 90000, "", ""),
                                        ("PUT", f"/ocsp/{name}", "application/ocsp-request", "5")):
        assert handler.answer(method, path, ctype, length, lambda n: pytest.fail("read")) is None
    for bad in (fast.post(f"/ocsp/{name}", data=plain, content_type="text/plain"),
                fast.post("/ocsp/no-such-ca", data=plain, content_type="application/ocsp-request")):
        assert bad.status_code in (404, 415)


def test_requests_answered_together_share_one_read_and_answer_as_alone(ca, issued):
    good, revoked = issued
    sm2 = ca.directory.get(good.ca)
    ecdsa_leaf = ca.issue(request("server", ec_spki()))
    ecdsa = ca.directory.get(ecdsa_leaf.ca)
    nonce = secrets.token_bytes(16)
    batch = [(_request(sm2.certificate, [good.serial]), sm2.name),
             (_request(sm2.certificate, [revoked.serial], "sm3", nonce), None),
             (b"garbage", sm2.name),
             (_request(ecdsa.certificate, [ecdsa_leaf.serial], "sha256"), None),
             (_request(sm2.certificate, [good.serial]), sm2.name),                  # the same twice
             (_request(sm2.certificate, [good.serial, revoked.serial, 5]), None),
             (_request(sm2.certificate, [good.serial]), ecdsa.name)]                # wrong CA in the URL
    answers = ca.ocsp.respond_many(batch)
    assert [ocsp.OCSPResponse.load(a)["response_status"].native for a in answers] == \
        ["successful", "successful", "malformed_request", "successful", "successful", "successful", "unauthorized"]
    assert answers[0] == answers[4]
    assert statuses(basic_response(answers[0], ca, sm2.name)) == {good.serial: "good"}
    fresh = basic_response(answers[1], ca, sm2.name)
    assert statuses(fresh) == {revoked.serial: "revoked"}
    assert fresh["tbs_response_data"]["response_extensions"][0]["extn_value"].parsed.native == nonce
    assert statuses(basic_response(answers[3], ca, ecdsa.name, ECDSA_SIG_ALG)) == {ecdsa_leaf.serial: "good"}
    assert statuses(basic_response(answers[5], ca, sm2.name)) == {good.serial: "good", revoked.serial: "revoked",
                                                                  5: "unknown"}
    # what was produced in the batch was kept: asked alone now, the same bytes come back
    assert ca.ocsp.respond(*batch[3]) == answers[3]


def test_unreadable_status_store_answers_try_later(softtoken_km, tmp_path):
    """A database the responder cannot read (here: its table renamed away underneath) -> tryLater, never a
    500 or a guess; readable again -> answers again."""
    import_models()
    engine = make_engine(f"sqlite:///{tmp_path / 'ca.db'}")
    Base.metadata.create_all(engine)
    tag = f"u{secrets.token_hex(4)}-"
    own = EmbeddedCA(softtoken_km, make_session_factory(engine), "http://ca.test", name_prefix=tag)
    own.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    leaf = own.issue(request("server", sm2_spki()))
    body = _request(own.directory.get(leaf.ca).certificate, [leaf.serial], nonce=b"n" * 8)
    assert ocsp.OCSPResponse.load(own.ocsp.respond(body))["response_status"].native == "successful"
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ca_issued_cert RENAME TO ca_issued_cert_away")
    assert ocsp.OCSPResponse.load(own.ocsp.respond(body))["response_status"].native == "try_later"
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE ca_issued_cert_away RENAME TO ca_issued_cert")
    assert ocsp.OCSPResponse.load(own.ocsp.respond(body))["response_status"].native == "successful"
    engine.dispose()


def test_pre_produced_answer_of_another_responder_key_is_not_served(ca):
    """A response kept under another delegated responder (a renewed OCSP signer) is replaced, not served."""
    leaf = ca.issue(request("server", sm2_spki()))
    info = ca.directory.get(leaf.ca)
    plain = _request(info.certificate, [leaf.serial])
    first = ca.ocsp.respond(plain)
    status = ca.store.current(info.name, [leaf.serial])[leaf.serial].status
    other = StoredResponse(ocsp.OCSPRequest.load(plain)["tbs_request"]["request_list"][0]["req_cert"].dump(),
                           ca.ocsp.kept_key(info, status).rsplit("|", 1)[0] + "|" + "00" * 20,
                           utcnow() + dt.timedelta(hours=1), b"\x30\x03\x0a\x01\x06")   # would say "unauthorized"
    ca.store.keep_responses(info.name, [(leaf.serial, "sha1", other)])
    again = ca.ocsp.respond(plain)
    assert again != other.der and again != first
    assert statuses(basic_response(again, ca, info.name)) == {leaf.serial: "good"}
    assert ca.ocsp.respond(plain) == again



def test_revocation_info_for_validation(ca, issued, monkeypatch):
    """ca_bridge.revinfo: CRLs for every CA-issued certificate; OCSP responses only where a validator can
    use them (ECDSA/RSA issuers) — no HSM signature is spent on an SM2 response that would be dropped."""
    good, _ = issued
    ec_leaf = ca.issue(request("server", ec_spki()))
    asked = []
    respond = ca.ocsp.respond

    def counting(der, ca_name=None):
        asked.append(ca_name)
        return respond(der, ca_name)

    monkeypatch.setattr(ca.ocsp, "respond", counting)
    sm2 = revocation_info(ca, [good.certificate])
    assert sm2.ocsp_responses == () and asked == []
    issuer = x509.Certificate.load(ca.directory.get(good.ca).certificate).subject
    assert [crl.CertificateList.load(c)["tbs_cert_list"]["issuer"] for c in sm2.crls] == [issuer]
    ec = revocation_info(ca, [ec_leaf.certificate])
    assert len(ec.ocsp_responses) == 1 and asked == [ec_leaf.ca]
    assert statuses(basic_response(ec.ocsp_responses[0], ca, ec_leaf.ca, ECDSA_SIG_ALG)) == {ec_leaf.serial: "good"}
