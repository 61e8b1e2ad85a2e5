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

from asn1crypto import cms, core, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from gmssl import sm2 as gm_sm2
from tongsuopy.crypto.asymciphers import ec as ts_ec
from sqlalchemy import select, update

from ca_bridge import crl as ca_crl
from ca_bridge.api import RevocationReason
from pkicore.algorithms import algorithm
from audit.trail import AuditEvent
from pkicore.cms import CmsSigner, SignedDataTemplate, verify_signed_data
from store.db import reading, transaction
from pkicore.envelope import parse_sm2_cipher
from pkicore.keys import verify_signature
from pkicore.signatures import raw_to_der
from trust import envelope
from trust.models import TrustChallenge
from trust.openapi import BODIES, openapi_document
from trust.envelope import EnvelopedContentInfo, _sm4_cbc
from trust.signing import ID_AA_SIGNATURE_TIMESTAMP, timestamp_attribute
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
    """(target_id, detail) of the audit rows of ``action``."""
    with reading(services.db) as session:
        return [(e.target_id, e.detail) for e in session.scalars(select(AuditEvent).where(AuditEvent.action == action))]


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
    kid = keys["ecdsa"]["id"]
    assert client("POST", f"/api/v1/trust/keys/{kid}/disable", "app1").status_code == 403
    assert client("POST", f"/api/v1/trust/keys/{kid}/disable", "admin").json["disabled"] is True
    assert client("POST", "/api/v1/trust/sign", "app1", json={"data": b64(DATA), "key_id": kid}).status_code == 403
    assert client("POST", f"/api/v1/trust/keys/{kid}/enable", "admin").json["disabled"] is False
    assert client("POST", "/api/v1/trust/sign", "app1", json={"data": b64(DATA), "key_id": kid}).status_code == 200


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


KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8      # GB/T 32918.5 Annex A
KAT_K = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21"
KAT_RS = ("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
          "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")


def test_raw_sm2_from_pure_python_gmssl_verifies(services, client):
    """The pure-Python gmssl signs the GB/T 32918.5 example (key d, nonce k, "message digest", default ID):
    its r||s is the standard's, and our verification of it, against a certificate our CA issued for that
    key, says valid. (With random nonces gmssl's point arithmetic now and then makes a signature nobody
    else accepts, so the known answer is the fair test of it.)"""
    key = ts_ec.derive_private_key(KAT_D, ts_ec.SM2())
    user = issue_user(services, key=key)
    pub = x509.Certificate.load(user.certificate).public_key["public_key"].native[1:].hex()
    signer = gm_sm2.CryptSM2(private_key=format(KAT_D, "064x"), public_key=pub)
    message = b"message digest"
    rs = signer.sign_with_sm3(message, KAT_K.lower())
    assert rs.upper() == KAT_RS
    der = raw_to_der(bytes.fromhex(rs))
    report = _verify(client, form="raw", signature=b64(der), data=b64(message), certificate=b64(user.certificate))
    assert report["valid"], report
    assert _verify(client, form="raw", signature=b64(der), data=b64(message + b"!"),
                   certificate=b64(user.certificate))["sub_indication"] == "SIG_CRYPTO_FAILURE"

# ---------------------------------------------------------------- CMS

def test_cms_attached_detached_gm_signing_time_and_timestamp(services, client, keys):
    for key in ("sm2", "ecdsa"):
        attached = _sign(client, data=b64(DATA), key_id=keys[key]["id"], signing_time=True, timestamp=True)
        der = unb64(attached["signature"])
        info = cms.ContentInfo.load(der)
        si = info["content"]["signer_infos"][0]
        assert si["unsigned_attrs"][0]["type"].dotted == ID_AA_SIGNATURE_TIMESTAMP
        assert verify_signed_data(der).ok
        report = _verify(client, signature=attached["signature"])
        assert report["valid"] and report["certificate_code"] == 1, report
        signer = report["signers"][0]
        assert signer["timestamp"]["proven"] is True and signer["claimed_signing_time"]
        assert report["detached"] is False
        detached = _sign(client, data=b64(DATA), key_id=keys[key]["id"], detached=True)
        assert cms.ContentInfo.load(unb64(detached["signature"]))["content"]["encap_content_info"]["content"].native is None
        assert _verify(client, signature=detached["signature"], data=b64(DATA))["valid"]
        missing = _verify(client, signature=detached["signature"])
        assert not missing["valid"] and missing["sub_indication"] == "SIGNED_DATA_NOT_FOUND"
    gm = _sign(client, data=b64(DATA), key_id=keys["sm2"]["id"], gm=True)
    outer = cms.ContentInfo.load(unb64(gm["signature"]))
    assert outer["content_type"].dotted == "1.2.156.10197.6.1.4.2.2"
    gm_report = _verify(client, signature=gm["signature"])
    assert gm_report["valid"], json.dumps(gm_report, ensure_ascii=False)[:3000]


