"""Bulk approval: one officer approves many requests in one call and one transaction (EJBCA's
"approve selected", a unit enrolling its staff), with the same rule (``ra.approval.decide``, which
``workflow.approve`` asks too) and the same records as ``workflow.approve`` for each request.

Each request is judged on its own and the answer says, per request, what happened:

* ``issued`` -- this approval reached the threshold and the CA issued (GM/T 0034 pairs: both or none);
* ``approved`` -- the approval was recorded, the threshold is not reached yet;
* ``revoked`` -- a revocation request was carried out (``suspended``/``resumed``: a 冻结/解冻 request);
* ``awaiting_ca`` -- this approval reached the threshold and the requests are queued for an upstream CA
  (``DeferredIssuanceCA``, CMP): the RA service collects them after the commit (``issued`` or ``failed``
  then, or still awaiting the CA when it is down or slow: its sweeper carries on);
* ``unchanged`` -- this officer had already approved it (a retried call never issues twice);
* ``failed`` -- refused (not found, wrong state, separation of duties, the CA refused): nothing of
  that request was written.

What is written commits together or not at all: approvals, state changes, certificates and the audit
rows (``ra.request.approve``, ``ra.certificate.issue``, the CA's ``ca.certificate.issue``). Plain
issuance -- new and renewal requests, the bulk of the work -- runs as one statement per table
(SELECT ... IN, multi-row INSERT, executemany UPDATE) instead of the ORM's ~18 statements per request.
Approvals that revoke certificates (revocation and re-key requests at their threshold) are left to
the caller, which runs ``workflow.approve`` for each in a transaction of its own (they are rare, and
the KMC is told of a revoked escrowed key only after its transaction commits). Rows are locked in id order (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the
transaction holds the writer lock), so concurrent batches serialise on the requests they share and
never deadlock.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from ca_bridge.api import CABackend, DeferredIssuanceCA, EscrowedKey, EscrowedKeyRequest, issue_groups
from audit.trail import record_many
from store.db import IDS, as_utc, select_in, utcnow
from pkicore.errors import PkiError

from ra import approval, workflow
from ra.approval import Decision, Verdict
from ra.errors import ConflictError, IssuanceFailed, NotFound, ValidationError
from ra.models import Approval, CertRequest, RaCertificate, RequestState, RequestType
from ra.records import SELECT_NAMES, subjects
from ra.workflow import TARGET, Actor, Policy

MAX_BATCH = 500
RESULTS = ("issued", "approved", "revoked", "suspended", "resumed", "awaiting_ca", "unchanged", "failed")  # an Outcome's result

_SELECT_REQUESTS = (select(CertRequest.id, CertRequest.type, CertRequest.kind, CertRequest.state,
                           CertRequest.unit_id, CertRequest.civil_servant_id, CertRequest.server_id,
                           CertRequest.sign_spki, CertRequest.enc_spki, CertRequest.sign_csr, CertRequest.enc_csr,
                           CertRequest.submitted_by,
                           CertRequest.vetted_by, CertRequest.version)
                    .where(CertRequest.id.in_(IDS)).order_by(CertRequest.id).with_for_update())
_SELECT_APPROVALS = select(Approval.request_id, Approval.officer).where(Approval.request_id.in_(IDS))
_SELECT_CERTIFICATES = (select(RaCertificate.request_id, RaCertificate.usage, RaCertificate.profile,
                               RaCertificate.ca, RaCertificate.serial, RaCertificate.not_after, RaCertificate.status)
                        .where(RaCertificate.request_id.in_(IDS)).order_by(RaCertificate.id))
_INSERT_APPROVALS = insert(Approval.__table__)
_INSERT_CERTIFICATES = insert(RaCertificate.__table__)
_BUMP = (update(CertRequest.__table__)
         .where(CertRequest.__table__.c.id == bindparam("rid"), CertRequest.__table__.c.version == bindparam("old"))
         .values(version=bindparam("new")))
_COMPLETE = (update(CertRequest.__table__)
             .where(CertRequest.__table__.c.id == bindparam("rid"),
                    CertRequest.__table__.c.version == bindparam("old"))
             .values(version=bindparam("new"), state=bindparam("new_state"), completed_at=bindparam("done")))


@dataclass
class Outcome:
    """What one request of a bulk approval came to."""

    request_id: int
    result: str                      # issued | approved | revoked | awaiting_ca | unchanged | failed
    state: str | None = None         # the request's state afterwards (None: no such request)
    certificates: list[dict] = field(default_factory=list)
    error: PkiError | None = None

    def as_dict(self) -> dict:
        out = {"id": self.request_id, "result": self.result, "state": self.state}
        if self.certificates:
            out["certificates"] = self.certificates
        if self.error is not None:
            out["error"] = {"code": self.error.code.value, "message": self.error.public_message}
        return out


def _iso(value) -> str:
    return as_utc(value).isoformat()


def check_ids(request_ids) -> list[int]:
    """The ids of one bulk call: a non-empty list of distinct request ids, at most ``MAX_BATCH``."""
    if not isinstance(request_ids, (list, tuple)) or not request_ids:
        raise ValidationError("request_ids must be a non-empty list of request ids")
    if len(request_ids) > MAX_BATCH:
        raise ValidationError(f"at most {MAX_BATCH} requests per call")
    ids = [workflow.check_id(i, "request") for i in request_ids]
    if len(set(ids)) != len(ids):
        raise ValidationError("request_ids lists a request twice")
    return ids


def escrow_needs(session: Session, actor: Actor, request_ids: Sequence[int], *,
                 policy: Policy = Policy()) -> dict[int, EscrowedKeyRequest]:
    """The KMC keys to reserve before ``approve_many`` (outside its transaction): ``workflow.escrow_needed``
    of each dual request among ``request_ids`` whose approval here will issue."""
    dual = session.scalars(select(CertRequest.id).where(
        CertRequest.id.in_(list(request_ids)), CertRequest.type == RequestType.CIVIL_SERVANT_DUAL.value,
        CertRequest.state == RequestState.VETTED.value, CertRequest.enc_spki.is_(None)))
    needs = {}
    for rid in dual:
        need = workflow.escrow_needed(session, actor, rid, policy=policy)
        if need is not None:
            needs[rid] = need
    return needs


def _certificate_dict(usage: str, profile: str, ca: str, serial: str, not_after, status: str = "good") -> dict:
    """What an outcome says of one certificate (the full record: GET /requests/<id>)."""
    return {"usage": usage, "profile": profile, "ca": ca, "serial": serial, "not_after": _iso(not_after),
            "status": status}


def approve_many(session: Session, actor: Actor, request_ids: Sequence[int], ca: CABackend, *,
                 policy: Policy = Policy(), escrowed: Mapping[int, EscrowedKey] | None = None
                 ) -> tuple[dict[int, Outcome], list[int]]:
    """This officer's approval of each of ``request_ids`` (``check_ids``), in ``session``'s transaction:
    (outcome by request id, ids left to ``workflow.approve``). Left are the requests whose approval
    would revoke certificates (revocation and re-key at their threshold): the caller approves each in a
    transaction of its own, as the one-request path does. ``escrowed``: KMC keys reserved beforehand
    (``escrow_needs``), by request id."""
    escrowed = escrowed or {}
    connection = session.connection()
    requests = {r.id: r for r in select_in(connection, _SELECT_REQUESTS, request_ids)}
    approvers = defaultdict(set)
    for rid, officer in select_in(connection, _SELECT_APPROVALS, requests):
        approvers[rid].add(officer)
    outcomes: dict[int, Outcome] = {}
    pending, issuing, carried_out, unchanged = [], [], [], []
    for rid in request_ids:
        row = requests.get(rid)
        if row is None:
            outcomes[rid] = Outcome(rid, "failed", error=NotFound(f"request {rid} not found"))
            continue
        decision = approval.decide(row, approvers[rid], actor.name, policy.approvals)
        if decision.verdict is Verdict.UNCHANGED:
            outcomes[rid] = Outcome(rid, "unchanged", row.state)
            unchanged.append(rid)
        elif decision.error is not None:
            outcomes[rid] = Outcome(rid, "failed", row.state, error=decision.error)
        elif decision.verdict is Verdict.WAITING:
            pending.append((row, decision))
        elif workflow.carries_out_one_by_one(row.kind, policy) or row.sign_spki is None:
            carried_out.append(rid)           # revocations, 冻结/解冻, superseding issuance, requests enrolled over CMP
        else:
            issuing.append((row, decision))

    issued = _issue(session, connection, actor, issuing, ca, policy, escrowed, outcomes)
    _write(session, connection, actor, pending, issued, policy, outcomes)
    if unchanged:
        by_request = defaultdict(list)
        for r in select_in(connection, _SELECT_CERTIFICATES, unchanged):
            by_request[r.request_id].append(r)
        for rid in unchanged:
            outcomes[rid].certificates = [_certificate_dict(r.usage, r.profile, r.ca, r.serial, r.not_after, r.status)
                                          for r in by_request[rid]]
    return outcomes, carried_out


def _issue(session, connection, actor, issuing, ca, policy, escrowed, outcomes) -> list:
    """Issue the certificates of every request whose approval completes it: [(row, decision, [(usage,
    IssueRequest, IssuedCertificate)])] for those the CA issued, [(row, decision, None)] for those queued
    for a ``DeferredIssuanceCA``; refusals go to ``outcomes``."""
    if not issuing:
        return []
    rows = [row for row, _ in issuing]
    units, people, servers = subjects(connection, rows)
    names = defaultdict(lambda: ([], []))
    for server_id, kind, value in select_in(connection, SELECT_NAMES, list(servers)):
        names[server_id][0 if kind == "dns" else 1].append(value)
    planned, groups = [], []
    for row, decision in issuing:
        person, server = people.get(row.civil_servant_id), servers.get(row.server_id)
        dns, ips = names[row.server_id] if server is not None else ((), ())
        try:
            pairs = workflow.issue_requests(row, policy, workflow.subject_rdns(row.type, units[row.unit_id], person,
                                                                               server),
                                            workflow.identity_pairs(row.type, units[row.unit_id], person),
                                            dns, ips, escrowed.get(row.id),
                                            central_keygen=workflow.central_keygen(ca))
        except PkiError as exc:
            outcomes[row.id] = Outcome(row.id, "failed", row.state, error=exc)
            continue
        planned.append((row, decision, pairs))
        groups.append([r for _, r in pairs])
    if isinstance(ca, DeferredIssuanceCA):
        # queued with this transaction (their transactionIDs durable before anything is sent); collected
        # after the commit
        workflow.ca_call("queue the requests for the CA", ca.enqueue, [r for g in groups for r in g], session)
        return [(row, decision, None) for row, decision, _ in planned]
    results = workflow.ca_call("issue certificates", issue_groups, ca, groups, session)
    done = []
    for (row, decision, pairs), result in zip(planned, results):
        if isinstance(result, PkiError):
            outcomes[row.id] = Outcome(row.id, "failed", row.state, error=result)
            continue
        if [c.request_id for c in result] != [r.request_id for _, r in pairs]:
            raise IssuanceFailed("the CA answered for another request")
        done.append((row, decision, [(usage, r, c) for (usage, r), c in zip(pairs, result)]))
    return done


def _write(session, connection, actor, pending, issued, policy, outcomes) -> None:
    """Approvals, state changes, RA certificate rows and audit rows: one statement per table."""
    now = utcnow()
    approved = [(row, decision) for row, decision in pending] + [(row, decision) for row, decision, _ in issued]
    if not approved:
        return
    connection.execute(_INSERT_APPROVALS, [{"request_id": row.id, "officer": actor.name, "at": now}
                                           for row, _ in approved])
    _update(connection, _BUMP, [{"rid": row.id, "old": row.version, "new": row.version + 1} for row, _ in pending])
    _update(connection, _COMPLETE, [{"rid": row.id, "old": row.version, "new": row.version + 1,
                                     "new_state": RequestState.ISSUED.value if triples is not None
                                     else RequestState.AWAITING_CA.value, "done": now if triples is not None else None}
                                    for row, _, triples in issued])
    certificates, events = [], []
    for row, decision in pending:
        events.append(_approve_event(actor, row, decision))
        outcomes[row.id] = Outcome(row.id, "approved", row.state)
    for row, decision, triples in issued:
        events.append(_approve_event(actor, row, decision))
        if triples is None:                   # queued for an upstream CA
            events.append({"actor": actor.name, "role": actor.role, "action": "ra.request.awaiting_ca",
                           "target_type": TARGET, "target_id": row.id,
                           "detail": {"ca_request_ids": [r for _, r in workflow.awaited_ca_requests(
                               row.type, row.id, policy)]}})
            outcomes[row.id] = Outcome(row.id, "awaiting_ca", RequestState.AWAITING_CA.value)
            continue
        listed = []
        for usage, ca_request, cert in triples:
            fields = workflow.ra_certificate_fields(usage, ca_request, cert)
            certificates.append(dict(fields, request_id=row.id))
            events.append({"actor": actor.name, "role": actor.role, "action": "ra.certificate.issue",
                           "target_type": TARGET, "target_id": row.id,
                           "detail": {"usage": usage, "profile": cert.profile, "ca": cert.ca,
                                      "serial": fields["serial"], "ca_request_id": ca_request.request_id}})
            listed.append(_certificate_dict(usage, cert.profile, cert.ca, fields["serial"], cert.not_after))
        outcomes[row.id] = Outcome(row.id, "issued", RequestState.ISSUED.value, listed)
    if certificates:
        connection.execute(_INSERT_CERTIFICATES, certificates)
    record_many(session, events)


def _approve_event(actor: Actor, row, decision: Decision) -> dict:
    return {"actor": actor.name, "role": actor.role, "action": "ra.request.approve", "target_type": TARGET,
            "target_id": row.id, "detail": {"approvals": decision.approvals, "threshold": decision.threshold}}


def _update(connection, statement, params: list[dict]) -> None:
    if not params:
        return
    result = connection.execute(statement, params)
    if connection.dialect.supports_sane_multi_rowcount and result.rowcount != len(params):
        # the rows are locked (FOR UPDATE / the SQLite writer lock), so this is a bug or a foreign writer
        raise ConflictError("a request was changed concurrently; reload and retry")
