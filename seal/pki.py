"""A small HSM-backed certificate issuer (RFC 5280 profiles, asn1crypto) for seal makers and units' signing
certificates, used by tests and the demo while no embedded CA is configured; production certificates
come from ``ca_bridge``.
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
    """SubjectPublicKeyInfo DER of key pair ``label``, generated in the HSM when absent."""
    try:
        return km.public_key_info(label)
    except KeyNotFound:
        km.generate_key_pair(label, KEY_ALGORITHM[alg.key_type])
        return km.public_key_info(label)


def name(common_name: str, organization: str = "RA Centre") -> x509.Name:
    return x509.Name.build({"country_name": "CN", "organization_name": organization,
                            "common_name": common_name}, use_printable=False)


def _key_id(spki: bytes) -> bytes:
    return hashlib.sha1(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]).digest()


def _sig_alg(alg: Algorithm) -> dict:
    return {"algorithm": alg.asn1_name} if alg.params_null else {"algorithm": alg.asn1_name, "parameters": None}


@dataclass
class LocalIssuer:
    """A one-level CA whose key lives in the HSM."""

    km: KeyManager
    label: str
    alg: Algorithm
    certificate: bytes

    @classmethod
    def create(cls, km: KeyManager, label: str, alg_name: str = "sm2-sm3",
               common_name: str = "RA Centre Seal Test CA") -> "LocalIssuer":
        alg = algorithm(alg_name)
        spki = ensure_key(km, label, alg)
        issuer = cls(km, label, alg, b"")
        issuer.certificate = issuer._build(name(common_name), spki, ca=True, days=3650, self_signed=True)
        return issuer

    def issue(self, spki: bytes, common_name: str, *, organization: str = "RA Centre", days: int = 730,
              not_before: dt.datetime | None = None, timestamping: bool = False) -> bytes:
        """An end-entity signing certificate (digitalSignature + nonRepudiation; a TSA's with the critical
        id-kp-timeStamping EKU, RFC 3161 §2.3)."""
        return self._build(name(common_name, organization), spki, ca=False, days=days, not_before=not_before,
                           timestamping=timestamping)

    def _build(self, subject: x509.Name, spki: bytes, *, ca: bool, days: int, self_signed: bool = False,
               not_before: dt.datetime | None = None, timestamping: bool = False) -> bytes:
        now = not_before or dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
        issuer_name = subject if self_signed else x509.Certificate.load(self.certificate).subject
        issuer_spki = spki if self_signed else x509.Certificate.load(self.certificate).public_key.dump()
        tbs = x509.TbsCertificate({
            "version": "v3",
            "serial_number": secrets.randbits(126) | (1 << 125),
            "signature": _sig_alg(self.alg),
            "issuer": issuer_name,
            "validity": {"not_before": x509.Time(name="utc_time", value=now),
                         "not_after": x509.Time(name="utc_time", value=now + dt.timedelta(days=days))},
            "subject": subject,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(spki),
            "extensions": [
                {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": ca}},
                {"extn_id": "key_usage", "critical": True,
                 "extn_value": {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"}},
                {"extn_id": "key_identifier", "critical": False, "extn_value": _key_id(spki)},
                {"extn_id": "authority_key_identifier", "critical": False,
                 "extn_value": {"key_identifier": _key_id(issuer_spki)}},
            ] + ([{"extn_id": "extended_key_usage", "critical": True, "extn_value": ["time_stamping"]}]
                 if timestamping else []),
        })
        signature = self.km.sign(self.label, tbs.dump(), self.alg.mechanism)
        return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": _sig_alg(self.alg),
                                 "signature_value": signature}).dump()


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
