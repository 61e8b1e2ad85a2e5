"""Password hashing with a memory-hard KDF: scrypt (RFC 7914) at N=2^17, r=8, p=1 (128 MiB, the OWASP
recommendation), 16-byte random salt, 32-byte output, stored in a PHC-style string that carries its
parameters (``$scrypt$ln=17,r=8,p=1$<salt>$<hash>``) so they can be raised later without breaking
old hashes (``needs_rehash``).

zxcvbn (~12 MiB of dictionaries) is imported by the first strength check, not with this module: a serving
worker that sets no password does not carry it (tests/unit/test_worker_footprint.py).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Iterable

LOG_N, R, P = 17, 8, 1
DKLEN = 32
MAXMEM = 256 * 1024 * 1024
MIN_LENGTH = 12
MAX_LENGTH = 1024
MIN_SCORE = 3           # zxcvbn's 0..4; 3 = "safely unguessable" (~10^10 guesses)
SCORED_PREFIX = 100     # zxcvbn's cost grows with length: score the first 100 characters


class WeakPassword(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _kdf(password: str, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2 ** log_n, r=r, p=p, maxmem=MAXMEM, dklen=DKLEN)


def check_strength(password: str, user_inputs: Iterable[str] = ()) -> None:
    """NIST SP 800-63B §5.1.1.2: at least 12 characters (it asks 8), no composition rules, and refuse what
    is commonly used, expected or compromised — judged by zxcvbn (dictionaries of common passwords,
    names and words, keyboard patterns, repeats, dates; ``user_inputs`` such as the account name count as
    known words): a score below 3 is refused with zxcvbn's own hint."""
    if not isinstance(password, str) or len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")
    from zxcvbn import zxcvbn
    verdict = zxcvbn(password[:SCORED_PREFIX], user_inputs=[u for u in user_inputs if u][:10])
    if verdict["score"] < MIN_SCORE:
        hint = verdict["feedback"].get("warning") or "it is too easy to guess"
        raise WeakPassword(f"password refused: {hint.rstrip('.')} (use a longer passphrase of unrelated words)")


def hash_password(password: str, user_inputs: Iterable[str] = ()) -> str:
    check_strength(password, user_inputs)
    salt = secrets.token_bytes(16)
    return f"$scrypt$ln={LOG_N},r={R},p={P}${_b64(salt)}${_b64(_kdf(password, salt, LOG_N, R, P))}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    _, scheme, params, salt, digest = stored.split("$")
    if scheme != "scrypt":
        raise ValueError("not an scrypt hash")
    values = dict(item.split("=") for item in params.split(","))
    return int(values["ln"]), int(values["r"]), int(values["p"]), _unb64(salt), _unb64(digest)


def verify_password(password: str, stored: str | None) -> bool:
    """Constant-time check; an absent or malformed hash still costs one KDF run (no timing oracle)."""
    try:
        log_n, r, p, salt, digest = _parse(stored or "")
    except (ValueError, KeyError):
        _kdf(password or "", b"\0" * 16, LOG_N, R, P)
        return False
    if not isinstance(password, str) or len(password) > MAX_LENGTH:
        return False
    return hmac.compare_digest(_kdf(password, salt, log_n, r, p), digest)


def dummy_verify(password: str) -> None:
    """The same work as a real check, for unknown user names."""
    verify_password(password, None)


def needs_rehash(stored: str) -> bool:
    try:
        log_n, r, p, _, _ = _parse(stored)
    except (ValueError, KeyError):
        return True
    return (log_n, r, p) != (LOG_N, R, P)
