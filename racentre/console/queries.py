"""Read-only queries behind the console's lists and dashboard that the package services do not offer
(counts, per-day issuance, certificate search, audit browsing). Writes always go through the services."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.models import CertificateAuthority, IssuedCert
from kms.models import ApprovalRequest, EscrowedKey
from audit.trail import AuditEvent
from store.db import as_utc, utcnow
from ra.csr import parse_csr
from ra.models import CertRequest, CivilServant, RaCertificate, Server, ServerName, Unit
from racentre.console.formats import dn
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
        details.append({"usage": usage, "subject": dn(parsed.subject),
                        "key": f"{parsed.key.key_type} {parsed.key.bits}" + (f" ({parsed.key.curve})" if parsed.key.curve else ""),
                        "signature_algorithm": parsed.signature_algorithm, "size": len(der)})
    return details


CERT_SORTS = {"issued": (IssuedCert.id.desc(),), "expiry": (IssuedCert.not_after.asc(), IssuedCert.id.asc()),
              "subject": (IssuedCert.subject.asc(), IssuedCert.id.desc())}
PAGE_SIZE = 50


@dataclass(frozen=True)
class CertificateSearch:
    """The certificate lifecycle search: ``text`` matches the subject, the holder's name, 身份证号, the unit's
    name, a server's host names, or the serial (hex, as printed, any part of it); filters; sort; page."""
    text: str = ""
    status: str = ""                 # good | revoked | ""
    profile: str = ""
    unit: str = ""                   # unit name (part of it)
    expiring_days: int | None = None  # in force and ending within this many days
    sort: str = "issued"
    page: int = 1

    @classmethod
    def from_args(cls, args) -> "CertificateSearch":
        def number(name, low, high):
            try:
                value = int(args.get(name) or 0)
            except ValueError:
                return None
            return value if low <= value <= high else None
        return cls(text=(args.get("q") or "")[:200].strip(), status=args.get("status", "") if args.get("status")
                   in ("good", "revoked") else "", profile=(args.get("profile") or "")[:64],
                   unit=(args.get("unit") or "")[:128].strip(), expiring_days=number("expiring_days", 1, 3660),
                   sort=args.get("sort") if args.get("sort") in CERT_SORTS else "issued",
                   page=number("page", 1, 100000) or 1)


def search_certificates(db: sessionmaker[Session], *, text: str = "", status: str = "", limit: int = PAGE_SIZE,
                        search: CertificateSearch | None = None) -> list[dict]:
    """One page of ``limit`` certificates, and one more row when another page follows."""
    search = search or CertificateSearch(text=text, status=status)
    holder = (select(RaCertificate.ca_request_id, CertRequest.unit_id, CertRequest.civil_servant_id,
                     CertRequest.server_id).join(CertRequest, RaCertificate.request_id == CertRequest.id).subquery())
    query = (select(IssuedCert, CertificateAuthority.name, Unit.name, CivilServant.name, Server.host_name)
             .join(CertificateAuthority, IssuedCert.ca_id == CertificateAuthority.id)
             .outerjoin(holder, holder.c.ca_request_id == IssuedCert.request_id)
             .outerjoin(Unit, Unit.id == holder.c.unit_id)
             .outerjoin(CivilServant, CivilServant.id == holder.c.civil_servant_id)
             .outerjoin(Server, Server.id == holder.c.server_id))
    if search.text:
        like = f"%{search.text.replace('%', '').replace('_', '')}%"
        terms = [IssuedCert.subject.like(like), IssuedCert.request_id == search.text, CivilServant.name.like(like),
                 CivilServant.id_number == search.text.upper(), Unit.name.like(like), Server.host_name.like(like),
                 Server.id.in_(select(ServerName.server_id).where(ServerName.value.like(like.lower())))]
        serial = hex_serial(search.text)
        if serial is not None and len(serial) >= 4:
            terms.append(IssuedCert.serial.like(f"%{serial}%"))
        elif serial is not None:
            terms.append(IssuedCert.serial == serial)
        query = query.where(or_(*terms))
    if search.status:
        query = query.where(IssuedCert.status == search.status)
    if search.profile:
        query = query.where(IssuedCert.profile == search.profile)
    if search.unit:
        query = query.where(Unit.name.like(f"%{search.unit.replace('%', '').replace('_', '')}%"))
    if search.expiring_days is not None:
        now = utcnow()
        query = query.where(IssuedCert.status == "good", IssuedCert.not_after > now,
                            IssuedCert.not_after <= now + dt.timedelta(days=search.expiring_days))
    query = query.order_by(*CERT_SORTS[search.sort]).offset((search.page - 1) * limit).limit(limit + 1)
    with db() as session:
        return [{"ca": name, "serial": c.serial, "subject": c.subject, "profile": c.profile, "status": c.status,
                 "held": c.status == "revoked" and c.reason == "certificate_hold",
                 "request_id": c.request_id, "not_after": as_utc(c.not_after), "created_at": as_utc(c.created_at),
                 "unit": unit, "person": person, "host": host}
                for c, name, unit, person, host in session.execute(query)]


def kms_request_ids(db: sessionmaker[Session], limit: int = 100) -> list[int]:
    with db() as session:
        return list(session.scalars(select(ApprovalRequest.id)
                                    .order_by((ApprovalRequest.state == "pending").desc(), ApprovalRequest.id.desc())
                                    .limit(limit)))


def audit_events(db: sessionmaker[Session], *, actor: str = "", action: str = "", target: str = "",
                 before_id: int | None = None, limit: int = 100, since: dt.datetime | None = None,
                 until: dt.datetime | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEvent.at >= since.astimezone(dt.timezone.utc))     # UTC: see statistics()
    if until is not None:
        query = query.where(AuditEvent.at < until.astimezone(dt.timezone.utc))
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


