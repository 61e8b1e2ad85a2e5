"""One-time passwords: HOTP (RFC 4226 §5) and TOTP (RFC 6238 §4), the officers' second factor.

Secrets are random 160-bit keys (RFC 4226 §4 R6), shown once as base32 in an ``otpauth://`` URI (the
Key Uri Format that authenticator apps read). The codes and the URI come from ``cryptography``'s
``twofactor`` HOTP/TOTP; ``verify`` accepts the current time step and one step either side (RFC 6238
§5.2 network delay) and returns the step that matched, so the caller can refuse a code whose step is
not later than the last one used (no replay within the window) — the one part cryptography leaves to us.
"""
from __future__ import annotations

import base64
import hmac
import secrets
import time

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.hotp import HOTP
from cryptography.hazmat.primitives.twofactor.totp import TOTP

DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha512": hashes.SHA512}
STEP = 30           # RFC 6238 X, seconds
DIGITS = 6
WINDOW = 1          # steps accepted either side of now


def new_secret(nbytes: int = 20) -> str:
    """A fresh TOTP key as unpadded base32 (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(nbytes)).decode("ascii").rstrip("=")


def secret_bytes(secret_b32: str) -> bytes:
    text = secret_b32.strip().replace(" ", "").upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, digest: str = "sha1") -> str:
    """RFC 4226 §5.3 (HMAC over the 8-byte counter, dynamic truncation, modulo 10^digits), by cryptography."""
    return HOTP(key, digits, DIGESTS[digest](), enforce_key_length=False).generate(counter).decode("ascii")


def time_step(at: float | None = None, step: int = STEP) -> int:
    """RFC 6238 §4.2: T = floor((now - T0) / X) with T0 = 0."""
    return int((time.time() if at is None else at) // step)


def totp(key: bytes, at: float | None = None, *, digits: int = DIGITS, digest: str = "sha1", step: int = STEP) -> str:
    return hotp(key, time_step(at, step), digits, digest)


def verify(key: bytes, code: str, at: float | None = None, *, window: int = WINDOW, digits: int = DIGITS,
           digest: str = "sha1", step: int = STEP) -> int | None:
    """The time step ``code`` is valid for (now +- ``window`` steps), or None. Constant-time compares."""
    code = (code or "").strip()
    if len(code) != digits or not code.isdigit():
        return None
    now = time_step(at, step)
    found = None
    for candidate in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(key, candidate, digits, digest), code):
            found = candidate
    return found


def provisioning_uri(secret_b32: str, account: str, issuer: str = "RA Centre") -> str:
    """``otpauth://totp/Issuer:account?secret=...&issuer=...`` for an authenticator app (QR code)."""
    return TOTP(secret_bytes(secret_b32), DIGITS, hashes.SHA1(), STEP,
                enforce_key_length=False).get_provisioning_uri(account, issuer)