def test_timestamp_needs_a_unit_of_the_key_family(services, client, keys):
    # SM2 by the SM2 unit with an SM3 imprint; ECDSA by the ECDSA unit (setup made both)
    for key, imprint in (("sm2", "sm3"), ("ecdsa", "sha256")):
        der = unb64(_sign(client, data=b64(DATA), key_id=keys[key]["id"], timestamp=True)["signature"])
        token = cms.ContentInfo.load(der)["content"]["signer_infos"][0]["unsigned_attrs"][0]["values"][0]
        tst = token["content"]["encap_content_info"]["content"].parsed
        assert tst["message_imprint"]["hash_algorithm"]["algorithm"].native == imprint


def test_several_signers(services, client, keys):
    user = issue_user(services)
    ours = unb64(_sign(client, data=b64(DATA), key_id=keys["sm2"]["id"])["signature"])
    theirs = SignedDataTemplate(CmsSigner(user.sign, user.certificate, algorithm("sm2-sm3"))).build(DATA)
    both = _merge(ours, theirs)
    report = _verify(client, signature=b64(both))
    assert report["valid"] and len(report["signers"]) == 2, report
    names = {s["signer"]["subject_fields"]["CN"][0] for s in report["signers"]}
    assert names == {"app1.gov.test", "张三"}
    services.ca.revoke("issuing-sm2", int(x509.Certificate.load(user.certificate).serial_number),
                       RevocationReason.key_compromise)
    after = _verify(client, signature=b64(both))
    assert not after["valid"] and after["certificate_code"] == -3
    assert sorted(s["certificate_code"] for s in after["signers"]) == [-3, 1]


def _merge(a: bytes, b: bytes) -> bytes:
    """One SignedData with the SignerInfos and certificates of two over the same content."""
    one, two = cms.ContentInfo.load(a), cms.ContentInfo.load(b)
    sd = one["content"]
    certs = [c for c in sd["certificates"]] + [c for c in two["content"]["certificates"]]
    signed = cms.SignedData({"version": sd["version"], "digest_algorithms": sd["digest_algorithms"],
                             "encap_content_info": sd["encap_content_info"], "certificates": certs,
                             "signer_infos": [*sd["signer_infos"], *two["content"]["signer_infos"]]})
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


