"""Provisioning a TSA unit: its key in the HSM and its certificate (RFC 3161 §2.3: the only extended key
usage is id-kp-timeStamping, marked critical).

``StandaloneIssuer`` is a minimal CA over an HSM key (asn1crypto structures, signature by the key
manager) for tests and for sites without the embedded CA; production TSA certificates come from
``ca_bridge`` with the ``tsa`` profile.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from asn1crypto import keys as asn1_keys
from asn1crypto import x509

from hsm import KeyManager, KeyNotFound
from pkicore.algorithms import Algorithm, algorithm

KEY_ALGORITHM = {"sm2": "sm2", "ec": "ec-p256", "rsa": "rsa-2048"}


def ensure_key(km: KeyManager, label: str, alg: Algorithm) -> bytes:
    """The key pair ``label`` (generated when absent); returns its SubjectPublicKeyInfo DER."""
    try:
        return km.public_key_info(label)
    except KeyNotFound:
        key_alg = KEY_ALGORITHM[alg.key_type]
        if alg.key_type == "ec" and alg.curve == "secp384r1":
            key_alg = "ec-p384"
        km.generate_key_pair(label, key_alg)
        return km.public_key_info(label)


def _name(common_name: str, organization: str = "RA Centre") -> x509.Name:
    return x509.Name.build({"country_name": "CN", "organization_name": organization,
                            "common_name": common_name}, use_printable=False)


def _key_id(spki: bytes) -> bytes:
    return hashlib.sha1(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]).digest()


def _sig_alg(alg: Algorithm) -> dict:
    return {"algorithm": alg.asn1_name, "parameters": None} if not alg.params_null else \
        {"algorithm": alg.asn1_name}


def build_certificate(km: KeyManager, issuer_label: str, issuer_alg: Algorithm, *, subject: x509.Name,
                      issuer: x509.Name, spki: bytes, issuer_spki: bytes, ca: bool = False,
                      timestamping: bool = False, days: int = 365, serial: int | None = None,
                      not_before: dt.datetime | None = None) -> bytes:
    """An X.509 v3 certificate signed in the HSM by ``issuer_label``."""
    now = not_before or dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    exts = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": ca}},
        {"extn_id": "key_usage", "critical": True,
         "extn_value": {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"}},
        {"extn_id": "key_identifier", "critical": False, "extn_value": _key_id(spki)},
        {"extn_id": "authority_key_identifier", "critical": False,
         "extn_value": {"key_identifier": _key_id(issuer_spki)}},
    ]
    if timestamping:
        exts.append({"extn_id": "extended_key_usage", "critical": True, "extn_value": ["time_stamping"]})
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial or secrets.randbits(126) | (1 << 125),
        "signature": _sig_alg(issuer_alg),
        "issuer": issuer,
        "validity": {"not_before": x509.Time(name="utc_time", value=now),
                     "not_after": x509.Time(name="utc_time", value=now + dt.timedelta(days=days))},
        "subject": subject,
        "subject_public_key_info": asn1_keys.PublicKeyInfo.load(spki),
        "extensions": exts,
    })
    signature = km.sign(issuer_label, tbs.dump(), issuer_alg.mechanism)
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": _sig_alg(issuer_alg),
                             "signature_value": signature}).dump()


@dataclass
class StandaloneIssuer:
    """A one-level CA whose key lives in the HSM (tests, and sites without the embedded CA)."""

    km: KeyManager
    label: str
    algorithm: Algorithm
    certificate: bytes

    @classmethod
    def create(cls, km: KeyManager, label: str, alg_name: str = "sm2-sm3",
               common_name: str = "RA Centre Test Root CA") -> "StandaloneIssuer":
        alg = algorithm(alg_name)
        spki = ensure_key(km, label, alg)
        name = _name(common_name)
        cert = build_certificate(km, label, alg, subject=name, issuer=name, spki=spki, issuer_spki=spki,
                                 ca=True, days=3650)
        return cls(km, label, alg, cert)

    @property
    def name(self) -> x509.Name:
        return x509.Certificate.load(self.certificate).subject

    def issue_tsa(self, spki: bytes, common_name: str, *, days: int = 365, timestamping: bool = True,
                  not_before: dt.datetime | None = None) -> bytes:
        """A TSA certificate: digitalSignature + nonRepudiation, critical EKU id-kp-timeStamping."""
        issuer_spki = x509.Certificate.load(self.certificate).public_key.dump()
        return build_certificate(self.km, self.label, self.algorithm, subject=_name(common_name),
                                 issuer=self.name, spki=spki, issuer_spki=issuer_spki,
                                 timestamping=timestamping, days=days, not_before=not_before)
