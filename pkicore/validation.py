"""Validation verdicts and certificate path validation at a point in time, shared by every verifier.

* Indications and sub-indications of ETSI EN 319 102-1 §5.1.3 (the EU DSS / SiVa vocabulary,
  REFERENCES §12): TOTAL_PASSED, TOTAL_FAILED, INDETERMINATE. A verifier may answer INDETERMINATE
  ("cannot tell"), never TOTAL_PASSED for what is untrusted, expired, revoked or altered.
* ``validate_certificate``: RFC 5280 §6 path validation through pyhanko-certvalidator with SM2-with-SM3
  signatures (``Sm2SignatureValidator``), against explicit trust anchors, with revocation information
  (CRLs/OCSP) from a source the caller gives (the site's CA, what a document embeds), at a validation
  time that is either *proven* (a trusted timestamp's genTime: EN 319 102-1 §5.6.2.1 "best signature
  time") or *not proven* (the current time). The proof decides between TOTAL_FAILED and
  INDETERMINATE: a certificate revoked or expired before a proven signing time fails; without proof the
  signature may predate the revocation or the expiry, so the answer is REVOKED_NO_POE /
  OUT_OF_BOUNDS_NO_POE (§5.2.6, §5.6.3.4).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import enum
import functools
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from asn1crypto import crl, ocsp, x509
from cryptography.exceptions import InvalidSignature
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (DisallowedAlgorithmError, ExpiredError, InsufficientRevinfoError,
                                          InvalidCertificateError, NotYetValidError, PathBuildingError,
                                          PathValidationError, RevokedError, ValidationError)
from pyhanko_certvalidator.sig_validate import DefaultSignatureValidator

from pkicore import asn1 as _asn1  # noqa: F401 - SM2/SM3 names for asn1crypto
from pkicore.algorithms import algorithm
from pkicore.keys import verify_signature
from pkicore.names import display_name
from pkicore.oids import OID

_SM2_SIG_OIDS = {OID.SM2_WITH_SM3, OID.SM2_SIGN}


class Indication(str, enum.Enum):
    """EN 319 102-1 §5.1.3 main indications."""

    TOTAL_PASSED = "TOTAL_PASSED"
    TOTAL_FAILED = "TOTAL_FAILED"
    INDETERMINATE = "INDETERMINATE"


class SubIndication(str, enum.Enum):
    """EN 319 102-1 §5.1.3 Table 5/6 sub-indications (REFERENCES §12)."""

    # with TOTAL_FAILED
    FORMAT_FAILURE = "FORMAT_FAILURE"
    HASH_FAILURE = "HASH_FAILURE"
    SIG_CRYPTO_FAILURE = "SIG_CRYPTO_FAILURE"
    REVOKED = "REVOKED"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    # with INDETERMINATE
    SIG_CONSTRAINTS_FAILURE = "SIG_CONSTRAINTS_FAILURE"
    CHAIN_CONSTRAINTS_FAILURE = "CHAIN_CONSTRAINTS_FAILURE"
    CERTIFICATE_CHAIN_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
    CRYPTO_CONSTRAINTS_FAILURE = "CRYPTO_CONSTRAINTS_FAILURE"
    SIGNED_DATA_NOT_FOUND = "SIGNED_DATA_NOT_FOUND"
    NO_SIGNING_CERTIFICATE_FOUND = "NO_SIGNING_CERTIFICATE_FOUND"
    NO_CERTIFICATE_CHAIN_FOUND = "NO_CERTIFICATE_CHAIN_FOUND"
    REVOKED_NO_POE = "REVOKED_NO_POE"
    REVOKED_CA_NO_POE = "REVOKED_CA_NO_POE"
    OUT_OF_BOUNDS_NO_POE = "OUT_OF_BOUNDS_NO_POE"
    OUT_OF_BOUNDS_NOT_REVOKED = "OUT_OF_BOUNDS_NOT_REVOKED"
    TRY_LATER = "TRY_LATER"


_RANK = {Indication.TOTAL_FAILED: 0, Indication.INDETERMINATE: 1, Indication.TOTAL_PASSED: 2}


@dataclass(frozen=True)
class Finding:
    """One reason a verdict is not TOTAL_PASSED: its indication, sub-indication and the words."""

    indication: Indication
    sub_indication: SubIndication
    message: str

    def as_dict(self) -> dict:
        return {"indication": self.indication.value, "sub_indication": self.sub_indication.value,
                "message": self.message}


def failed(sub: SubIndication, message: str) -> Finding:
    return Finding(Indication.TOTAL_FAILED, sub, message)


def indeterminate(sub: SubIndication, message: str) -> Finding:
    return Finding(Indication.INDETERMINATE, sub, message)


def worst(findings: Iterable[Finding]) -> tuple[Indication, SubIndication | None]:
    """The verdict of several findings: the first TOTAL_FAILED, else the first INDETERMINATE, else
    TOTAL_PASSED (no sub-indication)."""
    best: Finding | None = None
    for f in findings:
        if best is None or _RANK[f.indication] < _RANK[best.indication]:
            best = f
    if best is None:
        return Indication.TOTAL_PASSED, None
    return best.indication, best.sub_indication


# ------------------------------------------------------------------ SM2 inside pyhanko-certvalidator

class Sm2SignatureValidator(DefaultSignatureValidator):
    """pyhanko-certvalidator's signature check with SM2-with-SM3 (GB/T 32918.2, default user ID
    1234567812345678, GB/T 35276) added, also in the GM/T 0010 sm2-1 + SM3 form; the rest is pyHanko's."""

    def validate_signature(self, signature, signed_data, public_key_info, signature_algorithm, context=None):
        oid = signature_algorithm["algorithm"].dotted
        params = public_key_info["algorithm"]["parameters"]
        sm2_key = public_key_info.algorithm == "ec" and params.name == "named" and params.chosen.dotted == OID.SM2_CURVE
        if oid in _SM2_SIG_OIDS or sm2_key:
            if not sm2_key or not verify_signature(public_key_info.dump(), algorithm("sm2-sm3"), signed_data,
                                                   signature):
                raise InvalidSignature("SM2 signature invalid")
            return
        if context is None:
            return super().validate_signature(signature, signed_data, public_key_info, signature_algorithm)
        return super().validate_signature(signature, signed_data, public_key_info, signature_algorithm, context)


