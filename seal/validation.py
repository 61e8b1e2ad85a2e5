"""One verification policy for every seal and signature we check — OFD seals, OFD plain signatures, PDF
signatures, bare seals (.esl): GB/T 38540-2020 §8 (seal and seal-signature verification) read with ETSI
EN 319 102-1's validation model.

For a seal signature (SES_Signature) the checks are, in order:
1. structure (FORMAT_FAILURE), the document signer's and the seal maker's signatures (SIG_CRYPTO_FAILURE:
   ``signature_intact`` says separately whether the cryptography held), dataHash and the protected files
   (HASH_FAILURE), the signer certificate bound to the seal by its certList / certDigestList
   (GB/T 38540 §8.3.3 e; SIG_CONSTRAINTS_FAILURE);
2. the signing time: a timestamp over the signature value whose TSA chains to the TSA trust anchors
   proves it (EN 319 102-1 §5.6.2.1 best-signature-time); the signer's own timeInfo is a claim only;
3. at that time (else now): the seal's own validity period and its state in our registry (revoked,
   suspended), the signer's and the seal maker's certificate paths to the trust anchors with revocation
   (``pkicore.validation.validate_certificate``) and key usage.

A check that fails with proof is TOTAL_FAILED; without proof of time, an expired or revoked certificate
or seal is INDETERMINATE (…_NO_POE); an unknown chain is INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable, Iterable

from asn1crypto import x509

from pkicore.names import display_name
from pkicore.validation import (CertificateResult, Finding, RevocationSource, SubIndication, TrustPolicy, failed,
                                indeterminate, validate_certificate)
from seal import ses

TIMESTAMPING_EKU = "time_stamping"


@dataclass(frozen=True)
class SealState:
    """A seal's state in our registry: ``active``, ``suspended``, ``revoked`` or ``expired``, and since when."""

    status: str
    since: dt.datetime | None = None
    reason: str | None = None


@dataclass(frozen=True)
class SealPolicy:
    """The trust policy of a seal verifier: who may have made seals and signed with them (``trust``),
    which TSAs may prove signing times (``tsa``), and the registry look-up of a seal's state by esID."""

    trust: TrustPolicy = field(default_factory=TrustPolicy)
    tsa: TrustPolicy = field(default_factory=TrustPolicy)
    seal_state: Callable[[str], SealState | None] | None = None

    @classmethod
    def anchored(cls, trust: Iterable[bytes] = (), tsa_trust: Iterable[bytes] = (), *,
                 revocation_info: RevocationSource | None = None, other_certs: Iterable[bytes] = (),
                 require_revocation: bool = True) -> "SealPolicy":
        """A policy trusting ``trust`` for signers and seal makers and ``tsa_trust`` (default: ``trust``)
        for TSAs."""
        trust, other = tuple(trust), tuple(other_certs)
        return cls(TrustPolicy(trust, other, revocation_info, require_revocation),
                   TrustPolicy(tuple(tsa_trust) or trust, other, revocation_info, require_revocation))


@dataclass(frozen=True)
class TimestampResult:
    """What a signature timestamp proves: its genTime, whether that time is proven (token intact, over
    this signature, TSA trusted) and, if not, why."""

    gen_time: dt.datetime | None
    proven: bool
    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    tsa: CertificateResult | None = None

    def as_dict(self) -> dict:
        return {"gen_time": self.gen_time.isoformat() if self.gen_time else None, "proven": self.proven,
                "findings": [f.as_dict() for f in self.findings], "warnings": list(self.warnings),
                "tsa": self.tsa.as_dict() if self.tsa else None}


