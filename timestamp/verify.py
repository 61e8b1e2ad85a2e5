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

from asn1crypto import cms, crl as asn1_crl, pem, tsp, x509

from pkicore.algorithms import algorithm
from pkicore.cms import verify_signed_data
from pkicore.keys import verify_signature
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


def _cert_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        alg = algorithm(cert["signature_algorithm"]["algorithm"].dotted)
    except KeyError:
        return False
    return verify_signature(issuer.public_key.dump(), alg, cert["tbs_certificate"].dump(),
                            cert["signature_value"].native)


def _crl_signed_by(crl: asn1_crl.CertificateList, issuer: x509.Certificate) -> bool:
    if crl.issuer != issuer.subject:
        return False
    try:
        alg = algorithm(crl["signature_algorithm"]["algorithm"].dotted)
    except KeyError:
        return False
    return verify_signature(issuer.public_key.dump(), alg, crl["tbs_cert_list"].dump(), crl["signature"].native)


def _path(leaf: x509.Certificate, anchors: list[x509.Certificate], untrusted: list[x509.Certificate],
          at: dt.datetime) -> tuple[list[x509.Certificate], list[str]]:
    """[leaf, ..., anchor] and the reasons it fails (empty when it holds)."""
    path, current = [leaf], leaf
    for _ in range(8):
        for anchor in anchors:
            if _cert_signed_by(current, anchor):
                path.append(anchor)
                reasons = [f"{c.subject.human_friendly} not valid at genTime" for c in path
                           if not c.not_valid_before <= at <= c.not_valid_after]
                for c in path[1:]:
                    bc = c.basic_constraints_value
                    if c is not anchor and (bc is None or not bc["ca"].native):
                        reasons.append(f"{c.subject.human_friendly} is not a CA certificate")
                return path, reasons
        nxt = next((c for c in untrusted if c.dump() != current.dump() and _cert_signed_by(current, c)), None)
        if nxt is None:
            break
        path.append(nxt)
        current = nxt
    return path, ["the TSA certificate does not chain to a given trust anchor"]


# what asn1crypto raises, lazily, on a malformed field anywhere inside a structure it loaded
MALFORMED = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


def verify_token(blob: bytes, *, data: bytes | None = None, digest: bytes | None = None,
                 trust: Sequence[bytes] = (), crls: Sequence[bytes] = (), nonce: int | None = None) -> TokenVerification:
    """Check a TimeStampToken (ContentInfo) or a TimeStampResp against data (or its digest), trust
    anchors and CRLs. Without ``trust`` the chain is not checked (a warning says so). A token malformed
    anywhere inside (asn1crypto parses lazily: a bad certificate, extension or CRL entry shows only when
    read) is a failed verdict naming that, never an exception (RFC 3161 §2.4.2: the token is not valid)."""
    try:
        return _verify_token(blob, data=data, digest=digest, trust=trust, crls=crls, nonce=nonce)
    except MALFORMED as exc:
        return TokenVerification(False, (f"malformed token, certificate or CRL: {type(exc).__name__}",))


def _verify_token(blob: bytes, *, data: bytes | None, digest: bytes | None, trust: Sequence[bytes],
                  crls: Sequence[bytes], nonce: int | None) -> TokenVerification:
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
        anchors = [x509.Certificate.load(c) for c in trust]
        untrusted = [x509.Certificate.load(c) for c in cms_result.certificates]
        path, why = _path(tsa, anchors, untrusted, gen_time)
        reasons.extend(why)
        chain_subjects = tuple(c.subject.human_friendly for c in path)
        if not why:
            reasons.extend(_revocation(path, [asn1_crl.CertificateList.load(c) for c in crls], gen_time, warnings))
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


def _revocation(path: list[x509.Certificate], crls: list[asn1_crl.CertificateList], gen_time: dt.datetime,
                warnings: list[str]) -> list[str]:
    """RFC 3161 §4 (2)/(3): a certificate revoked before genTime, or for key compromise at any time,
    invalidates the token; a later revocation for another reason does not."""
    if not crls:
        warnings.append("no CRL given: revocation was not checked")
        return []
    reasons = []
    for cert, issuer in zip(path, path[1:]):
        mine = [c for c in crls if _crl_signed_by(c, issuer)]
        if not mine:
            if any(c.issuer == issuer.subject for c in crls):
                reasons.append(f"the CRL of {issuer.subject.human_friendly} has an invalid signature")
            else:
                warnings.append(f"no CRL from {issuer.subject.human_friendly}")
            continue
        for crl in mine:
            for entry in crl["tbs_cert_list"]["revoked_certificates"]:
                if entry["user_certificate"].native != cert.serial_number:
                    continue
                when = entry["revocation_date"].native
                reason = None
                for ext in entry["crl_entry_extensions"]:
                    if ext["extn_id"].native == "crl_reason":
                        reason = ext["extn_value"].native
                if when <= gen_time or reason in ("key_compromise", "ca_compromise"):
                    reasons.append(f"{cert.subject.human_friendly} is revoked ({reason or 'unspecified'}, "
                                   f"{when.isoformat()})")
                else:
                    warnings.append(f"{cert.subject.human_friendly} was revoked after genTime ({reason})")
    return reasons