def is_sm2_ocsp(der: bytes) -> bool:
    """An OCSP response signed with SM2 (or unreadable). pyhanko-certvalidator 0.33 checks a delegated
    responder's certificate in a fresh ValidationContext that drops our ``signature_validator``
    (``revinfo/validate_ocsp.py``, ``_validate_delegated_ocsp_provenance``), so an SM2 response cannot be
    used there: SM2 chains are checked with CRLs, ECDSA/RSA chains with CRLs and OCSP."""
    try:
        basic = ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
        return basic["signature_algorithm"]["algorithm"].dotted in _SM2_SIG_OIDS
    except (ValueError, TypeError, KeyError):
        return True


# ------------------------------------------------------------------ trust policy and path validation

# (certificates DER) -> (CRLs DER, OCSPResponses DER) covering them, e.g. ca_bridge.revinfo.revocation_info
RevocationSource = Callable[[Sequence[bytes]], "tuple[Sequence[bytes], Sequence[bytes]]"]


@dataclass(frozen=True)
class TrustPolicy:
    """What a verifier trusts: explicit trust anchors (by default the site's own roots, plus a trust list
    from configuration), known intermediates, where revocation info comes from, and whether a certificate
    whose revocation status cannot be established may pass (never by default: a certificate that names a
    CRL distribution point or an OCSP responder must have its status established — pyhanko-certvalidator's
    "hard-fail"; one that names neither is reported with a warning)."""

    trust_anchors: tuple[bytes, ...] = ()
    other_certs: tuple[bytes, ...] = ()
    revocation_info: RevocationSource | None = None
    require_revocation: bool = True

    def with_anchors(self, anchors: Iterable[bytes]) -> "TrustPolicy":
        return TrustPolicy(tuple(anchors), self.other_certs, self.revocation_info, self.require_revocation)


@dataclass(frozen=True)
class CertificateResult:
    """The verdict on one certificate at one time: findings (empty = TOTAL_PASSED) and the facts."""

    findings: tuple[Finding, ...]
    subject: str | None = None
    issuer: str | None = None
    serial_hex: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    validation_time: dt.datetime | None = None
    time_proven: bool = False
    path: tuple[str, ...] = ()
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None
    revocation_reason_code: str | None = None     # RFC 5280 §5.3.1 CRLReason name, e.g. "key_compromise"
    warnings: tuple[str, ...] = field(default=())
    # for a path validated at "now": the first instant at which time alone may change this verdict — the
    # earliest notBefore/notAfter ahead among the path's certificates and nextUpdate among the CRLs used
    # (RFC 5280 §6.1.3 (a)(2), §5.1.2.5); None when not known (no path built, or a CRL without nextUpdate)
    valid_until: dt.datetime | None = None

    @property
    def indication(self) -> Indication:
        return worst(self.findings)[0]

    @property
    def sub_indication(self) -> SubIndication | None:
        return worst(self.findings)[1]

    def as_dict(self) -> dict:
        return {"indication": self.indication.value,
                "sub_indication": self.sub_indication.value if self.sub_indication else None,
                "findings": [f.as_dict() for f in self.findings], "warnings": list(self.warnings),
                "subject": self.subject, "issuer": self.issuer, "serial": self.serial_hex,
                "not_before": _iso(self.not_before), "not_after": _iso(self.not_after),
                "validation_time": _iso(self.validation_time), "time_proven": self.time_proven,
                "path": list(self.path), "revoked_at": _iso(self.revoked_at),
                "revocation_reason": self.revocation_reason}


