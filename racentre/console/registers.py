"""Read-only queries behind the person and unit registries (人员、单位): search, and one person's or unit's
requests and certificates, from what the RA stores (ra.models). Writes go through the RA service."""
from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from store.db import as_utc
from ra.models import CertRequest, CivilServant, RaCertificate, Server, ServerName, Unit

PAGE_SIZE = 50


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def mask_id(number: str) -> str:
    """身份证号 as shown to readers who need not see it whole (auditors): region and the last four."""
    return number[:6] + "********" + number[-4:] if len(number) == 18 else number


def search_people(db: sessionmaker[Session], *, text: str = "", unit_id: int | None = None,
                  page: int = 1) -> list[dict]:
    """People whose name, 身份证号 (whole, or its last digits), department or unit name contains ``text``;
    PAGE_SIZE + 1 rows (one more says there is a next page)."""
    query = select(CivilServant, Unit.name).join(Unit, Unit.id == CivilServant.unit_id)
    text = text.strip()[:64]
    if text:
        like = _like(text)
        query = query.where(or_(CivilServant.name.like(like, escape="\\"), CivilServant.id_number == text.upper(),
                                CivilServant.id_number.like(_like(text.upper())[:-1], escape="\\"),
                                CivilServant.department.like(like, escape="\\"), Unit.name.like(like, escape="\\")))
    if unit_id is not None:
        query = query.where(CivilServant.unit_id == unit_id)
    query = query.order_by(CivilServant.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    with db() as session:
        return [{**p.as_dict(), "unit_name": unit_name} for p, unit_name in session.execute(query)]


def search_units(db: sessionmaker[Session], *, text: str = "", page: int = 1) -> list[dict]:
    """Units whose name or 统一社会信用代码 contains ``text``, with how many people and servers they have."""
    people = (select(CivilServant.unit_id, func.count().label("n")).group_by(CivilServant.unit_id).subquery())
    servers = (select(Server.unit_id, func.count().label("n")).group_by(Server.unit_id).subquery())
    query = (select(Unit, func.coalesce(people.c.n, 0), func.coalesce(servers.c.n, 0))
             .outerjoin(people, people.c.unit_id == Unit.id).outerjoin(servers, servers.c.unit_id == Unit.id))
    text = text.strip()[:128]
    if text:
        query = query.where(or_(Unit.name.like(_like(text), escape="\\"), Unit.uscc.like(_like(text.upper()), escape="\\")))
    query = query.order_by(Unit.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    with db() as session:
        return [{**u.as_dict(), "people": n_people, "servers": n_servers}
                for u, n_people, n_servers in session.execute(query)]


def _requests_and_certificates(session: Session, condition) -> tuple[list[dict], list[dict]]:
    requests = [{"id": r.id, "type": r.type, "kind": r.kind, "state": r.state, "submitted_by": r.submitted_by,
                 "submitted_at": as_utc(r.submitted_at), "civil_servant_id": r.civil_servant_id,
                 "server_id": r.server_id}
                for r in session.scalars(select(CertRequest).where(condition).order_by(CertRequest.id.desc()).limit(200))]
    certificates = [{"request_id": c.request_id, "usage": c.usage, "profile": c.profile, "ca": c.ca, "serial": c.serial,
                     "status": c.status, "not_before": as_utc(c.not_before), "not_after": as_utc(c.not_after)}
                    for c in session.scalars(select(RaCertificate).join(CertRequest).where(condition)
                                             .order_by(RaCertificate.id.desc()).limit(200))]
    return requests, certificates


def person(db: sessionmaker[Session], person_id: int) -> dict | None:
    with db() as session:
        row = session.get(CivilServant, person_id)
        if row is None:
            return None
        requests, certificates = _requests_and_certificates(session, CertRequest.civil_servant_id == row.id)
        return {**row.as_dict(), "unit": row.unit.as_dict(), "requests": requests, "certificates": certificates}


def unit(db: sessionmaker[Session], unit_id: int) -> dict | None:
    with db() as session:
        row = session.get(Unit, unit_id)
        if row is None:
            return None
        requests, certificates = _requests_and_certificates(session, CertRequest.unit_id == row.id)
        people = [p.as_dict() for p in session.scalars(select(CivilServant).where(CivilServant.unit_id == row.id)
                                                       .order_by(CivilServant.id).limit(500))]
        servers = [{"id": s.id, "host_name": s.host_name,
                    "names": [n.value for n in s.names if n.value != s.host_name]}
                   for s in session.scalars(select(Server).where(Server.unit_id == row.id).order_by(Server.id).limit(500))]
        return {**row.as_dict(), "requests": requests, "certificates": certificates, "people": people,
                "servers": servers}


def servers_of(db: sessionmaker[Session], unit_id: int) -> list[dict]:
    with db() as session:
        return [{"id": s.id, "host_name": s.host_name}
                for s in session.scalars(select(Server).where(Server.unit_id == unit_id).order_by(Server.host_name))]


def server_holding(db: sessionmaker[Session], name: str) -> int | None:
    with db() as session:
        return session.scalar(select(ServerName.server_id).where(ServerName.value == name))