def check_timestamp(token: bytes, stamped: bytes, tsa: TrustPolicy) -> TimestampResult:
    """An RFC 3161 token (RFC 3161 §2.4.2) over ``stamped`` (a signature value): the token's own signature,
    its message imprint, and its TSA certificate (critical id-kp-timeStamping, RFC 3161 §2.3) validated
    now against ``tsa``'s anchors. An altered token is a finding; an untrusted TSA only leaves the time
    unproven."""
    gen_time, why, result = ses.open_timestamp(token, stamped)
    if why:
        return TimestampResult(gen_time, False, (indeterminate(SubIndication.SIG_CONSTRAINTS_FAILURE,
                                                               f"signature timestamp invalid: {why}"),))
    tsa_cert = result.signer_certificate
    if tsa_cert is None:
        return TimestampResult(gen_time, False, warnings=("timestamp carries no TSA certificate: time not proven",))
    checked = validate_certificate(tsa_cert, tsa, who="TSA", key_usage=None, extra_certs=result.certificates)
    warnings = []
    try:
        eku = x509.Certificate.load(tsa_cert).extended_key_usage_value
        if eku is None or TIMESTAMPING_EKU not in eku.native:
            warnings.append("the timestamp's certificate lacks id-kp-timeStamping: time not proven")
            return TimestampResult(gen_time, False, warnings=tuple(warnings), tsa=checked)
    except ValueError:
        pass
    if checked.findings:
        return TimestampResult(gen_time, False, warnings=tuple(
            f"timestamp not used as proof of time: {f.message}" for f in checked.findings), tsa=checked)
    return TimestampResult(gen_time, True, tsa=checked)


def seal_time_findings(view: ses.SealView, when: dt.datetime, proven: bool, what: str = "seal") -> list[Finding]:
    """The seal's own validity period (SES_ESPropertyInfo validStart..validEnd) at ``when``."""
    if when < view.valid_start:
        return [failed(SubIndication.NOT_YET_VALID, f"{what} not valid before {view.valid_start:%Y-%m-%d %H:%M:%S} "
                       f"UTC, after the {'proven ' if proven else ''}signing time")]
    if when > view.valid_end:
        if proven:
            return [failed(SubIndication.EXPIRED, f"{what} expired on {view.valid_end:%Y-%m-%d %H:%M:%S} UTC, "
                           "before the proven signing time")]
        return [indeterminate(SubIndication.OUT_OF_BOUNDS_NO_POE,
                              f"{what} expired on {view.valid_end:%Y-%m-%d %H:%M:%S} UTC and no timestamp proves "
                              "it was used before that")]
    return []


def seal_state_findings(view: ses.SealView, policy: SealPolicy, when: dt.datetime, proven: bool
                        ) -> tuple[list[Finding], list[str]]:
    """The seal's state in our registry (GB/T 38540 §8.2: a revoked or suspended seal is not usable)."""
    state = policy.seal_state(view.es_id) if policy.seal_state is not None else None
    if state is None:
        return [], []
    if state.status == "revoked":
        since = f" on {state.since:%Y-%m-%d %H:%M:%S} UTC" if state.since else ""
        if proven and state.since is not None and state.since > when:
            return [], [f"seal revoked{since}, after the proven signing time"]
        if proven:
            return [failed(SubIndication.REVOKED, f"seal revoked{since}, before the proven signing time")], []
        return [indeterminate(SubIndication.REVOKED_NO_POE,
                              f"seal revoked{since} and no timestamp proves it was used before that")], []
    if state.status == "suspended":
        return [indeterminate(SubIndication.TRY_LATER, "seal suspended (冻结) in the registry")], []
    return [], []


@dataclass(frozen=True)
class SignatureEvaluation:
    """The findings on one SES_Signature under a policy, with the facts the reports show."""

    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    intact: bool | None
    check: ses.SignatureCheck | None
    validation_time: dt.datetime | None = None
    time_proven: bool = False
    timestamp: TimestampResult | None = None
    signer: CertificateResult | None = None
    maker: CertificateResult | None = None

    def details(self) -> dict:
        return {"ses": self.check.as_dict() if self.check else None,
                "timestamp": self.timestamp.as_dict() if self.timestamp else None,
                "signer_certificate": self.signer.as_dict() if self.signer else None,
                "seal_maker_certificate": self.maker.as_dict() if self.maker else None}


