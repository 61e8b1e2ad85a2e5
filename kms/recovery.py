"""M-of-N approval of the dangerous KMC operations (judicial/administrative recovery, destruction,
disaster-recovery export) and the authorisation objects without which ``kms.escrow`` refuses them.

``RecoveryAuthorisation``, ``DestructionAuthorisation`` and ``ExportAuthorisation`` can only be minted
here: by ``ApprovalBook.authorise`` once M distinct, unexpired approvals by holders of the role
``key_recovery_officer`` (members of the configured panel of N, when one is named) are on record, or —
for a subscriber's own lost key — by ``authorise_subscriber_restore`` from a GM/T 0014 RestoreKeyReq
whose CA signature ``kms.endpoint`` has verified. Each is single-use: ``kms.escrow`` marks the request
used in the same transaction as the operation. Every step is audited (audit.trail).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kms.config import KmsConfig
from kms.errors import ApprovalError, EscrowNotFound
from kms.models import Approval, ApprovalRequest, EscrowedKey
from audit.trail import record
from store.db import as_utc, transaction, utcnow
from pkicore.errors import ErrorCode
from pkicore.names import display_name
from pkicore.validation import RevocationSource, SubIndication, TrustPolicy, validate_certificate

OFFICER_ROLE = "key_recovery_officer"
PURPOSES = ("recover", "destroy", "export")

_MINT = object()   # only this module holds it


@dataclass(frozen=True)
class _Authorisation:
    request_id: int | None
    key_id: int | None
    approvers: tuple[str, ...]
    issued_at: dt.datetime
    _token: object = field(repr=False, compare=False, default=None)

    def __post_init__(self):
        if self._token is not _MINT:
            raise ApprovalError("authorisations are produced only by kms.recovery's approval logic")


@dataclass(frozen=True)
class RecoveryAuthorisation(_Authorisation):
    """Permission to deliver one archived private key, in an envelope, to ``recipient_public_key_info``."""

    recipient_public_key_info: bytes = b""
    recipient_certificate: bytes | None = None
    subscriber_restore: bool = False


@dataclass(frozen=True)
class DestructionAuthorisation(_Authorisation):
    """Permission to destroy one archived private key after its retention period."""


@dataclass(frozen=True)
class ExportAuthorisation(_Authorisation):
    """Permission to export the (wrapped) archive once, for disaster recovery."""


@dataclass(frozen=True)
class Officer:
    """An authenticated principal (access.auth.Principal has this shape)."""

    name: str
    roles: frozenset[str]


def authorise_subscriber_restore(key_id: int, recipient_public_key_info: bytes, ca_id: str) -> RecoveryAuthorisation:
    """For ``kms.endpoint`` only, after it verified a CA-signed RestoreKeyReq: the RA vetted the subscriber
    and the CA vouches for the current signing key the key is re-delivered to."""
    return RecoveryAuthorisation(request_id=None, key_id=key_id, approvers=(f"ca:{ca_id}",), issued_at=utcnow(),
                                 _token=_MINT, recipient_public_key_info=recipient_public_key_info,
                                 subscriber_restore=True)


class ApprovalBook:
    """Recovery/destruction/export requests and their approvals (one database, audited)."""

    def __init__(self, db: sessionmaker[Session], config: KmsConfig,
                 issuers: Callable[[], Iterable[bytes]] = tuple, revocation: RevocationSource | None = None):
        self.db = db
        self.config = config
        self.issuers = issuers          # the CA certificates whose subscribers may receive a recovered key
        self.revocation = revocation    # their CRLs/OCSP (then a recipient's status must be established)

    def check_recipient(self, cert_der: bytes, now: dt.datetime | None = None) -> dict:
        """The recipient a recovered key would be enveloped to, checked: a certificate issued by one of our
        CAs (its path validated now, revocation too when a source is given) or one on the recipient list
        an administrator keeps (``[kmc] recipient_files``); never a self-made one. Returns what approvers
        are shown (subject, issuer, serial, SHA-256 fingerprint, validity, why it is accepted)."""
        try:
            cert = x509.Certificate.load(cert_der, strict=True)
            cert.public_key.dump()
            facts = recipient_facts(cert_der)
        except (ValueError, TypeError) as exc:
            raise ApprovalError("recipient certificate is malformed", code=ErrorCode.BAD_REQUEST) from exc
        if cert_der in self.config.recovery_recipients():
            return dict(facts, accepted="on the recipient list ([kmc] recipient_files)")
        not_ours = ApprovalError("the recipient certificate was not issued by one of our CAs and is not on the "
                                 "recipient list ([kmc] recipient_files): a recovered key goes only to known "
                                 "recipients", code=ErrorCode.BAD_REQUEST)
        issuers = tuple(self.issuers())
        if not issuers or cert.self_signed != "no":
            raise not_ours
        # RFC 5280 §6 path to the CAs this KMC serves (pkicore.validation); no keyUsage test: GM/T 0014
        # envelopes go to signing keys too (ApplyKeyReq's userPubKey)
        # given whole chains, the roots anchor and the rest are intermediates (pyhanko-certvalidator can
        # establish a CRL only below a self-signed anchor); given issuing CAs alone, they anchor
        roots = tuple(c for c in issuers if x509.Certificate.load(c).self_signed != "no")
        policy = TrustPolicy(roots or issuers, tuple(c for c in issuers if c not in roots),
                             revocation_info=self.revocation, require_revocation=self.revocation is not None)
        checked = validate_certificate(cert_der, policy, at=now, who="recipient", key_usage=None)
        if not checked.findings:
            return dict(facts, accepted=f"issued by {checked.issuer}")
        sub = checked.sub_indication
        if sub is SubIndication.NO_CERTIFICATE_CHAIN_FOUND:
            raise not_ours
        raise ApprovalError(f"the recipient certificate is not acceptable: {checked.findings[0].message}",
                            code=ErrorCode.BAD_REQUEST)

    # ------------------------------------------------------------------ requests
    def request(self, *, purpose: str, requested_by: str, reason: str, key_id: int | None = None,
                recipient_certificate: bytes | None = None, role: str = OFFICER_ROLE) -> int:
        """Open a request; recovery needs the recipient certificate the key will be enveloped to."""
        if purpose not in PURPOSES:
            raise ApprovalError(f"unknown purpose {purpose!r}", code=ErrorCode.BAD_REQUEST)
        if purpose in ("recover", "destroy") and key_id is None:
            raise ApprovalError(f"a {purpose} request names an archived key", code=ErrorCode.BAD_REQUEST)
        if purpose == "recover" and not recipient_certificate:
            raise ApprovalError("a recovery request names the recipient certificate", code=ErrorCode.BAD_REQUEST)
        recipient = self.check_recipient(recipient_certificate) if recipient_certificate else None
        if not reason.strip():
            raise ApprovalError("a request states its reason (court order, case number, ...)", code=ErrorCode.BAD_REQUEST)
        with transaction(self.db) as session:
            if key_id is not None and session.get(EscrowedKey, key_id) is None:
                raise EscrowNotFound(f"no archived key {key_id}")
            now = utcnow()
            req = ApprovalRequest(purpose=purpose, key_id=key_id, recipient_certificate=recipient_certificate,
                                  reason=reason, requested_by=requested_by, required=self.config.approvals_required,
                                  state="pending", created_at=now, expires_at=now + self.config.request_ttl)
            session.add(req)
            session.flush()
            record(session, actor=requested_by, role=role, action=f"kms.{purpose}.requested",
                   target_type="kms_request", target_id=req.id, key_id=key_id, reason=reason,
                   required=req.required, panel_size=self.config.panel_size,
                   recipient=recipient["fingerprint_sha256"] if recipient else None)
            return req.id

    def approve(self, request_id: int, officer, *, now: dt.datetime | None = None) -> int:
        """Record one officer's approval (authenticated principal with the role); returns the count of
        valid approvals. Refusals are audited too."""
        now = now or utcnow()
        with transaction(self.db) as session:
            req = session.get(ApprovalRequest, request_id, with_for_update=True)
            if req is None:
                raise EscrowNotFound(f"no request {request_id}")
            problem = self._approval_problem(session, req, officer, now)
            if problem:
                record(session, actor=officer.name, role=OFFICER_ROLE if OFFICER_ROLE in officer.roles else
                       ",".join(sorted(officer.roles)), action=f"kms.{req.purpose}.approval_refused",
                       target_type="kms_request", target_id=req.id, why=problem)
        if problem:
            raise ApprovalError(problem)
        with transaction(self.db) as session:
            req = session.get(ApprovalRequest, request_id, with_for_update=True)
            session.add(Approval(request_id=req.id, officer=officer.name, approved_at=now,
                                 expires_at=now + self.config.approval_ttl))
            session.flush()
            count = len(self._valid_approvals(session, req, now))
            record(session, actor=officer.name, role=OFFICER_ROLE, action=f"kms.{req.purpose}.approved",
                   target_type="kms_request", target_id=req.id, valid_approvals=count, required=req.required,
                   expires_at=now + self.config.approval_ttl)
            return count

    def _approval_problem(self, session: Session, req: ApprovalRequest, officer, now: dt.datetime) -> str | None:
        if OFFICER_ROLE not in officer.roles:
            return f"approving needs the role {OFFICER_ROLE}"
        if self.config.officers and officer.name not in self.config.officers:
            return "approver is not on the key-recovery officer panel"
        if req.state != "pending":
            return f"request is {req.state}"
        if as_utc(req.expires_at) <= now:
            return "request has expired"
        if officer.name == req.requested_by:
            return "the requester cannot approve their own request"
        existing = set(session.scalars(select(Approval.officer).where(Approval.request_id == req.id)))
        if officer.name in existing:
            return "this officer has already approved the request"
        return None

    @staticmethod
    def _valid_approvals(session: Session, req: ApprovalRequest, now: dt.datetime) -> list[Approval]:
        rows = session.scalars(select(Approval).where(Approval.request_id == req.id).order_by(Approval.id))
        seen, valid = set(), []
        for a in rows:
            if a.officer in seen or as_utc(a.expires_at) <= now:
                continue
            seen.add(a.officer)
            valid.append(a)
        return valid

    # ------------------------------------------------------------------ authorisation
    def authorise(self, request_id: int, *, actor: str, now: dt.datetime | None = None):
        """The authorisation object for a request with M distinct unexpired approvals (else ApprovalError).

        Does not consume the request: ``kms.escrow`` marks it used together with the operation.
        """
        now = now or utcnow()
        with transaction(self.db) as session:
            req = session.get(ApprovalRequest, request_id)
            if req is None:
                raise EscrowNotFound(f"no request {request_id}")
            valid = self._valid_approvals(session, req, now)
            problem = None
            if req.state != "pending":
                problem = f"request is {req.state}"
            elif as_utc(req.expires_at) <= now:
                problem = "request has expired"
            elif len(valid) < req.required:
                problem = f"{len(valid)} valid approval(s) of {req.required} required"
            elif self.config.officers and any(a.officer not in self.config.officers for a in valid):
                problem = "an approver is not on the panel"
            if problem:
                record(session, actor=actor, role=OFFICER_ROLE, action=f"kms.{req.purpose}.authorisation_refused",
                       target_type="kms_request", target_id=req.id, why=problem)
            else:
                approvers = tuple(a.officer for a in valid)
                record(session, actor=actor, role=OFFICER_ROLE, action=f"kms.{req.purpose}.authorised",
                       target_type="kms_request", target_id=req.id, approvers=list(approvers))
                base = dict(request_id=req.id, key_id=req.key_id, approvers=approvers, issued_at=now, _token=_MINT)
                if req.purpose == "recover":
                    from_cert = _certificate_public_key(req.recipient_certificate)
                    auth = RecoveryAuthorisation(**base, recipient_public_key_info=from_cert,
                                                 recipient_certificate=req.recipient_certificate)
                elif req.purpose == "destroy":
                    auth = DestructionAuthorisation(**base)
                else:
                    auth = ExportAuthorisation(**base)
        if problem:
            raise ApprovalError(problem)
        return auth

    def status(self, request_id: int, now: dt.datetime | None = None) -> dict:
        now = now or utcnow()
        with self.db() as session:
            req = session.get(ApprovalRequest, request_id)
            if req is None:
                raise EscrowNotFound(f"no request {request_id}")
            valid = self._valid_approvals(session, req, now)
            return {"id": req.id, "purpose": req.purpose, "key_id": req.key_id, "state": req.state,
                    "requested_by": req.requested_by, "reason": req.reason, "required": req.required,
                    "approvals": [a.officer for a in valid], "expires_at": as_utc(req.expires_at).isoformat(),
                    "recipient": recipient_facts(req.recipient_certificate) if req.recipient_certificate else None}


def consume(session: Session, auth: _Authorisation, expected: type) -> None:
    """Check an authorisation's type and mark its request used (in the caller's transaction)."""
    if not isinstance(auth, expected) or auth._token is not _MINT:
        raise ApprovalError(f"this operation needs a {expected.__name__}")
    if auth.request_id is None:
        return
    req = session.get(ApprovalRequest, auth.request_id, with_for_update=True)
    if req is None or req.state != "pending":
        raise ApprovalError("the authorisation has already been used")
    if req.key_id != auth.key_id:
        raise ApprovalError("authorisation does not match its request")
    req.state = "used"
    req.used_at = utcnow()


def _certificate_public_key(cert_der: bytes | None) -> bytes:
    if not cert_der:
        raise ApprovalError("no recipient certificate")
    try:
        return x509.Certificate.load(cert_der, strict=True).public_key.dump()
    except ValueError as exc:
        raise ApprovalError("recipient certificate is malformed") from exc


def recipient_facts(cert_der: bytes) -> dict:
    """What an approver sees of a recipient certificate before approving a recovery to it."""
    try:
        cert = x509.Certificate.load(cert_der)
        validity = cert["tbs_certificate"]["validity"]
        return {"subject": display_name(cert.subject), "issuer": display_name(cert.issuer),
                "serial": format(cert.serial_number, "X"), "fingerprint_sha256": hashlib.sha256(cert_der).hexdigest(),
                "not_before": validity["not_before"].native.isoformat(),
                "not_after": validity["not_after"].native.isoformat()}
    except (ValueError, TypeError):
        return {"subject": "?", "issuer": "?", "serial": "?", "fingerprint_sha256": hashlib.sha256(cert_der).hexdigest(),
                "not_before": None, "not_after": None}

