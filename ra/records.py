"""Requests as the API shows them (``ra.models.request_fields`` plus the subject and identity the request
certifies and its approval threshold), read for any number of requests with one SELECT per table:
GET /requests/<id>, the request list (the console's queue shows up to 500), and the answer to an
approval. Loading the same through the ORM cost one request, two relationship loads and the subject
rows per request, several milliseconds each time.

The subject SELECTs here are also what ``ra.bulk`` builds certificate subjects from.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.db import IDS, select_in
from ra.models import Approval, CertRequest, CivilServant, RaCertificate, Server, ServerName, Unit, request_fields
from ra.workflow import Policy, identity_pairs, subject_rdns

SELECT_UNITS = select(Unit.id, Unit.name, Unit.uscc).where(Unit.id.in_(IDS))
SELECT_PEOPLE = (select(CivilServant.id, CivilServant.name, CivilServant.id_number, CivilServant.department)
                 .where(CivilServant.id.in_(IDS)))
SELECT_SERVERS = select(Server.id, Server.host_name).where(Server.id.in_(IDS))
SELECT_NAMES = (select(ServerName.server_id, ServerName.kind, ServerName.value)
                .where(ServerName.server_id.in_(IDS)).order_by(ServerName.id))
_SELECT_REQUESTS = select(*(c for c in CertRequest.__table__.c
                            if c.name not in ("sign_csr", "sign_spki", "enc_csr", "enc_spki", "version"))
                          ).where(CertRequest.id.in_(IDS))
_SELECT_APPROVALS = (select(Approval.request_id, Approval.officer, Approval.at)
                     .where(Approval.request_id.in_(IDS)).order_by(Approval.id))
_SELECT_CERTIFICATES = (select(RaCertificate.request_id, RaCertificate.usage, RaCertificate.profile, RaCertificate.ca,
                               RaCertificate.serial, RaCertificate.ca_request_id, RaCertificate.not_before,
                               RaCertificate.not_after, RaCertificate.status, RaCertificate.revoked_at,
                               RaCertificate.revocation_reason,
                               RaCertificate.key_envelope.is_not(None).label("key_escrowed"))
                        .where(RaCertificate.request_id.in_(IDS)).order_by(RaCertificate.id))


def subjects(connection, requests) -> tuple[dict, dict, dict]:
    """(units, people, servers) by id for the given request rows."""
    units = {u.id: u for u in select_in(connection, SELECT_UNITS, [r.unit_id for r in requests])}
    people = {p.id: p for p in select_in(connection, SELECT_PEOPLE, [r.civil_servant_id for r in requests])}
    servers = {s.id: s for s in select_in(connection, SELECT_SERVERS, [r.server_id for r in requests])}
    return units, people, servers


def request_records(session: Session, request_ids: Sequence[int], policy: Policy) -> dict[int, dict]:
    """The API record of each of ``request_ids`` that exists, by id."""
    connection = session.connection()
    requests = select_in(connection, _SELECT_REQUESTS, request_ids)
    if not requests:
        return {}
    ids = [r.id for r in requests]
    approvals, certificates = defaultdict(list), defaultdict(list)
    for a in select_in(connection, _SELECT_APPROVALS, ids):
        approvals[a.request_id].append(a)
    for c in select_in(connection, _SELECT_CERTIFICATES, ids):
        certificates[c.request_id].append(c)
    units, people, servers = subjects(connection, requests)
    out = {}
    for r in requests:
        record = request_fields(r, approvals[r.id], certificates[r.id])
        unit, person = units[r.unit_id], people.get(r.civil_servant_id)
        record["subject"] = [list(p) for p in subject_rdns(r.type, unit, person, servers.get(r.server_id))]
        record["identity"] = [list(p) for p in identity_pairs(r.type, unit, person)]
        record["approvals_required"] = policy.approvals[r.type]
        out[r.id] = record
    return out
