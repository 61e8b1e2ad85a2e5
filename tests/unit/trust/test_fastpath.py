"""The verification hot path (trust.fastpath) on a set-up site, SQLite and PostgreSQL: its answer is the Flask
view's, byte for byte; whatever it does not take (no, unknown, disabled, expired or unfit token, other fields,
bad JSON or base64, a query, a node refusing requests) goes to Flask; a token disabled or expired and a
certificate revoked — by another connection to the database, as another node would — are seen by the very
next request; untrusted and altered signatures still fail."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import Client

from access.auth import create_token, token_set_disabled, token_set_expiry
from ca_bridge.api import RevocationReason
from pkicore.algorithms import algorithm
from pkicore.cms import CmsSigner, SignedDataTemplate, verify_signed_data
from store.db import make_engine, make_session_factory, transaction
from racentre.web import REFUSAL_KEY
from trust.fastpath import PATH, _Rendered
from tests.unit.trust.site import b64, issue_user, unb64

DATA = "快速路径 verify ".encode() * 8
JSON = "application/json"


@pytest.fixture(scope="module")
def site(services, client, keys):
    """(the fast path handler, a Flask-only WSGI client, a token maker, an app1 SignedData attached and detached)."""
    app = client.app
    handler = app.wsgi_app.handlers["api"]
    flask_only = Client(app.wsgi_app.wsgi_app)          # BodyLimit -> Flask, without the fast paths

    def token(roles=("application",)) -> tuple[str, str]:
        name = f"fast-{secrets.token_hex(4)}"
        with transaction(services.db) as session:
            return name, create_token(session, name, list(roles))

    def signed(detached=False) -> str:
        resp = client("POST", "/api/v1/trust/sign", "app1", json={"data": b64(DATA), "key_id": keys["sm2"]["id"],
                                                                  "detached": detached})
        assert resp.status_code == 200, resp.json
        return resp.json["signature"]
    return handler, flask_only, token, signed(), signed(True)


def _fast(handler, token, body, *, query="", ctype=JSON, scheme="Bearer"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    auth = f"{scheme} {token}" if token is not None else None
    return handler.answer_buffered([("POST", PATH, query, ctype, auth, raw)])[0]


def _flask(flask_only, token, body, *, query="", ctype=JSON):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return flask_only.post(PATH + (f"?{query}" if query else ""), data=raw, content_type=ctype, headers=headers)


def test_the_fast_answer_is_the_views(site):
    handler, flask_only, token, attached, detached = site
    _, tok = token()
    bodies = [{"signature": attached}, {"signature": detached, "data": b64(DATA)},
              {"signature": detached, "data": b64(DATA + b"!")}, {"signature": detached, "form": "cms"},
              {"signature": b64(b"\x30\x03\x02\x01\x01")}]
    for body in bodies * 2:      # the second time with the certificate's parts rendered already (_Rendered)
        reply = _fast(handler, tok, body)
        assert reply is not None, body
        view = _flask(flask_only, tok, body)
        assert view.status_code == 200
        assert (reply[0], reply[1]) == (view.content_type, view.data), body
    assert handler.render.on
    assert json.loads(_fast(handler, tok, bodies[0])[1])["valid"] is True
    assert json.loads(_fast(handler, tok, bodies[2])[1])["sub_indication"] == "HASH_FAILURE"


def test_rendering_in_parts_is_checked_against_the_whole_answer(services, site):
    """trust.fastpath._Rendered: a report rendered from parts equals the whole rendering; with a JSON
    writer whose parts do not splice (indented output), the first check turns splicing off and every answer
    is the whole rendering."""
    handler, _, _, attached, _ = site
    report = services.trust.verify_report(unb64(attached))
    compact = _Rendered(lambda o: json.dumps(o, separators=(",", ":"), sort_keys=True))
    for _ in range(2):
        assert compact(report) == json.dumps(report.as_dict(), separators=(",", ":"), sort_keys=True)
    assert compact.on
    indented = _Rendered(lambda o: json.dumps(o, indent=2, sort_keys=True))
    for _ in range(2):
        assert indented(report) == json.dumps(report.as_dict(), indent=2, sort_keys=True)
    assert not indented.on


def test_what_the_fast_path_leaves_to_flask(services, client, site):
    handler, flask_only, token, attached, _ = site
    _, tok = token()
    _, applicant = token(("applicant",))
    good = {"signature": attached}
    cases = [  # (token, body, keyword arguments, the view's status)
        (None, good, {}, 401), ("rac_unknown", good, {}, 401), (applicant, good, {}, 403),
        (tok, {**good, "evidence": True}, {}, 200), (tok, {**good, "form": "raw"}, {}, 400),
        (tok, {**good, "user_id": "x"}, {}, 200), (tok, {**good, "bogus": 1}, {}, 400),
        (tok, {"signature": "not base64!"}, {}, 400), (tok, {"signature": 7}, {}, 400),
        (tok, b"{not json", {}, 400), (tok, b"[" * 40 + b"]" * 40, {}, 400),
        (tok, good, {"ctype": "text/plain"}, 400), (tok, good, {"query": "x=1"}, 200)]
    for who, body, kwargs, status in cases:
        assert _fast(handler, who, body, **kwargs) is None, (who, body, kwargs)
        assert _flask(flask_only, who, body, **kwargs).status_code == status, (who, body, kwargs)
    assert _fast(handler, tok, good, scheme="Basic") is None
    assert handler.answer_buffered([("GET", PATH, "", JSON, f"Bearer {tok}", b"")]) == [None]
    app = client.app
    assert REFUSAL_KEY not in app.extensions
    app.extensions[REFUSAL_KEY] = lambda: "another schema"      # racentre.serve.watch_schema's hook
    try:
        assert _fast(handler, tok, good) is None
    finally:
        del app.extensions[REFUSAL_KEY]
    assert _fast(handler, tok, good) is not None


def test_token_changes_on_another_connection_are_seen_at_once(services, site):
    """The token table follows the api_token generation read with every batch: a change written through
    another engine (as another node would) decides the very next request."""
    handler, flask_only, token, attached, _ = site
    name, tok = token()
    good = {"signature": attached}
    assert _fast(handler, tok, good) is not None
    other = make_session_factory(make_engine(services.config.database.url))
    try:
        with transaction(other) as session:
            token_set_disabled(session, name, True, actor="test")
        assert _fast(handler, tok, good) is None
        assert _flask(flask_only, tok, good).status_code == 401
        with transaction(other) as session:
            token_set_disabled(session, name, False, actor="test")
        assert _fast(handler, tok, good) is not None
        with transaction(other) as session:
            token_set_expiry(session, name, dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1), actor="test")
        assert _fast(handler, tok, good) is None
        assert _flask(flask_only, tok, good).status_code == 401
    finally:
        other.kw["bind"].dispose()


def test_revoked_untrusted_and_altered_still_fail_on_the_fast_path(services, site):
    handler, _, token, attached, _ = site
    _, tok = token()
    user = issue_user(services)
    signed = SignedDataTemplate(CmsSigner(user.sign, user.certificate, algorithm("sm2-sm3"))).build(DATA)
    first = json.loads(_fast(handler, tok, {"signature": b64(signed)})[1])
    again = json.loads(_fast(handler, tok, {"signature": b64(signed)})[1])      # the cached certificate result
    assert first["valid"] and again["valid"] and again["certificate_code"] == 1
    # the CA tells the fast path nothing: the revocation counter it reads in the database moved
    services.ca.revoke("issuing-sm2", x509.Certificate.load(user.certificate).serial_number,
                       RevocationReason.key_compromise)
    revoked = json.loads(_fast(handler, tok, {"signature": b64(signed)})[1])
    assert not revoked["valid"] and revoked["certificate_code"] == -3, revoked["reason"]
    # a certificate of nobody we trust
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "outsider")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(4242).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
            .sign(key, hashes.SHA256())).public_bytes(serialization.Encoding.DER)
    outsider = SignedDataTemplate(CmsSigner(lambda d: key.sign(d, ec.ECDSA(hashes.SHA256())), cert,
                                            algorithm("ecdsa-sha256"))).build(DATA)
    untrusted = json.loads(_fast(handler, tok, {"signature": b64(outsider)})[1])
    assert not untrusted["valid"] and untrusted["certificate_code"] == -1
    # altered content inside the attached SignedData
    der = unb64(attached)
    at = der.find(DATA)
    altered = der[:at] + b"X" + der[at + 1:]
    report = json.loads(_fast(handler, tok, {"signature": b64(altered)})[1])
    assert not report["valid"] and report["sub_indication"] == "HASH_FAILURE"


def test_a_repeat_signer_is_validated_once_until_its_path_or_a_crl_could_change(services, site, monkeypatch):
    """The validation cache keeps a path built at "now" past the short ``ttl``, up to ``valid_until``: the
    earliest notAfter in the path or nextUpdate of the CRLs used — at that instant (here: the monotonic clock
    moved there) the certificate is validated again."""
    handler, _, token, _, _ = site
    _, tok = token()
    user = issue_user(services)
    signed = b64(SignedDataTemplate(CmsSigner(user.sign, user.certificate, algorithm("sm2-sm3"))).build(DATA))
    cache = services.trust.cache
    monkeypatch.setattr(cache, "ttl", 0.0)            # what the path's bound does not cover expires at once
    assert json.loads(_fast(handler, tok, {"signature": signed})[1])["valid"]
    misses = cache.misses
    key, (until, result) = next((k, v) for k, v in reversed(cache._items.items())
                                if k[0] == hashlib.sha256(user.certificate).digest())
    ee = x509.Certificate.load(user.certificate)
    crls = services.trust.revocation_info([user.certificate])[0]
    next_updates = [asn1_crl.CertificateList.load(c)["tbs_cert_list"]["next_update"].native for c in crls]
    assert result.valid_until is not None and result.valid_until <= min([ee.not_valid_after, *next_updates])
    for _ in range(3):
        assert json.loads(_fast(handler, tok, {"signature": signed})[1])["valid"]
    assert cache.misses == misses                     # beyond ttl = 0: the path's bound holds
    now = dt.datetime.now(dt.timezone.utc)
    left = (result.valid_until - now).total_seconds()
    real = time.monotonic
    monkeypatch.setattr("trust.verify.time.monotonic", lambda: real() + left + 1)
    assert json.loads(_fast(handler, tok, {"signature": signed})[1])["valid"]
    assert cache.misses == misses + 1                 # past the bound: validated again


def test_a_cached_signer_revoked_through_another_connection_fails_at_once(services, site):
    """A revocation committed through another engine (as another node would) moves the CA's revocation
    counter: the next request misses the cached path and answers revoked (−3); so does a hold (−4)."""
    handler, _, token, _, _ = site
    _, tok = token()
    cache = services.trust.cache
    users = [issue_user(services) for _ in range(2)]
    signed = [b64(SignedDataTemplate(CmsSigner(u.sign, u.certificate, algorithm("sm2-sm3"))).build(DATA))
              for u in users]
    for body in signed * 2:
        assert json.loads(_fast(handler, tok, {"signature": body})[1])["valid"]
    hits = cache.hits
    assert json.loads(_fast(handler, tok, {"signature": signed[0]})[1])["valid"] and cache.hits == hits + 1
    other = make_session_factory(make_engine(services.config.database.url))
    try:
        for user, reason, code in ((users[0], RevocationReason.key_compromise, -3),
                                   (users[1], RevocationReason.certificate_hold, -4)):
            with transaction(other) as session:
                services.ca.revoke("issuing-sm2", x509.Certificate.load(user.certificate).serial_number, reason,
                                   session=session)
            body = signed[users.index(user)]
            report = json.loads(_fast(handler, tok, {"signature": body})[1])
            assert not report["valid"] and report["certificate_code"] == code, report["reason"]
    finally:
        other.kw["bind"].dispose()


def test_a_cached_signer_is_untrusted_at_once_when_the_trust_anchors_change(services, site, monkeypatch):
    """The trust anchors are part of the cache key: a cached VALID path is not reused once they change (our
    roots, or the trust list a request names), and comes back when they are restored."""
    handler, _, token, attached, _ = site
    _, tok = token()
    assert json.loads(_fast(handler, tok, {"signature": attached})[1])["valid"]
    trust = services.trust
    ecdsa_root = services.ca.authorities()["root-ecdsa"].certificate
    report = trust.verify("app1", role="application", signature=unb64(attached), trust=(ecdsa_root,))
    assert not report["valid"] and report["certificate_code"] == -1, report["reason"]
    monkeypatch.setattr(trust, "_roots", lambda: (ecdsa_root,))
    untrusted = json.loads(_fast(handler, tok, {"signature": attached})[1])
    assert not untrusted["valid"] and untrusted["certificate_code"] == -1, untrusted["reason"]
    monkeypatch.undo()
    assert json.loads(_fast(handler, tok, {"signature": attached})[1])["valid"]


def test_crls_are_gathered_once_per_issuer_until_a_revocation(services, monkeypatch):
    """ca_bridge.revinfo.IssuerCrls (the trust services' revocation information): one CRL fetch per issuer
    while its revocation counter stays; a revocation at that CA gives the next gathering a CRL listing it."""
    crls = services._issuer_crls          # noqa: SLF001 - the composition root's instance
    issuer = services.ca.authorities()["issuing-sm2"]
    fetched = []
    real = services.ca.crls.current
    monkeypatch.setattr(services.ca.crls, "current", lambda name, **kw: fetched.append(name) or real(name, **kw))
    first = crls.der(issuer)
    users = [issue_user(services) for _ in range(3)]
    gathered = set()
    for user in users:                    # issuing moves no revocation counter
        info = services.trust.revocation_info([user.certificate, issuer.certificate])    # (and the root's CRL)
        assert first in info.crls and len(info.crls) == 2
        gathered.add(info.crls)
    assert len(gathered) == 1 and len(fetched) == len(set(fetched)) <= 2     # each issuer's CRL fetched once
    serial = x509.Certificate.load(users[0].certificate).serial_number
    services.ca.revoke("issuing-sm2", serial, RevocationReason.superseded)
    after = crls.der(issuer)
    assert after != first and fetched[-1] == "issuing-sm2"
    assert serial in {e["user_certificate"].native for e in asn1_crl.CertificateList.load(after)["tbs_cert_list"]
                      ["revoked_certificates"]}


def test_timestamp_proofs_are_reused_until_a_revocation_and_a_compromised_tsa_fails(services, client, keys, site):
    """Kept last in the module: it revokes the TSA's certificate."""
    handler, _, token, _, _ = site
    _, tok = token()
    stamped = client("POST", "/api/v1/trust/sign", "app1", json={"data": b64(DATA), "key_id": keys["sm2"]["id"],
                                                                  "timestamp": True}).json["signature"]
    cache = services.trust.cache
    first = json.loads(_fast(handler, tok, {"signature": stamped})[1])
    assert first["valid"] and first["signers"][0]["timestamp"]["proven"], first["reason"]
    hits = cache.hits
    again = json.loads(_fast(handler, tok, {"signature": stamped})[1])
    assert again == first and cache.hits == hits + 2              # the time proof and the certificate result
    der = unb64(stamped)
    si = asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    tst = si["unsigned_attrs"][0]["values"][0]
    tsa = x509.Certificate.load(verify_signed_data(tst.dump()).signer_certificate)
    issuer = next(i for i in services.ca.authorities().values() if i.subject_der == tsa.issuer.dump())
    services.ca.revoke(issuer.name, tsa.serial_number, RevocationReason.key_compromise)
    after = json.loads(_fast(handler, tok, {"signature": stamped})[1])
    assert not after["signers"][0]["timestamp"]["proven"], after
    assert any("revoked" in r for r in after["signers"][0]["timestamp"]["reasons"]), after["signers"][0]["timestamp"]

