"""EmbeddedCA.issue: each profile's extensions, idempotency, the caller's transaction, refusals."""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

import pytest
from asn1crypto import core, x509
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from ca_bridge.api import CABackend, IssuedCertificate
from ca_bridge.errors import IssuanceError, RequestConflict, UnknownCA, UnknownProfile, UnsupportedKey
from ca_bridge.models import IssuedCert
from audit.trail import AuditEvent
from store.db import transaction
from pkicore.oids import OID
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import ID_NUMBER, USCC, ec_spki, extensions, parse, request, rsa_spki, sm2_spki
from tests.unit.ca_bridge.test_hierarchy import SM2_SIG_ALG, verifies

EXPECTED = {
    "civil-servant-sign": ({"digital_signature", "non_repudiation"}, ["client_auth", "email_protection"], False),
    "civil-servant-enc": ({"key_encipherment", "data_encipherment", "key_agreement"}, ["email_protection"], False),
    "unit": ({"digital_signature", "non_repudiation"}, ["client_auth", "email_protection"], False),
    "server": ({"digital_signature"}, ["server_auth", "client_auth"], False),
    "tsa": ({"digital_signature", "non_repudiation"}, ["time_stamping"], True),
}


def test_embedded_ca_is_a_backend(ca):
    assert isinstance(ca, CABackend)


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_profile_extensions(ca, profile):
    spki = sm2_spki()
    issued = ca.issue(request(profile, spki))
    issuing = ca.directory.get(f"{ca.test_tag}issuing-sm2")
    assert isinstance(issued, IssuedCertificate) and issued.ca == issuing.name and issued.profile == profile
    assert issued.chain == (issuing.certificate,)
    cert = parse(issued.certificate)
    tbs = cert["tbs_certificate"]
    assert tbs["version"].native == "v3" and tbs["signature"].dump() == SM2_SIG_ALG
    assert cert.serial_number == issued.serial and 120 <= issued.serial.bit_length() <= 127
    assert tbs["subject_public_key_info"].dump() == spki
    assert verifies(issued.certificate, issuing.certificate)
    ku, eku, eku_critical = EXPECTED[profile]
    exts = extensions(cert)
    assert cert.key_usage_value.native == ku and exts["key_usage"][0] is True
    assert not ku & {"key_cert_sign", "crl_sign"}
    assert cert.extended_key_usage_value.native == eku and exts["extended_key_usage"][0] is eku_critical
    # no basicConstraints at all in an end entity (an empty SEQUENCE is refused by GmSSL 3)
    assert not cert.ca and "basic_constraints" not in exts
    assert cert.key_identifier == hashlib.sha1(cert.public_key["public_key"].contents[1:]).digest()
    assert cert.authority_key_identifier == x509.Certificate.load(issuing.certificate).key_identifier
    assert [dp["distribution_point"].native for dp in cert.crl_distribution_points] == [
        [f"{PUBLIC_URL}/ca/{issuing.name}/crl"]]
    aia = {a["access_method"].native: a["access_location"].native for a in cert.authority_information_access_value}
    assert aia == {"ocsp": f"{PUBLIC_URL}/ocsp/{issuing.name}", "ca_issuers": f"{PUBLIC_URL}/ca/{issuing.name}/cert"}
    # validity: the profile's default days (minus the 60 s backdating), never past the issuer
    assert issued.not_after - issued.not_before == dt.timedelta(days=ca.profiles[profile].validity_days, seconds=60)
    assert cert.not_valid_before == issued.not_before and cert.not_valid_after == issued.not_after
    # subject: UTF-8 Chinese names, PrintableString country, order kept
    subject = request(profile).subject
    rdns = [atv for rdn in cert.subject.chosen for atv in rdn]
    assert [(a["type"].native, a["value"].native) for a in rdns] == list(subject)
    for atv in rdns:
        assert atv["value"].name == ("printable_string" if atv["type"].native == "country_name" else "utf8_string")
    if profile == "server":
        assert cert.subject_alt_name_value.native == ["app.zj.gov.cn", "www.app.zj.gov.cn", "10.1.2.3", "2001:db8::1"]
        assert exts["subject_alt_name"][0] is False
    else:
        assert cert.subject_alt_name_value is None
    identity = {k: v for k, v in exts.items() if k.startswith("1.2.156.10260")}
    if profile.startswith("civil-servant"):
        assert list(identity) == [OID.ID_CARD_NUMBER] and identity[OID.ID_CARD_NUMBER][0] is False
        assert core.PrintableString.load(identity[OID.ID_CARD_NUMBER][1]).native == ID_NUMBER
    elif profile == "unit":
        assert core.PrintableString.load(identity[OID.UNIFIED_SOCIAL_CREDIT_CODE][1]).native == USCC
    else:
        assert identity == {}


