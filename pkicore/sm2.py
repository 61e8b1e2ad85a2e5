"""SM2 public-key plumbing: curve, Z value and signature verification (GB/T 32918.2, GB/T 35276 §8).

Only public-key operations live here; signing and decryption happen in the HSM (``hsm/``).

* ``sm2_z``/``sm2_e``: the user-identity hash ZA (GB/T 32918.2 §5.5) and e = SM3(ZA || M) (§6.1 A1-A2).
  Written by hand: no maintained Python library exposes ZA.
* ``sm2_verify``: GB/T 32918.2 §7.1 (B1-B7) with Tongsuo's EC arithmetic (the library inside tongsuopy)
  and tables precomputed per public key (``_Precomputed``): t·P and s·G each come from a fixed-base table
  (``EC_GROUP_precompute_mult``; the key's table is made once, ~0.5 ms, and kept per key), so a
  verification does ~100 point additions and no 256 doublings — about half the work of Tongsuo's
  ``EVP_DigestVerify`` (which builds both windows each call). ZA is kept per (key, user ID) too. Any ID
  goes this way. Where the library lacks those entry points, the default ID goes through tongsuopy's
  ``EVP_DigestVerify`` and others through ``sm2_verify_digest``.
* ``sm2_verify_digest``: a hand-written verifier (GB/T 32918.2 §7.1, B1-B7) over public data only; slow
  (milliseconds), kept for known-answer tests and as the last resort.
"""
from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass

import cffi
from tongsuopy.backends import _tongsuo as _ts_module
from tongsuopy.crypto import hashes as _ts_hashes
from tongsuopy.crypto.asymciphers import ec as _ts_ec
from tongsuopy.crypto.exceptions import InvalidSignature as _TsInvalidSignature

from pkicore.signatures import der_to_ints, raw_to_der

DEFAULT_USER_ID = b"1234567812345678"
"""GB/T 35276 §8 / GM/T 0009 default signer ID (ENTL = 0x0080)."""

# GB/T 32918.5 recommended curve parameters (sm2p256v1)
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0


_SM3 = hashlib.new("sm3")


def sm3(data: bytes) -> bytes:
    """SM3 (GB/T 32905) through OpenSSL's default provider via hashlib (a copy of one made once: skips the
    by-name lookup, ~40 % of hashing a signed-attributes block)."""
    h = _SM3.copy()
    h.update(data)
    return h.digest()


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


# --- B1-B7 with Tongsuo's EC arithmetic and precomputed tables ---

_CDEF = """
typedef struct ec_group_st EC_GROUP; typedef struct ec_point_st EC_POINT;
typedef struct bignum_st BIGNUM; typedef struct bignum_ctx BN_CTX;
int OBJ_sn2nid(const char *);
EC_GROUP *EC_GROUP_new_by_curve_name(int);
void EC_GROUP_free(EC_GROUP *);
const EC_POINT *EC_GROUP_get0_generator(const EC_GROUP *);
const BIGNUM *EC_GROUP_get0_order(const EC_GROUP *);
int EC_GROUP_set_generator(EC_GROUP *, const EC_POINT *, const BIGNUM *, const BIGNUM *);
int EC_GROUP_precompute_mult(EC_GROUP *, BN_CTX *);
EC_POINT *EC_POINT_new(const EC_GROUP *);
void EC_POINT_free(EC_POINT *);
int EC_POINT_set_affine_coordinates_GFp(const EC_GROUP *, EC_POINT *, const BIGNUM *, const BIGNUM *, BN_CTX *);
int EC_POINT_get_affine_coordinates_GFp(const EC_GROUP *, const EC_POINT *, BIGNUM *, BIGNUM *, BN_CTX *);
int EC_POINT_is_on_curve(const EC_GROUP *, const EC_POINT *, BN_CTX *);
int EC_POINT_add(const EC_GROUP *, EC_POINT *, const EC_POINT *, const EC_POINT *, BN_CTX *);
int EC_POINT_is_at_infinity(const EC_GROUP *, const EC_POINT *);
int EC_POINTs_mul(const EC_GROUP *, EC_POINT *, const BIGNUM *, size_t, const EC_POINT *[], const BIGNUM *[], BN_CTX *);
BIGNUM *BN_new(void);
void BN_free(BIGNUM *);
int BN_set_word(BIGNUM *, unsigned long);
BIGNUM *BN_bin2bn(const unsigned char *, int, BIGNUM *);
int BN_bn2binpad(const BIGNUM *, unsigned char *, int);
BN_CTX *BN_CTX_new(void);
void BN_CTX_free(BN_CTX *);
"""