def parsed_certificate(der: bytes) -> x509.Certificate:
    """A certificate (a trust anchor, one of our CAs, one that came with a signature) parsed once for every
    validation that meets it: asn1crypto parses lazily and keeps what it worked out (the RFC 4518 prepared
    names that pyhanko-certvalidator compares, extensions), which was ~30 % of a new signer's path
    validation. Shared only when it parses in full (``native``) first, so threads only read it; one that
    does not (e.g. UTF-8 bytes in an IA5String) is loaded afresh each time, as before."""
    shared = _fully_parsed(x509.Certificate, der)
    return shared if shared is not None else x509.Certificate.load(der)


def parsed_crl(der: bytes) -> crl.CertificateList:
    """A CRL parsed once (each CA's current one, kept until it changes: ca_bridge.revinfo.IssuerCrls), shared
    on the terms of ``parsed_certificate``."""
    shared = _fully_parsed(crl.CertificateList, der)
    return shared if shared is not None else crl.CertificateList.load(der)


@functools.lru_cache(maxsize=256)
def _fully_parsed(kind, der: bytes):
    try:
        parsed = kind.load(der)
        parsed.native                                     # noqa: B018 - every field parsed now
        if kind is x509.Certificate:
            parsed.subject.hashable, parsed.issuer.hashable    # noqa: B018 - and the names prepared
        else:
            parsed.issuer.hashable                             # noqa: B018
    except (ValueError, TypeError, KeyError, UnicodeError):
        return None
    return parsed


def _time_bound(certs, crls, moment: dt.datetime) -> dt.datetime | None:
    """The earliest validity boundary after ``moment`` among ``certs`` (notBefore, notAfter) and the CRLs'
    nextUpdate; None when a CRL has no nextUpdate or cannot be read (the verdict's lifetime is not known)."""
    bounds = []
    for c in certs:
        bounds += [c.not_valid_before, c.not_valid_after]
    for der in crls:
        try:
            tbs = (der if isinstance(der, crl.CertificateList) else parsed_crl(bytes(der)))["tbs_cert_list"]
            next_update = tbs["next_update"].native
        except (ValueError, TypeError, KeyError):
            return None
        if next_update is None:
            return None
        bounds.append(next_update)
    ahead = [b for b in bounds if b > moment]
    return min(ahead) if ahead else None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


SIGNING_KEY_USAGES = frozenset({"digital_signature", "non_repudiation"})


