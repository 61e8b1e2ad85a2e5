"""A small HSM-backed certificate issuer (RFC 5280 profiles, asn1crypto) for seal makers and units' signing
certificates, used by tests and the demo while no embedded CA is configured; production certificates
come from ``ca_bridge``.
"""
from __future__ import annotations

from dataclasses import dataclass

from hsm import KeyManager
from pkicore.algorithms import Algorithm, algorithm
from pkicore.certificate import LocalIssuer as _LocalIssuer


def ensure_key(km: KeyManager, label: str, alg: Algorithm) -> bytes:
    """SubjectPublicKeyInfo DER of key pair ``label``, generated in the HSM when absent."""
    return km.ensure_key_pair(label, alg.key_algorithm)


class LocalIssuer(_LocalIssuer):
    """``pkicore.certificate.LocalIssuer`` whose CA key is generated in the HSM on first use."""

    @classmethod
    def create(cls, km: KeyManager, label: str, alg_name: str = "sm2-sm3",
               common_name: str = "RA Centre Seal Test CA") -> "LocalIssuer":
        return super().create(km, label, ensure_key(km, label, algorithm(alg_name)), alg_name, common_name)


@dataclass(frozen=True)
class KeyAndCert:
    """A key in the HSM (by label), its certificate and its signature algorithm."""

    label: str
    certificate: bytes
    alg: Algorithm


def make_signer(km: KeyManager, issuer: LocalIssuer, label: str, common_name: str, alg_name: str = "sm2-sm3",
                organization: str = "RA Centre", **kwargs) -> KeyAndCert:
    alg = algorithm(alg_name)
    spki = ensure_key(km, label, alg)
    return KeyAndCert(label, issuer.issue(spki, common_name, organization=organization, **kwargs), alg)
