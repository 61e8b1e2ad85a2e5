"""PKCS#10 certification requests (RFC 2986) signed by a callable — so a key held in an HSM can ask for
its own certificate. SM2 signatures use the default user ID (GB/T 35276 §8.2) like every other
SM2 signature of ours; the AlgorithmIdentifier has no parameters for SM2/ECDSA and NULL for RSA.

Written with asn1crypto's structures (cryptography cannot sign with an HSM callable or SM2).
"""
from __future__ import annotations

from typing import Callable

from asn1crypto import csr, keys, x509

from pkicore.algorithms import Algorithm


def build_csr(subject: tuple[tuple[str, str], ...], public_key_info: bytes, alg: Algorithm,
              sign: Callable[[bytes], bytes]) -> bytes:
    """DER CertificationRequest for ``subject`` (RDNs in order, asn1crypto attribute names) and the
    SubjectPublicKeyInfo DER; ``sign(der_of_info) -> signature`` (DER r,s for SM2/ECDSA)."""
    info = csr.CertificationRequestInfo({
        "version": "v1",
        "subject": x509.Name.build(dict(subject), use_printable=False),
        "subject_pk_info": keys.PublicKeyInfo.load(public_key_info),
        "attributes": [],
    })
    sig_alg = {"algorithm": alg.asn1_name, "parameters": None} if alg.params_null else {"algorithm": alg.asn1_name}
    return csr.CertificationRequest({"certification_request_info": info, "signature_algorithm": sig_alg,
                                     "signature": sign(info.dump())}).dump()
