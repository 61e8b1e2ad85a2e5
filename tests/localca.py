"""A test-only, one-level certificate issuer over an HSM key (RFC 5280 profiles built by
``pkicore.certificate.build_certificate``) for the seal, TSA, CMS and KMC tests and the benches that need
certificates without a whole site. Production code issues certificates only through ``ca_bridge``'s
``EmbeddedCA`` (issue 16 §2); this module lives under ``tests/`` so that it cannot be reached from it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import x509

from hsm import KeyManager
from pkicore.algorithms import Algorithm, algorithm
from pkicore.certificate import build_certificate, simple_name


def ensure_key(km: KeyManager, label: str, alg: Algorithm) -> bytes:
    """SubjectPublicKeyInfo DER of key pair ``label``, generated in the HSM when absent."""
    return km.ensure_key_pair(label, alg.key_algorithm)


@dataclass
class LocalIssuer:
    """A one-level CA over an HSM key: ``km`` signs with ``label`` (any object with
    ``sign(label, data, mechanism)``)."""

    km: object
    label: str
    alg: Algorithm
    certificate: bytes

    @classmethod
    def create(cls, km, label: str, alg_name: str = "sm2-sm3", common_name: str = "RA Centre Test CA",
               days: int = 3650) -> "LocalIssuer":
        """Self-sign a CA certificate for the key pair ``label`` (generated in the HSM when absent)."""
        issuer = cls(km, label, algorithm(alg_name), b"")
        spki = ensure_key(km, label, issuer.alg)
        subject = simple_name(common_name)
        issuer.certificate = build_certificate(subject=subject, issuer=subject, spki=spki, issuer_spki=spki,
                                               alg=issuer.alg, sign=issuer._sign, ca=True, days=days)
        return issuer

    def _sign(self, tbs: bytes) -> bytes:
        return self.km.sign(self.label, tbs, self.alg.mechanism)

    @property
    def name(self) -> x509.Name:
        return x509.Certificate.load(self.certificate).subject

    def issue(self, spki: bytes, common_name: str, *, organization: str = "RA Centre", days: int = 730,
              not_before: dt.datetime | None = None, timestamping: bool = False) -> bytes:
        """An end-entity signing certificate (a TSA's with the critical id-kp-timeStamping EKU)."""
        cert = x509.Certificate.load(self.certificate)
        return build_certificate(subject=simple_name(common_name, organization), issuer=cert.subject, spki=spki,
                                 issuer_spki=cert.public_key.dump(), alg=self.alg, sign=self._sign, days=days,
                                 not_before=not_before, extended_key_usage=("time_stamping",) if timestamping else ())

    def issue_tsa(self, spki: bytes, common_name: str, *, days: int = 365, timestamping: bool = True,
                  not_before: dt.datetime | None = None) -> bytes:
        """A TSA certificate: digitalSignature + nonRepudiation, critical EKU id-kp-timeStamping (RFC 3161
        §2.3)."""
        return self.issue(spki, common_name, days=days, timestamping=timestamping, not_before=not_before)


@dataclass(frozen=True)
class KeyAndCert:
    """A key in the HSM (by label), its certificate and its signature algorithm."""

    label: str
    certificate: bytes
    alg: Algorithm


def make_signer(km: KeyManager, issuer: LocalIssuer, label: str, common_name: str, alg_name: str = "sm2-sm3",
                organization: str = "RA Centre", **kwargs) -> KeyAndCert:
    """A signing key ``label`` in the HSM (made when absent) with an end-entity certificate from ``issuer``."""
    alg = algorithm(alg_name)
    spki = ensure_key(km, label, alg)
    return KeyAndCert(label, issuer.issue(spki, common_name, organization=organization, **kwargs), alg)
