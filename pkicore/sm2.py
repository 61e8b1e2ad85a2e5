"""SM2 public-key plumbing: curve, Z value and signature verification (GB/T 32918.2, GB/T 35276 §8).

Only public-key operations live here; signing and decryption happen in the HSM (``hsm/``).

* ``sm2_z``/``sm2_e``: the user-identity hash ZA (GB/T 32918.2 §5.5) and e = SM3(ZA || M) (§6.1 A1-A2).
  Written by hand: no maintained Python library exposes ZA.
* ``sm2_verify``: with the default user ID the C-backed Tongsuo SDK (tongsuopy) verifies at OpenSSL
  speed. Tongsuopy cannot take another ID or a precomputed digest, so ``sm2_verify_digest`` is a
  hand-written verifier (GB/T 32918.2 §7.1, B1-B7) over public data only; it is slower (milliseconds)
  and is used for non-default IDs and known-answer tests.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from tongsuopy.crypto import hashes as _ts_hashes
from tongsuopy.crypto.asymciphers import ec as _ts_ec
from tongsuopy.crypto.exceptions import InvalidSignature as _TsInvalidSignature

from pkicore.signatures import raw_to_der

DEFAULT_USER_ID = b"1234567812345678"
"""GB/T 35276 §8 / GM/T 0009 default signer ID (ENTL = 0x0080)."""

# GB/T 32918.5 recommended curve parameters (sm2p256v1)
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0


def sm3(data: bytes) -> bytes:
    """SM3 (GB/T 32905) through OpenSSL's default provider via hashlib."""
    return hashlib.new("sm3", data).digest()


def _b32(v: int) -> bytes:
    return v.to_bytes(32, "big")


@dataclass(frozen=True)
class SM2PublicKey:
    """An SM2 public point, validated on construction (GB/T 32918.1 §6.2.1, steps a-c)."""

    x: int
    y: int

    def __post_init__(self):
        if not (0 <= self.x < P and 0 <= self.y < P):
            raise ValueError("SM2 public key coordinates out of range")
        if (self.y * self.y - (self.x ** 3 + A * self.x + B)) % P != 0:
            raise ValueError("SM2 public key is not on the curve")

    @classmethod
    def from_point(cls, point: bytes) -> "SM2PublicKey":
        """Decode an uncompressed SEC1 point 04 || X || Y (the only form GM/T 0009 uses)."""
        if len(point) != 65 or point[0] != 4:
            raise ValueError("SM2 public key must be an uncompressed point of 65 bytes")
        return cls(int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))

    @property
    def point(self) -> bytes:
        return b"\x04" + _b32(self.x) + _b32(self.y)


def sm2_z(public_key: SM2PublicKey, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA)  (GB/T 32918.2 §5.5)."""
    bits = len(user_id) * 8
    if bits > 0xFFFF:
        raise ValueError("SM2 user ID too long")
    return sm3(bits.to_bytes(2, "big") + user_id + _b32(A) + _b32(B) + _b32(GX) + _b32(GY)
               + _b32(public_key.x) + _b32(public_key.y))


def sm2_e(public_key: SM2PublicKey, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """e = SM3(ZA || M), the value that SM2 actually signs (GB/T 32918.2 §6.1 A1-A2)."""
    return sm3(sm2_z(public_key, user_id) + message)


# --- hand-written verification over Jacobian coordinates (public data only, no secrets) ---

def _jadd(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    z1z1, z2z2 = z1 * z1 % P, z2 * z2 % P
    u1, u2 = x1 * z2z2 % P, x2 * z1z1 % P
    s1, s2 = y1 * z2 * z2z2 % P, y2 * z1 * z1z1 % P
    if u1 == u2:
        if s1 != s2:
            return None
        return _jdouble(p1)
    h, r = (u2 - u1) % P, (s2 - s1) % P
    hh = h * h % P
    hhh = h * hh % P
    v = u1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - s1 * hhh) % P
    return x3, y3, h * z1 * z2 % P


def _jdouble(p1):
    if p1 is None:
        return None
    x, y, z = p1
    if y == 0:
        return None
    yy = y * y % P
    s = 4 * x * yy % P
    zz = z * z % P
    m = (3 * x * x + A * zz * zz) % P
    x3 = (m * m - 2 * s) % P
    return x3, (m * (s - x3) - 8 * yy * yy) % P, 2 * y * z % P


def _jmul(k: int, pt):
    acc = None
    for bit in bin(k)[2:]:
        acc = _jdouble(acc)
        if bit == "1":
            acc = _jadd(acc, pt)
    return acc


def sm2_verify_digest(public_key: SM2PublicKey, e: bytes, r: int, s: int) -> bool:
    """Verify (r, s) over a given 32-byte e (GB/T 32918.2 §7.1, steps B1-B7)."""
    if len(e) != 32 or not (1 <= r < N and 1 <= s < N):
        return False
    t = (r + s) % N
    if t == 0:
        return False
    pt = _jadd(_jmul(s, (GX, GY, 1)), _jmul(t, (public_key.x, public_key.y, 1)))
    if pt is None:
        return False
    x, _, z = pt
    x1 = x * pow(z * z % P, -1, P) % P
    return (int.from_bytes(e, "big") + x1) % N == r


@functools.lru_cache(maxsize=1024)
def _tongsuo_key(x: int, y: int):
    """Tongsuo's public key object for (x, y), made once (loading a point costs more than a verification)."""
    return _ts_ec.EllipticCurvePublicNumbers(x, y, _ts_ec.SM2()).public_key()


def sm2_verify(public_key: SM2PublicKey, message: bytes, r: int, s: int,
               user_id: bytes = DEFAULT_USER_ID) -> bool:
    """Verify an SM2-with-SM3 signature (r, s) over ``message`` for ``user_id``."""
    if not (1 <= r < N and 1 <= s < N):
        return False
    if user_id != DEFAULT_USER_ID:
        return sm2_verify_digest(public_key, sm2_e(public_key, message, user_id), r, s)
    try:
        _tongsuo_key(public_key.x, public_key.y).verify(raw_to_der(_b32(r) + _b32(s)), message, _ts_ec.ECDSA(_ts_hashes.SM3()))
    except _TsInvalidSignature:
        return False
    return True