class _Precomputed:
    """Tongsuo's SM2 group with a fixed-base table for a generator: the curve's own G, or a public key P set
    as the generator of a copy of the group (``EC_GROUP_set_generator``, same curve and order n, cofactor
    1). ``mul(k)`` is k·generator from the table: Tongsuo's wNAF multiplication uses a precomputed table
    only beside another point, so a second point with the scalar 0 goes along (``EC_POINTs_mul``); alone,
    the generator's product takes the constant-time ladder, which a verification does not need (public
    data only)."""

    def __init__(self, lib, ffi, nid: int, point: tuple[int, int] | None):
        self.lib, self.ffi = lib, ffi
        group = ffi.gc(lib.EC_GROUP_new_by_curve_name(nid), lib.EC_GROUP_free)
        if group == ffi.NULL:
            raise ValueError("SM2 group unavailable")
        ctx = ffi.gc(lib.BN_CTX_new(), lib.BN_CTX_free)
        if point is not None:
            pt = ffi.gc(lib.EC_POINT_new(group), lib.EC_POINT_free)
            bx, by = _bn(lib, ffi, point[0]), _bn(lib, ffi, point[1])
            one = ffi.gc(lib.BN_new(), lib.BN_free)
            if (lib.EC_POINT_set_affine_coordinates_GFp(group, pt, bx, by, ctx) != 1     # refuses points off
                    or lib.EC_POINT_is_on_curve(group, pt, ctx) != 1 or lib.BN_set_word(one, 1) != 1
                    or lib.EC_GROUP_set_generator(group, pt, lib.EC_GROUP_get0_order(group), one) != 1):
                raise ValueError("SM2 public key refused by Tongsuo")
        if lib.EC_GROUP_precompute_mult(group, ctx) != 1:
            raise ValueError("SM2 precomputation failed")
        self.group = group
        self.points = ffi.new("const EC_POINT *[1]", [lib.EC_GROUP_get0_generator(group)])
        self.zero = ffi.gc(lib.BN_new(), lib.BN_free)         # BN_new is 0
        self.scalars = ffi.new("const BIGNUM *[1]", [self.zero])

    def mul(self, out, k, ctx) -> bool:
        return self.lib.EC_POINTs_mul(self.group, out, k, 1, self.points, self.scalars, ctx) == 1


def _bn(lib, ffi, value: int):
    return ffi.gc(lib.BN_bin2bn(_b32(value), 32, ffi.NULL), lib.BN_free)


class _Key:
    """A public key as a point of the group with G's table, and its own table once made."""

    __slots__ = ("points", "point", "table")

    def __init__(self, points, point):
        self.points, self.point, self.table = points, point, None


