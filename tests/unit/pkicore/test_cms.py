"""pkicore.cms: SignedData built with HSM keys (SM2, ECDSA, RSA), checked by our verifier, Bouncy Castle
(SM2 and all) and OpenSSL (ECDSA/RSA), plus tampering and malformed input."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import pem

from pkicore.algorithms import algorithm
from pkicore.cms import (CmsSigner, SignedDataTemplate, der_set_of, ess_cert_id_v2, sign_data,
                         signature_timestamp_attribute, verify_signed_data)
from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_available, bc_verify_many
from tests.interop.openssl_cli import cms_verify, openssl_available
from tests.localca import LocalIssuer, ensure_key

ALGS = ["sm2-sm3", "ecdsa-sha256", "rsa-sha256"]


@pytest.fixture(scope="module")
def signers(softtoken_km):
    km = softtoken_km
    out = {}
    for name in ALGS:
        alg = algorithm(name)
        ca = LocalIssuer.create(km, f"cms-ca-{name}-{secrets.token_hex(4)}", name)
        label = f"cms-ee-{name}-{secrets.token_hex(4)}"
        spki = ensure_key(km, label, alg)
        cert = ca.issue_tsa(spki, f"CMS signer {name}", timestamping=False)
        signer = CmsSigner(lambda data, label=label, alg=alg: km.sign(label, data, alg.mechanism), cert, alg,
                           chain=(ca.certificate,))
        out[name] = (signer, ca)
    return out


@pytest.mark.parametrize("name", ALGS)
def test_round_trip_and_structure(signers, name):
    signer, _ = signers[name]
    content = "签名内容 ".encode() * 10
    when = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.timezone.utc)
    der = sign_data(content, signer, signing_time=when)
    result = verify_signed_data(der)
    assert result.ok, result.reasons
    assert result.content == content and result.algorithm == name and result.signing_time == when
    si = asn1_cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    if name == "sm2-sm3":
        assert si["digest_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"
        assert si["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
        assert si["signature_algorithm"]["parameters"].native is None
        assert si["signature_algorithm"].dump() == bytes.fromhex("300a06082a811ccf55018375")
    attrs = {a["type"].native for a in si["signed_attrs"]}
    assert {"content_type", "message_digest", "signing_time", "signing_certificate_v2"} <= attrs


def test_signed_attrs_are_der_sorted():
    items = [b"\x30\x05\x06\x03\x55\x04\x03", b"\x30\x03\x02\x01\x01", b"\x30\x03\x02\x01\x00"]
    assert der_set_of(items)[2:] == b"".join(sorted(items))


@pytest.mark.parametrize("name", ALGS)
def test_tampering_detected(signers, name):
    signer, _ = signers[name]
    template = SignedDataTemplate(signer)
    der = template.build(b"hello", detached=True)
    assert verify_signed_data(der, content=b"hello").ok
    bad = verify_signed_data(der, content=b"hellO")
    assert not bad.ok and "messageDigest does not match the content" in bad.reasons
    assert "detached signature: the content is needed" in verify_signed_data(der).reasons
    # flip a bit in the signature value (the last bytes of the structure)
    flipped = der[:-3] + bytes([der[-3] ^ 1]) + der[-2:]
    assert "signature invalid" in verify_signed_data(flipped, content=b"hello").reasons


def test_ess_cert_id_mismatch(signers):
    signer, ca = signers["sm2-sm3"]
    other = ess_cert_id_v2(ca.certificate, "sm3")
    assert other != ess_cert_id_v2(signer.certificate, "sm3")
    forged = CmsSigner(signer.sign, signer.certificate, signer.algorithm)
    template = SignedDataTemplate(forged)
    template._ess_attr = template._ess_attr.replace(  # noqa: SLF001 - white-box: a wrong certHash
        ess_cert_id_v2(signer.certificate, "sm3")[2:36], other[2:36])
    result = verify_signed_data(template.build(b"x"))
    assert not result.ok and any("ESS" in r for r in result.reasons)


@pytest.mark.parametrize("blob", [b"", b"\x30", b"\x30\x03\x02\x01", b"\x04\x00", secrets.token_bytes(64),
                                  bytes.fromhex("3080060b2a864886f70d0109100104a0800000")],
                         ids=["empty", "lone-tag", "short-sequence", "empty-octets", "random", "indefinite"])
def test_malformed_input_is_a_verdict_not_an_exception(blob):
    result = verify_signed_data(blob)
    assert not result.ok and result.reasons


def test_bouncy_castle_verifies_all(signers, tmp_path):
    if not bc_available():
        pytest.skip("Bouncy Castle not installed")
    argvs = []
    for name in ALGS:
        signer, ca = signers[name]
        (tmp_path / f"{name}.p7").write_bytes(sign_data(b"bc content", signer, signing_time=dt.datetime.now(dt.timezone.utc)))
        (tmp_path / f"{name}-det.p7").write_bytes(sign_data(b"bc content", signer, detached=True))
        (tmp_path / f"{name}-ca.pem").write_bytes(ca.certificate)
        argvs.append(["cms", tmp_path / f"{name}.p7", "--ca", tmp_path / f"{name}-ca.pem"])
        argvs.append(["cms", tmp_path / f"{name}-det.p7", "--content", tmp_path / "content.bin"])
        argvs.append(["cms", tmp_path / f"{name}-det.p7", "--content", tmp_path / "other.bin"])
    (tmp_path / "content.bin").write_bytes(b"bc content")
    (tmp_path / "other.bin").write_bytes(b"bc c0ntent")
    results = bc_verify_many(argvs)
    for i in range(0, len(results), 3):
        assert_bc_ok(results[i])
        assert_bc_ok(results[i + 1])
        assert_bc_fails(results[i + 2])


@pytest.mark.parametrize("name", ["ecdsa-sha256", "rsa-sha256"])
def test_openssl_verifies(signers, name, tmp_path):
    if not openssl_available():
        pytest.skip("openssl not installed")
    signer, ca = signers[name]
    (tmp_path / "sd.der").write_bytes(sign_data(b"openssl content", signer))
    (tmp_path / "ca.pem").write_bytes(pem.armor("CERTIFICATE", ca.certificate))
    result = cms_verify(tmp_path / "sd.der", tmp_path / "ca.pem")
    assert result.ok, result.stderr


@pytest.mark.parametrize("name", ALGS)
def test_build_is_signed_attributes_then_content_info(signers, name):
    """The two halves a signer outside the template uses (seal.pades: pyHanko's interrupted signing) give
    the bytes ``build`` gives, timestamp attribute included."""
    signer, _ = signers[name]
    template = SignedDataTemplate(signer)
    content, token = b"two halves", asn1_cms.ContentInfo({"content_type": "data", "content": b"token"}).dump()
    signatures = []

    def sign(data):
        signatures.append(signer.sign(data))
        return signatures[-1]

    whole = SignedDataTemplate(CmsSigner(sign, signer.certificate, signer.algorithm, signer.chain)).build(
        content, detached=True, unsigned_attributes=lambda s: [signature_timestamp_attribute(token)])
    digest = hashlib.new(signer.algorithm.digest, content).digest()
    halves = template.content_info(template.signed_attributes(digest), signatures[-1],
                                   unsigned_attributes=[signature_timestamp_attribute(token)])
    assert halves == whole
    assert verify_signed_data(whole, content=content).ok
    si = asn1_cms.ContentInfo.load(whole)["content"]["signer_infos"][0]
    assert si["unsigned_attrs"][0]["type"].native == "signature_time_stamp_token"
    assert si["unsigned_attrs"][0]["values"][0].dump() == token
    with pytest.raises(ValueError, match="bytes, not 3"):
        template.signed_attributes(b"abc")


def test_external_template_sorts_its_certificates_and_cannot_sign(signers):
    signer, ca = signers["ecdsa-sha256"]
    template = SignedDataTemplate.external(signer.certificate, "sha256", bytes.fromhex("300a06082a8648ce3d040302"),
                                           certificate_set=[signer.certificate, ca.certificate])
    with pytest.raises(TypeError):
        template.build(b"x")
    der = template.content_info(template.signed_attributes(hashlib.sha256(b"x").digest()),
                                signer.sign(template.signed_attributes(hashlib.sha256(b"x").digest())))
    certs = [c.dump() for c in asn1_cms.ContentInfo.load(der)["content"]["certificates"]]
    assert certs == sorted([signer.certificate, ca.certificate]) and len(certs) == 2
    assert verify_signed_data(der, content=b"x").ok
