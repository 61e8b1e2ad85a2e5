"""Teach asn1crypto the Chinese algorithms (GM/T 0006 OIDs): the SM2 curve, SM3 and SM2-with-SM3.

asn1crypto is the structure library of the whole project (certificates, CMS, TSP, pyHanko); it ships
no SM identifiers, so they are registered once, here, at import of ``pkicore``.
"""
from __future__ import annotations

from asn1crypto import algos, keys

from pkicore.oids import OID


def _register() -> None:
    if OID.SM2_CURVE not in keys.NamedCurve._map:
        keys.NamedCurve.register("sm2p256v1", OID.SM2_CURVE, 32)
    algos.DigestAlgorithmId._map.setdefault(OID.SM3, "sm3")
    algos.DigestAlgorithmId._reverse_map = None
    algos.SignedDigestAlgorithmId._map.setdefault(OID.SM2_WITH_SM3, "sm2_sm3")
    algos.SignedDigestAlgorithmId._reverse_map = None


_register()
