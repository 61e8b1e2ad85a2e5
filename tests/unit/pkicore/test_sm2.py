"""pkicore SM2 plumbing against the GB/T 32918 known answer and its failing twins."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pkicore import (algorithm, der_to_raw, point_from_public_key_info, public_key_info_from_point, raw_to_der,
                     sm2_e, sm2_verify, sm2_verify_digest, sm2_z, verify_signature)
from pkicore.sm2 import GX, GY, N, P, SM2PublicKey, _jmul

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
KAT = json.loads((VECTORS / "sm2_sign_kat.json").read_text())


def _public_from_d(d: int) -> SM2PublicKey:
    x, y, z = _jmul(d, (GX, GY, 1))
    zi = pow(z, -1, P)
    return SM2PublicKey(x * zi * zi % P, y * zi * zi * zi % P)


@pytest.fixture(scope="module")
def kat_key() -> SM2PublicKey:
    return _public_from_d(int(KAT["d"], 16))


def test_z_and_e_match_the_standard(kat_key):
    uid = bytes.fromhex(KAT["user_id"])
    assert sm2_z(kat_key, uid).hex().upper() == KAT["za"]
    assert sm2_e(kat_key, bytes.fromhex(KAT["message"]), uid).hex().upper() == KAT["e"]


def test_standard_signature_verifies_through_tongsuo_and_by_hand(kat_key):
    msg, r, s = bytes.fromhex(KAT["message"]), int(KAT["r"], 16), int(KAT["s"], 16)
    assert sm2_verify(kat_key, msg, r, s)  # default ID -> Tongsuo (C)
    assert sm2_verify_digest(kat_key, bytes.fromhex(KAT["e"]), r, s)  # hand-written path
    spki = public_key_info_from_point("sm2p256v1", kat_key.point)
    sig = raw_to_der(bytes.fromhex(KAT["r"]) + bytes.fromhex(KAT["s"]))
    assert verify_signature(spki, algorithm("sm2-sm3"), msg, sig)


@pytest.mark.parametrize("twin", KAT["invalid"], ids=lambda t: t["why"])
def test_failing_twins_are_rejected(kat_key, twin):
    msg = bytes.fromhex(twin.get("message", KAT["message"]))
    r = int(twin.get("r", KAT["r"]), 16)
    s = int(twin.get("s", KAT["s"]), 16)
    uid = bytes.fromhex(twin.get("user_id", KAT["user_id"]))
    assert not sm2_verify(kat_key, msg, r, s, uid)


def test_points_off_the_curve_are_refused(kat_key):
    with pytest.raises(ValueError):
        SM2PublicKey(kat_key.x, (kat_key.y + 1) % P)
    with pytest.raises(ValueError):
        SM2PublicKey.from_point(b"\x02" + kat_key.point[1:33])  # compressed form is not GM/T 0009
    with pytest.raises(ValueError):
        SM2PublicKey(P, 0)


def test_spki_round_trip_and_named_curve(kat_key):
    spki = public_key_info_from_point("sm2p256v1", kat_key.point)
    # id-ecPublicKey with the SM2 curve OID (GM/T 0015): 06 08 2A 81 1C CF 55 01 82 2D
    assert bytes.fromhex("06082a811ccf5501822d") in spki
    assert point_from_public_key_info(spki) == ("sm2p256v1", kat_key.point)


@pytest.mark.parametrize("vector", json.loads((VECTORS / "sm2_sig_malformed.json").read_text())["vectors"],
                         ids=lambda v: v["why"])
def test_malformed_der_signatures_are_refused(kat_key, vector):
    with pytest.raises(ValueError):
        der_to_raw(bytes.fromhex(vector["der"]))
    spki = public_key_info_from_point("sm2p256v1", kat_key.point)
    assert not verify_signature(spki, algorithm("sm2-sm3"), bytes.fromhex(KAT["message"]),
                                bytes.fromhex(vector["der"]))


def test_der_raw_round_trip_keeps_leading_zeros():
    raw = bytes(31) + b"\x01" + (N - 1).to_bytes(32, "big")
    assert der_to_raw(raw_to_der(raw)) == raw


def test_ecdsa_verification_goes_through_cryptography():
    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign(b"data", ec.ECDSA(hashes.SHA256()))
    from cryptography.hazmat.primitives import serialization
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    assert verify_signature(spki, algorithm("ecdsa-sha256"), b"data", sig)
    assert not verify_signature(spki, algorithm("ecdsa-sha256"), b"datA", sig)
    assert not verify_signature(spki, algorithm("sm2-sm3"), b"data", sig)


def test_hand_written_der_matches_asn1crypto():
    import secrets as _secrets

    from asn1crypto.algos import DSASignature
    samples = [bytes(64), b"\x80" * 64, b"\x00" * 31 + b"\x80" + b"\x7f" * 32]
    samples += [_secrets.token_bytes(n) for n in (64, 96, 132) for _ in range(300)]
    for raw in samples:
        if not any(raw[:len(raw) // 2]) or not any(raw[len(raw) // 2:]):
            expected = DSASignature({"r": int.from_bytes(raw[:len(raw) // 2], "big"),
                                     "s": int.from_bytes(raw[len(raw) // 2:], "big")}).dump()
        else:
            expected = DSASignature.from_p1363(raw).dump()
        assert raw_to_der(raw) == expected
