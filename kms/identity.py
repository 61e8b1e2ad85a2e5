"""The KMC's signing identity: an SM2 key in the HSM and its certificate (X.509, RFC 5280 / GM/T 0015).

Until the CA (ca_bridge) issues the KMC certificate, a self-signed one is made here with asn1crypto and
the key manager. Integrator hook: ``KeyEscrow.install_certificate(der)`` replaces it with a CA-issued one.
"""
from __future__ import annotations

from asn1crypto import x509

from hsm import KeyManager
from pkicore.algorithms import algorithm
from pkicore.certificate import build_certificate


def subject_name(rdns: tuple[tuple[str, str], ...]) -> x509.Name:
    return x509.Name.build(dict(rdns), use_printable=False)


def self_signed_certificate(km: KeyManager, label: str, subject: tuple[tuple[str, str], ...],
                            days: int = 3650) -> bytes:
    """A self-signed SM2-with-SM3 certificate for an HSM key (digitalSignature, not a CA)."""
    spki = km.public_key_info(label)
    name = subject_name(subject)
    alg = algorithm("sm2-sm3")
    return build_certificate(subject=name, issuer=name, spki=spki, issuer_spki=spki, alg=alg, days=days,
                             sign=lambda tbs: km.sign(label, tbs, alg.mechanism),
                             serial=int.from_bytes(km.random(16), "big") >> 1 or 1)