def evaluate_signature(der: bytes, policy: SealPolicy, *, signed_data: bytes | None = None,
                       property_info: str | None = None, at: dt.datetime | None = None) -> SignatureEvaluation:
    """GB/T 38540 §8.3 verification of an SES_Signature under ``policy`` (module docstring). ``at``:
    the validation time when no timestamp proves one (default now)."""
    check = ses.verify_ses_signature(der, signed_data=signed_data, property_info=property_info)
    if check.view is None:
        return SignatureEvaluation(tuple(check.findings), tuple(check.warnings), None, check)
    view = check.view
    findings = list(check.findings)
    warnings = list(check.warnings)
    stamp = None
    proven_time = None
    if view.time_stamp is not None:
        stamp = check_timestamp(view.time_stamp, view.signature, policy.tsa)
        findings += stamp.findings
        warnings += stamp.warnings
        if stamp.proven:
            proven_time = stamp.gen_time
            if view.time_info > stamp.gen_time + dt.timedelta(minutes=5):
                warnings.append("the signer's timeInfo is later than the timestamp")
    else:
        warnings.append("no timestamp: the signing time is the signer's claim only")
    proven = proven_time is not None
    when = proven_time or at or dt.datetime.now(dt.timezone.utc)
    signer = validate_certificate(view.signer_cert, policy.trust, at=when, proven=proven, who="signer")
    maker = validate_certificate(view.seal.maker_cert, policy.trust, at=when, proven=proven, who="seal maker")
    findings += signer.findings
    findings += maker.findings
    warnings += [*signer.warnings, *maker.warnings]
    # the signer's own claim that it sealed outside the seal's validity is a failure whatever the proof
    claimed = seal_time_findings(view.seal, view.time_info, True, "seal (at the signer's own timeInfo)")
    findings += claimed
    if not claimed:
        findings += seal_time_findings(view.seal, when, proven)
    state, state_warnings = seal_state_findings(view.seal, policy, when, proven)
    findings += state
    warnings += state_warnings
    return SignatureEvaluation(tuple(findings), tuple(warnings), check.intact, check, when, proven, stamp, signer,
                               maker)


@dataclass(frozen=True)
class SealEvaluation:
    """The findings on a bare seal (.esl) under a policy, now (or at ``at``)."""

    findings: tuple[Finding, ...]
    warnings: tuple[str, ...]
    intact: bool | None
    check: ses.SealCheck
    validation_time: dt.datetime
    maker: CertificateResult | None = None
    bound: tuple[str, ...] = ()


def evaluate_seal(der: bytes, policy: SealPolicy, *, at: dt.datetime | None = None) -> SealEvaluation:
    """GB/T 38540 §8.2 verification of a seal as of ``at`` (default now): structure, the maker's signature
    over DER(SES_SealInfo), the validity period (an expired seal is TOTAL_FAILED / EXPIRED: there is no
    signing time to prove), the registry state, and the maker certificate's path to the trust anchors."""
    when = at or dt.datetime.now(dt.timezone.utc)
    check = ses.verify_seal(der)
    if check.view is None:
        return SealEvaluation(tuple(check.findings), tuple(check.warnings), None, check, when)
    view = check.view
    findings = list(check.findings)
    warnings = list(check.warnings)
    if when > view.valid_end:
        findings.append(failed(SubIndication.EXPIRED, f"seal expired on {view.valid_end:%Y-%m-%d %H:%M:%S} UTC"))
    elif when < view.valid_start:
        findings.append(failed(SubIndication.NOT_YET_VALID,
                               f"seal not valid before {view.valid_start:%Y-%m-%d %H:%M:%S} UTC"))
    state, state_warnings = seal_state_findings(view, policy, when, True)
    findings += state
    warnings += state_warnings
    maker = validate_certificate(view.maker_cert, policy.trust, at=when, proven=True, who="seal maker")
    findings += maker.findings
    warnings += maker.warnings
    bound = []
    for cert in view.certs:
        try:
            bound.append(display_name(x509.Certificate.load(cert).subject))
        except ValueError:
            bound.append("?")
    return SealEvaluation(tuple(findings), tuple(warnings), check.intact, check, when, maker, tuple(bound))


__all__ = ["SealPolicy", "SealState", "TimestampResult", "SignatureEvaluation", "SealEvaluation", "check_timestamp",
           "evaluate_signature", "evaluate_seal"]
