"""Provisioning a TSA unit: its key in the HSM and its certificate (RFC 3161 §2.3: the only extended key
usage is id-kp-timeStamping, marked critical).

``StandaloneIssuer`` is a minimal CA over an HSM key (asn1crypto structures, signature by the key
manager) for tests and for sites without the embedded CA; production TSA certificates come from
``ca_bridge`` with the ``tsa`` profile.
"""
from __future__ import annotations

import datetime as dt

from hsm import KeyManager
from pkicore.algorithms import Algorithm, algorithm
from pkicore.certificate import LocalIssuer


def ensure_key(km: KeyManager, label: str, alg: Algorithm) -> bytes:
    """The key pair ``label`` (generated when absent); returns its SubjectPublicKeyInfo DER."""
    return km.ensure_key_pair(label, alg.key_algorithm)


class StandaloneIssuer(LocalIssuer):
    """A one-level CA whose key lives in the HSM (tests, and sites without the embedded CA)."""

    @classmethod
    def create(cls, km: KeyManager, label: str, alg_name: str = "sm2-sm3",
               common_name: str = "RA Centre Test Root CA") -> "StandaloneIssuer":
        return super().create(km, label, ensure_key(km, label, algorithm(alg_name)), alg_name, common_name)

    def issue_tsa(self, spki: bytes, common_name: str, *, days: int = 365, timestamping: bool = True,
                  not_before: dt.datetime | None = None) -> bytes:
        """A TSA certificate: digitalSignature + nonRepudiation, critical EKU id-kp-timeStamping."""
        return self.issue(spki, common_name, days=days, timestamping=timestamping, not_before=not_before)

