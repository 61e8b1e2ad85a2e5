"""pkicore.envelope: SM2Cipher, SM2EnvelopedKey and GM/T 0010 SignedAndEnvelopedData round trips, strict
parsing (non-DER, off-curve points, wrong sizes) and signature verdicts."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import core

from pkicore.envelope import (GmContentInfo, Party, SM2Cipher, build_signed_and_enveloped, build_sm2_cipher,
                              build_sm2_enveloped_key, parse_signed_and_enveloped, parse_sm2_cipher,
                              parse_sm2_enveloped_key, signed_content, verify_signed_and_enveloped)
from pkicore.oids import OID
from pkicore.sm2 import GX, GY
from asn1crypto import x509


def _point_g() -> bytes:
    return b"\x04" + GX.to_bytes(32, "big") + GY.to_bytes(32, "big")


def _cipher() -> bytes:
    return build_sm2_cipher(GX, GY, secrets.token_bytes(32), secrets.token_bytes(16))


def test_sm2_cipher_round_trip_and_raw_order():
    der = _cipher()
    parts = parse_sm2_cipher(der)
    assert (parts.x, parts.y) == (GX, GY) and len(parts.c2) == 16
    raw = parts.raw_c1c3c2()
    assert raw[:65] == _point_g() and raw[65:97] == parts.c3 and raw[97:] == parts.c2


def test_sm2_cipher_refuses_bad_input():
    with pytest.raises(ValueError):
        parse_sm2_cipher(build_sm2_cipher(GX, GY + 1, bytes(32), b"x"))        # C1 off the curve
    with pytest.raises(ValueError):
        parse_sm2_cipher(build_sm2_cipher(GX, GY, bytes(31), b"x"))            # C3 not 32 bytes
    der = _cipher()
    with pytest.raises(ValueError):
        parse_sm2_cipher(der + b"\x00")                                         # trailing data
    ber = b"\x30\x81" + der[1:2] + der[2:]                                     # long-form length: not DER
    with pytest.raises(ValueError):
        parse_sm2_cipher(ber)


def test_enveloped_key_round_trip():
    cipher, enc = _cipher(), secrets.token_bytes(32)
    der = build_sm2_enveloped_key(cipher, _point_g(), enc)
    env = parse_sm2_enveloped_key(der)
    assert env.sym_algorithm == OID.SM4_ECB and env.sym_encrypted_key == cipher
    assert env.public_point == _point_g() and env.encrypted_private_key == enc
    # BIT STRINGs with no unused bits
    assert b"\x03\x42\x00\x04" in der and b"\x03\x21\x00" in der


def test_enveloped_key_refuses_wrong_sizes():
    with pytest.raises(ValueError):
        build_sm2_enveloped_key(_cipher(), _point_g(), bytes(16))
    with pytest.raises(ValueError):
        build_sm2_enveloped_key(_cipher(), b"\x04" + bytes(64), bytes(32))
    with pytest.raises(ValueError):
        parse_sm2_enveloped_key(b"\x30\x00")


def _party(serial=7) -> Party:
    return Party(x509.Name.build({"common_name": "Recipient CA"}), serial)


def _sed(sign=lambda data: b"\x30\x06\x02\x01\x01\x02\x01\x01", **kw) -> bytes:
    return build_signed_and_enveloped(recipient=_party(), encrypted_key=_cipher(), encrypted_content=bytes(32),
                                      signer=_party(9), sign=sign, **kw)


def test_signed_and_enveloped_round_trip():
    seen = []
    der = _sed(sign=lambda data: seen.append(data) or b"\x30\x06\x02\x01\x01\x02\x01\x01")
    env = parse_signed_and_enveloped(der)
    assert env.recipient.serial == 7 and env.signer.serial == 9
    assert env.digest_algorithm == OID.SM3 and env.signature_algorithm == OID.SM2_SIGN
    assert env.cipher == OID.SM4_ECB and env.content_type == OID.GMT_DATA
    assert seen == [signed_content(env)] == [bytes(32)]


def test_content_info_wrapping():
    der = _sed(content_info=True)
    ci = GmContentInfo.load(der)
    assert ci["content_type"].dotted == OID.GMT_SIGNED_AND_ENVELOPED_DATA
    assert parse_signed_and_enveloped(der).recipient.serial == 7
    wrong = der.replace(bytes.fromhex("060a2a811ccf550601040204"), bytes.fromhex("060a2a811ccf550601040202"), 1)
    with pytest.raises(ValueError):
        parse_signed_and_enveloped(wrong)


def test_bad_signature_verdict(softtoken_km):
    key = softtoken_km.generate_key_pair(f"env-{secrets.token_hex(4)}", "sm2")
    der = _sed(sign=lambda data: softtoken_km.sign(key.label, data))
    assert verify_signed_and_enveloped(der, key.public_key_info).ok
    other = softtoken_km.generate_key_pair(f"env-{secrets.token_hex(4)}", "sm2")
    verdict = verify_signed_and_enveloped(der, other.public_key_info)
    assert not verdict.ok and verdict.reasons == ("signature does not verify",)
    assert not verify_signed_and_enveloped(der[:-1], key.public_key_info).ok
    softtoken_km.delete_key(key.label)
    softtoken_km.delete_key(other.label)


def test_malformed_signed_and_enveloped_refused():
    for bad in (b"", b"\x30\x00", b"\x30\x03\x02\x01\x01"):
        with pytest.raises(ValueError):
            parse_signed_and_enveloped(bad)
    assert SM2Cipher  # spec exported for reuse


@pytest.mark.parametrize("content_info", [False, True])
@pytest.mark.parametrize("content_len", [32, 200, 70_000])
def test_direct_encoding_equals_asn1crypto_reference(content_info, content_len):
    """build_signed_and_enveloped concatenates DER directly (the KMC's hot path); it must give exactly
    the bytes asn1crypto's object tree gives, for short and long (multi-byte length) contents and big
    serial numbers, and the result must pass the strict parser."""
    from pkicore.envelope import _signed_and_enveloped_asn1
    recipient = Party(x509.Name.build({"common_name": "收件人 " * 30, "organization_name": "某市政务"}),
                      2 ** 159 + secrets.randbelow(2 ** 100))
    signer = Party(x509.Name.build({"common_name": "KMC"}), 1)
    key, content = _cipher(), secrets.token_bytes(content_len)
    sig = bytes.fromhex("3045022100") + secrets.token_bytes(32) + bytes.fromhex("0220") + secrets.token_bytes(32)
    fast = build_signed_and_enveloped(recipient=recipient, encrypted_key=key, encrypted_content=content,
                                      signer=signer, sign=lambda data: sig, content_info=content_info)
    reference = _signed_and_enveloped_asn1(recipient, key, content, signer, sig, (), OID.GMT_DATA, OID.SM4_ECB,
                                           content_info)
    assert fast == reference
    env = parse_signed_and_enveloped(fast)
    assert env.recipient.serial == recipient.serial and env.signer.serial == 1
    assert env.encrypted_content == content and env.signature == sig and env.encrypted_key == key
    # a Party's memoised encoding is its IssuerAndSerialNumber
    assert recipient.dump() == recipient.asn1().dump()
    for serial in (0, 1, 127, 128, 255, 2 ** 63, 2 ** 64 - 1):
        for issuer in (recipient.issuer, x509.Name.load(recipient.issuer.dump())):
            party = Party(issuer, serial)
            assert party.dump() == party.asn1().dump()


def test_enveloped_key_direct_encoding_equals_asn1crypto_reference():
    from pkicore.envelope import _sm2_enveloped_key_asn1
    for _ in range(5):
        cipher, enc = _cipher(), secrets.token_bytes(32)
        der = build_sm2_enveloped_key(cipher, _point_g(), enc)
        assert der == _sm2_enveloped_key_asn1(cipher, _point_g(), enc)
        env = parse_sm2_enveloped_key(der)
        assert (env.sym_encrypted_key, env.public_point, env.encrypted_private_key) == (cipher, _point_g(), enc)