def test_verdicts_tampered_wrong_certificate_untrusted_revoked_suspended(services, client, keys):
    signed = unb64(_sign(client, data=b64(DATA), key_id=keys["sm2"]["id"], detached=True)["signature"])
    tampered = _verify(client, signature=b64(signed), data=b64(DATA + b"x"))
    assert tampered["indication"] == "TOTAL_FAILED" and tampered["sub_indication"] == "HASH_FAILURE"
    assert not tampered["valid"] and tampered["signers"][0]["certificate_code"] == 1
    # raw signature checked against another certificate
    raw = _sign(client, data=b64(DATA), form="raw", key_id=keys["sm2"]["id"])
    other = issue_user(services)
    wrong = _verify(client, form="raw", signature=raw["signature"], data=b64(DATA), certificate=b64(other.certificate))
    assert wrong["sub_indication"] == "SIG_CRYPTO_FAILURE" and not wrong["valid"]
    # a certificate of nobody we trust: intact signature, untrusted (-1), INDETERMINATE
    outsider_key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "outsider")])
    now = dt.datetime.now(dt.timezone.utc)
    outsider = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(outsider_key.public_key())
                .serial_number(12345).not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30)).sign(outsider_key, hashes.SHA256()))
    sig = outsider_key.sign(DATA, ec.ECDSA(hashes.SHA256()))
    untrusted = _verify(client, form="raw", signature=b64(sig), data=b64(DATA),
                        certificate=b64(outsider.public_bytes(serialization.Encoding.DER)))
    assert untrusted["certificate_code"] == -1 and untrusted["indication"] == "INDETERMINATE"
    assert untrusted["signers"][0]["signature_valid"] is True and not untrusted["valid"]
    # revoked (our CRL) and suspended (certificateHold)
    for reason, code in ((RevocationReason.key_compromise, -3), (RevocationReason.certificate_hold, -4)):
        user = issue_user(services)
        sig = user.sign(DATA)
        before = _verify(client, form="raw", signature=b64(sig), data=b64(DATA), certificate=b64(user.certificate))
        assert before["valid"] and before["certificate_code"] == 1
        services.ca.revoke("issuing-sm2", x509.Certificate.load(user.certificate).serial_number, reason)
        after = _verify(client, form="raw", signature=b64(sig), data=b64(DATA), certificate=b64(user.certificate))
        assert after["certificate_code"] == code and not after["valid"], after
        assert after["sub_indication"] == "REVOKED_NO_POE"
        verdict = client("POST", "/api/v1/trust/certificates/validate", "app1",
                         json={"certificate": b64(user.certificate)}).json
        assert verdict["code"] == code and verdict["indication"] != "TOTAL_PASSED"


# ---------------------------------------------------------------- certificate information

def test_cert_info_carries_gmt0015_identity(services, client, keys):
    user = issue_user(services)
    info = client("POST", "/api/v1/trust/certificates/info", "app1", json={"certificate": b64(user.certificate)}).json
    assert info["identity"]["id_card_number"] == ID_NUMBER
    assert info["subject_fields"]["CN"] == ["张三"] and info["subject_fields"]["O"] == ["杭州市财政局"]
    assert info["serial"] == format(x509.Certificate.load(user.certificate).serial_number, "X")
    unit_cert = client("GET", f"/api/v1/trust/keys/{keys['unit']['id']}/certificate", "app2").data
    unit = client("POST", "/api/v1/trust/certificates/info", "app2", json={"certificate": unit_cert.decode()}).json
    assert unit["identity"]["unified_social_credit_code"] == "91330100MA27XL0E2K"
    bad = client("POST", "/api/v1/trust/certificates/info", "app1", json={"certificate": b64(b"nonsense")})
    assert bad.status_code == 400


# ---------------------------------------------------------------- envelopes

def test_envelope_to_a_civil_servant_opens_with_an_independent_sm2(services, client):
    enc = issue_user(services, profile="civil-servant-enc")
    resp = client("POST", "/api/v1/trust/envelopes/encrypt", "app1",
                  json={"data": b64(DATA), "recipients": [b64(enc.certificate)]})
    assert resp.status_code == 200, resp.json
    env = cms.ContentInfo.load(unb64(resp.json["envelope"]))
    assert env["content_type"].dotted == "1.2.156.10197.6.1.4.2.3"
    parsed = EnvelopedContentInfo.load(unb64(resp.json["envelope"]))["content"]
    ri = parsed["recipient_infos"][0]
    parts = parse_sm2_cipher(ri["encrypted_key"].native)
    pub = x509.Certificate.load(enc.certificate).public_key["public_key"].native[1:].hex()
    opener = gm_sm2.CryptSM2(private_key=format(enc.d, "064x"), public_key=pub, mode=1)   # C1C3C2
    key = opener.decrypt(parts.raw_c1c3c2()[1:])
    eci = parsed["encrypted_content_info"]
    iv = core.OctetString.load(eci["content_encryption_algorithm"]["parameters"].dump()).native
    assert _sm4_cbc(key, iv, eci["encrypted_content"].native, False) == DATA
    # a signing certificate (no keyEncipherment) is refused as a recipient
    sign_only = issue_user(services)
    refused = client("POST", "/api/v1/trust/envelopes/encrypt", "app1",
                     json={"data": b64(DATA), "recipients": [b64(sign_only.certificate)]})
    assert refused.status_code == 400 and "keyUsage" in refused.json["error"]["message"]


