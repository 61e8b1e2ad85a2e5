"""PAdES CMS SignedData (ETSI EN 319 142-1 §5.3 B-B, §5.4 B-T; RFC 5652 §5) from ``pkicore.cms``'s
``SignedDataTemplate`` (the one SignedData builder), for pyHanko's interrupted signing (``PdfSigner.async_digest_doc_for_signing`` / ``PdfTBSDocument.finish_signing``).

pyHanko keeps the PDF part (field, visible appearance, /ByteRange, /DSS); the SignedData put into /Contents
is set up here the way pyHanko 0.38's ``Signer.async_sign(use_pades=True)`` builds it, byte for byte:

* signed attributes (a DER SET OF, sorted): content-type ``data``, message-digest, signing-certificate-v2
  (RFC 5035 ESSCertIDv2, issuerSerial present; see "ESSCertIDv2 hash" below); no signing-time (PAdES
  forbids it) and no CMS algorithm protection (pyHanko adds it only to non-PAdES signatures);
* unsigned attributes: the signature-time-stamp-token (RFC 3161 token over the signature value,
  ``id-aa-signatureTimeStampToken``) for B-T;
* SignedData version 1, detached ``data``, the certificates as pyHanko carries them (the signer's plus its
  chain, roots only with ``embed_roots``) in a sorted SET OF;
* SM2: digest SM3 (1.2.156.10197.1.401), signatureAlgorithm SM3withSM2 (1.2.156.10197.1.501), DER r,s made
  by the HSM with the default user ID; RSA/ECDSA as asn1crypto names them (RSA with NULL parameters,
  SHA-2 digest identifiers with NULL parameters as asn1crypto writes them).

ESSCertIDv2 hash (``pkicore.cms.default_ess_digest``, the rule of every SignedData we make): SM3
(hashAlgorithm 1.2.156.10197.1.401, no parameters) when the seal signs with SM2/SM3; SHA-256, the DEFAULT and so omitted, for ECDSA and RSA — pyHanko's own choice for
every key type. RFC 5035 §3 lets the signer pick any hash; GM/T 0031 / GB/T 38540 tools expect the SM2 family
to use SM3 throughout, and a SHA-256 hash inside an SM2/SM3 signature is the one non-SM algorithm left. What
outside verifiers do with an SM3 ESSCertIDv2 (checked in tests/unit/seal/test_pades.py and
tests/interop/test_seal_interop.py):

* Bouncy Castle 1.72 writes one itself — its ``TimeStampTokenGenerator`` puts the digest calculator's
  algorithm in the ESSCertIDv2 (omitted only for SHA-256) — and checks one: ``TimeStampToken.validate``
  hashes the certificate with the ESSCertIDv2's algorithm; its ``ESSCertIDv2`` parser and SM3 digest
  calculator match our signer certificate in the PDF's SignedData (harness ``cms --ess``);
* pyHanko 0.38 (``sign.general.check_ess_certid``, run by every ``validate_pdf_signature``) hashes with
  the algorithm the ESSCertIDv2 names, through ``cryptography``'s ``hashes.SM3``, and accepts it (our SM2
  signature validator is needed for the SM2 signature, not for the attribute);
* our TSA's SM2 tokens (``pkicore.cms.SignedDataTemplate``) already carry an SM3 ESSCertIDv2, and Bouncy
  Castle and our verifier accept them (tests/interop/test_tsa_interop.py);
* GmSSL 3 (``src/cms.c``) signs and verifies the authenticated attributes as opaque bytes (it checks the
  sm3 / sm2sign-with-sm3 identifiers and the signature), and BC's ``CMSSignedDataGenerator`` — what
  BC-based Chinese PDF signing code builds SM2 CMS with — adds no ESS attribute by default: neither writes
  nor checks signing-certificate-v2, so either hash passes them.

pyHanko builds the CMS itself for encrypted documents and as the fallback; ``seal.pdf.HsmSigner`` makes
it write the same SM3 ESSCertIDv2 for SM2 keys, so both paths give the same bytes.

Why pyHanko does not build it on the direct path: its ``Signer.async_sign`` builds the whole CMS as
asn1crypto objects per document (what the template precomputes once per signer), and its size estimate
signs a dummy CMS first; the template gives pyHanko an exact ``bytes_reserved`` instead. What is
pyHanko's here is only what must match it byte for byte: the AlgorithmIdentifiers (its mechanism object and
asn1crypto's digest identifier, dumped once) and its choice of certificates (``_certificate_set``).
``SignedDataTemplate`` keeps only constant bytes per signer (and a content-type cache), so one template
serves every thread and document of a signer; per document the work is one HSM signature, the TSA call
and some concatenation.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

from asn1crypto import algos, x509

from pkicore.cms import SignedDataTemplate, default_ess_digest, der_integer, signature_timestamp_attribute, tlv

# Room left beside the exact size of the CMS for what a TSA may vary between two tokens (serial number,
# nonce, fraction digits of genTime, signature length: a few bytes in practice) and for safety.
SLACK_BYTES = 64


def max_signature_size(public_key: "x509.PublicKeyInfo | bytes") -> int:
    """The longest signature value a key makes: RSA the modulus length; SM2/ECDSA a DER SEQUENCE of two
    INTEGERs of at most the order's length plus a sign byte."""
    key = public_key if not isinstance(public_key, bytes) else x509.PublicKeyInfo.load(public_key)
    if key.algorithm in ("rsa", "rsassa_pss"):
        return (key.bit_size + 7) // 8
    if key.algorithm == "ec":
        n = (key.bit_size + 7) // 8 + 1
        body = 2 * len(tlv(0x02, bytes(n)))
        return len(tlv(0x30, bytes(body)))
    raise ValueError(f"no signature size bound for {key.algorithm} keys")


