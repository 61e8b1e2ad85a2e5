"""Checking a time-stamp token (RFC 3161 §2.4.2, RFC 5816, RFC 5280 §6 for the TSA certificate's path):
signature, ESS certificate identifier, the critical timeStamping EKU, validity at genTime, the message
imprint against the data, the chain to given trust anchors and revocation in given CRLs.

``verify_token`` returns a frozen ``TokenVerification`` with one verdict and the reasons.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass, field
from typing import Sequence

from asn1crypto import cms, pem, tsp, x509

from pkicore.cms import verify_signed_data
from pkicore.validation import TrustPolicy, validate_certificate
from timestamp.tsa import ID_CT_TSTINFO, TimeStampResp, check_tsa_certificate
from timestamp.errors import TsaError


@dataclass(frozen=True)
class TokenVerification:
    ok: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    status: str | None = None                # reply status when a TimeStampResp was given
    gen_time: dt.datetime | None = None
    serial: int | None = None
    policy: str | None = None
    imprint_algorithm: str | None = None
    nonce: int | None = None
    algorithm: str | None = None
    tsa_subject: str | None = None
    chain: tuple[str, ...] = field(default=())   # subjects from the TSA up to the anchor

    def as_dict(self) -> dict:
        out = asdict(self)
        out["gen_time"] = self.gen_time.isoformat() if self.gen_time else None
        out["serial"] = f"{self.serial:x}" if self.serial is not None else None
        out["chain"] = list(self.chain)
        out["reasons"], out["warnings"] = list(self.reasons), list(self.warnings)
        return out


def load_certificates(blob: bytes) -> list[bytes]:
    """Certificates from DER or a PEM bundle."""
    if pem.detect(blob):
        return [der for kind, _, der in pem.unarmor(blob, multiple=True) if kind == "CERTIFICATE"]
    return [blob]


def load_crls(blob: bytes) -> list[bytes]:
    if pem.detect(blob):
        return [der for kind, _, der in pem.unarmor(blob, multiple=True) if kind == "X509 CRL"]
    return [blob]


def verify_token(blob: bytes, *, data: bytes | None = None, digest: bytes | None = None,
                 trust: Sequence[bytes] = (), crls: Sequence[bytes] = (), nonce: int | None = None) -> TokenVerification:
    """Check a TimeStampToken (ContentInfo) or a TimeStampResp against data (or its digest), trust
    anchors and CRLs. Without ``trust`` the chain is not checked (a warning says so)."""
    reasons: list[str] = []
    warnings: list[str] = []
    status = None
    try:
        if not _is_content_info(blob):
            resp = TimeStampResp.load(blob, strict=True)
            status = resp["status"]["status"].native
            if status not in ("granted", "granted_with_mods"):
                text = resp["status"]["status_string"].native or []
                return TokenVerification(False, (f"TSA status {status}: {'; '.join(text)}",), status=status)
            token = resp["time_stamp_token"].dump()
        else:
            token = blob
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        return TokenVerification(False, (f"not a TimeStampToken or TimeStampResp: {exc}",))

    cms_result = verify_signed_data(token, require_ess=True)
    reasons.extend(cms_result.reasons)
    if cms_result.content_type not in (None, ID_CT_TSTINFO):
        reasons.append("the SignedData does not hold a TSTInfo")
    if cms_result.content is None or cms_result.signer_certificate is None:
        return TokenVerification(False, tuple(reasons) or ("no TSTInfo",), status=status)
    try:
        info = tsp.TSTInfo.load(cms_result.content, strict=True)
        gen_time = info["gen_time"].native
        serial = info["serial_number"].native
        policy = info["policy"].dotted
        imprint_alg = info["message_imprint"]["hash_algorithm"]["algorithm"].native
        imprint = info["message_imprint"]["hashed_message"].native
        token_nonce = info["nonce"].native
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        return TokenVerification(False, (*reasons, f"malformed TSTInfo: {exc}"), status=status)

    tsa = x509.Certificate.load(cms_result.signer_certificate)
    try:
        check_tsa_certificate(tsa)
    except TsaError as exc:
        reasons.append(exc.public_message)
    if not tsa.not_valid_before <= gen_time <= tsa.not_valid_after:
        reasons.append("the TSA certificate is not valid at genTime")
    if data is not None:
        try:
            digest = hashlib.new(imprint_alg, data).digest()
        except ValueError:
            reasons.append(f"cannot compute {imprint_alg}")
    if digest is not None and digest != imprint:
        reasons.append("the message imprint does not match the data")
    if digest is None:
        warnings.append("no data given: the message imprint was not checked")
    if nonce is not None and nonce != token_nonce:
        reasons.append("the nonce does not match the request")

    chain_subjects: tuple[str, ...] = ()
    if trust:
        chain_subjects = _check_path(cms_result, gen_time, trust, crls, reasons, warnings)
    else:
        warnings.append("no trust anchor given: the TSA certificate's chain was not checked")
    return TokenVerification(not reasons, tuple(reasons), tuple(warnings), status, gen_time, serial, policy,
                             imprint_alg, token_nonce, cms_result.algorithm, tsa.subject.human_friendly,
                             chain_subjects)


def _is_content_info(blob: bytes) -> bool:
    try:
        first = cms.ContentInfo.load(blob)["content_type"]
        return first.dotted == "1.2.840.113549.1.7.2"
    except (ValueError, TypeError, KeyError):
        return False


def _check_path(signed, gen_time: dt.datetime, trust: Sequence[bytes], crls: Sequence[bytes],
                reasons: list[str], warnings: list[str]) -> tuple[str, ...]:
    """The TSA certificate's path to ``trust`` at genTime (RFC 5280 §6 through pyhanko-certvalidator with
    our SM2 validator: pkicore.validation), revocation from ``crls`` when given (then required for every
    certificate that names a CRL distribution point). RFC 3161 §4 (2)/(3): a TSA certificate revoked
    before genTime invalidates the token; revoked later it does not, unless for key or CA compromise —
    so a path that holds at genTime is checked once more now for a compromise revocation."""
    policy = TrustPolicy(tuple(trust), revocation_info=None, require_revocation=bool(crls))
    checked = validate_certificate(signed.signer_certificate, policy, at=gen_time, proven=True, who="TSA",
                                   key_usage=None, extra_certs=signed.certificates, extra_crls=crls)
    reasons.extend(f.message for f in checked.findings)
    path = tuple(reversed(checked.path))          # the TSA first, up to the anchor
    if checked.findings:
        return path
    if not crls:
        warnings.append("no CRL given: revocation was not checked")
        return path
    later = validate_certificate(signed.signer_certificate, policy, who="TSA", key_usage=None,
                                 extra_certs=signed.certificates, extra_crls=crls)
    if later.revoked_at is not None:
        if later.revocation_reason_code in ("key_compromise", "ca_compromise"):
            reasons.append(f"the TSA certificate (or its CA) was revoked for {later.revocation_reason_code} on "
                           f"{later.revoked_at.isoformat()}: its tokens are not to be trusted (RFC 3161 §4)")
        else:
            warnings.append(f"the TSA certificate was revoked after genTime ({later.revocation_reason or 'unspecified'},"
                            f" {later.revoked_at.isoformat()})")
    return path
