"""Escrow end to end: key pair generated in the HSM, archived under the KEK, enveloped to the
subscriber's signing key; the subscriber opens the envelope with independent code (own SM2 decryption
with the C3 check, pyca SM4) and finds d with d·G = Q."""
from __future__ import annotations

import pytest
from asn1crypto import keys
from pkcs11 import Attribute

from kms.errors import EscrowConflict, TamperDetected
from kms.escrow import _canonical
from kms.models import EscrowedKey
from pkicore.envelope import (parse_signed_and_enveloped, parse_sm2_enveloped_key,
                              verify_signed_and_enveloped)
from pkicore.sm2 import sm3
from tests.unit.kms.helpers import audit, escrow_one
from tests.unit.kms.subscriber import C3Mismatch, mul, public_point, sm2_decrypt, sm4_ecb_decrypt


def open_enveloped_key(d_sub: int, der: bytes) -> int:
    env = parse_sm2_enveloped_key(der)
    sm4_key = sm2_decrypt(d_sub, env.sym_encrypted_key)
    assert len(sm4_key) == 16
    return int.from_bytes(sm4_ecb_decrypt(sm4_key, env.encrypted_private_key), "big")


def test_escrow_envelope_opens_with_independent_code(escrow, subscriber):
    d_sub, spki_sub = subscriber
    delivery = escrow_one(escrow, spki_sub)
    q = public_point(delivery.public_key_info)
    d = open_enveloped_key(d_sub, delivery.enveloped_key)
    assert 1 <= d < 2 ** 256 and mul(d) == q
    # the signed envelope carries the same key, and its KMC signature verifies
    sed = parse_signed_and_enveloped(delivery.signed_and_enveloped)
    key = sm2_decrypt(d_sub, sed.encrypted_key)
    assert mul(int.from_bytes(sm4_ecb_decrypt(key, sed.encrypted_content), "big")) == q
    check = verify_signed_and_enveloped(delivery.signed_and_enveloped, escrow.public_key_info, escrow.certificate)
    assert check.ok, check.reasons


def test_no_token_copy_remains_and_archive_is_wrapped(escrow, subscriber, softtoken_km):
    delivery = escrow_one(escrow, subscriber[1])
    labels = {k.label for k in softtoken_km.list_keys()}
    prefix = escrow.config.key_prefix
    assert {f"{prefix}-sign", f"{prefix}-mac", f"{prefix}-kek-v1"} <= labels
    assert not [label for label in labels if label.startswith(f"{prefix}-enc") or label.startswith(f"{prefix}-cek")]
    # nor a session copy: the temporary pair and envelope key are session objects, destroyed at once
    seen = softtoken_km.pool.run("listing", lambda pooled: {
        o[Attribute.LABEL] for o in list(pooled.session.get_objects({Attribute.PRIVATE: True}))})
    assert not [label for label in seen if label.startswith(f"{prefix}-enc") or label.startswith(f"{prefix}-cek")]
    with escrow.db() as s:
        row = s.get(EscrowedKey, delivery.key_id)
        assert len(row.wrapped_private_key) == 32 and row.kek_version == 1
        escrow.check_record(row)
    assert audit(escrow, "kms_key", delivery.key_id) == ["kms.key.escrowed"]


def test_duplicate_certificate_refused(escrow, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    with pytest.raises(EscrowConflict):
        escrow_one(escrow, subscriber[1], serial=delivery.user_cert_no)


def test_modified_envelope_is_detected(escrow, subscriber):
    d_sub, spki_sub = subscriber
    delivery = escrow_one(escrow, spki_sub)
    sed = bytearray(delivery.signed_and_enveloped)
    # flip a bit in the encrypted content (last 32 bytes before the signer infos are hard to locate;
    # find the content by value)
    parsed = parse_signed_and_enveloped(bytes(sed))
    at = bytes(sed).index(parsed.encrypted_content)
    sed[at] ^= 1
    check = verify_signed_and_enveloped(bytes(sed), escrow.public_key_info)
    assert not check.ok and "signature does not verify" in check.reasons
    # a modified SM2Cipher in the plain envelope fails the C3 check
    env = bytearray(delivery.enveloped_key)
    parsed_env = parse_sm2_enveloped_key(delivery.enveloped_key)
    c2_at = bytes(env).index(parsed_env.sym_encrypted_key) + len(parsed_env.sym_encrypted_key) - 1
    env[c2_at] ^= 1
    with pytest.raises(C3Mismatch):
        open_enveloped_key(d_sub, bytes(env))


def test_modified_archive_record_is_detected(escrow, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    with escrow.db() as s, s.begin():
        row = s.get(EscrowedKey, delivery.key_id)
        row.status = "revoked"   # edited behind the KMC's back
    with escrow.db() as s:
        with pytest.raises(TamperDetected):
            escrow.check_record(s.get(EscrowedKey, delivery.key_id))
    with pytest.raises(TamperDetected):
        escrow.revoke("ca-test", delivery.user_cert_no, actor="ca")


def test_revocation_marks_archive(escrow, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    escrow.revoke("ca-test", delivery.user_cert_no, actor="ca")
    info = escrow.describe(delivery.key_id)
    assert info["status"] == "revoked"
    assert audit(escrow, "kms_key", delivery.key_id) == ["kms.key.escrowed", "kms.key.revoked"]


def test_public_key_in_delivery_is_sm2(escrow, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    info = keys.PublicKeyInfo.load(delivery.public_key_info)
    assert info["algorithm"]["parameters"].chosen.native == "sm2p256v1"


def test_kmc_archive_rows_carry_the_cmac_and_old_rows_still_verify(escrow, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    with escrow.db() as s, s.begin():
        row = s.get(EscrowedKey, delivery.key_id)
        assert bytes(row.mac) == escrow.km.mac(escrow.mac_label, sm3(_canonical(row)))
        row.mac = escrow._legacy_mac(row)       # as a row written before KeyManager.mac
    with escrow.db() as s:
        escrow.check_record(s.get(EscrowedKey, delivery.key_id))
    with escrow.db() as s, s.begin():
        s.get(EscrowedKey, delivery.key_id).mac = bytes(16)
    with escrow.db() as s, pytest.raises(TamperDetected):
        escrow.check_record(s.get(EscrowedKey, delivery.key_id))
