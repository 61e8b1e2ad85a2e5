"""One MAC (issue 16 §2): ``KeyManager.mac`` is SM4-CMAC (NIST SP 800-38B) computed by the HSM, equal to
an independent CMAC (pyca/cryptography) for a key of known value, at every message-length boundary; the
sealed-secret box (tests/unit/console/test_secretbox.py) and the KMC archive (tests/unit/kms/test_escrow.py)
both use it."""
from __future__ import annotations

import secrets

from cryptography.hazmat.primitives import cmac as crypto_cmac
from cryptography.hazmat.primitives.ciphers import algorithms


def _known_key(km, value: bytes) -> str:
    """An SM4 key of known value in the HSM: encrypted under a throw-away HSM key, then unwrapped."""
    kek = f"mac-kek-{secrets.token_hex(4)}"
    km.generate_secret_key(kek, "sm4")
    label = f"mac-known-{secrets.token_hex(4)}"
    km.unwrap(kek, km.encrypt(kek, value, "sm4-ecb"), "sm4-ecb", label=label, algorithm="sm4")
    return label


def _reference(key: bytes, message: bytes) -> bytes:
    c = crypto_cmac.CMAC(algorithms.SM4(key))
    c.update(message)
    return c.finalize()


def test_mac_is_sm4_cmac(softtoken_km):
    key = secrets.token_bytes(16)
    label = _known_key(softtoken_km, key)
    for length in (0, 1, 15, 16, 17, 31, 32, 33, 64, 100):
        message = secrets.token_bytes(length)
        assert softtoken_km.mac(label, message) == _reference(key, message), length

