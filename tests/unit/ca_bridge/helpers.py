"""Subject keys and requests for the CA tests (software keys: the subject's key never needs the HSM)."""
from __future__ import annotations

import hashlib
import secrets

from asn1crypto import ocsp, x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from tongsuopy.crypto.asymciphers import ec as ts_ec
from tongsuopy.crypto import serialization as ts_serialization

from ca_bridge.api import IssueRequest
from pkicore.oids import OID

_SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def sm2_spki() -> bytes:
    key = ts_ec.generate_private_key(ts_ec.SM2())
    return key.public_key().public_bytes(ts_serialization.Encoding.DER,
                                         ts_serialization.PublicFormat.SubjectPublicKeyInfo)


def ec_spki(curve=ec.SECP256R1) -> bytes:
    return ec.generate_private_key(curve()).public_key().public_bytes(*_SPKI)


def rsa_spki(bits: int = 2048) -> bytes:
    return rsa.generate_private_key(65537, bits).public_key().public_bytes(*_SPKI)


ID_NUMBER = "33010619900101123X"
USCC = "91330100MA27XL0E2K"

SUBJECT_PERSON = (("country_name", "CN"), ("organization_name", "杭州市财政局"),
                  ("organizational_unit_name", "预算处"), ("common_name", "张三"))
SUBJECT_UNIT = (("country_name", "CN"), ("organization_name", "杭州市财政局"), ("common_name", "杭州市财政局"))
SUBJECT_SERVER = (("country_name", "CN"), ("organization_name", "杭州市财政局"), ("common_name", "app.zj.gov.cn"))


def request(profile: str, spki: bytes | None = None, **kw) -> IssueRequest:
    """A valid request for ``profile`` (override any field with keywords)."""
    base = {
        "civil-servant-sign": dict(subject=SUBJECT_PERSON, identity=((OID.ID_CARD_NUMBER, ID_NUMBER),)),
        "civil-servant-enc": dict(subject=SUBJECT_PERSON, identity=((OID.ID_CARD_NUMBER, ID_NUMBER),)),
        "unit": dict(subject=SUBJECT_UNIT, identity=((OID.UNIFIED_SOCIAL_CREDIT_CODE, USCC),)),
        "server": dict(subject=SUBJECT_SERVER, dns_names=("app.zj.gov.cn", "www.app.zj.gov.cn"),
                       ip_addresses=("10.1.2.3", "2001:db8::1")),
        "app-encryption": dict(subject=SUBJECT_SERVER),      # trust/: an application's encryption key
        "tsa": dict(subject=(("country_name", "CN"), ("organization_name", "RA Centre"), ("common_name", "TSA 1"))),
    }[profile]
    base.update(kw)
    return IssueRequest(request_id=kw.pop("request_id", None) or f"test-{secrets.token_hex(8)}", profile=profile,
                        public_key_info=spki if spki is not None else sm2_spki(),
                        **{k: v for k, v in base.items() if k != "request_id"})


def parse(der: bytes) -> x509.Certificate:
    return x509.Certificate.load(der)


def extensions(cert: x509.Certificate) -> dict[str, tuple[bool, object]]:
    """extension id (asn1crypto name or dotted OID) -> (critical, parsed value or raw bytes)"""
    out = {}
    for ext in cert["tbs_certificate"]["extensions"]:
        name = ext["extn_id"].native
        raw = name[0].isdigit()          # an OID asn1crypto has no name for: keep the DER value
        value = ext["extn_value"].contents if raw else ext["extn_value"].parsed
        out[name] = (ext["critical"].native, value)
    return out


def ocsp_request(issuer_der: bytes, serials, digest: str = "sha1", nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for ``serials`` under ``issuer_der`` with CertIDs hashed by ``digest``."""
    issuer = x509.Certificate.load(issuer_der)
    name_hash = hashlib.new(digest, issuer.subject.dump()).digest()
    key_hash = hashlib.new(digest, issuer.public_key["public_key"].contents[1:]).digest()
    tbs = {"request_list": [{"req_cert": {"hash_algorithm": {"algorithm": digest}, "issuer_name_hash": name_hash,
                                          "issuer_key_hash": key_hash, "serial_number": s}} for s in serials]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()
