"""A plain X.509 v3 certificate builder (RFC 5280 §4.1) over a signing callable — for bootstrap
identities (the KMC's self-signed certificate before the CA certifies it) and the tests' one-level issuer
(``tests/localca.py``). Certificates are issued only by ``ca_bridge``'s ``EmbeddedCA`` (GM/T 0015
profiles, DER templates); this builder certifies nothing on its own.

Extensions: basicConstraints (critical, CA certificates only), keyUsage (critical; keyCertSign + cRLSign
for a CA, else digitalSignature + nonRepudiation), subjectKeyIdentifier / authorityKeyIdentifier (RFC 5280
§4.2.1.2 method 1, SHA-1 of the subjectPublicKey bits), and an optional critical extendedKeyUsage
(a TSA's id-kp-timeStamping, RFC 3161 §2.3). Validity at most 3,653 days. Both as GmSSL 3 demands
(docs/REFERENCES.md §10).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from pathlib import Path
from typing import Callable

from asn1crypto import keys as asn1_keys
from asn1crypto import pem, x509

from pkicore import asn1 as _asn1  # noqa: F401  (SM2/SM3 names for asn1crypto)
from pkicore.algorithms import Algorithm

GMSSL_MAX_VALIDITY_DAYS = 3653          # GmSSL 3 X509_VALIDITY_MAX_DAYS: notAfter - notBefore


def simple_name(common_name: str, organization: str = "RA Centre", country: str = "CN") -> x509.Name:
    return x509.Name.build({"country_name": country, "organization_name": organization,
                            "common_name": common_name}, use_printable=False)


def key_identifier(spki: bytes) -> bytes:
    """RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey BIT STRING value."""
    return hashlib.sha1(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:]).digest()


def signature_algorithm_id(alg: Algorithm) -> dict:
    """AlgorithmIdentifier: parameters absent for SM2/ECDSA (GM/T 0015, RFC 5758), NULL for RSA."""
    return {"algorithm": alg.asn1_name} if alg.params_null else {"algorithm": alg.asn1_name, "parameters": None}


def build_certificate(*, subject: x509.Name, issuer: x509.Name, spki: bytes, issuer_spki: bytes, alg: Algorithm,
                      sign: Callable[[bytes], bytes], ca: bool = False, extended_key_usage: tuple[str, ...] = (),
                      days: int = 365, serial: int | None = None, not_before: dt.datetime | None = None) -> bytes:
    """DER certificate; ``sign(tbs_der) -> signature`` (DER r,s for SM2/ECDSA) with ``alg``."""
    if not 0 < days <= GMSSL_MAX_VALIDITY_DAYS:
        raise ValueError(f"validity must be 1..{GMSSL_MAX_VALIDITY_DAYS} days (GmSSL 3 refuses longer ones)")
    start = not_before or dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    # basicConstraints in CA certificates only: an end entity's {"ca": False} encodes as an empty SEQUENCE
    # (30 00), which GmSSL 3 refuses (REFERENCES §10); RFC 5280 §4.2.1.9 lets an end entity omit it
    exts = [{"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": True}}] if ca else []
    exts += [
        {"extn_id": "key_usage", "critical": True,
         "extn_value": {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "non_repudiation"}},
        {"extn_id": "key_identifier", "critical": False, "extn_value": key_identifier(spki)},
        {"extn_id": "authority_key_identifier", "critical": False,
         "extn_value": {"key_identifier": key_identifier(issuer_spki)}},
    ]
    if extended_key_usage:
        exts.append({"extn_id": "extended_key_usage", "critical": True, "extn_value": list(extended_key_usage)})
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial or secrets.randbits(126) | (1 << 125),
        "signature": signature_algorithm_id(alg),
        "issuer": issuer,
        "validity": {"not_before": x509.Time(name="utc_time", value=start),
                     "not_after": x509.Time(name="utc_time", value=start + dt.timedelta(days=days))},
        "subject": subject,
        "subject_public_key_info": asn1_keys.PublicKeyInfo.load(spki),
        "extensions": exts,
    })
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": signature_algorithm_id(alg),
                             "signature_value": sign(tbs.dump())}).dump()


def read_certificates(path: str | Path, *, error: type[Exception] = ValueError) -> tuple[bytes, ...]:
    """Every certificate in a PEM file (or the one in a DER file), as DER; ``error(message)`` with a clear
    message when the file cannot be read or holds no valid X.509 certificate."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise error(f"cannot read certificate file {path}") from exc
    try:
        ders = tuple(der for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE") \
            if pem.detect(data) else (data,)
        for der in ders:
            cert = x509.Certificate.load(der, strict=True)
            cert.public_key.dump(), cert.subject.dump()  # noqa: B018 - parse the parts we use now
    except (ValueError, TypeError) as exc:
        raise error(f"{path} does not hold a valid X.509 certificate (PEM or DER)") from exc
    if not ders:
        raise error(f"{path} holds no certificate")
    return ders