def hex_serial(text: str) -> str | None:
    """A serial as officers type it (``1A:2B``, ``0x1a2b``, ``1a2b``) in the CA's form (lower-case hex, no
    leading zeros); None when it is not hexadecimal."""
    value = text.strip().replace(":", "").replace(" ", "").lower().removeprefix("0x")
    if not value or len(value) > 40 or any(c not in "0123456789abcdef" for c in value):
        return None
    return value.lstrip("0") or "0"


def escrowed_certificates(db: sessionmaker[Session], text: str, limit: int = 50) -> list[dict]:
    """Key recovery look-up: civil servants' encryption certificates whose keys the KMC archived, by the
    person's name, 身份证号 or the certificate's serial (hex, as printed on it, or its start)."""
    text = text.strip()[:64]
    if not text:
        return []
    query = (select(RaCertificate, CivilServant, Unit).join(CertRequest, RaCertificate.request_id == CertRequest.id)
             .join(CivilServant, CertRequest.civil_servant_id == CivilServant.id)
             .join(Unit, CertRequest.unit_id == Unit.id)
             .where(RaCertificate.usage == "enc", RaCertificate.key_envelope.is_not(None))
             .order_by(RaCertificate.id.desc()).limit(limit))
    serial = hex_serial(text)
    like = text.replace("%", "").replace("_", "")
    terms = [CivilServant.name == text, CivilServant.id_number == text.upper(), CivilServant.name.like(f"%{like}%")]
    if serial is not None:
        terms += [RaCertificate.serial == serial, RaCertificate.serial.like(f"{serial}%")]
    with db() as session:
        return [{"person": p.name, "id_number": p.id_number, "unit": u.name, "ca": c.ca, "serial": c.serial,
                 "status": c.status, "not_after": as_utc(c.not_after), "request_id": c.request_id}
                for c, p, u in session.execute(query.where(or_(*terms)))]


def escrowed_key_facts(db: sessionmaker[Session], key_ids) -> dict[int, dict]:
    """For the approval screen: each archived key's certificate (serial in hex, CA) and, for keys of
    certificates the RA requested, the person and unit."""
    ids = [k for k in key_ids if k is not None]
    if not ids:
        return {}
    with db() as session:
        keys = {k.id: k for k in session.scalars(select(EscrowedKey).where(EscrowedKey.id.in_(ids)))}
        serials = {format(int(k.user_cert_no), "x"): k.id for k in keys.values() if k.user_cert_no.isdigit()}
        holders = {}
        if serials:
            rows = session.execute(select(RaCertificate.serial, CivilServant.name, CivilServant.id_number, Unit.name)
                                   .join(CertRequest, RaCertificate.request_id == CertRequest.id)
                                   .join(CivilServant, CertRequest.civil_servant_id == CivilServant.id)
                                   .join(Unit, CertRequest.unit_id == Unit.id)
                                   .where(RaCertificate.usage == "enc", RaCertificate.serial.in_(list(serials))))
            holders = {serials[s]: {"person": n, "id_number": i, "unit": u} for s, n, i, u in rows}
        return {kid: {"serial": format(int(k.user_cert_no), "x") if k.user_cert_no.isdigit() else k.user_cert_no,
                      "ca": k.ca_name, "status": k.status, "user_name": k.user_name, **holders.get(kid, {})}
                for kid, k in keys.items()}


def certificate_profiles(db: sessionmaker[Session]) -> list[str]:
    with db() as session:
        return sorted(session.scalars(select(IssuedCert.profile).distinct()))


def statistics(db: sessionmaker[Session], start: dt.datetime, end: dt.datetime) -> list[dict]:
    """统计: per unit, the certificates issued and revoked within [start, end) and the requests waiting now
    (submitted, vetted, returned or awaiting the upstream CA), with a total row; units with nothing to count are left out."""
    pending_states = ("submitted", "vetted", "returned", "awaiting_ca")
    # Instants as UTC: SQLite keeps DateTime as text of the UTC wall clock and drops a bound value's zone,
    # so a Beijing midnight would be compared as if it were UTC (wrong for 8 hours of every day).
    start, end = start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)
    with db() as session:
        issued = dict(session.execute(
            select(CertRequest.unit_id, func.count()).join(RaCertificate, RaCertificate.request_id == CertRequest.id)
            .where(CertRequest.completed_at >= start, CertRequest.completed_at < end)
            .group_by(CertRequest.unit_id)).all())
        revoked = dict(session.execute(
            select(CertRequest.unit_id, func.count()).join(RaCertificate, RaCertificate.request_id == CertRequest.id)
            .where(RaCertificate.revoked_at >= start, RaCertificate.revoked_at < end,
                   RaCertificate.status == "revoked")           # not those on hold (冻结)
            .group_by(CertRequest.unit_id)).all())
        pending = dict(session.execute(select(CertRequest.unit_id, func.count())
                                       .where(CertRequest.state.in_(pending_states)).group_by(CertRequest.unit_id)).all())
        ids = set(issued) | set(revoked) | set(pending)
        names = dict(session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ids))).all()) if ids else {}
    rows = [{"unit_id": uid, "unit": names.get(uid, str(uid)), "issued": issued.get(uid, 0),
             "revoked": revoked.get(uid, 0), "pending": pending.get(uid, 0)} for uid in ids]
    rows.sort(key=lambda r: (-r["issued"], r["unit"]))
    rows.append({"unit_id": None, "unit": None, "issued": sum(issued.values()), "revoked": sum(revoked.values()),
                 "pending": sum(pending.values())})
    return rows