def test_idempotent_reissue(ca, db):
    req = request("civil-servant-sign")
    first = ca.issue(req)
    again = ca.issue(req)
    assert again == first
    with db() as session:
        assert session.scalar(select(func.count()).select_from(IssuedCert)
                              .where(IssuedCert.request_id == req.request_id)) == 1
    # same request id, another key: a conflict, never a second certificate
    with pytest.raises(RequestConflict):
        ca.issue(request("civil-servant-sign", request_id=req.request_id))
    with pytest.raises(RequestConflict):
        ca.issue(request("civil-servant-enc", req.public_key_info, request_id=req.request_id))


def test_joins_the_callers_transaction(ca, db):
    req = request("unit")

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction(db) as session:
            issued = ca.issue(req, session=session)
            session.flush()
            raise Boom
    with db() as session:
        assert session.scalar(select(IssuedCert).where(IssuedCert.request_id == req.request_id)) is None
        assert session.scalar(select(AuditEvent).where(AuditEvent.target_id.like(f"%/{issued.serial:x}"))) is None
    with transaction(db) as session:
        issued = ca.issue(req, session=session)
    with db() as session:
        row = session.scalar(select(IssuedCert).where(IssuedCert.request_id == req.request_id))
        assert row.serial == format(issued.serial, "x") and row.certificate == issued.certificate
        events = list(session.scalars(select(AuditEvent).where(AuditEvent.target_id == f"{issued.ca}/{row.serial}")))
        assert [e.action for e in events] == ["ca.certificate.issue"]
        assert events[0].detail["request_id"] == req.request_id


def test_key_family_chooses_the_issuing_ca(ca):
    issued = ca.issue(request("server", ec_spki()))
    assert issued.ca == f"{ca.test_tag}issuing-ecdsa"
    assert parse(issued.certificate)["signature_algorithm"]["algorithm"].native == "sha256_ecdsa"
    named = ca.issue(request("server", ec_spki(ec.SECP384R1), ca=f"{ca.test_tag}issuing-sm2"))
    assert named.ca == f"{ca.test_tag}issuing-sm2"
    rsa = ca.issue(request("server", rsa_spki()))      # no RSA hierarchy here: the SM2 CA
    assert rsa.ca == f"{ca.test_tag}issuing-sm2"


@pytest.mark.parametrize("profile,make_spki,usage", [
    ("server", lambda: ec_spki(), {"digital_signature"}),
    ("server", lambda: ec_spki(ec.SECP384R1), {"digital_signature"}),
    ("server", rsa_spki, {"digital_signature", "key_encipherment"}),
    ("server", sm2_spki, {"digital_signature"}),
    ("civil-servant-enc", lambda: ec_spki(), {"key_agreement"}),
    ("civil-servant-enc", sm2_spki, {"key_encipherment", "data_encipherment", "key_agreement"}),
])
def test_key_usage_follows_the_key_family(ca, profile, make_spki, usage):
    """RFC 8813 §3: no keyEncipherment/dataEncipherment with an ECDSA/ECDH key; RSA key transport keeps
    keyEncipherment; an SM2 encryption certificate keeps both encipherment bits (GM/T 0015)."""
    cert = parse(ca.issue(request(profile, make_spki())).certificate)
    assert cert.key_usage_value.native == usage and extensions(cert)["key_usage"][0] is True


def test_validity_days_and_cap(ca):
    issued = ca.issue(request("server", validity_days=30))
    assert issued.not_after - issued.not_before == dt.timedelta(days=30, seconds=60)
    with pytest.raises(IssuanceError, match="validity"):
        ca.issue(request("server", validity_days=5000))
    with pytest.raises(IssuanceError, match="validity"):
        ca.issue(request("server", validity_days=0))