class _FastVerifier:
    """GB/T 32918.2 §7.1 B1-B7 over Tongsuo's EC arithmetic: the generator's table made once; a public key's
    table (~80 KB, ~0.5 ms) made the second time the key is seen and kept for the ``tables`` keys used
    last — a key seen once (or crowded out) is multiplied without a table (s·G from the generator's table
    plus t·P by wNAF in one ``EC_POINTs_mul``: about Tongsuo's ``EVP_DigestVerify`` work), so many
    one-off signers cost no table each. Per-thread scratch values."""

    def __init__(self, tables: int = 128, keys: int = 4096):
        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        lib = ffi.dlopen(_ts_module.__file__)      # the library tongsuopy has loaded already: the same code
        self.lib, self.ffi = lib, ffi
        self.nid = lib.OBJ_sn2nid(b"SM2")
        self.base = _Precomputed(lib, ffi, self.nid, None)
        self.max_tables, self.max_keys = tables, keys
        self._keys: OrderedDict = OrderedDict()            # (x, y) -> _Key, the last ``keys`` verified
        self._tables: OrderedDict = OrderedDict()          # (x, y) -> _Key holding a table
        self._lock = threading.Lock()
        self._local = threading.local()

    def table(self, x: int, y: int) -> _Precomputed:
        """A fixed-base table for the key (x, y); ValueError when Tongsuo refuses the point."""
        return _Precomputed(self.lib, self.ffi, self.nid, (x, y))

    def _key(self, xy: tuple[int, int]) -> tuple[_Key, bool]:
        """(the key's entry, whether it was verified before), made on its first verification."""
        with self._lock:
            key = self._keys.get(xy)
            if key is not None:
                self._keys.move_to_end(xy)
                return key, True
        lib, ffi, group = self.lib, self.ffi, self.base.group
        ctx = ffi.gc(lib.BN_CTX_new(), lib.BN_CTX_free)
        pt = ffi.gc(lib.EC_POINT_new(group), lib.EC_POINT_free)
        if (lib.EC_POINT_set_affine_coordinates_GFp(group, pt, _bn(lib, ffi, xy[0]), _bn(lib, ffi, xy[1]), ctx) != 1
                or lib.EC_POINT_is_on_curve(group, pt, ctx) != 1):
            raise ValueError("SM2 public key refused by Tongsuo")
        key = _Key(ffi.new("const EC_POINT *[1]", [pt]), pt)
        with self._lock:
            self._keys[xy] = key
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        return key, False

    def _with_table(self, xy: tuple[int, int], key: _Key) -> _Precomputed:
        table = key.table = self.table(*xy)
        with self._lock:
            self._tables[xy] = key
            while len(self._tables) > self.max_tables:
                self._tables.popitem(last=False)[1].table = None
        return table

    def _scratch(self):
        s = getattr(self._local, "s", None)
        if s is None:
            lib, ffi, group = self.lib, self.ffi, self.base.group
            s = self._local.s = (ffi.gc(lib.BN_CTX_new(), lib.BN_CTX_free),
                                 ffi.gc(lib.EC_POINT_new(group), lib.EC_POINT_free),
                                 ffi.gc(lib.EC_POINT_new(group), lib.EC_POINT_free),
                                 ffi.gc(lib.BN_new(), lib.BN_free), ffi.gc(lib.BN_new(), lib.BN_free),
                                 ffi.gc(lib.BN_new(), lib.BN_free), ffi.gc(lib.BN_new(), lib.BN_free),
                                 ffi.new("unsigned char[32]"), ffi.new("const BIGNUM *[1]"))
        return s

    def verify(self, public_key: SM2PublicKey, e: bytes, r: int, s: int) -> bool:
        """B3-B7 for e = SM3(ZA || M) (B1-B2 are the caller's)."""
        if len(e) != 32 or not (1 <= r < N and 1 <= s < N):                   # B1, B2
            return False
        t = (r + s) % N                                                        # B5
        if t == 0:
            return False
        lib, ffi, group = self.lib, self.ffi, self.base.group
        ctx, r1, r2, bs, bt, bx, by, buf, scalars = self._scratch()
        if lib.BN_bin2bn(_b32(s), 32, bs) == ffi.NULL or lib.BN_bin2bn(_b32(t), 32, bt) == ffi.NULL:
            return False
        xy = (public_key.x, public_key.y)
        key, known = self._key(xy)
        table = key.table
        if table is None and known and self.max_tables:
            table = self._with_table(xy, key)
        if table is not None:                                                  # B6: s·G + t·P, both tables
            if not self.base.mul(r1, bs, ctx) or not table.mul(r2, bt, ctx) \
                    or lib.EC_POINT_add(group, r1, r1, r2, ctx) != 1:
                return False
        else:                                                                  # B6: G's table, P by wNAF
            scalars[0] = bt
            if lib.EC_POINTs_mul(group, r1, bs, 1, key.points, scalars, ctx) != 1:
                return False
        if lib.EC_POINT_is_at_infinity(group, r1) == 1:
            return False
        if lib.EC_POINT_get_affine_coordinates_GFp(group, r1, bx, by, ctx) != 1 or lib.BN_bn2binpad(bx, buf, 32) != 32:
            return False
        x1 = int.from_bytes(ffi.buffer(buf, 32), "big")
        return (int.from_bytes(e, "big") + x1) % N == r                        # B7