@dataclass(frozen=True)
class PadesTemplate:
    """One signer's PAdES SignedData: ``pkicore.cms.SignedDataTemplate`` (the one SignedData builder) set
    up as pyHanko writes it, plus the sizing pyHanko's placeholder needs."""

    digest: str                 # hashlib name of the message digest (sm3, sha256, ...)
    cms: SignedDataTemplate     # SignedDataTemplate.external: no signing callable, pyHanko signs
    signature_max: int          # longest signature value the key makes

    @property
    def digest_length(self) -> int:
        return self.cms.digest_size

    def signed_attributes(self, document_digest: bytes) -> bytes:
        """DER SET OF the signed attributes: what the signature covers (RFC 5652 §5.4): content-type
        ``data``, message-digest, signing-certificate-v2; no signing-time (see the module docstring)."""
        return self.cms.signed_attributes(document_digest)

    def content_info(self, signed_attributes: bytes, signature: bytes, timestamp_token: bytes | None = None) -> bytes:
        """ContentInfo DER of the detached SignedData; ``timestamp_token`` (a TimeStampToken ContentInfo DER
        over the signature value) becomes the signature-time-stamp-token unsigned attribute (B-T)."""
        unsigned = () if timestamp_token is None else (signature_timestamp_attribute(timestamp_token),)
        return self.cms.content_info(signed_attributes, signature, unsigned_attributes=unsigned)

    def size_bound(self, timestamp_token_size: int | None = None) -> int:
        """Exact DER size of the longest SignedData this template makes with a token of that size."""
        token = None if timestamp_token_size is None else bytes(timestamp_token_size)
        return len(self.content_info(self.signed_attributes(bytes(self.digest_length)),
                                     bytes(self.signature_max), token))

    def bytes_reserved(self, timestamp_token_size: int | None = None) -> int:
        """``bytes_reserved`` for pyHanko (hex characters, even): the bound, the slack (more with a
        timestamp: tokens differ a little from the sizing one) and nothing estimated from dummies."""
        slack = SLACK_BYTES + (timestamp_token_size // 8 if timestamp_token_size else 0)
        return 2 * (self.size_bound(timestamp_token_size) + slack)


def _certificate_set(signing_cert: bytes, chain: tuple[bytes, ...], embed_roots: bool) -> list[bytes]:
    """The certificates as pyHanko's ``_package_signature`` carries them: every certificate of its
    registry (deduplicated by issuer and serial there; self-signed ones only with ``embed_roots``) plus
    the signer's (the template writes them as a DER SET OF)."""
    seen, certs = set(), []
    for der in chain:
        cert = x509.Certificate.load(der)
        if cert.issuer_serial in seen:
            continue
        seen.add(cert.issuer_serial)
        if embed_roots or cert.self_signed == "no":
            certs.append(der)
    certs.append(signing_cert)
    return certs


@functools.lru_cache(maxsize=256)
def template(signing_cert: bytes, chain: tuple[bytes, ...], digest: str, signature_algorithm: bytes,
             embed_roots: bool = True) -> PadesTemplate:
    """The template of one signer (cached: certificate, chain, digest and signature algorithm)."""
    cert = x509.Certificate.load(signing_cert)
    if cert.serial_number < 0 or der_integer(cert.serial_number) != cert["tbs_certificate"]["serial_number"].dump():
        raise ValueError("certificate serial number not in minimal DER: leave the CMS to pyHanko")
    return PadesTemplate(
        digest=digest,
        cms=SignedDataTemplate.external(
            signing_cert, digest, signature_algorithm,
            digest_algorithm=algos.DigestAlgorithm({"algorithm": digest}).dump(),
            certificate_set=_certificate_set(signing_cert, chain, embed_roots), ess_digest=default_ess_digest(digest)),
        signature_max=max_signature_size(cert.public_key))


def template_for(signer, digest: str) -> PadesTemplate:
    """The template of any pyHanko ``Signer`` (its certificate, registry, mechanism and ``embed_roots``)."""
    return template(signer.signing_cert.dump(), tuple(c.dump() for c in signer.cert_registry), digest,
                    signer.get_signature_mechanism_for_digest(digest).dump(), signer.embed_roots)
