"""The KMC's signing identity: an SM2 key in the HSM and its certificate (X.509, RFC 5280 / GM/T 0015).

Until the CA (ca_bridge) issues the KMC certificate, a self-signed one is made here with asn1crypto and
the key manager. Integrator hook: ``KeyEscrow.install_certificate(der)`` replaces it with a CA-issued one.
"""
from __future__ import annotations

import datetime as dt

from asn1crypto import keys as asn1_keys
from asn1crypto import x509

from hsm import KeyManager
from pkicore.oids import OID
from pkicore.sm2 import sm3


def subject_name(rdns: tuple[tuple[str, str], ...]) -> x509.Name:
    return x509.Name.build(dict(rdns), use_printable=False)


def self_signed_certificate(km: KeyManager, label: str, subject: tuple[tuple[str, str], ...],
                            days: int = 3650) -> bytes:
    """A self-signed SM2-with-SM3 certificate for an HSM key (digitalSignature, not a CA)."""
    spki = km.public_key_info(label)
    name = subject_name(subject)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    ski = sm3(asn1_keys.PublicKeyInfo.load(spki)["public_key"].contents[1:])[:20]
    tbs = x509.TbsCertificate({
        "version": "v3",
        "serial_number": int.from_bytes(km.random(16), "big") >> 1 or 1,
        "signature": {"algorithm": OID.SM2_WITH_SM3},
        "issuer": name,
        "validity": {"not_before": x509.Time(name="utc_time", value=now - dt.timedelta(minutes=5)),
                     "not_after": x509.Time(name="general_time", value=now + dt.timedelta(days=days))},
        "subject": name,
        "subject_public_key_info": asn1_keys.PublicKeyInfo.load(spki),
        "extensions": [
            {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}},
            {"extn_id": "key_usage", "critical": True,
             "extn_value": x509.KeyUsage({"digital_signature", "non_repudiation"})},
            {"extn_id": "key_identifier", "critical": False, "extn_value": ski},
            {"extn_id": "authority_key_identifier", "critical": False, "extn_value": {"key_identifier": ski}},
        ],
    })
    signature = km.sign(label, tbs.dump())
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": {"algorithm": OID.SM2_WITH_SM3},
                             "signature_value": signature}).dump()


def public_key_hash(spki_der: bytes) -> bytes:
    """SM3 of the subjectPublicKey bits (EntName.entPubKeyHash, GM/T 0014)."""
    return sm3(asn1_keys.PublicKeyInfo.load(spki_der)["public_key"].contents[1:])
