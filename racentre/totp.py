"""One-time passwords: HOTP (RFC 4226 §5) and TOTP (RFC 6238 §4), the officers' second factor.

Secrets are random 160-bit keys (RFC 4226 §4 R6), shown once as base32 in an ``otpauth://`` URI (the
Key Uri Format that authenticator apps read). ``verify`` accepts the current time step and one step
either side (RFC 6238 §5.2 network delay) and returns the step that matched, so the caller can refuse
a code whose step is not later than the last one used (no replay within the window).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}
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
    """RFC 4226 §5.3: HMAC over the 8-byte counter, dynamic truncation, modulo 10^digits."""
    mac = hmac.new(key, struct.pack(">Q", counter), DIGESTS[digest]).digest()
    offset = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % (10 ** digits)
    return str(code).zfill(digits)


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
    label = quote(f"{issuer}:{account}")
    query = urlencode({"secret": secret_b32, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS,
                       "period": STEP})
    return f"otpauth://totp/{label}?{query}"
