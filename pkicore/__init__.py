"""Shared SM2/ASN.1 plumbing for every package of the RA centre.

The one home for OIDs, the algorithm table, the SM2 Z value (GB/T 32918.2 §5.5 / GB/T 35276 §8),
signature encodings and software verification. Imports nothing of ours.
"""
from pkicore import asn1 as _asn1  # noqa: F401  (registers SM2/SM3 with asn1crypto on import)
from pkicore.algorithms import ALGORITHMS, Algorithm, algorithm
from pkicore.errors import ErrorCode, PkiError
from pkicore.oids import OID
from pkicore.sm2 import (
    DEFAULT_USER_ID,
    SM2PublicKey,
    sm2_verify,
    sm2_verify_digest,
    sm2_z,
    sm2_e,
    sm3,
)
from pkicore.signatures import der_to_raw, raw_to_der
from pkicore.keys import public_key_info_from_point, point_from_public_key_info, verify_signature

__all__ = [
    "ALGORITHMS", "Algorithm", "algorithm", "ErrorCode", "PkiError", "OID", "DEFAULT_USER_ID",
    "SM2PublicKey", "sm2_verify", "sm2_verify_digest", "sm2_z", "sm2_e", "sm3", "der_to_raw",
    "raw_to_der", "public_key_info_from_point", "point_from_public_key_info", "verify_signature",
]