_ENTRY_POINTS = ("OBJ_sn2nid", "EC_GROUP_new_by_curve_name", "EC_GROUP_free", "EC_GROUP_get0_generator",
                 "EC_GROUP_get0_order", "EC_GROUP_set_generator", "EC_GROUP_precompute_mult", "EC_POINT_new",
                 "EC_POINT_free", "EC_POINT_set_affine_coordinates_GFp", "EC_POINT_get_affine_coordinates_GFp",
                 "EC_POINT_is_on_curve", "EC_POINT_add", "EC_POINT_is_at_infinity", "EC_POINTs_mul", "BN_new",
                 "BN_free", "BN_set_word", "BN_bin2bn", "BN_bn2binpad", "BN_CTX_new", "BN_CTX_free")


def _fast_verifier() -> _FastVerifier | None:
    """The verifier, once every entry point resolves and it agrees with Tongsuo's own SM2 (a signature made
    by tongsuopy verifies, with and without the key's table, and a changed message does not); else None."""
    try:
        fast = _FastVerifier()
        for name in _ENTRY_POINTS:
            getattr(fast.lib, name)
        private = _ts_ec.generate_private_key(_ts_ec.SM2())
        numbers = private.public_key().public_numbers()
        key = SM2PublicKey(numbers.x, numbers.y)
        r, s = der_to_ints(private.sign(b"self-test", _ts_ec.ECDSA(_ts_hashes.SM3())))
        z = sm2_z(key)
        for _ in range(2):                    # the key's first verification (no table), then with its table
            if not fast.verify(key, sm3(z + b"self-test"), r, s) or fast.verify(key, sm3(z + b"self-tesT"), r, s):
                return None
        fast._keys.clear()
        fast._tables.clear()
        return fast
    except (OSError, AttributeError, ValueError, cffi.CDefError):    # a tongsuopy without these entry points
        return None


_FAST = _fast_verifier()


@functools.lru_cache(maxsize=1024)
def _z(x: int, y: int, user_id: bytes) -> bytes:
    return sm2_z(SM2PublicKey(x, y), user_id)


def sm2_verify(public_key: SM2PublicKey, message: bytes, r: int, s: int,
               user_id: bytes = DEFAULT_USER_ID) -> bool:
    """Verify an SM2-with-SM3 signature (r, s) over ``message`` for ``user_id`` (GB/T 32918.2 §7.1)."""
    if not (1 <= r < N and 1 <= s < N):
        return False
    if _FAST is not None:
        return _FAST.verify(public_key, sm3(_z(public_key.x, public_key.y, user_id) + message), r, s)
    if user_id != DEFAULT_USER_ID:
        return sm2_verify_digest(public_key, sm2_e(public_key, message, user_id), r, s)
    try:
        _tongsuo_key(public_key.x, public_key.y).verify(raw_to_der(_b32(r) + _b32(s)), message, _ts_ec.ECDSA(_ts_hashes.SM3()))
    except _TsInvalidSignature:
        return False
    return True
