"""PKCS#10 checks against CSRs made by OpenSSL (SM2 with and without the default ID, RSA, ECDSA) and
pyca/cryptography (RSA, ECDSA): proof of possession, weak keys, strict DER, subject consistency."""
from __future__ import annotations

import base64

import pytest
from asn1crypto import csr as asn1_csr, keys as asn1_keys, pem
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pkicore.errors import ErrorCode
from pkicore.oids import OID
from ra.csr import check_public_key, load_public_key_info, parse_csr, subject_conflicts
from ra.errors import CsrError
from tests.interop.openssl_cli import openssl_available, req_verify
from tests.unit.ra.csr_tools import (cryptography_csr, ec_key, openssl_csr, openssl_resign_sm2,
                                     openssl_sm2_key, rsa_key, spki_der)

pytestmark = pytest.mark.skipif(not openssl_available(), reason="openssl CLI not installed")

SUBJECT = (("country_name", "CN"), ("organization_name", "测试单位"), ("common_name", "张三"))


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("csr")


@pytest.fixture(scope="module")
def sm2_csr(work):
    return openssl_csr(work, "sm2", "/C=CN/O=测试单位/CN=张三", sm2=True)


def test_openssl_sm2_csr_with_default_id(work, sm2_csr):
    assert req_verify(work / "sm2.csr").ok          # OpenSSL agrees the signature is good (with the ID)
    parsed = parse_csr(sm2_csr)
    assert parsed.subject == SUBJECT
    assert (parsed.key.key_type, parsed.key.curve, parsed.signature_algorithm) == ("sm2", "sm2p256v1", "sm2-sm3")
    der = pem.unarmor(sm2_csr)[2]
    assert parse_csr(der).der == der                                   # DER
    assert parse_csr(base64.b64encode(der).decode()).der == der        # base64 text


def test_openssl_sm2_csr_with_empty_id_is_refused(work):
    csr = openssl_csr(work, "sm2-empty", "/CN=empty id", sm2=True, distid=False)
    assert req_verify(work / "sm2-empty.csr", distid=None).ok          # valid under OpenSSL's empty ID
    with pytest.raises(CsrError, match="empty user ID.*distid:1234567812345678") as info:
        parse_csr(csr)
    assert info.value.code == ErrorCode.BAD_SIGNATURE


@pytest.mark.parametrize("oid", [OID.SM2_SIGN, OID.SM2_WITH_SM3])
def test_sm2_signature_oid_variants(work, sm2_csr, oid):
    der = openssl_resign_sm2(work, sm2_csr, work / "sm2.key", oid)
    parsed = parse_csr(der)
    assert parsed.signature_algorithm == "sm2-sm3" and parsed.subject == SUBJECT


def test_sm2_csr_signed_by_another_key_is_refused(work, sm2_csr):
    other = openssl_sm2_key(work / "other-sm2.key")
    der = openssl_resign_sm2(work, sm2_csr, other, OID.SM2_WITH_SM3)
    with pytest.raises(CsrError, match="proof of possession"):
        parse_csr(der)


