"""Read-only queries behind the console's lists and dashboard that the package services do not offer
(counts, per-day issuance, certificate search, audit browsing). Writes always go through the services."""
from __future__ import annotations

import datetime as dt
from collections import Counter

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.models import CertificateAuthority, IssuedCert
from kms.models import ApprovalRequest
from pkicore.audit import AuditEvent
from pkicore.db import as_utc, utcnow
from ra.csr import parse_csr
from ra.models import CertRequest, Unit
from racentre.console.models import ConsoleJob


def pending_counts(db: sessionmaker[Session]) -> dict:
    with db() as session:
        states = dict(session.execute(select(CertRequest.state, func.count()).group_by(CertRequest.state)).all())
        kms = session.scalar(select(func.count()).select_from(ApprovalRequest).where(ApprovalRequest.state == "pending"))
        jobs = session.scalar(select(func.count()).select_from(ConsoleJob)
                              .where(ConsoleJob.state.in_(("queued", "running"))))
    return {"submitted": states.get("submitted", 0), "vetted": states.get("vetted", 0), "kms": kms, "jobs": jobs,
            "issued": states.get("issued", 0), "rejected": states.get("rejected", 0)}


def issuance_per_day(db: sessionmaker[Session], days: int = 14, today: dt.date | None = None) -> list[tuple[dt.date, int]]:
    today = today or utcnow().date()
    start = today - dt.timedelta(days=days - 1)
    since = dt.datetime.combine(start, dt.time(), tzinfo=dt.timezone.utc)
    with db() as session:
        stamps = session.scalars(select(IssuedCert.created_at).where(IssuedCert.created_at >= since))
        counts = Counter(as_utc(s).date() for s in stamps)
    return [(start + dt.timedelta(days=i), counts.get(start + dt.timedelta(days=i), 0)) for i in range(days)]


def units(db: sessionmaker[Session]) -> list[dict]:
    with db() as session:
        return [{"id": u.id, "name": u.name} for u in session.scalars(select(Unit).order_by(Unit.name).limit(500))]


def csr_details(db: sessionmaker[Session], request_id: int) -> list[dict]:
    """What the CSRs of a request say (subject, key, signature algorithm), re-parsed with ra.csr."""
    with db() as session:
        req = session.get(CertRequest, request_id)
        csrs = [] if req is None else [(u, d) for u, d in (("sign", req.sign_csr), ("enc", req.enc_csr)) if d]
    details = []
    for usage, der in csrs:
        parsed = parse_csr(der, max_size=1 << 20)
        details.append({"usage": usage, "subject": ", ".join(f"{k}={v}" for k, v in parsed.subject),
                        "key": f"{parsed.key.key_type} {parsed.key.bits}" + (f" ({parsed.key.curve})" if parsed.key.curve else ""),
                        "signature_algorithm": parsed.signature_algorithm, "size": len(der)})
    return details


def search_certificates(db: sessionmaker[Session], *, text: str = "", status: str = "", limit: int = 100) -> list[dict]:
    query = (select(IssuedCert, CertificateAuthority.name).join(CertificateAuthority,
                                                                  IssuedCert.ca_id == CertificateAuthority.id)
             .order_by(IssuedCert.id.desc()).limit(limit))
    text = text.strip()
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        query = query.where(or_(IssuedCert.subject.like(like), IssuedCert.serial == text.lower().lstrip("0"),
                                IssuedCert.request_id == text))
    if status in ("good", "revoked"):
        query = query.where(IssuedCert.status == status)
    with db() as session:
        return [{"ca": name, "serial": c.serial, "subject": c.subject, "profile": c.profile, "status": c.status,
                 "request_id": c.request_id, "not_after": as_utc(c.not_after), "created_at": as_utc(c.created_at)}
                for c, name in session.execute(query)]


def kms_request_ids(db: sessionmaker[Session], limit: int = 100) -> list[int]:
    with db() as session:
        return list(session.scalars(select(ApprovalRequest.id)
                                    .order_by((ApprovalRequest.state == "pending").desc(), ApprovalRequest.id.desc())
                                    .limit(limit)))


def audit_events(db: sessionmaker[Session], *, actor: str = "", action: str = "", target: str = "",
                 before_id: int | None = None, limit: int = 100) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action.like(f"{action.replace('%', '')}%"))
    if target:
        target_type, _, target_id = target.partition(":")
        query = query.where(AuditEvent.target_type == target_type)
        if target_id:
            query = query.where(AuditEvent.target_id == target_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    with db() as session:
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def jobs(db: sessionmaker[Session], limit: int = 50) -> list[ConsoleJob]:
    with db() as session:
        rows = list(session.scalars(select(ConsoleJob).order_by(ConsoleJob.id.desc()).limit(limit)))
        session.expunge_all()
        return rows


def job(db: sessionmaker[Session], job_id: int) -> ConsoleJob | None:
    with db() as session:
        row = session.get(ConsoleJob, job_id)
        if row is not None:
            session.expunge(row)
        return row
