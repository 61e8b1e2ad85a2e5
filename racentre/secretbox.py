"""Small secrets at rest (officers' TOTP keys) sealed under two HSM keys: SM4-CBC (GB/T 32907) then an
SM4-CMAC tag (NIST SP 800-38B), encrypt-then-MAC, every SM4 operation done by the HSM (hsm.KeyManager).

Construction, version 1, for a secret P bound to a context A (e.g. the officer account's name)::

    IV  = 16 bytes from the HSM's generator (C_GenerateRandom), fresh for every record
    C   = SM4-CBC(K_enc, IV, PKCS#7-pad(P))                      HSM mechanism "sm4-cbc"
    M   = "racentre-secretbox-v1" || len(A) as 2 bytes || A || 0x01 || IV || C
    T   = SM4-CMAC(K_mac, M)                                     16 bytes
    box = 0x01 || IV || C || T

K_enc and K_mac are two different SM4 keys generated in the HSM (sensitive, never extractable), made by
``racentre setup`` (``ensure_keys``), else on first use under the key manager's creation lock.
SM4-CMAC is ``KeyManager.mac`` (hsm.cmac), on the HSM's SM4: L = SM4-ECB(K_mac, 0^128)
gives the subkeys K1, K2 (SP 800-38B §6.1; they live in memory for one computation only) and T is the last
block of SM4-CBC(K_mac, IV = 0^128, M*), where M* is M with its last block XORed with K1 when complete, or
padded with 10...0 and XORed with K2 (§6.2). ``open`` recomputes T and compares it in constant time before
anything is decrypted, so a modified box, a box copied to another account (A differs) or one sealed under
other keys is refused with SecretBoxError, and the CBC padding is never checked on unauthenticated data.
"""
from __future__ import annotations

import hmac
import struct
import threading

from hsm.cmac import BLOCK, cmac  # noqa: F401 - cmac: re-exported (the construction KeyManager.mac runs)
from pkicore.errors import ErrorCode, PkiError

VERSION = 1
_DOMAIN = b"racentre-secretbox-v1"


class SecretBoxError(PkiError):
    """A sealed secret failed its integrity check or is malformed."""

    code = ErrorCode.INTERNAL


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    n = data[-1] if data else 0
    if not 1 <= n <= BLOCK or data[-n:] != bytes([n]) * n:
        raise SecretBoxError("a sealed secret has bad padding")
    return data[:-n]


class SecretBox:
    """Seal and open small secrets with HSM keys ``enc_label`` and ``mac_label`` (SM4 both)."""

    def __init__(self, key_manager, enc_label: str, mac_label: str):
        if enc_label == mac_label:
            raise ValueError("the encryption and the MAC key must differ")
        self.km = key_manager
        self.enc_label, self.mac_label = enc_label, mac_label
        self._ready = False
        self._lock = threading.Lock()

    def ensure_keys(self) -> None:
        """Make both SM4 keys when absent (once for every process and node sharing the HSM: the key
        manager's ``ensure_secret_key`` runs under its creation lock)."""
        if self._ready:
            return
        with self._lock:
            for label in (self.enc_label, self.mac_label):
                self.km.ensure_secret_key(label, "sm4")
            self._ready = True

    def _tag(self, context: bytes, iv: bytes, ciphertext: bytes) -> bytes:
        if len(context) > 0xFFFF:
            raise ValueError("context too long")
        message = _DOMAIN + struct.pack(">H", len(context)) + context + bytes([VERSION]) + iv + ciphertext
        return self.km.mac(self.mac_label, message)

    def seal(self, secret: bytes, context: bytes) -> bytes:
        self.ensure_keys()
        iv = self.km.random(BLOCK)
        ciphertext = self.km.encrypt(self.enc_label, _pad(secret), "sm4-cbc", iv=iv)
        return bytes([VERSION]) + iv + ciphertext + self._tag(context, iv, ciphertext)

    def open(self, box: bytes, context: bytes) -> bytes:
        box = bytes(box or b"")
        if len(box) < 1 + 3 * BLOCK or box[0] != VERSION or (len(box) - 1) % BLOCK:
            raise SecretBoxError("a sealed secret is malformed")
        self.ensure_keys()
        iv, ciphertext, tag = box[1:1 + BLOCK], box[1 + BLOCK:-BLOCK], box[-BLOCK:]
        if not hmac.compare_digest(self._tag(context, iv, ciphertext), tag):
            raise SecretBoxError("a sealed secret failed its integrity check")
        return _unpad(self.km.decrypt(self.enc_label, ciphertext, "sm4-cbc", iv=iv))
