"""SubjectPublicKeyInfo helpers (RFC 5280 §4.1.2.7, RFC 5480, RFC 8017 App. A.1.1, GM/T 0015 §7 for SM2):
the one key inspector (``inspect_key``: what key is this SPKI, and is it well formed), SPKI from and to
EC points, and software signature verification for public keys held outside the HSM (CSRs, peers, tests).
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pkicore.algorithms import Algorithm
from pkicore.oids import OID
from pkicore.signatures import der_to_ints
from pkicore.sm2 import DEFAULT_USER_ID, SM2PublicKey, sm2_verify

_CURVE_OIDS = {"sm2p256v1": OID.SM2_CURVE, "secp256r1": OID.P256, "secp384r1": OID.P384}
_CURVE_NAMES = {oid: name for name, oid in _CURVE_OIDS.items()}
_CURVE_BITS = {"sm2p256v1": 256, "secp256r1": 256, "secp384r1": 384}
_EC_CURVES = {"secp256r1": ec.SECP256R1(), "secp384r1": ec.SECP384R1()}
# SubjectPublicKeyInfo prefixes of uncompressed named-curve keys (RFC 5480): the common shape is read
# without a generic parse (CA issuance and the KMC inspect a key per request)
_EC_PREFIXES = {bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200"): ("sm2p256v1", 65),
                bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"): ("secp256r1", 65),
                bytes.fromhex("3076301006072a8648ce3d020106052b81040022036200"): ("secp384r1", 97)}


class KeyProblem(ValueError):
    """A SubjectPublicKeyInfo that ``inspect_key`` refuses, and why (``kind``, which callers map to their
    error codes): "encoding" (not DER, malformed), "unsupported" (an algorithm or curve we do not take),
    "point" (an EC point that is compressed or not on its curve)."""

    def __init__(self, message: str, kind: str = "encoding"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class PublicKey:
    """What a SubjectPublicKeyInfo holds, checked: ``family`` sm2 | ec | rsa, ``curve`` (sm2p256v1,
    secp256r1, secp384r1; None for RSA), size in bits, the subjectPublicKey bits (the point, or the
    RSAPublicKey DER) and, for RSA, the public exponent."""

    spki: bytes
    family: str
    curve: str | None
    bits: int
    key_bits: bytes
    exponent: int | None = None

    @property
    def profile_name(self) -> str:
        """The name certificate profiles use: sm2, ec-p256, ec-p384, rsa-<bits>."""
        if self.family == "rsa":
            return f"rsa-{self.bits}"
        return "sm2" if self.family == "sm2" else f"ec-p{self.bits}"

    @property
    def key_id(self) -> bytes:
        """SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1)."""
        return hashlib.sha1(self.key_bits).digest()

    @property
    def point(self) -> bytes:
        if self.family == "rsa":
            raise KeyProblem("an RSA key has no EC point")
        return self.key_bits


def _check_point(curve: str, point: bytes) -> None:
    try:
        if curve == "sm2p256v1":
            SM2PublicKey.from_point(point)
            return
        if point[:1] != b"\x04" or len(point) != 1 + 2 * (_CURVE_BITS[curve] // 8):
            raise ValueError("EC public key must be an uncompressed point")
        ec.EllipticCurvePublicKey.from_encoded_point(_EC_CURVES[curve], point)
    except ValueError as exc:
        name = "SM2" if curve == "sm2p256v1" else curve
        raise KeyProblem(f"{name} public key is invalid: {exc}", "point") from exc


def inspect_key(spki_der: bytes) -> PublicKey:
    """The one key inspector: parse a DER SubjectPublicKeyInfo and check it — strict DER, no unused bits,
    EC keys on a named curve (SM2, P-256, P-384; the SM2 OID as key algorithm is refused, GM/T 0015 §7
    wants id-ecPublicKey) with an uncompressed point on that curve, RSA keys with a readable modulus and
    exponent. Policy (minimum RSA size, exponent) is the caller's. KeyProblem otherwise."""
    if not isinstance(spki_der, (bytes, bytearray)):
        raise KeyProblem("public key must be DER bytes")
    spki_der = bytes(spki_der)
    for prefix, (curve, size) in _EC_PREFIXES.items():
        if spki_der.startswith(prefix) and len(spki_der) == len(prefix) + size and spki_der[len(prefix)] == 4:
            point = spki_der[len(prefix):]
            _check_point(curve, point)
            return PublicKey(spki_der, "sm2" if curve == "sm2p256v1" else "ec", curve, _CURVE_BITS[curve], point)
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der, strict=True)
        alg = info["algorithm"]["algorithm"].dotted
        if info.dump(force=True) != spki_der:
            raise ValueError("not DER")
        bits = info["public_key"].contents
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyProblem(f"public key is not a DER SubjectPublicKeyInfo: {exc}") from exc
    if bits[:1] != b"\x00":
        raise KeyProblem("subjectPublicKey has unused bits")
    key_bits = bits[1:]
    if alg == OID.EC_PUBLIC_KEY:
        params = info["algorithm"]["parameters"]
        if params.name != "named":
            raise KeyProblem("EC keys must name their curve (explicit parameters are refused)", "unsupported")
        curve = _CURVE_NAMES.get(params.chosen.dotted)
        if curve is None:
            raise KeyProblem(f"elliptic curve {params.chosen.dotted} is not accepted (P-256, P-384, SM2)",
                             "unsupported")
        _check_point(curve, key_bits)
        return PublicKey(spki_der, "sm2" if curve == "sm2p256v1" else "ec", curve, _CURVE_BITS[curve], key_bits)
    if alg == OID.RSA:
        try:
            numbers = info["public_key"].parsed
            n, e = numbers["modulus"].native, numbers["public_exponent"].native
        except (ValueError, TypeError) as exc:
            raise KeyProblem(f"RSA public key is malformed: {exc}") from exc
        return PublicKey(spki_der, "rsa", None, n.bit_length(), key_bits, e)
    if alg == OID.SM2_CURVE:
        raise KeyProblem("SM2 keys must be encoded as id-ecPublicKey with the sm2p256v1 named curve "
                         "(GM/T 0015), not with the SM2 OID as key algorithm", "unsupported")
    raise KeyProblem(f"public key algorithm {alg} is not accepted (RSA, EC P-256/P-384, SM2)", "unsupported")