@pytest.mark.parametrize("profile,change,error,match", [
    ("civil-servant-sign", {"spki": "rsa"}, UnsupportedKey, "does not accept rsa-2048"),
    ("unit", {"spki": "rsa"}, UnsupportedKey, "does not accept"),
    ("server", {"dns_names": (), "ip_addresses": ()}, IssuanceError, "DNS name or IP address"),
    ("server", {"dns_names": ("bad name!",)}, IssuanceError, "not a valid DNS name"),
    ("server", {"ip_addresses": ("10.1.2",)}, IssuanceError, "not a valid IP address"),
    ("civil-servant-sign", {"dns_names": ("a.example",)}, IssuanceError, "takes no DNS names"),
    ("civil-servant-sign", {"identity": ()}, IssuanceError, "needs one of the identity extensions"),
    ("unit", {"identity": ((OID.ID_CARD_NUMBER, ID_NUMBER),)}, IssuanceError, "does not allow identity"),
    ("server", {"identity": ((OID.UNIFIED_SOCIAL_CREDIT_CODE, USCC),)}, IssuanceError, "does not allow"),
    ("civil-servant-sign", {"subject": (("common_name", "张三"),)}, IssuanceError, "needs subject attributes"),
    ("civil-servant-sign", {"subject": (("country_name", "China"), ("organization_name", "x"),
                                        ("common_name", "y"))}, IssuanceError, "two-letter"),
    ("server", {"subject": (("street_address", "x"), ("common_name", "y"))}, IssuanceError, "not allowed"),
    ("server", {"spki": b"\x30\x03\x02\x01\x01"}, IssuanceError, "SubjectPublicKeyInfo"),
    ("server", {"ca": "no-such-ca"}, UnknownCA, "no CA named"),
])
def test_invalid_requests_refused(ca, db, profile, change, error, match):
    change = dict(change)
    spki = change.pop("spki", None)
    spki = rsa_spki() if spki == "rsa" else spki
    req = request(profile, spki, **change)
    with pytest.raises(error, match=match) as info:
        ca.issue(req)
    assert 400 <= {"bad_request": 400, "bad_encoding": 400, "unsupported_algorithm": 400,
                   "not_found": 404}[info.value.code.value] < 500
    with db() as session:
        assert session.scalar(select(IssuedCert).where(IssuedCert.request_id == req.request_id)) is None


def test_unknown_and_internal_profiles_refused(ca):
    with pytest.raises(UnknownProfile, match="unknown certificate profile"):
        ca.issue(request("server").__class__(**{**request("server").__dict__, "profile": "nope"}))
    for internal in ("root-ca", "issuing-ca", "ocsp-signer"):
        req = request("tsa")
        with pytest.raises(IssuanceError, match="only when the CA hierarchy"):
            ca.issue(req.__class__(**{**req.__dict__, "profile": internal}))


def test_root_does_not_issue_end_entities(ca):
    with pytest.raises(IssuanceError, match="root CA"):
        ca.issue(request("server", ca=f"{ca.test_tag}root-sm2"))


def test_invalid_sm2_point_refused(ca):
    spki = bytearray(sm2_spki())
    spki[-1] ^= 1
    with pytest.raises(UnsupportedKey, match="SM2 public key is invalid"):
        ca.issue(request("civil-servant-sign", bytes(spki)))


def test_ip_address_encoding(ca):
    issued = ca.issue(request("server", dns_names=(), ip_addresses=("192.0.2.7",)))
    san = parse(issued.certificate).subject_alt_name_value
    assert san[0].chosen.contents == ipaddress.ip_address("192.0.2.7").packed


def test_a_fresh_ca_issues_inside_a_write_transaction_without_waiting(ca, softtoken_km, db):
    """A CA object whose directory is not loaded yet, used first inside the caller's write transaction
    (an RA approval in a new process): its read-only look-ups must not queue behind the SQLite writer lock
    that very transaction holds. Before, they waited out the lock timeout (30 s) and failed."""
    import time
    from ca_bridge.embedded import EmbeddedCA
    fresh = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=ca.test_tag)
    wanted = request("server", sm2_spki(), dns_names=("fresh.example.cn",), ip_addresses=())
    started = time.monotonic()
    with transaction(db) as session:
        session.connection()                  # the caller has begun (an approval has read its request rows)
        issued = fresh.issue(wanted, session=session)
        replayed = fresh.issue(wanted, session=session)           # the idempotent answer, same transaction
    assert time.monotonic() - started < 10
    assert replayed.serial == issued.serial and replayed.certificate == issued.certificate
    assert EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=ca.test_tag).status(
        issued.ca, issued.serial).status == "good"