def test_envelope_for_an_application_decrypts_with_its_hsm_key(client, keys):
    cert = client("GET", f"/api/v1/trust/keys/{keys['enc']['id']}/certificate", "app2").data.decode()
    first = cert[:cert.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")] + "\n"
    env = client("POST", "/api/v1/trust/envelopes/encrypt", "app1",
                 json={"data": b64(DATA), "recipients": [first]}).json
    assert "envelope" in env, env
    env = env["envelope"]
    opened = client("POST", "/api/v1/trust/envelopes/decrypt", "app2", json={"envelope": env})
    assert opened.status_code == 200 and unb64(opened.json["data"]) == DATA
    assert client("POST", "/api/v1/trust/envelopes/decrypt", "app1", json={"envelope": env}).status_code == 404
    # the SM2-encrypted content key altered: SM2's C3 hash (GB/T 32918.4 §7.1 B4-B7) refuses it, always
    info = envelope.EnvelopedContentInfo.load(unb64(env))
    ri = info["content"]["recipient_infos"][0]
    key = bytearray(ri["encrypted_key"].native)
    key[-40] ^= 1
    ri["encrypted_key"] = bytes(key)
    bad = client("POST", "/api/v1/trust/envelopes/decrypt", "app2",
                 json={"envelope": b64(envelope.EnvelopedContentInfo.load(info.dump(force=True)).dump())})
    assert bad.status_code == 400, bad.json
    # the content altered: EnvelopedData has no integrity (GM/T 0010 §8, as RFC 5652 §6), so the padding
    # may happen to be valid; the original data never comes back
    broken = bytearray(unb64(env))
    broken[-3] ^= 1
    bad = client("POST", "/api/v1/trust/envelopes/decrypt", "app2", json={"envelope": b64(bytes(broken))})
    assert bad.status_code == 400 or (bad.status_code == 200 and unb64(bad.json["data"]) != DATA)
    assert client("POST", "/api/v1/trust/envelopes/decrypt", "app2",
                  json={"envelope": b64(unb64(env)[:-20])}).status_code == 400


# ---------------------------------------------------------------- login

def _challenge(client, who="app1"):
    resp = client("POST", "/api/v1/trust/login/challenges", who)
    assert resp.status_code == 201, resp.json
    return resp.json


def test_login_accepts_and_names_the_user_with_a_masked_id(services, client):
    user = issue_user(services)
    ch = _challenge(client)
    sig = user.sign(ch["to_sign"].encode("ascii"))
    resp = client("POST", "/api/v1/trust/login", "app1",
                  json={"challenge_id": ch["challenge_id"], "signature": b64(sig), "certificate": b64(user.certificate)})
    assert resp.status_code == 200 and resp.json["authenticated"], resp.json
    ident = resp.json["identity"]
    assert ident["name"] == "张三" and ident["unit"] == "杭州市财政局"
    assert ident["id_number"] == ID_NUMBER[:6] + "*" * 8 + ID_NUMBER[-4:]
    assert ident["serial"] == format(x509.Certificate.load(user.certificate).serial_number, "X")
    # replay of the same answer
    again = client("POST", "/api/v1/trust/login", "app1",
                   json={"challenge_id": ch["challenge_id"], "signature": b64(sig), "certificate": b64(user.certificate)})
    assert again.json["authenticated"] is False and again.json["refusal"] == "replay"
    # CMS answer (SOF_SignMessage, detached over the challenge) with an ECDSA user
    ecu = issue_user(services, "ec")
    ch2 = _challenge(client)
    msg = SignedDataTemplate(CmsSigner(ecu.sign, ecu.certificate, algorithm("ecdsa-sha256"))).build(
        ch2["to_sign"].encode(), detached=True)
    ok = client("POST", "/api/v1/trust/login", "app1",
                json={"challenge_id": ch2["challenge_id"], "signature": b64(msg), "form": "cms"}).json
    assert ok["authenticated"], ok
    assert _actions(services, "trust.login.accept") and _actions(services, "trust.login.refuse")


def test_login_refusals(services, client):
    user = issue_user(services)
    # another application's challenge: refused, and not consumed for its owner
    ch = _challenge(client, "app2")
    sig = user.sign(ch["to_sign"].encode())
    body = {"challenge_id": ch["challenge_id"], "signature": b64(sig), "certificate": b64(user.certificate)}
    stolen = client("POST", "/api/v1/trust/login", "app1", json=body).json
    assert stolen["refusal"] == "other_application" and not stolen["authenticated"]
    assert client("POST", "/api/v1/trust/login", "app2", json=body).json["authenticated"]
    # expired
    ch = _challenge(client)
    with transaction(services.db) as session:
        session.execute(update(TrustChallenge).where(TrustChallenge.id == ch["challenge_id"])
                        .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
    late = client("POST", "/api/v1/trust/login", "app1", json={
        "challenge_id": ch["challenge_id"], "signature": b64(user.sign(ch["to_sign"].encode())),
        "certificate": b64(user.certificate)}).json
    assert late["refusal"] == "expired"
    # unknown, bad signature (other data), revoked certificate
    assert client("POST", "/api/v1/trust/login", "app1", json={**body, "challenge_id": "0" * 32}).json["refusal"] \
        == "unknown_challenge"
    ch = _challenge(client)
    bad = client("POST", "/api/v1/trust/login", "app1", json={
        "challenge_id": ch["challenge_id"], "signature": b64(user.sign(b"something else")),
        "certificate": b64(user.certificate)}).json
    assert bad["refusal"] == "signature" and bad["identity"] is None
    services.ca.revoke("issuing-sm2", x509.Certificate.load(user.certificate).serial_number,
                       RevocationReason.key_compromise)
    ch = _challenge(client)
    revoked = client("POST", "/api/v1/trust/login", "app1", json={
        "challenge_id": ch["challenge_id"], "signature": b64(user.sign(ch["to_sign"].encode())),
        "certificate": b64(user.certificate), "evidence": True}).json
    assert revoked["refusal"] == "certificate" and revoked["verification"]["certificate_code"] == -3
    assert revoked["evidence_id"]
    refusals = {detail.get("refusal") for _, detail in _actions(services, "trust.login.refuse")}
    assert {"other_application", "expired", "unknown_challenge", "signature", "certificate", "replay"} <= refusals


# ---------------------------------------------------------------- evidence

def test_evidence_records_are_signed_timestamped_stored_and_private(services, client, keys):
    out = _sign(client, data=b64(DATA), key_id=keys["sm2"]["id"], evidence=True)
    rid = out["evidence_id"]
    der = client("GET", f"/api/v1/trust/evidence/{rid}", "app1").data
    check = verify_signed_data(der, require_ess=True)
    assert check.ok, check.reasons
    record = json.loads(check.content)
    assert record["format"] == "racentre-trust-evidence/1" and record["id"] == rid and record["kind"] == "sign"
    assert record["data"] == {"digest_algorithm": "sha256", "digest": hashlib.sha256(DATA).hexdigest()}
    assert record["certificate"]["subject"].endswith("CN=app1.gov.test")
    assert ID_AA_SIGNATURE_TIMESTAMP in check.unsigned_attributes
    assert check.content == json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    # the evidence signature and its timestamp verify as any CMS through our own verifier
    report = services.trust.verify_report(der).as_dict()
    assert report["valid"] and report["signers"][0]["timestamp"]["proven"], report
    assert client("GET", f"/api/v1/trust/evidence/{rid}", "app2").status_code == 404
    assert client("GET", f"/api/v1/trust/evidence/{rid}", "auditor").status_code == 200
    assert client("GET", f"/api/v1/trust/evidence/{rid}?format=json", "app1").json["record"]["id"] == rid
    verified = _verify(client, signature=out["signature"], evidence=True)
    vrec = json.loads(verify_signed_data(client("GET", f"/api/v1/trust/evidence/{verified['evidence_id']}",
                                                "app1").data).content)
    assert vrec["kind"] == "verify" and vrec["decision"]["indication"] == "TOTAL_PASSED"
    assert vrec["decision"]["certificate_code"] == 1 and vrec["policy"]["trust_anchors_sha256"]
    assert {target for target, _ in _actions(services, "trust.evidence.issue")} >= {rid, verified["evidence_id"]}


# ---------------------------------------------------------------- OpenAPI

def test_openapi_lists_every_route_and_body(client):
    doc = openapi_document()
    rules = {str(r.rule).replace("<int:key_id>", "{key_id}").replace("<record_id>", "{record_id}")
             for r in client.app.url_map.iter_rules() if r.endpoint.startswith("trust.")}
    assert rules == set(doc["paths"])
    schemas = doc["components"]["schemas"]
    for schema, fields in BODIES.items():
        assert set(schemas[schema]["properties"]) == FIELDS[fields], schema
    assert client("GET", "/api/v1/trust/openapi.json").status_code == 200


def test_rsa_application_key(services, client):
    """RSA for applications outside the SM2 world: PKCS#1 v1.5 with SHA-256, raw and CMS."""
    resp = client("POST", "/api/v1/trust/keys", "admin", json={
        "application": client.names["app1"], "key_algorithm": "rsa-2048", "common_name": "rsa.gov.test",
        "dns_names": ["rsa.gov.test"]})
    assert resp.status_code == 201, resp.json
    kid = resp.json["id"]
    raw = _sign(client, data=b64(DATA), form="raw", key_id=kid)
    assert raw["algorithm"] == "rsa-sha256"
    assert verify_signature(x509.Certificate.load(unb64(raw["certificate"])).public_key.dump(), algorithm("rsa-sha256"),
                            DATA, unb64(raw["signature"]))
    assert _verify(client, form="raw", signature=raw["signature"], data=b64(DATA), certificate=raw["certificate"])["valid"]
    signed = _sign(client, data=b64(DATA), key_id=kid, timestamp=True)
    report = _verify(client, signature=signed["signature"])
    assert report["valid"] and report["signers"][0]["algorithm"] == "rsa-sha256", report
    assert report["signers"][0]["timestamp"]["proven"]


def test_validation_cache_follows_the_revocation_counter(services, client, keys):
    """A repeated verification reuses the certificate result; any status change at the CA (here another
    certificate's revocation) makes the next one validate again."""
    cache = services.trust.cache
    signed = _sign(client, data=b64(DATA), key_id=keys["sm2"]["id"])["signature"]
    assert _verify(client, signature=signed)["valid"]
    hits, misses = cache.hits, cache.misses
    assert _verify(client, signature=signed)["valid"]
    assert (cache.hits, cache.misses) == (hits + 1, misses)
    other = issue_user(services)
    services.ca.revoke("issuing-sm2", x509.Certificate.load(other.certificate).serial_number,
                       RevocationReason.superseded)
    assert _verify(client, signature=signed)["valid"]
    assert cache.misses == misses + 1


# ---------------------------------------------------------------- expiry (keep last: CRLs of a later day)

def test_expired_with_and_without_timestamp(services, client, monkeypatch):
    """A certificate valid for one day, a signature made now; checked three days later (with the CA's CRLs
    of that day): with a timestamp the signature provably predates the expiry (valid, code 1); without one
    the answer is -2 and not valid. Last in the module: the CRLs made "later" stay stored."""
    user = issue_user(services, validity_days=1)
    trust = services.trust
    stamped = SignedDataTemplate(CmsSigner(user.sign, user.certificate, algorithm("sm2-sm3"))).build(
        DATA, unsigned_attributes=lambda s: [_ts_attr(trust, s)])
    bare = SignedDataTemplate(CmsSigner(user.sign, user.certificate, algorithm("sm2-sm3"))).build(DATA)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    monkeypatch.setattr(ca_crl, "utcnow", lambda: later)
    with_ts = trust.verify_report(stamped, at=later).as_dict()
    assert with_ts["valid"] and with_ts["certificate_code"] == 1, with_ts
    without = trust.verify_report(bare, at=later).as_dict()
    assert without["certificate_code"] == -2 and not without["valid"], without["reason"]
    assert without["sub_indication"] == "OUT_OF_BOUNDS_NO_POE"


def _ts_attr(trust, signature: bytes) -> bytes:
    return timestamp_attribute(trust.timestamper.token(signature, "sm2", "sm3"))
