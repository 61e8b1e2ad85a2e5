"""PKCS#10 certification requests (RFC 2986) as the RA receives them: strict parsing, proof of
possession (SM2 with the GB/T 35276 default ID, ECDSA, RSA), key strength and subject consistency.

The RA never copies a CSR subject into a certificate: the subject comes from the vetted record, and a
CSR whose subject contradicts that record is refused (``subject_conflicts``).
"""
from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import pem

from pkicore.algorithms import algorithm as lookup_algorithm
from pkicore.errors import ErrorCode
from pkicore.keys import KeyProblem, inspect_key, verify_signature
from pkicore.oids import OID
from pkicore.signatures import der_to_ints
from pkicore.sm2 import SM2PublicKey, sm2_e, sm2_verify_digest

from ra.errors import CsrError

MAX_CSR_SIZE = 16 * 1024
"""Largest CSR accepted (DER bytes); an RSA-4096 request with extensions is about 1.7 kB."""

ACCEPTED_CURVES = ("secp256r1", "secp384r1", "sm2p256v1")
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192

# Signature algorithm OIDs seen on SM2 CSRs: SM2-with-SM3 (GM/T 0006), and the bare sm2sign OID some
# USB-key middleware writes instead; both mean SM2 over SM3 with the default user ID.
SM2_SIGNATURE_OIDS = (OID.SM2_WITH_SM3, OID.SM2_SIGN)

_PEM_LABELS = ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")


@dataclass(frozen=True)
class KeyInfo:
    """A checked public key: its type (sm2/ec/rsa), size in bits and curve."""

    key_type: str
    bits: int
    curve: str | None
    public_key_info: bytes          # SPKI DER, re-encoded canonically


@dataclass(frozen=True)
class ParsedCsr:
    """A CSR that passed every check: strict DER, a strong key and a valid self-signature."""

    der: bytes
    subject: tuple[tuple[str, str], ...]     # (asn1crypto attribute name, value) in order
    key: KeyInfo
    signature_algorithm: str                 # our algorithm name (pkicore.algorithms)

    @property
    def public_key_info(self) -> bytes:
        return self.key.public_key_info


