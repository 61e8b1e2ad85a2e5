"""racentre.secretbox over the software token: SM4-CBC + SM4-CMAC sealed boxes checked by independent
code (cryptography's SM4 and CMAC over keys of known value imported into the HSM), a fresh IV per record,
and every kind of tampering refused: a changed byte anywhere, another context, other keys, truncation."""
from __future__ import annotations

import secrets

import pytest
from cryptography.hazmat.primitives import cmac as crypto_cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from racentre.secretbox import BLOCK, SecretBox, SecretBoxError, cmac


def _label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _sm4_ecb(key: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def _sm4_cbc(key: bytes, iv: bytes, data: bytes, *, decrypt: bool = False) -> bytes:
    cipher = Cipher(algorithms.SM4(key), modes.CBC(iv))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def _reference_cmac(key: bytes, message: bytes) -> bytes:
    c = crypto_cmac.CMAC(algorithms.SM4(key))
    c.update(message)
    return c.finalize()


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 32, 33, 100])
def test_cmac_matches_an_independent_implementation(length):
    key, message = secrets.token_bytes(16), secrets.token_bytes(length)
    ours = cmac(lambda: _sm4_ecb(key, bytes(16)), lambda d: _sm4_cbc(key, bytes(16), d), message)
    assert ours == _reference_cmac(key, message)


def _import_known_key(km, value: bytes) -> str:
    """An SM4 key of known value in the HSM: encrypted under a throw-away HSM key, then unwrapped."""
    kek = _label("box-kek")
    km.generate_secret_key(kek, "sm4")
    label = _label("box-known")
    km.unwrap(kek, km.encrypt(kek, value, "sm4-ecb"), "sm4-ecb", label=label, algorithm="sm4")
    return label


def test_box_is_sm4_cbc_then_sm4_cmac(softtoken_km):
    km = softtoken_km
    k_enc, k_mac = secrets.token_bytes(16), secrets.token_bytes(16)
    box = SecretBox(km, _import_known_key(km, k_enc), _import_known_key(km, k_mac))
    secret = secrets.token_bytes(20)
    sealed = box.seal(secret, b"wang")
    assert sealed[0] == 1 and len(sealed) == 1 + 16 + 32 + 16
    iv, ciphertext, tag = sealed[1:17], sealed[17:-16], sealed[-16:]
    padded = _sm4_cbc(k_enc, iv, ciphertext, decrypt=True)
    assert padded == secret + bytes([12]) * 12
    message = b"racentre-secretbox-v1" + (4).to_bytes(2, "big") + b"wang" + b"\x01" + iv + ciphertext
    assert tag == _reference_cmac(k_mac, message)
    assert box.open(sealed, b"wang") == secret


def test_fresh_iv_and_tampering_refused(softtoken_km):
    box = SecretBox(softtoken_km, _label("box-enc"), _label("box-mac"))     # keys made on first use
    secret = secrets.token_bytes(20)
    first, second = box.seal(secret, b"li"), box.seal(secret, b"li")
    assert first[1:17] != second[1:17] and first[17:] != second[17:]
    assert box.open(first, b"li") == box.open(second, b"li") == secret
    for index in (0, 1, 16, 17, 40, len(first) - 1):                     # version, IV, ciphertext, tag
        changed = bytearray(first)
        changed[index] ^= 0x01
        with pytest.raises(SecretBoxError):
            box.open(bytes(changed), b"li")
    with pytest.raises(SecretBoxError, match="integrity"):
        box.open(first, b"wang")                                         # copied to another account
    with pytest.raises(SecretBoxError):
        box.open(first[:-BLOCK], b"li")
    with pytest.raises(SecretBoxError):
        box.open(b"", b"li")
    other = SecretBox(softtoken_km, _label("box-enc"), _label("box-mac"))
    with pytest.raises(SecretBoxError, match="integrity"):
        other.open(first, b"li")
    # the keys live in the HSM, sensitive and not extractable
    info = softtoken_km.find_key(box.enc_label)
    assert info.algorithm == "sm4" and info.sensitive and not info.extractable