# DER before the point, per (curve, point length): SEQUENCE { SEQUENCE { id-ecPublicKey, namedCurve },
# BIT STRING { 00 || point } } ends with the point bytes verbatim, so one asn1crypto encoding per shape
# gives the prefix and every later SPKI of that shape is prefix + point (the KMC makes one per key).
_SPKI_PREFIX: dict[tuple[str, int], bytes] = {}
_SM2_SPKI_PREFIX_65: bytes | None = None


def _spki_asn1(curve: str, point: bytes) -> bytes:
    return asn1_keys.PublicKeyInfo({
        "algorithm": {"algorithm": "ec", "parameters": asn1_keys.ECDomainParameters(
            name="named", value=_CURVE_OIDS.get(curve, curve))},
        "public_key": point,
    }).dump()


def public_key_info_from_point(curve: str, point: bytes) -> bytes:
    """SPKI DER for an EC/SM2 point (id-ecPublicKey + namedCurve, as GM/T 0015 requires for SM2)."""
    global _SM2_SPKI_PREFIX_65
    if curve == "sm2p256v1":
        SM2PublicKey.from_point(point)  # validates
    prefix = _SPKI_PREFIX.get((curve, len(point)))
    if prefix is not None:
        return prefix + point
    der = _spki_asn1(curve, point)
    if point and der.endswith(point):
        _SPKI_PREFIX[(curve, len(point))] = der[:-len(point)]
        if curve == "sm2p256v1" and len(point) == 65:
            _SM2_SPKI_PREFIX_65 = der[:-65]
    return der


def point_from_public_key_info(spki_der: bytes) -> tuple[str, bytes]:
    """(curve name, uncompressed point) from an EC/SM2 SubjectPublicKeyInfo (``inspect_key``; ValueError
    for anything else)."""
    prefix = _SM2_SPKI_PREFIX_65
    if prefix is not None and len(spki_der) == len(prefix) + 65 and spki_der.startswith(prefix):
        return "sm2p256v1", bytes(spki_der[len(prefix):])   # exactly the DER shape built above
    key = inspect_key(spki_der)
    if key.family == "rsa":
        raise KeyProblem("not an EC/SM2 public key", "unsupported")
    return key.curve, key.point


@functools.lru_cache(maxsize=1024)
def _sm2_public_key(spki_der: bytes) -> SM2PublicKey | None:
    """The SM2 point of an SPKI (checked on the curve once per key), or None when it is not one."""
    try:
        curve, point = point_from_public_key_info(spki_der)
        return SM2PublicKey.from_point(point) if curve == "sm2p256v1" else None
    except ValueError:
        return None


def verify_signature(spki_der: bytes, alg: Algorithm, data: bytes, signature_der: bytes,
                     user_id: bytes = DEFAULT_USER_ID) -> bool:
    """Verify a DER-encoded signature over ``data`` with a public key given as SPKI DER.

    SM2 goes through pkicore.sm2 (Tongsuo); ECDSA/RSA through pyca/cryptography.
    """
    if alg.key_type == "sm2":
        key = _sm2_public_key(bytes(spki_der))
        if key is None:
            return False
        try:
            r, s = der_to_ints(signature_der)
        except ValueError:
            return False
        return sm2_verify(key, data, r, s, user_id)
    key = serialization.load_der_public_key(spki_der)
    digest = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}[alg.digest]
    try:
        if alg.key_type == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature_der, data, ec.ECDSA(digest))
        elif alg.key_type == "rsa" and isinstance(key, rsa.RSAPublicKey):
            pad = (padding.PSS(padding.MGF1(digest), digest.digest_size) if alg.asn1_name == "rsassa_pss"
                   else padding.PKCS1v15())
            key.verify(signature_der, data, pad, digest)
        else:
            return False
    except InvalidSignature:
        return False
    return True
