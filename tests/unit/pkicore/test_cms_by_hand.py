"""pkicore.cms: the hand reader of ordinary SignedData (the verification hot path, issue 18) gives exactly the
verdict asn1crypto's reader gives — over SM2, ECDSA and RSA SignedData, attached, detached, the GM/T 0010
form, signing time, unsigned attributes, several signers, OpenSSL-made ones (signingTime, a
subjectKeyIdentifier sid), and tampered, forged or malformed ones — and takes the ordinary shapes itself."""
from __future__ import annotations

import datetime as dt
import secrets
import subprocess

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pkicore.algorithms import algorithm
from pkicore.cms import (GM_DATA, GM_SIGNED_DATA, CmsSigner, SignedDataTemplate, _Odd, _attribute,
                         _verify_signed_data_by_hand, ess_cert_id_v2, tlv, verify_signed_data,
                         verify_signed_data_asn1)
from tests.interop.openssl_cli import openssl_available
from tests.localca import LocalIssuer, ensure_key

ALGS = ["sm2-sm3", "ecdsa-sha256", "rsa-sha256"]
CONTENT = "手工 DER 验签 ".encode() * 20


@pytest.fixture(scope="module")
def signers(softtoken_km):
    out = {}
    for name in ALGS:
        alg = algorithm(name)
        ca = LocalIssuer.create(softtoken_km, f"hand-ca-{name}-{secrets.token_hex(4)}", name)
        label = f"hand-ee-{name}-{secrets.token_hex(4)}"
        cert = ca.issue_tsa(ensure_key(softtoken_km, label, alg), f"hand signer {name}", timestamping=False)
        out[name] = (CmsSigner(lambda data, label=label, alg=alg: softtoken_km.sign(label, data, alg.mechanism),
                               cert, alg, chain=(ca.certificate,)), ca)
    return out


def _same(der: bytes, *, hand: bool, **kwargs):
    """The public reader equals asn1crypto's; ``hand``: the hand reader took it (and agrees), else it left it."""
    reference = verify_signed_data_asn1(der, **kwargs)
    assert verify_signed_data(der, **kwargs) == reference
    args = (der, kwargs.get("content"), kwargs.get("extra_certificates", ()), kwargs.get("require_ess", False),
            kwargs.get("signer_index", 0))
    if hand:
        assert _verify_signed_data_by_hand(*args) == reference
    else:
        with pytest.raises((_Odd, ValueError)):
            _verify_signed_data_by_hand(*args)
    return reference


def _merge(a: bytes, b: bytes) -> bytes:
    one, two = asn1_cms.ContentInfo.load(a), asn1_cms.ContentInfo.load(b)
    sd = one["content"]
    signed = asn1_cms.SignedData({
        "version": sd["version"], "digest_algorithms": sd["digest_algorithms"],
        "encap_content_info": sd["encap_content_info"],
        "certificates": [*sd["certificates"], *two["content"]["certificates"]],
        "signer_infos": [*sd["signer_infos"], *two["content"]["signer_infos"]]})
    return asn1_cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()


@pytest.mark.parametrize("name", ALGS)
def test_ordinary_shapes_are_read_by_hand_with_the_same_verdict(signers, name):
    signer, ca = signers[name]
    template = SignedDataTemplate(signer)
    attached = template.build(CONTENT)
    assert _same(attached, hand=True).ok
    detached = template.build(CONTENT, detached=True)
    assert _same(detached, hand=True, content=CONTENT).ok
    assert not _same(detached, hand=True, content=CONTENT + b"x").ok                 # messageDigest
    assert not _same(attached, hand=True, content=b"other").ok                       # differs from embedded
    timed = template.build(CONTENT, signing_time=dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc))
    assert _same(timed, hand=True).signing_time is not None
    unsigned = template.build(CONTENT, unsigned_attributes=lambda sig: [
        _attribute("1.2.840.113549.1.9.16.2.14", tlv(0x30, b"\x02\x01\x00")), _attribute("1.2.3.4", b"\x05\x00")])
    assert set(_same(unsigned, hand=True).unsigned_attributes) == {"1.2.840.113549.1.9.16.2.14", "1.2.3.4"}
    only_signer = template.build(CONTENT, chain=False)
    assert _same(only_signer, hand=True, extra_certificates=(ca.certificate,)).ok
    flipped = attached[:-3] + bytes([attached[-3] ^ 1]) + attached[-2:]               # the signature value
    assert "signature invalid" in _same(flipped, hand=True).reasons
    content_at = attached.find(CONTENT)
    altered = attached[:content_at] + b"X" + attached[content_at + 1:]
    assert "messageDigest does not match the content" in _same(altered, hand=True).reasons
    if name == "sm2-sm3":
        gm = template.build(CONTENT, GM_DATA, outer_type=GM_SIGNED_DATA)
        assert _same(gm, hand=True).ok


def test_several_signers_and_a_forged_ess(signers):
    sm2, _ = signers["sm2-sm3"]
    ecdsa, _ = signers["ecdsa-sha256"]
    both = _merge(SignedDataTemplate(sm2).build(CONTENT), SignedDataTemplate(ecdsa).build(CONTENT))
    for index in (0, 1):
        assert _same(both, hand=True, signer_index=index).ok
    _same(both, hand=False, signer_index=2)                                          # no such SignerInfo
    forged = SignedDataTemplate(CmsSigner(sm2.sign, sm2.certificate, sm2.algorithm))
    other = ess_cert_id_v2(signers["ecdsa-sha256"][0].certificate, "sm3")
    forged._ess_attr = forged._ess_attr.replace(  # noqa: SLF001 - white-box: a wrong certHash
        ess_cert_id_v2(sm2.certificate, "sm3")[2:36], other[2:36])
    result = _same(forged.build(CONTENT), hand=True)
    assert not result.ok and any("ESS" in r for r in result.reasons)


def test_other_shapes_are_left_to_asn1crypto(signers):
    signer, _ = signers["sm2-sm3"]
    template = SignedDataTemplate(signer)
    attached = template.build(CONTENT)
    assert not _same(template.build(CONTENT, include_certificates=False), hand=False).ok    # no signer certificate
    assert not _same(template.build(CONTENT, detached=True), hand=False).ok                 # content needed
    assert not _same(attached + b"\x00", hand=False).ok                                      # trailing bytes
    # BER: the outer SEQUENCE with an indefinite length
    ber = b"\x30\x80" + attached[4:] + b"\x00\x00" if attached[1] == 0x82 else None
    if ber is not None:
        _same(ber, hand=False)
    for blob in (b"", b"\x30", b"\x30\x03\x02\x01", secrets.token_bytes(64)):
        assert not _same(blob, hand=False).ok


@pytest.mark.skipif(not openssl_available(), reason="openssl not installed")
@pytest.mark.parametrize("keyid", [False, True])
def test_openssl_made_signed_data(tmp_path, keyid):
    """`openssl cms -sign` (ECDSA, signingTime, S/MIME capabilities; with -keyid a subjectKeyIdentifier sid)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "openssl signer")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(cx509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(cx509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "content.bin").write_bytes(CONTENT)
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-md", "sha256",
                    "-in", tmp_path / "content.bin", "-signer", tmp_path / "cert.pem", "-inkey", tmp_path / "key.pem",
                    "-out", tmp_path / "sd.der", *(["-keyid"] if keyid else [])], check=True, capture_output=True)
    der = (tmp_path / "sd.der").read_bytes()
    result = _same(der, hand=not keyid)
    assert result.ok and result.signing_time is not None, result.reasons
