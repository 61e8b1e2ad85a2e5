"""SubjectPublicKeyInfo helpers (RFC 5280 §4.1.2.7, RFC 5480, GM/T 0015 §7 for SM2) and software
signature verification for public keys held outside the HSM (CSRs, peers, tests).
"""
from __future__ import annotations

from asn1crypto import keys as asn1_keys
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from pkicore.algorithms import Algorithm
from pkicore.oids import OID
from pkicore.signatures import der_to_ints
from pkicore.sm2 import DEFAULT_USER_ID, SM2PublicKey, sm2_verify

_CURVE_OIDS = {"sm2p256v1": OID.SM2_CURVE, "secp256r1": OID.P256, "secp384r1": OID.P384}


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
    """(curve name, uncompressed point) from an EC/SM2 SubjectPublicKeyInfo."""
    prefix = _SM2_SPKI_PREFIX_65
    if prefix is not None and len(spki_der) == len(prefix) + 65 and spki_der.startswith(prefix):
        return "sm2p256v1", bytes(spki_der[len(prefix):])   # exactly the DER shape built above
    info = asn1_keys.PublicKeyInfo.load(spki_der, strict=True)
    if info["algorithm"]["algorithm"].native != "ec":
        raise ValueError("not an EC/SM2 public key")
    params = info["algorithm"]["parameters"]
    if params.name != "named":
        raise ValueError("only named curves are supported")
    return params.chosen.native, info["public_key"].native


def verify_signature(spki_der: bytes, alg: Algorithm, data: bytes, signature_der: bytes,
                     user_id: bytes = DEFAULT_USER_ID) -> bool:
    """Verify a DER-encoded signature over ``data`` with a public key given as SPKI DER.

    SM2 goes through pkicore.sm2 (Tongsuo); ECDSA/RSA through pyca/cryptography.
    """
    if alg.key_type == "sm2":
        curve, point = point_from_public_key_info(spki_der)
        if curve != "sm2p256v1":
            return False
        try:
            r, s = der_to_ints(signature_der)
        except ValueError:
            return False
        return sm2_verify(SM2PublicKey.from_point(point), data, r, s, user_id)
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