def decode_csr(data: bytes | str, *, max_size: int = MAX_CSR_SIZE) -> bytes:
    """PEM, base64 or DER in; DER out. Only the size and the outer armour are checked here."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if len(data) > max_size * 2:
        raise CsrError(f"CSR larger than {max_size} bytes")
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            label, _headers, der = pem.unarmor(stripped)
        except ValueError as exc:
            raise CsrError(f"CSR PEM armour is malformed: {exc}") from exc
        if label not in _PEM_LABELS:
            raise CsrError(f"expected a CERTIFICATE REQUEST PEM block, got {label!r}")
    elif stripped[:1] == b"\x30":
        der = data
    else:
        try:
            der = base64.b64decode(re.sub(rb"\s+", b"", stripped), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CsrError("CSR is neither PEM, base64 nor DER") from exc
    if len(der) > max_size:
        raise CsrError(f"CSR larger than {max_size} bytes")
    if not der:
        raise CsrError("CSR is empty")
    return der


def _load_strict(der: bytes) -> asn1_csr.CertificationRequest:
    try:
        req = asn1_csr.CertificationRequest.load(der, strict=True)
        info = req["certification_request_info"]
        _ = (info["version"].native, info["subject"].native, info["attributes"].native,
             info["subject_pk_info"]["algorithm"].native, req["signature_algorithm"].native,
             req["signature"].native)
        reencoded = asn1_csr.CertificationRequest.load(der).dump(force=True)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise CsrError(f"CSR is not a valid PKCS#10 structure: {exc}") from exc
    if reencoded != der:
        raise CsrError("CSR is not DER-encoded (BER lengths, unsorted sets or non-minimal encodings)")
    if info["version"].native != "v1":
        raise CsrError("CSR version must be v1 (0)")
    return req


def check_public_key(spki_der: bytes) -> KeyInfo:
    """Refuse weak or malformed keys: what ``pkicore.keys.inspect_key`` refuses (not DER, curves other
    than P-256/P-384/SM2, points off the curve or compressed, explicit curve parameters), and RSA keys
    under 2048 bits or with an exponent below 65537 (the RA's policy)."""
    try:
        key = inspect_key(spki_der)
    except KeyProblem as exc:
        code = ErrorCode.UNSUPPORTED_ALGORITHM if exc.kind == "unsupported" else ErrorCode.BAD_ENCODING
        raise CsrError(str(exc), code=code) from exc
    if key.family == "rsa":
        n = asn1_keys.RSAPublicKey.load(key.key_bits)["modulus"].native
        if key.bits < MIN_RSA_BITS:
            raise CsrError(f"RSA key of {key.bits} bits is too weak (at least {MIN_RSA_BITS})",
                           code=ErrorCode.UNSUPPORTED_ALGORITHM)
        if key.bits > MAX_RSA_BITS:
            raise CsrError(f"RSA key of {key.bits} bits is larger than {MAX_RSA_BITS}",
                           code=ErrorCode.UNSUPPORTED_ALGORITHM)
        if key.exponent < 65537 or key.exponent % 2 == 0 or n % 2 == 0:
            raise CsrError("RSA public exponent must be odd and at least 65537", code=ErrorCode.UNSUPPORTED_ALGORITHM)
    return KeyInfo(key.family, key.bits, key.curve, key.spki)


def _signature_algorithm(req: asn1_csr.CertificationRequest, key: KeyInfo) -> str:
    oid = req["signature_algorithm"]["algorithm"].dotted
    if oid in SM2_SIGNATURE_OIDS:
        name = "sm2-sm3"
    else:
        try:
            name = lookup_algorithm(oid).name
        except KeyError:
            raise CsrError(f"CSR signature algorithm {oid} is not accepted (SM2-with-SM3, ECDSA or RSA "
                           "with SHA-256/384)", code=ErrorCode.UNSUPPORTED_ALGORITHM) from None
    row = lookup_algorithm(name)
    if row.key_type != key.key_type:
        raise CsrError(f"CSR signature algorithm {name} does not fit a {key.key_type} key",
                       code=ErrorCode.UNSUPPORTED_ALGORITHM)
    if row.asn1_name == "rsassa_pss":
        params = req["signature_algorithm"]["parameters"].native or {}
        if params.get("hash_algorithm", {}).get("algorithm") != "sha256" or params.get("salt_length") != 32:
            raise CsrError("RSASSA-PSS CSRs must use SHA-256, MGF1-SHA-256 and a 32-byte salt",
                           code=ErrorCode.UNSUPPORTED_ALGORITHM)
    return name


def _verify_pop(req: asn1_csr.CertificationRequest, key: KeyInfo, alg_name: str) -> None:
    tbs = req["certification_request_info"].dump()
    signature = req["signature"].native
    if verify_signature(key.public_key_info, lookup_algorithm(alg_name), tbs, signature):
        return
    if key.key_type == "sm2":
        # OpenSSL 3.0's CLI signs with an EMPTY user ID unless told otherwise (REFERENCES.md §2).
        try:
            r, s = der_to_ints(signature)
            point = asn1_keys.PublicKeyInfo.load(key.public_key_info)["public_key"].native
            pub = SM2PublicKey.from_point(point)
            empty_id = sm2_verify_digest(pub, sm2_e(pub, tbs, b""), r, s)
        except ValueError:
            empty_id = False
        if empty_id:
            raise CsrError("SM2 CSR was signed with an empty user ID (OpenSSL without "
                           "-sigopt distid:1234567812345678); sign it with the default ID "
                           "1234567812345678 (GB/T 35276)", code=ErrorCode.BAD_SIGNATURE)
    raise CsrError("CSR signature does not verify with its public key (no proof of possession)",
                   code=ErrorCode.BAD_SIGNATURE)


def _subject(req: asn1_csr.CertificationRequest) -> tuple[tuple[str, str], ...]:
    pairs = []
    for rdn in req["certification_request_info"]["subject"].chosen:
        for ava in rdn:
            value = ava["value"].native
            if not isinstance(value, str):
                raise CsrError(f"CSR subject attribute {ava['type'].native} is not a string")
            pairs.append((ava["type"].native, value))
    return tuple(pairs)


def parse_csr(data: bytes | str, *, max_size: int = MAX_CSR_SIZE) -> ParsedCsr:
    """Decode, check and verify a CSR; raises ``CsrError`` saying which check failed."""
    der = decode_csr(data, max_size=max_size)
    req = _load_strict(der)
    key = check_public_key(req["certification_request_info"]["subject_pk_info"].dump())
    alg_name = _signature_algorithm(req, key)
    _verify_pop(req, key, alg_name)
    return ParsedCsr(der=der, subject=_subject(req), key=key, signature_algorithm=alg_name)


def load_public_key_info(data: bytes | str) -> KeyInfo:
    """An SPKI given as PEM (PUBLIC KEY), base64 or DER, checked like a CSR's key (no PoP: the
    encryption key of a dual pair cannot sign; the KMC will generate it later)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            label, _h, der = pem.unarmor(stripped)
            if label != "PUBLIC KEY":
                raise CsrError(f"expected a PUBLIC KEY PEM block, got {label!r}")
        elif stripped[:1] == b"\x30":
            der = data
        else:
            der = base64.b64decode(re.sub(rb"\s+", b"", stripped), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CsrError(f"public key is neither PEM, base64 nor DER: {exc}") from exc
    if len(der) > MAX_CSR_SIZE:
        raise CsrError(f"public key larger than {MAX_CSR_SIZE} bytes")
    key = check_public_key(der)
    if key.public_key_info != der:
        raise CsrError("public key is not DER-encoded")
    return key


def _norm(value: str) -> str:
    return unicodedata.normalize("NFC", value).strip().casefold()


COMPARED_ATTRIBUTES = ("country_name", "organization_name", "organizational_unit_name", "common_name")


def subject_conflicts(csr_subject: tuple[tuple[str, str], ...],
                      vetted_subject: tuple[tuple[str, str], ...]) -> list[str]:
    """Reasons why a CSR subject contradicts the subject built from the vetted record (empty: none).

    An empty CSR subject is fine; C, O, OU and CN, when present, must equal the vetted values. Other
    attributes are ignored: the certificate subject is built from the vetted record only.
    """
    expected: dict[str, set[str]] = {}
    for name, value in vetted_subject:
        expected.setdefault(name, set()).add(_norm(value))
    reasons = []
    for name, value in csr_subject:
        if name not in COMPARED_ATTRIBUTES:
            continue
        if name not in expected:
            reasons.append(f"CSR subject has {name}={value!r}, the vetted record has none")
        elif _norm(value) not in expected[name]:
            reasons.append(f"CSR subject {name}={value!r} contradicts the vetted record")
    return reasons
