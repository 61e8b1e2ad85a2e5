"""pkicore SM2 plumbing against the GB/T 32918 known answer and its failing twins."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from pkicore import (algorithm, der_to_raw, point_from_public_key_info, public_key_info_from_point, raw_to_der,
                     sm2_e, sm2_verify, sm2_verify_digest, sm2_z, verify_signature)
from pkicore import sm2 as sm2_module
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


@pytest.fixture(params=["precomputed", "evp"])
def verifier(request, monkeypatch):
    """sm2_verify with Tongsuo's EC arithmetic over precomputed tables, and without (tongsuopy's EVP
    verification for the default ID, the hand-written one for others)."""
    if request.param == "precomputed":
        assert sm2_module._FAST is not None, "tongsuopy's library lacks the EC entry points"
    else:
        monkeypatch.setattr(sm2_module, "_FAST", None)
    return request.param


def test_standard_signature_verifies_through_tongsuo_and_by_hand(kat_key, verifier):
    msg, r, s = bytes.fromhex(KAT["message"]), int(KAT["r"], 16), int(KAT["s"], 16)
    assert sm2_verify(kat_key, msg, r, s)  # default ID -> Tongsuo (C)
    assert sm2_verify_digest(kat_key, bytes.fromhex(KAT["e"]), r, s)  # hand-written path
    spki = public_key_info_from_point("sm2p256v1", kat_key.point)
    sig = raw_to_der(bytes.fromhex(KAT["r"]) + bytes.fromhex(KAT["s"]))
    assert verify_signature(spki, algorithm("sm2-sm3"), msg, sig)


@pytest.mark.parametrize("twin", KAT["invalid"], ids=lambda t: t["why"])
def test_failing_twins_are_rejected(kat_key, twin, verifier):
    msg = bytes.fromhex(twin.get("message", KAT["message"]))
    r = int(twin.get("r", KAT["r"]), 16)
    s = int(twin.get("s", KAT["s"]), 16)
    uid = bytes.fromhex(twin.get("user_id", KAT["user_id"]))
    assert not sm2_verify(kat_key, msg, r, s, uid)


@pytest.mark.parametrize("tables", [128, 0], ids=["key-tables", "no-key-tables"])
def test_precomputed_verification_agrees_with_tongsuo_evp_and_by_hand(tables, monkeypatch):
    """Signatures made by Tongsuo (tongsuopy's own SM2 signing, default ID) with fresh keys: the
    precomputed path — with the key's own table (from its second verification on) and without (its first,
    or no tables kept) — accepts exactly what tongsuopy's EVP_DigestVerify and the hand-written B1-B7
    accept: the signature, and never a changed message, r, s, key or ID, nor edge values (t = 0, r or s of
    0 or n)."""
    from tongsuopy.crypto import hashes as ts_hashes
    from tongsuopy.crypto.asymciphers import ec as ts_ec
    from tongsuopy.crypto.exceptions import InvalidSignature

    assert sm2_module._FAST is not None
    fast = sm2_module._FastVerifier(tables=tables)
    monkeypatch.setattr(sm2_module, "_FAST", fast)
    other = ts_ec.generate_private_key(ts_ec.SM2()).public_key().public_numbers()
    other_key = SM2PublicKey(other.x, other.y)
    for i in range(12):
        private = ts_ec.generate_private_key(ts_ec.SM2())
        numbers = private.public_key().public_numbers()
        key = SM2PublicKey(numbers.x, numbers.y)
        msg = bytes([i]) * (i * 7 + 1)
        der = private.sign(msg, ts_ec.ECDSA(ts_hashes.SM3()))
        r, s = der_to_raw(der)[:32], der_to_raw(der)[32:]
        r, s = int.from_bytes(r, "big"), int.from_bytes(s, "big")
        cases = [(key, msg, r, s, sm2_module.DEFAULT_USER_ID, True),
                 (key, msg + b"x", r, s, sm2_module.DEFAULT_USER_ID, False),
                 (key, msg, (r + 1) % N, s, sm2_module.DEFAULT_USER_ID, False),
                 (key, msg, r, (s + 1) % N or 1, sm2_module.DEFAULT_USER_ID, False),
                 (key, msg, r, N - r, sm2_module.DEFAULT_USER_ID, False),          # t = 0 (B5)
                 (key, msg, r, N, sm2_module.DEFAULT_USER_ID, False),
                 (key, msg, 0, s, sm2_module.DEFAULT_USER_ID, False),
                 (other_key, msg, r, s, sm2_module.DEFAULT_USER_ID, False),
                 (key, msg, r, s, b"another id", False)]
        for pub, m, rr, ss, uid, expected in cases:
            assert sm2_verify(pub, m, rr, ss, uid) is expected
            assert sm2_verify_digest(pub, sm2_e(pub, m, uid), rr, ss) is expected
            if uid == sm2_module.DEFAULT_USER_ID and 1 <= rr < N and 1 <= ss < N:
                try:
                    sm2_module._tongsuo_key(pub.x, pub.y).verify(raw_to_der(rr.to_bytes(32, "big") + ss.to_bytes(32, "big")),
                                                                m, ts_ec.ECDSA(ts_hashes.SM3()))
                    evp = True
                except InvalidSignature:
                    evp = False
                assert evp is expected
        assert (fast._keys[(key.x, key.y)].table is not None) is bool(tables)


def test_points_off_the_curve_are_refused(kat_key):
    with pytest.raises(ValueError):
        SM2PublicKey(kat_key.x, (kat_key.y + 1) % P)
    with pytest.raises(ValueError):
        SM2PublicKey.from_point(b"\x02" + kat_key.point[1:33])  # compressed form is not GM/T 0009
    with pytest.raises(ValueError):
        SM2PublicKey(P, 0)
    with pytest.raises(ValueError):          # Tongsuo refuses it too (the key's table is never made)
        sm2_module._FAST.table(kat_key.x, (kat_key.y + 1) % P)
    with pytest.raises(ValueError):
        sm2_module._FAST._key((kat_key.x, (kat_key.y + 1) % P))


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


def test_key_tables_are_kept_for_the_last_keys_only(monkeypatch):
    """Beyond ``tables`` keys the oldest table goes (its key verifies without one until seen again)."""
    from tongsuopy.crypto import hashes as ts_hashes
    from tongsuopy.crypto.asymciphers import ec as ts_ec

    fast = sm2_module._FastVerifier(tables=2)
    monkeypatch.setattr(sm2_module, "_FAST", fast)
    signed = []
    for _ in range(3):
        private = ts_ec.generate_private_key(ts_ec.SM2())
        numbers = private.public_key().public_numbers()
        raw = der_to_raw(private.sign(b"m", ts_ec.ECDSA(ts_hashes.SM3())))
        signed.append((SM2PublicKey(numbers.x, numbers.y), int.from_bytes(raw[:32], "big"),
                       int.from_bytes(raw[32:], "big")))
    for key, r, s in signed * 2:
        assert sm2_verify(key, b"m", r, s) and not sm2_verify(key, b"n", r, s)
    assert [xy for xy in fast._tables] == [(k.x, k.y) for k, _, _ in signed[1:]]
    assert fast._keys[(signed[0][0].x, signed[0][0].y)].table is None
    assert sm2_verify(signed[0][0], b"m", *signed[0][1:]) and not sm2_verify(signed[0][0], b"m", signed[0][1], 1)


@pytest.mark.parametrize("answer", [True, False], ids=["accepts-anything", "refuses-everything"])
def test_a_precomputed_verifier_that_disagrees_with_tongsuo_is_not_used(monkeypatch, answer):
    """pkicore.sm2._fast_verifier checks the verifier against a signature tongsuopy makes (and its changed
    twin) before it is used; one that gets either wrong is dropped for tongsuopy's EVP verification."""
    assert sm2_module._fast_verifier() is not None
    monkeypatch.setattr(sm2_module._FastVerifier, "verify", lambda self, key, e, r, s: answer)
    assert sm2_module._fast_verifier() is None
