"""The algorithm table: one frozen row per signature algorithm (XiPKI SignAlgo shape).

Each row names the signature OID (GM/T 0006, RFC 5758, RFC 8017), its digest, the key type it needs and
the *logical* HSM mechanism name; ``hsm/`` maps logical names to a vendor's PKCS#11 codes.
"""
from __future__ import annotations

from dataclasses import dataclass

from pkicore.oids import OID


@dataclass(frozen=True)
class Algorithm:
    name: str            # our stable name, used in config files and the CLI
    oid: str             # AlgorithmIdentifier.algorithm of the signature
    asn1_name: str       # asn1crypto SignedDigestAlgorithmId name
    digest: str          # hashlib / asn1crypto digest name
    key_type: str        # "sm2" | "ec" | "rsa"
    mechanism: str       # logical HSM mechanism (hsm/vendors/*.toml)
    curve: str | None = None
    params_null: bool = False   # RFC 4055: RSA PKCS#1 v1.5 AlgorithmIdentifiers carry NULL params

    @property
    def key_algorithm(self) -> str:
        """The HSM key-generation name of a key that signs with this (``sm2``, ``ec-p256``, ``rsa-2048``)."""
        if self.key_type == "ec":
            return {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}[self.curve]
        return "sm2" if self.key_type == "sm2" else "rsa-2048"


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("sm2-sm3", OID.SM2_WITH_SM3, "sm2_sm3", "sm3", "sm2", "sm2-sign-sm3", curve="sm2p256v1"),
    Algorithm("ecdsa-sha256", OID.ECDSA_SHA256, "sha256_ecdsa", "sha256", "ec", "ecdsa-sha256",
              curve="secp256r1"),
    Algorithm("ecdsa-sha384", OID.ECDSA_SHA384, "sha384_ecdsa", "sha384", "ec", "ecdsa-sha384",
              curve="secp384r1"),
    Algorithm("rsa-sha256", OID.SHA256_RSA, "sha256_rsa", "sha256", "rsa", "rsa-pkcs1-sha256", params_null=True),
    Algorithm("rsa-sha384", OID.SHA384_RSA, "sha384_rsa", "sha384", "rsa", "rsa-pkcs1-sha384", params_null=True),
    Algorithm("rsa-pss-sha256", OID.RSASSA_PSS, "rsassa_pss", "sha256", "rsa", "rsa-pss-sha256"),
)}


def algorithm(name: str) -> Algorithm:
    """Look up a row by our name or by its OID."""
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    for row in ALGORITHMS.values():
        if row.oid == name:
            return row
    raise KeyError(f"unknown signature algorithm {name!r}")