def validate_certificate(cert_der: bytes, policy: TrustPolicy, *, at: dt.datetime | None = None,
                         proven: bool = False, who: str = "signer",
                         key_usage: frozenset[str] | None = SIGNING_KEY_USAGES,
                         extra_certs: Iterable[bytes] = (), extra_crls: Iterable[bytes] = (),
                         extra_ocsps: Iterable[bytes] = ()) -> CertificateResult:
    """Validate ``cert_der``'s path to ``policy.trust_anchors`` at ``at`` (default now; ``proven`` when
    ``at`` is a trusted timestamp's time) with revocation info from ``policy.revocation_info`` and the
    ``extra_*`` (what the document embeds). ``key_usage``: at least one of these bits must be set when
    the certificate has a keyUsage extension (a signing certificate: digitalSignature or
    nonRepudiation, GM/T 0015 §7)."""
    now = dt.datetime.now(dt.timezone.utc)
    moment = at or now
    try:
        cert = x509.Certificate.load(cert_der, strict=True)
        facts = dict(subject=display_name(cert.subject), issuer=display_name(cert.issuer),
                     serial_hex=format(cert.serial_number, "X"),
                     not_before=cert["tbs_certificate"]["validity"]["not_before"].native,
                     not_after=cert["tbs_certificate"]["validity"]["not_after"].native)
    except (ValueError, TypeError, KeyError) as exc:
        return CertificateResult((failed(SubIndication.FORMAT_FAILURE, f"{who} certificate unreadable: {exc}"),))
    warnings: list[str] = []
    if not cert.crl_distribution_points and not cert.ocsp_urls and cert.self_signed == "no":
        warnings.append(f"{who} certificate names no CRL or OCSP responder: its revocation status cannot be checked")
    base = dict(facts, validation_time=moment, time_proven=proven, warnings=tuple(warnings))
    findings: list[Finding] = []
    if key_usage is not None:
        try:
            usage = cert.key_usage_value
        except ValueError:
            usage = None
        if usage is not None and not (set(usage.native) & key_usage):
            findings.append(indeterminate(SubIndication.SIG_CONSTRAINTS_FAILURE,
                                          f"{who} certificate's keyUsage ({', '.join(sorted(usage.native))}) "
                                          f"allows none of {', '.join(sorted(key_usage))}"))
    if not policy.trust_anchors:
        findings.append(indeterminate(SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
                                      f"no trust anchors configured: the {who} certificate's chain cannot be checked"))
        return CertificateResult(tuple(findings), **base)
    extra_certs = tuple(extra_certs)
    crls, ocsps = list(extra_crls), list(extra_ocsps)
    if policy.revocation_info is not None:
        got_crls, got_ocsps = policy.revocation_info((cert_der, *policy.other_certs, *extra_certs))
        crls += list(got_crls)
        ocsps += list(got_ocsps)
    try:
        context = ValidationContext(
            trust_roots=[parsed_certificate(bytes(c)) for c in policy.trust_anchors],
            other_certs=[parsed_certificate(bytes(c)) for c in (*policy.other_certs, *extra_certs)],
            crls=[parsed_crl(bytes(c)) if isinstance(c, (bytes, bytearray)) else c for c in crls],
            ocsps=[o for o in ocsps if not is_sm2_ocsp(o)], moment=moment, allow_fetching=False,
            retroactive_revinfo=True, revocation_mode="hard-fail" if policy.require_revocation else "soft-fail",
            signature_validator=Sm2SignatureValidator())
        path = asyncio.run(CertificateValidator(cert, validation_context=context).async_validate_path())
        certs = tuple(path.iter_certs(include_root=True)) if hasattr(path, "iter_certs") else ()
        names = tuple(display_name(c.subject) for c in certs)
        until = _time_bound(certs, crls, moment) if certs and at is None else None
        return CertificateResult(tuple(findings), **base, path=names, valid_until=until)
    except RevokedError as exc:
        ee = getattr(exc, "is_ee_cert", True)
        reason = exc.reason.human_friendly if exc.reason is not None else None
        if proven:
            finding = failed(SubIndication.REVOKED, f"{who} {'' if ee else 'CA '}certificate revoked on "
                             f"{exc.revocation_dt:%Y-%m-%d %H:%M:%S} UTC, before the proven signing time")
        else:
            finding = indeterminate(SubIndication.REVOKED_NO_POE if ee else SubIndication.REVOKED_CA_NO_POE,
                                    f"{who} {'' if ee else 'CA '}certificate revoked on "
                                    f"{exc.revocation_dt:%Y-%m-%d %H:%M:%S} UTC and no timestamp proves the "
                                    "signature was made before that")
        return CertificateResult((*findings, finding), **base, revoked_at=exc.revocation_dt, revocation_reason=reason,
                                 revocation_reason_code=exc.reason.native if exc.reason is not None else None)
    except ExpiredError as exc:
        if proven:
            finding = failed(SubIndication.EXPIRED, f"{who} certificate chain expired ({exc.expired_dt:%Y-%m-%d}) "
                             "before the proven signing time")
        else:
            finding = indeterminate(SubIndication.OUT_OF_BOUNDS_NO_POE,
                                    f"{who} certificate chain expired on {exc.expired_dt:%Y-%m-%d} and no "
                                    "timestamp proves the signature was made before that")
        return CertificateResult((*findings, finding), **base)
    except NotYetValidError as exc:
        return CertificateResult((*findings, failed(
            SubIndication.NOT_YET_VALID, f"{who} certificate chain not valid before {exc.valid_from:%Y-%m-%d %H:%M:%S}"
            f" UTC, after the {'proven ' if proven else ''}signing time")), **base)
    except InsufficientRevinfoError as exc:
        return CertificateResult((*findings, indeterminate(
            SubIndication.TRY_LATER, f"{who} certificate's revocation status unknown: {exc}")), **base)
    except DisallowedAlgorithmError as exc:
        return CertificateResult((*findings, indeterminate(
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE, f"{who} certificate chain uses a disallowed algorithm: {exc}")),
            **base)
    except PathBuildingError:
        return CertificateResult((*findings, indeterminate(
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            f"{who} certificate ({facts['issuer']}) does not chain to a trusted root")), **base)
    except (InvalidCertificateError, PathValidationError, ValidationError) as exc:
        return CertificateResult((*findings, indeterminate(
            SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, f"{who} certificate path invalid: {exc}")), **base)
    except UnicodeDecodeError:
        return CertificateResult((*findings, indeterminate(
            SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
            f"{who} certificate path unverifiable: a name in the chain holds bytes its string type does not "
            "allow (e.g. UTF-8 in an IA5String), so names cannot be compared")), **base)
    except (ValueError, TypeError, KeyError) as exc:
        return CertificateResult((*findings, indeterminate(
            SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE, f"{who} certificate path unverifiable: {exc}")), **base)
