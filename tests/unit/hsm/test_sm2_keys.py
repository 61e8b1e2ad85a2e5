"""SM2/SM3/SM4 through the key manager on our software token, checked by independent code."""
from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import replace

import pytest
from asn1crypto import pem
from gmssl import sm2 as gmssl_sm2

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hsm import HsmError, KeyNotPermitted, MechanismUnsupported
from hsm.errors import SignatureInvalid
from pkicore import algorithm, der_to_raw, point_from_public_key_info, sm3, verify_signature
from pkicore.sm2 import SM2PublicKey, sm2_e, sm2_verify
from pkicore.signatures import der_to_ints


def _label(prefix):
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def sm2_key(softtoken_km):
    return softtoken_km.generate_key_pair(_label("sm2"), "sm2")


def _gmssl_verify(spki: bytes, message: bytes, der_sig: bytes) -> bool:
    """pure-Python gmssl as an independent verifier only (default ID); never used to sign."""
    _, point = point_from_public_key_info(spki)
    crypt = gmssl_sm2.CryptSM2(private_key="", public_key=point[1:].hex())
    return crypt.verify_with_sm3(der_to_raw(der_sig).hex(), message)


def test_sm2_key_pair_attributes(sm2_key):
    assert sm2_key.algorithm == "sm2" and sm2_key.key_type == "sm2"
    assert sm2_key.sensitive and not sm2_key.extractable
    curve, point = point_from_public_key_info(sm2_key.public_key_info)
    assert curve == "sm2p256v1" and len(point) == 65


def test_sm2_signature_verifies_in_tongsuo_and_gmssl(softtoken_km, sm2_key):
    for message in (b"", b"abc", "公务员 证书".encode(), os.urandom(10_000)):
        sig = softtoken_km.sign(sm2_key.label, message)
        assert verify_signature(sm2_key.public_key_info, algorithm("sm2-sm3"), message, sig)
        assert _gmssl_verify(sm2_key.public_key_info, message, sig)
        assert softtoken_km.verify(sm2_key.label, message, sig)
        assert not verify_signature(sm2_key.public_key_info, algorithm("sm2-sm3"), message + b"x", sig)


def test_signatures_are_randomised(softtoken_km, sm2_key):
    assert softtoken_km.sign(sm2_key.label, b"m") != softtoken_km.sign(sm2_key.label, b"m")


def test_custom_user_id(softtoken_km, sm2_key):
    uid = b"alice@example.gov.cn"
    sig = softtoken_km.sign(sm2_key.label, b"msg", user_id=uid)
    _, point = point_from_public_key_info(sm2_key.public_key_info)
    r, s = der_to_ints(sig)
    assert sm2_verify(SM2PublicKey.from_point(point), b"msg", r, s, uid)
    assert not sm2_verify(SM2PublicKey.from_point(point), b"msg", r, s)  # default ID must fail
    assert softtoken_km.verify(sm2_key.label, b"msg", sig, user_id=uid)
    assert not softtoken_km.verify(sm2_key.label, b"msg", sig)


def test_raw_digest_signature(softtoken_km, sm2_key):
    _, point = point_from_public_key_info(sm2_key.public_key_info)
    pub = SM2PublicKey.from_point(point)
    e = sm2_e(pub, b"digest me")
    sig = softtoken_km.sign(sm2_key.label, e, "sm2-sign-digest")
    assert verify_signature(sm2_key.public_key_info, algorithm("sm2-sm3"), b"digest me", sig)


def test_sm3_digest_in_token_matches_openssl(softtoken_km):
    data = os.urandom(1000)
    assert softtoken_km.digest(data, "sm3") == sm3(data)


