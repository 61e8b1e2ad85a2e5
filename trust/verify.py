"""Verification for applications (GM/T 0020 SOF_VerifySignedData, SOF_VerifySignedMessage,
SOF_ValidateCert), read with ETSI EN 319 102-1's validation model (pkicore.validation):

1. the signature itself: raw SM2 (with the user ID), ECDSA, RSA over the data, or each SignerInfo of a CMS
   SignedData (attached or detached; RFC 5652 and GM/T 0010 forms; messageDigest, contentType, ESS
   signing-certificate) — a failure is TOTAL_FAILED / HASH_FAILURE or SIG_CRYPTO_FAILURE;
2. the signing time: proven only by an RFC 3161 signatureTimeStampToken over the signature value whose TSA
   chains to the TSA anchors (our roots and the trust list) and is not revoked; a signingTime attribute is the
   signer's claim, reported, never used as proof;
3. the signer certificate at that time (else now): path to the trust anchors with revocation (hard-fail),
   validity, key usage (digitalSignature or nonRepudiation) — pkicore.validation.validate_certificate, whose
   result also gives the GM/T 0020 SOF_ValidateCert code (trust.verdict).

A signature is valid (``valid`` true, indication TOTAL_PASSED) only when every step passed, for every
SignerInfo; anything else is TOTAL_FAILED or INDETERMINATE with the reason in words.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Hashable

from asn1crypto import cms, core, x509

from pkicore.algorithms import Algorithm, algorithm
from pkicore.cms import der_oid, tlv, verify_signed_data
from pkicore.keys import verify_signature
from pkicore.sm2 import DEFAULT_USER_ID
from pkicore.validation import (CertificateResult, Finding, Indication, SubIndication, TrustPolicy, failed,
                                indeterminate, validate_certificate, worst)
from timestamp.verify import verify_token
from trust.certinfo import cached_cert_info, cert_info, load_certificate
from trust.errors import TrustError
from trust.signing import ID_AA_SIGNATURE_TIMESTAMP
from trust.verdict import certificate_verdict, sof_code

CertificateCheck = Callable[..., CertificateResult]
TimeCheck = Callable[..., "TimeProof"]           # (token, signature, tsa_policy) -> TimeProof


class ValidationCache:
    """Certificate validation results reused while nothing they depend on has changed: the key is the
    certificate, the certificates that came with it, the trust anchors and intermediates (so a change of
    the trust list or of our CAs misses), the validation time when it is proven (a timestamp's genTime;
    "now" otherwise), and the site's *revocation state* — a value that changes whenever any certificate
    status changes at the CA (each CA's revocation counter, ``ca_bridge.crl.bump_revocation_seq``), read
    fresh for every verification. A revocation committed on any node therefore misses the cache at once.
    Time: a "now" result whose path was built is kept up to ``path_ttl`` seconds and never past its
    ``valid_until`` (the first notBefore/notAfter ahead in the path, the CRLs' nextUpdate:
    pkicore.validation), so a repeat signer is cheap while expiry and a stale CRL are not missed; any other
    result at most ``ttl`` seconds and never past the certificate's notAfter. Nothing is cached when the
    state is unknown (no ``revocation_state``)."""

    def __init__(self, revocation_state: Callable[[], Hashable] | None, *, ttl: float = 10.0,
                 path_ttl: float = 3600.0, size: int = 4096):
        self.revocation_state = revocation_state
        self.ttl = ttl
        self.path_ttl = path_ttl
        self.size = size
        self._items: OrderedDict = OrderedDict()
        self._digests: dict[int, tuple[bytes, bytes]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def check(self, cert_der: bytes, policy: TrustPolicy, *, at: dt.datetime | None, proven: bool,
              extra_certs=(), key_usage=frozenset({"digital_signature", "non_repudiation"}),
              state: Hashable = None) -> CertificateResult:
        """``validate_certificate``'s result, reused while nothing it depends on changed. ``state``: the
        revocation state a caller read for this request (the HTTP fast path reads it with the token
        generation in one statement, trust.fastpath), else it is read here."""
        if self.revocation_state is None or (at is not None and not proven):
            return validate_certificate(cert_der, policy, at=at, proven=proven, extra_certs=extra_certs,
                                        key_usage=key_usage)
        if state is None:
            state = self.revocation_state()
        key = (self._sha256(cert_der), tuple(self._sha256(c) for c in extra_certs),
               hash((policy.trust_anchors, policy.other_certs, policy.require_revocation)), key_usage,
               at if proven else None, state)
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] > now:
                self._items.move_to_end(key)
                self.hits += 1
                return item[1]
        self.misses += 1
        result = validate_certificate(cert_der, policy, at=at, proven=proven, extra_certs=extra_certs,
                                      key_usage=key_usage)
        until = now + self.ttl
        if not proven:
            bound, ttl = ((result.valid_until, self.path_ttl) if result.valid_until is not None
                          else (result.not_after, self.ttl))
            until = now + ttl
            if bound is not None:
                left = (bound - dt.datetime.now(dt.timezone.utc)).total_seconds()
                until = min(until, now + max(0.0, left))
        self._keep(key, until, result)
        return result

    def time_proof(self, token: bytes, signature: bytes, tsa_policy: TrustPolicy, *,
                   state: Hashable = None) -> TimeProof:
        """``check_time``'s proof, reused like a certificate result: keyed by the token, the signature value
        it covers, the TSA anchors and the revocation state (the TSA's CRLs are our CAs'), kept at most
        ``ttl`` seconds. Measured: an embedded timestamp cost ~100 ms a verification (the TSA's path
        validated with pyhanko-certvalidator and its CRLs gathered, each time)."""
        if self.revocation_state is None:
            return check_time(token, signature, tsa_policy)
        if state is None:
            state = self.revocation_state()
        key = ("time", hashlib.sha256(token).digest(), hashlib.sha256(signature).digest(),
               hash((tsa_policy.trust_anchors, tsa_policy.other_certs, tsa_policy.require_revocation)), state)
        now = time.monotonic()
        with self._lock:
            item = self._items.get(key)
            if item is not None and item[0] > now:
                self._items.move_to_end(key)
                self.hits += 1
                return item[1]
        self.misses += 1
        proof = check_time(token, signature, tsa_policy)
        self._keep(key, now + self.ttl, proof)
        return proof

    def _sha256(self, der: bytes) -> bytes:
        """SHA-256 of a certificate, remembered by object: the hand reader (pkicore.cms) hands the same bytes
        object back for a certificate it has read before, so a repeat signer's are not hashed again."""
        kept = self._digests.get(id(der))
        if kept is not None and kept[0] is der:
            return kept[1]
        digest = hashlib.sha256(der).digest()
        if len(self._digests) >= self.size:
            self._digests.clear()
        self._digests[id(der)] = (der, digest)
        return digest

    def _keep(self, key, until: float, value) -> None:
        with self._lock:
            self._items[key] = (until, value)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _direct(cert_der: bytes, policy: TrustPolicy, **kwargs) -> CertificateResult:
    return validate_certificate(cert_der, policy, **kwargs)


_SIG_FOR_KEY = {"sm2": "sm2-sm3", "ec-p256": "ecdsa-sha256", "ec-p384": "ecdsa-sha384", "rsa": "rsa-sha256"}


@dataclass(frozen=True)
class TimeProof:
    """What an embedded signature timestamp proves: genTime, whether proven, and why not."""

    gen_time: dt.datetime | None = None
    proven: bool = False
    reasons: tuple[str, ...] = ()
    tsa: str | None = None

    def as_dict(self) -> dict:
        return {"gen_time": self.gen_time.isoformat() if self.gen_time else None, "proven": self.proven,
                "reasons": list(self.reasons), "tsa": self.tsa}


@dataclass(frozen=True)
class SignerReport:
    """One signature's verdict: cryptography, time, certificate, and the resulting indication."""

    index: int
    signature_valid: bool
    signature_reasons: tuple[str, ...]
    certificate: CertificateResult | None
    signer: dict | None = None                  # trust.certinfo of the signer certificate
    algorithm: str | None = None
    claimed_signing_time: dt.datetime | None = None
    timestamp: TimeProof | None = None
    findings: tuple[Finding, ...] = field(default=())
    certificate_der: bytes | None = field(default=None, repr=False, compare=False)     # the signer certificate

    @property
    def indication(self) -> Indication:
        return worst(self.findings)[0]

    @property
    def sub_indication(self) -> SubIndication | None:
        return worst(self.findings)[1]

    @property
    def reason(self) -> str:
        if not self.findings:
            return "signature intact and the signer certificate valid"
        sub = self.sub_indication
        return next(f.message for f in self.findings if f.sub_indication == sub)

    def as_dict(self) -> dict:
        cert = certificate_verdict(self.certificate) if self.certificate is not None else None
        return self.as_dict_with(cert, self.signer)

    def as_dict_with(self, certificate, signer) -> dict:
        """``as_dict`` with the values given for "certificate" and "signer" (the two large parts, which a
        caller may render once per certificate result: trust.fastpath)."""
        ind, sub = worst(self.findings)
        return {"index": self.index, "valid": ind == Indication.TOTAL_PASSED, "indication": ind.value,
                "sub_indication": sub.value if sub else None,
                "reason": self.reason, "signature_valid": self.signature_valid,
                "signature_reasons": list(self.signature_reasons), "algorithm": self.algorithm,
                "certificate_code": sof_code(self.certificate) if self.certificate is not None else None,
                "certificate": certificate, "signer": signer,
                "claimed_signing_time": self.claimed_signing_time.isoformat() if self.claimed_signing_time else None,
                "timestamp": self.timestamp.as_dict() if self.timestamp else None,
                "findings": [f.as_dict() for f in self.findings]}


@dataclass(frozen=True)
class VerifyReport:
    """The verdict on a raw signature or a SignedData: one SignerReport per signature."""

    kind: str                                   # raw | cms
    signers: tuple[SignerReport, ...]
    findings: tuple[Finding, ...] = ()          # structural findings (no signer, unreadable)
    detached: bool | None = None
    content_sha256: str | None = None

    @property
    def all_findings(self) -> tuple[Finding, ...]:
        return (*self.findings, *(f for s in self.signers for f in s.findings))

    @property
    def indication(self) -> Indication:
        return worst(self.all_findings)[0] if self.signers or self.findings else Indication.INDETERMINATE

    @property
    def valid(self) -> bool:
        return bool(self.signers) and self.indication == Indication.TOTAL_PASSED

    def as_dict(self, signers: list | None = None) -> dict:
        """The JSON answer; ``signers``: the values for "signers" when the caller renders them (else each
        SignerReport's ``as_dict``)."""
        ind, sub = worst(self.all_findings)
        if not self.signers and not self.findings:
            ind, sub = Indication.INDETERMINATE, SubIndication.SIGNED_DATA_NOT_FOUND
        reason = "every signature intact and every signer certificate valid"
        for f in self.all_findings:
            if f.sub_indication == sub:
                reason = f.message
                break
        # SOF_ValidateCert of the signer certificates: the first that is not valid, else 1 (−6 when none)
        codes = [sof_code(s.certificate) if s.certificate is not None else -6 for s in self.signers]
        code = next((c for c in codes if c != 1), 1) if codes else -6
        return {"kind": self.kind, "valid": self.valid, "indication": ind.value,
                "sub_indication": sub.value if sub else None, "reason": reason, "certificate_code": code,
                "detached": self.detached, "content_sha256": self.content_sha256,
                "signers": [s.as_dict() for s in self.signers] if signers is None else signers,
                "findings": [f.as_dict() for f in self.findings]}


def signature_algorithm_for(cert: x509.Certificate, name: str | None = None) -> Algorithm:
    """The signature algorithm of a raw signature: ``name`` if given (and of the key's family), else the
    key's usual one (SM2 -> sm2-sm3, P-256 -> ecdsa-sha256, P-384 -> ecdsa-sha384, RSA -> rsa-sha256)."""
    info = cert_info(cert)
    kind = info["key_algorithm"]
    default = _SIG_FOR_KEY.get("rsa" if kind.startswith("rsa") else kind)
    if default is None:
        raise TrustError(f"no signature algorithm for {kind} keys")
    if name is None:
        return algorithm(default)
    try:
        alg = algorithm(name)
    except KeyError:
        raise TrustError(f"unknown signature algorithm {name!r}") from None
    if alg.key_type != algorithm(default).key_type:
        raise TrustError(f"{name} does not fit the certificate's {kind} key")
    return alg


def check_time(token: bytes, signature: bytes, tsa_policy: TrustPolicy) -> TimeProof:
    """An RFC 3161 token over ``signature``: intact, imprint over the signature value, TSA chaining to
    ``tsa_policy``'s anchors, not revoked in the CRLs ``tsa_policy`` gathers."""
    crls: list[bytes] = []
    try:
        certs = [c.chosen.dump() for c in cms.ContentInfo.load(token)["content"]["certificates"] or ()]
    except (ValueError, TypeError, KeyError):
        certs = []
    if tsa_policy.revocation_info is not None and certs:
        crls = list(tsa_policy.revocation_info(certs)[0])
    result = verify_token(token, data=signature, trust=tsa_policy.trust_anchors, crls=crls)
    if not tsa_policy.trust_anchors:
        return TimeProof(result.gen_time, False, ("no TSA trust anchors: the time is not proven",), result.tsa_subject)
    return TimeProof(result.gen_time, result.ok, result.reasons, result.tsa_subject)


def _evaluate(index: int, intact: bool, reasons: tuple[str, ...], cert_der: bytes | None, policy: TrustPolicy,
              tsa_policy: TrustPolicy, *, alg: str | None, signature: bytes | None, token: bytes | None,
              claimed: dt.datetime | None, extra_certs=(), at: dt.datetime | None = None,
              hash_failure: bool = False, check: CertificateCheck = _direct,
              time_check: TimeCheck | None = None) -> SignerReport:
    findings: list[Finding] = []
    if not intact:
        sub = SubIndication.HASH_FAILURE if hash_failure else SubIndication.SIG_CRYPTO_FAILURE
        findings.append(failed(sub, "signature invalid: " + "; ".join(reasons)))
    if cert_der is None:
        findings.append(indeterminate(SubIndication.NO_SIGNING_CERTIFICATE_FOUND, "signer certificate not found"))
        return SignerReport(index, intact, reasons, None, None, alg, claimed, None, tuple(findings))
    proof = None
    when, proven = at, False
    if token is not None and signature is not None:
        proof = (time_check or check_time)(token, signature, tsa_policy)
        if proof.proven:
            when, proven = proof.gen_time, True
    result = check(cert_der, policy, at=when, proven=proven, extra_certs=tuple(extra_certs))
    findings += result.findings
    try:
        signer = cached_cert_info(cert_der)
    except TrustError:
        signer = None
    return SignerReport(index, intact, reasons, result, signer, alg, claimed, proof, tuple(findings),
                        certificate_der=cert_der)


def verify_raw(data: bytes, signature: bytes, certificate: bytes, policy: TrustPolicy, tsa_policy: TrustPolicy, *,
               user_id: bytes | None = None, algorithm_name: str | None = None,
               timestamp_token: bytes | None = None, at: dt.datetime | None = None,
               check: CertificateCheck = _direct, time_check: TimeCheck | None = None) -> VerifyReport:
    """SOF_VerifySignedData: ``signature`` over ``data`` with ``certificate``'s key, and the certificate."""
    cert = load_certificate(certificate)
    alg = signature_algorithm_for(cert, algorithm_name)
    if user_id is not None and alg.key_type != "sm2":
        raise TrustError("a user ID applies to SM2 signatures only")
    intact = verify_signature(cert.public_key.dump(), alg, data, signature,
                              **({"user_id": user_id or DEFAULT_USER_ID} if alg.key_type == "sm2" else {}))
    reasons = () if intact else ("the signature does not verify with the certificate's key"
                                 + (f" and the user ID {user_id!r}" if user_id else "") + " over the data",)
    report = _evaluate(0, intact, reasons, cert.dump(), policy, tsa_policy, alg=alg.name, signature=signature,
                       token=timestamp_token, claimed=None, at=at, check=check, time_check=time_check)
    return VerifyReport("raw", (report,), content_sha256=hashlib.sha256(data).hexdigest())


def verify_cms(signed: bytes, policy: TrustPolicy, tsa_policy: TrustPolicy, *, content: bytes | None = None,
               at: dt.datetime | None = None, check: CertificateCheck = _direct,
               time_check: TimeCheck | None = None) -> VerifyReport:
    """SOF_VerifySignedMessage: every SignerInfo of a SignedData (attached, or detached with ``content``).
    ``at``: the validation time when no timestamp proves one (default now)."""
    first = verify_signed_data(signed, content=content)
    if first.signer_count == 0:
        sub = (SubIndication.SIGNED_DATA_NOT_FOUND if first.reasons and "content is needed" in first.reasons[0]
               else SubIndication.FORMAT_FAILURE)
        return VerifyReport("cms", (), (failed(sub, "; ".join(first.reasons) or "no SignerInfo")
                                        if sub == SubIndication.FORMAT_FAILURE else
                                        indeterminate(sub, "; ".join(first.reasons)),))
    detached = first.detached
    if detached is None:
        try:
            econtent = cms.ContentInfo.load(signed)["content"]
            encap = econtent["encap_content_info"] if "encap_content_info" in econtent else None
            detached = encap is None or isinstance(encap["content"], core.Void) or encap["content"].contents is None
        except (ValueError, TypeError, KeyError):
            pass
    signers = []
    for index in range(first.signer_count):
        result = first if index == 0 else verify_signed_data(signed, content=content, signer_index=index)
        if result.content is None and not result.signer_certificate:
            sub = SubIndication.SIGNED_DATA_NOT_FOUND if any("content is needed" in r for r in result.reasons) \
                else SubIndication.FORMAT_FAILURE
            return VerifyReport("cms", (), (indeterminate(sub, "; ".join(result.reasons)),), detached)
        token = None
        ts_values = result.unsigned_attributes.get(ID_AA_SIGNATURE_TIMESTAMP)
        if ts_values is not None:
            try:
                token = cms.CMSAttribute.load(tlv(0x30, der_oid(ID_AA_SIGNATURE_TIMESTAMP) + ts_values)
                                              )["values"][0].dump()
            except (ValueError, TypeError, KeyError, IndexError):
                token = None
        hash_failure = any("messageDigest" in r for r in result.reasons)
        signers.append(_evaluate(index, result.ok, result.reasons, result.signer_certificate, policy, tsa_policy,
                                 alg=result.algorithm, signature=result.signature, token=token,
                                 claimed=result.signing_time, extra_certs=result.certificates,
                                 hash_failure=hash_failure, at=at, check=check, time_check=time_check))
    payload = first.content
    return VerifyReport("cms", tuple(signers), (), detached,
                        hashlib.sha256(payload).hexdigest() if payload is not None else None)