@pytest.mark.parametrize("name, keyalg, digest, expected", [
    ("rsa2048", ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"), "-sha256", ("rsa", 2048, "rsa-sha256")),
    ("p256", ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"), "-sha256", ("ec", 256, "ecdsa-sha256")),
    ("p384", ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"), "-sha384", ("ec", 384, "ecdsa-sha384")),
])
def test_openssl_rsa_and_ecdsa(work, name, keyalg, digest, expected):
    parsed = parse_csr(openssl_csr(work, name, "/C=CN/CN=app.example.gov.cn", keyalg=keyalg, digest=digest))
    assert (parsed.key.key_type, parsed.key.bits, parsed.signature_algorithm) == expected
    assert parsed.subject == (("country_name", "CN"), ("common_name", "app.example.gov.cn"))


@pytest.mark.parametrize("name, keyalg, digest, code, reason", [
    ("rsa1024", ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"), "-sha256",
     ErrorCode.UNSUPPORTED_ALGORITHM, "1024 bits is too weak"),
    ("k1", ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"), "-sha256",
     ErrorCode.UNSUPPORTED_ALGORITHM, "curve 1.3.132.0.10 is not accepted"),
    ("p521", ("-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"), "-sha512",
     ErrorCode.UNSUPPORTED_ALGORITHM, "curve 1.3.132.0.35 is not accepted"),
    ("sha1", ("-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"), "-sha1",
     ErrorCode.UNSUPPORTED_ALGORITHM, "signature algorithm 1.2.840.113549.1.1.5 is not accepted"),
    ("ed25519", ("-algorithm", "ED25519"), "-sha256", ErrorCode.UNSUPPORTED_ALGORITHM, "1.3.101.112"),
])
def test_openssl_weak_or_foreign_keys_refused(work, name, keyalg, digest, code, reason):
    if name == "ed25519":
        csr = openssl_csr(work, name, "/CN=x", keyalg=keyalg, digest="")
    else:
        csr = openssl_csr(work, name, "/CN=x", keyalg=keyalg, digest=digest)
    with pytest.raises(CsrError, match=reason) as info:
        parse_csr(csr)
    assert info.value.code == code


@pytest.mark.parametrize("key, digest, expected", [
    (ec_key(), hashes.SHA256(), ("ec", 256, "ecdsa-sha256")),
    (ec_key(ec.SECP384R1()), hashes.SHA384(), ("ec", 384, "ecdsa-sha384")),
    (rsa_key(3072), hashes.SHA256(), ("rsa", 3072, "rsa-sha256")),
])
def test_cryptography_csrs(key, digest, expected):
    der = cryptography_csr(key, "张三", "测试单位", digest)
    parsed = parse_csr(der)
    assert (parsed.key.key_type, parsed.key.bits, parsed.signature_algorithm) == expected
    assert parsed.subject == SUBJECT and parsed.public_key_info == spki_der(key)


def test_cryptography_weak_rsa_refused():
    with pytest.raises(CsrError, match="too weak"):
        parse_csr(cryptography_csr(rsa_key(1024), "x"))


def test_tampered_subject_fails_pop():
    der = bytearray(cryptography_csr(ec_key(), "alice.example.cn"))
    i = der.index(b"alice")
    der[i] ^= 0x20
    with pytest.raises(CsrError, match="proof of possession") as info:
        parse_csr(bytes(der))
    assert info.value.code == ErrorCode.BAD_SIGNATURE


def test_malformed_inputs():
    good = cryptography_csr(ec_key(), "x")
    with pytest.raises(CsrError, match="not a valid PKCS#10"):
        parse_csr(good + b"\x00")                                      # trailing data
    with pytest.raises(CsrError, match="not a valid PKCS#10"):
        parse_csr(good[:-5])                                           # truncated
    with pytest.raises(CsrError, match="neither PEM"):
        parse_csr("not a csr at all!")
    with pytest.raises(CsrError, match="CERTIFICATE REQUEST"):
        parse_csr(pem.armor("CERTIFICATE", good))
    with pytest.raises(CsrError, match="larger than"):
        parse_csr(b"\x30" + b"\x00" * 20000)
    with pytest.raises(CsrError):
        parse_csr(b"")
    # BER: the outer length in a non-minimal long form
    assert good[1] in (0x81, 0x82)
    body = good[2 + (good[1] & 0x7F):]
    ber = b"\x30\x83" + len(body).to_bytes(3, "big") + body
    with pytest.raises(CsrError, match="not DER"):
        parse_csr(ber)


def _replace_point(csr_der: bytes, point: bytes) -> bytes:
    req = asn1_csr.CertificationRequest.load(csr_der)
    info = req["certification_request_info"]
    spki = asn1_keys.PublicKeyInfo.load(info["subject_pk_info"].dump())
    spki = asn1_keys.PublicKeyInfo({"algorithm": spki["algorithm"], "public_key": point})
    new_info = asn1_csr.CertificationRequestInfo({"version": "v1", "subject": info["subject"],
                                                  "subject_pk_info": spki, "attributes": []})
    return asn1_csr.CertificationRequest({"certification_request_info": new_info,
                                          "signature_algorithm": req["signature_algorithm"],
                                          "signature": req["signature"].native}).dump()


def test_sm2_point_off_curve_or_compressed_refused(sm2_csr):
    der = pem.unarmor(sm2_csr)[2]
    point = asn1_keys.PublicKeyInfo.load(parse_csr(der).public_key_info)["public_key"].native
    off = point[:-1] + bytes([point[-1] ^ 1])
    with pytest.raises(CsrError, match="not on the curve"):
        parse_csr(_replace_point(der, off))
    compressed = bytes([2 + (point[-1] & 1)]) + point[1:33]
    with pytest.raises(CsrError, match="uncompressed"):
        parse_csr(_replace_point(der, compressed))


def test_spki_input_for_encryption_keys(sm2_csr):
    spki = parse_csr(sm2_csr).public_key_info
    assert load_public_key_info(spki).key_type == "sm2"
    assert load_public_key_info(pem.armor("PUBLIC KEY", spki)).public_key_info == spki
    assert load_public_key_info(base64.b64encode(spki).decode()).public_key_info == spki
    with pytest.raises(CsrError, match="too weak"):
        check_public_key(spki_der(rsa_key(1024)))


def test_subject_conflicts():
    vetted = SUBJECT
    assert subject_conflicts((), vetted) == []
    assert subject_conflicts(SUBJECT, vetted) == []
    assert subject_conflicts((("common_name", "张三 "), ("locality_name", "杭州")), vetted) == []
    reasons = subject_conflicts((("common_name", "李四"),), vetted)
    assert reasons and "contradicts" in reasons[0]
    assert subject_conflicts((("organizational_unit_name", "财务处"),), vetted)
    assert subject_conflicts((("organization_name", "别的单位"), ("common_name", "张三")), vetted)