def test_sm2_encrypt_decrypt_in_token(softtoken_km, sm2_key):
    ct = softtoken_km.encrypt(sm2_key.label, b"session key 16 b", "sm2-encrypt")
    assert ct[0] == 0x30  # GM/T 0009 DER SM2Cipher
    assert softtoken_km.decrypt(sm2_key.label, ct, "sm2-encrypt") == b"session key 16 b"
    assert softtoken_km.encrypt_to(sm2_key.public_key_info, b"to a subscriber") != ct
    assert softtoken_km.decrypt(sm2_key.label, softtoken_km.encrypt_to(sm2_key.public_key_info, b"xyz"),
                                "sm2-encrypt") == b"xyz"


def test_decrypts_what_openssl_encrypted(softtoken_km, sm2_key, tmp_path):
    pub = tmp_path / "pub.pem"
    pub.write_bytes(pem.armor("PUBLIC KEY", sm2_key.public_key_info))
    (tmp_path / "m").write_bytes(b"hello from openssl")
    subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pub), "-in", str(tmp_path / "m"),
                    "-out", str(tmp_path / "c")], check=True, capture_output=True)
    assert softtoken_km.decrypt(sm2_key.label, (tmp_path / "c").read_bytes(), "sm2-encrypt") == b"hello from openssl"


def test_tampered_ciphertext_is_refused(softtoken_km, sm2_key):
    ct = bytearray(softtoken_km.encrypt(sm2_key.label, b"secret", "sm2-encrypt"))
    ct[-1] ^= 1  # C2 changed -> C3 check must fail
    with pytest.raises(HsmError):
        softtoken_km.decrypt(sm2_key.label, bytes(ct), "sm2-encrypt")
    with pytest.raises(HsmError):
        softtoken_km.decrypt(sm2_key.label, b"\x30\x03\x02\x01", "sm2-encrypt")


def test_sm4_ecb_cbc(softtoken_km):
    key = softtoken_km.generate_secret_key(_label("sm4"), "sm4")
    data = os.urandom(64)
    ct = softtoken_km.encrypt(key.label, data, "sm4-ecb")
    assert len(ct) == 64 and softtoken_km.decrypt(key.label, ct, "sm4-ecb") == data
    iv = os.urandom(16)
    ct = softtoken_km.encrypt(key.label, data, "sm4-cbc", iv=iv)
    assert softtoken_km.decrypt(key.label, ct, "sm4-cbc", iv=iv) == data


def test_sm2_private_key_wrapped_under_sm4_and_unwrapped(softtoken_km):
    kek = softtoken_km.generate_secret_key(_label("kek"), "sm4")
    key = softtoken_km.generate_key_pair(_label("escrow"), "sm2", extractable=True)
    blob = softtoken_km.wrap(kek.label, key.label, "sm4-ecb")
    assert len(blob) == 32  # SM4-ECB(d), exactly GB/T 35276 sm2EncryptedPrivateKey
    back = softtoken_km.unwrap(kek.label, blob, "sm4-ecb", label=_label("restored"), algorithm="sm2")
    assert back.public_key_info == key.public_key_info
    sig = softtoken_km.sign(back.label, b"restored key signs")
    assert verify_signature(key.public_key_info, algorithm("sm2-sm3"), b"restored key signs", sig)


def test_sm4_key_wrapped_to_an_sm2_public_key_and_unwrapped(softtoken_km, sm2_key):
    cek = softtoken_km.generate_secret_key(_label("cek"), "sm4", extractable=True)
    blob = softtoken_km.wrap_to(sm2_key.public_key_info, cek.label)
    assert blob[0] == 0x30  # DER SM2Cipher carrying the 16-byte SM4 key
    back = softtoken_km.unwrap(sm2_key.label, blob, "sm2-encrypt", label=_label("cek-back"), algorithm="sm4")
    data = os.urandom(32)
    assert softtoken_km.decrypt(back.label, softtoken_km.encrypt(cek.label, data, "sm4-ecb"), "sm4-ecb") == data


def test_sm4_key_not_extractable_cannot_be_wrapped_to_a_public_key(softtoken_km, sm2_key):
    cek = softtoken_km.generate_secret_key(_label("cek-fixed"), "sm4")
    with pytest.raises(KeyNotPermitted):
        softtoken_km.wrap_to(sm2_key.public_key_info, cek.label)


def test_bad_recipient_key_is_refused(softtoken_km):
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(MechanismUnsupported):
        softtoken_km.encrypt_to(p256, b"x")
    with pytest.raises(MechanismUnsupported):
        softtoken_km.encrypt_to(b"\x30\x00", b"x")


def test_non_extractable_key_cannot_be_wrapped(softtoken_km, sm2_key):
    kek = softtoken_km.generate_secret_key(_label("kek2"), "sm4")
    with pytest.raises(KeyNotPermitted):
        softtoken_km.wrap(kek.label, sm2_key.label, "sm4-ecb")


def test_ecdsa_mechanism_refused_on_an_sm2_key(softtoken_km, sm2_key):
    with pytest.raises(MechanismUnsupported):
        softtoken_km.sign(sm2_key.label, b"x", "ecdsa-sha256")


@pytest.fixture
def token_without_private_points(softtoken_km):
    """Our token driven as a standard PKCS#11 token that keeps no CKA_EC_POINT on private keys (SoftHSMv2,
    or a vendor without XiPKI's *_PRIVATEKEY_ECPOINT behaviour): the point is not read from the key."""
    saved = softtoken_km.profile
    softtoken_km.profile = replace(saved, quirks=replace(saved.quirks, sm2_private_key_ec_point=False,
                                                         ec_private_key_ec_point=False))
    try:
        yield softtoken_km
    finally:
        softtoken_km.profile = saved


def _labels(km, label):
    return [k for k in km.list_keys() if k.label == label]


def test_unwrap_on_a_token_without_private_points_proves_the_expected_pair(token_without_private_points):
    km = token_without_private_points
    kek = km.generate_secret_key(_label("kek"), "sm4")
    key = km.generate_key_pair(_label("escrow"), "sm2", extractable=True)
    other = km.generate_key_pair(_label("other"), "sm2")
    blob = km.wrap(kek.label, key.label, "sm4-ecb")
    nameless = _label("nameless")
    with pytest.raises(MechanismUnsupported, match="must name the expected public key"):
        km.unwrap(kek.label, blob, "sm4-ecb", label=nameless, algorithm="sm2")
    assert _labels(km, nameless) == []
    wrong = _label("wrong")
    with pytest.raises(SignatureInvalid, match="not the private half"):
        km.unwrap(kek.label, blob, "sm4-ecb", label=wrong, algorithm="sm2", public_key_info=other.public_key_info)
    assert _labels(km, wrong) == []
    back = km.unwrap(kek.label, blob, "sm4-ecb", label=_label("restored"), algorithm="sm2",
                     public_key_info=key.public_key_info)
    assert back.public_key_info == key.public_key_info
    sig = km.sign(back.label, b"restored key signs")
    assert verify_signature(key.public_key_info, algorithm("sm2-sm3"), b"restored key signs", sig)


def test_unwrap_reads_the_point_where_the_token_keeps_it(softtoken_km):
    """Our token keeps CKA_EC_POINT on private keys (as XiPKI records for TASS and Sansec): the point comes
    from the unwrapped key itself, so a wrong expectation cannot mask the key that is really there."""
    assert softtoken_km.profile.quirks.private_key_ec_point("sm2")
    kek = softtoken_km.generate_secret_key(_label("kek"), "sm4")
    key = softtoken_km.generate_key_pair(_label("escrow"), "sm2", extractable=True)
    other = softtoken_km.generate_key_pair(_label("other"), "sm2")
    blob = softtoken_km.wrap(kek.label, key.label, "sm4-ecb")
    back = softtoken_km.unwrap(kek.label, blob, "sm4-ecb", label=_label("restored"), algorithm="sm2",
                               public_key_info=other.public_key_info)
    assert back.public_key_info == key.public_key_info != other.public_key_info
