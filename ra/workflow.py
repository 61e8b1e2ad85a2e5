"""The RA workflow (domain; no Flask): register subjects, submit, vet, four-eyes approve, reject, and
issue or revoke through the CA inside the approving transaction.

Separation of duties (configurable only in the approval thresholds):
* the vetter must not be the submitter (``vet``);
* who may approve and what an approval comes to is ``ra.approval.decide`` (one pure rule, shared with
  ``ra.bulk`` and the console): an approver is neither the submitter nor the vetter, each officer counts
  once per request (also unique (request, officer) in the database), and civil-servant and unit requests
  need two distinct officers, server requests one (``Policy``).

Every call takes the caller's session and writes ``audit.trail.record`` rows in it, so the state
change, the CA's certificate rows (an embedded CA joins the session) and the audit trail commit or
roll back together. CA calls are idempotent on ``ra-<request id>-<sign|enc>``: a retried approval
never issues a second certificate.

A CA reached over a network (``DeferredIssuanceCA``: ``CmpCA``, ``[ca] backend = "cmp"``) is not called
inside the approving transaction: the final approval queues the CA requests (their transactionIDs) in
it and moves the request to ``awaiting_ca`` (等待上级CA); after the commit the RA service collects them
(at once, and then its sweeper) and ``complete_from_ca`` moves the request to ``issued``, or to
``failed`` with the CA's reason when the CA refused. The officer never has to approve again.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from ca_bridge.api import (CABackend, DeferredIssuanceCA, EscrowedKey, EscrowedKeyRequest, IssuedCertificate,
                           IssueRequest, RevocationReason)
from audit.trail import record
from store.db import utcnow
from pkicore.errors import ErrorCode, PkiError
from pkicore.oids import OID

from ra import approval
from ra.approval import STATUS_KINDS, Verdict
from ra.csr import MAX_CSR_SIZE, KeyInfo, check_public_key, load_public_key_info, parse_csr, subject_conflicts
from ra.errors import ConflictError, CsrError, DutiesNotSeparated, IssuanceFailed, KmcKeyNotReserved, NotFound, ValidationError
from ra.id_numbers import validate_hostname, validate_id_number, validate_ip, validate_name, validate_uscc
from ra.models import (MAX_STATUS_REASON, Approval, CertRequest, CivilServant, RaCertificate, RequestKind,
                       RequestState, RequestType, Server, ServerName, Unit)

TARGET = "ra_request"          # audit target_type of requests
# the RA certificate statuses (ra_certificate.status) each kind of request acts on in its target request
TARGET_STATUSES = {RequestKind.RENEWAL.value: ("good",), RequestKind.REKEY.value: ("good",),
                   RequestKind.REISSUE.value: ("good", "hold"), RequestKind.REVOCATION.value: ("good", "hold"),
                   RequestKind.SUSPEND.value: ("good",), RequestKind.RESUME.value: ("hold",)}
DONE_STATES = {RequestKind.REVOCATION.value: RequestState.REVOKED.value,
               RequestKind.SUSPEND.value: RequestState.SUSPENDED.value,
               RequestKind.RESUME.value: RequestState.RESUMED.value}
SUBJECT_TARGETS = {"unit": "ra_unit", "civil-servant": "ra_civil_servant", "server": "ra_server"}


@dataclass(frozen=True)
class Actor:
    """Who acts: a principal name and the role it acts in (from the API token or the CLI --as)."""

    name: str
    role: str


@dataclass(frozen=True)
class Policy:
    """RA policy as data: approval thresholds and certificate profiles per request type."""

    approvals: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({
        RequestType.CIVIL_SERVANT_DUAL.value: 2, RequestType.UNIT.value: 2, RequestType.SERVER.value: 1}))
    profiles: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({
        RequestType.CIVIL_SERVANT_DUAL.value: {"sign": "civil-servant-sign", "enc": "civil-servant-enc"},
        RequestType.UNIT.value: {"sign": "unit"},
        RequestType.SERVER.value: {"sign": "server"}}))
    max_csr_size: int = MAX_CSR_SIZE
    check_org_code: bool = True          # check the GB 11714 digit inside unified social credit codes
    renewal_supersedes: bool = True      # 换发: the renewed certificates are revoked (superseded) at issuance

    @classmethod
    def from_mapping(cls, config: Mapping | None) -> "Policy":
        """From a config section such as {"approvals": {"server": 2}, "max_csr_size": 8192}."""
        config = dict(config or {})
        base = cls()
        approvals = dict(base.approvals)
        for name, count in dict(config.pop("approvals", {})).items():
            if name not in approvals or not isinstance(count, int) or count < 1:
                raise ValidationError(f"ra.approvals.{name}: a request type with a threshold of at least 1")
            approvals[name] = count
        profiles = {k: dict(v) for k, v in base.profiles.items()}
        for name, mapping in dict(config.pop("profiles", {})).items():
            if name not in profiles:
                raise ValidationError(f"ra.profiles.{name}: unknown request type")
            profiles[name].update(mapping)
        unknown = set(config) - {"max_csr_size", "check_org_code", "renewal_supersedes"}
        if unknown:
            raise ValidationError(f"unknown RA settings: {', '.join(sorted(unknown))}")
        return cls(approvals=MappingProxyType(approvals), profiles=MappingProxyType(profiles), **config)


# --------------------------------------------------------------------------------------------- subjects

MAX_ID = 2**63 - 1


def check_id(ident, what: str) -> int:
    """A row id from outside: an integer within the databases' BIGINT range."""
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise ValidationError(f"{what} id must be an integer")
    if not 0 <= ident <= MAX_ID:
        raise NotFound(f"{what} {ident} not found")
    return ident


def _get(session: Session, model, ident, what: str):
    row = session.get(model, check_id(ident, what))
    if row is None:
        raise NotFound(f"{what} {ident} not found")
    return row


def add_unit(session: Session, actor: Actor, *, name: str, uscc: str, legal_representative: str,
             policy: Policy = Policy()) -> tuple[Unit, bool]:
    """Register a unit; (unit, created). The same USCC again with the same name returns the existing
    row; with a different name it is a conflict."""
    name = validate_name(name, "unit name", 128)
    uscc = validate_uscc(uscc, check_org_code=policy.check_org_code)
    legal_representative = validate_name(legal_representative, "legal representative")
    existing = session.scalar(select(Unit).where(Unit.uscc == uscc))
    if existing is not None:
        if existing.name != name:
            raise ConflictError(f"unified social credit code {uscc} is already registered to unit "
                                f"{existing.id} under a different name")
        return existing, False
    unit = Unit(name=name, uscc=uscc, legal_representative=legal_representative, created_by=actor.name)
    session.add(unit)
    session.flush()
    record(session, actor=actor.name, role=actor.role, action="ra.unit.add", target_type="ra_unit",
           target_id=unit.id, uscc=uscc, name=name)
    return unit, True


def civil_servant_fields(name: str, id_number: str, department: str | None = None, position: str | None = None,
                         contact: str | None = None) -> dict:
    """A civil servant's fields as registered: names checked (``validate_name``), the 身份证号 by GB 11643
    (``validate_id_number``); empty optional fields are None. Used by ``add_civil_servant`` and the roster
    import, which must refuse exactly what it refuses."""
    return {"name": validate_name(name, "name"), "id_number": validate_id_number(id_number),
            "department": validate_name(department, "department") if department else None,
            "position": validate_name(position, "position") if position else None,
            "contact": validate_name(contact, "contact", 128) if contact else None}


def check_same_person(existing, name: str, unit_id: int) -> None:
    """A 身份证号 already registered is the same person only under the same name in the same unit."""
    if existing.name != name:
        raise ConflictError("identity number is already registered under a different name "
                            f"(civil servant {existing.id})")
    if existing.unit_id != unit_id:
        raise ConflictError(f"identity number is already registered in unit {existing.unit_id}")


def add_civil_servant(session: Session, actor: Actor, *, name: str, id_number: str, unit_id: int,
                      department: str | None = None, position: str | None = None,
                      contact: str | None = None) -> tuple[CivilServant, bool]:
    """Register a civil servant; (person, created). The same identity number with another name or
    another unit is a conflict; with the same name and unit it returns the existing row."""
    fields = civil_servant_fields(name, id_number, department, position, contact)
    unit = _get(session, Unit, unit_id, "unit")
    existing = session.scalar(select(CivilServant).where(CivilServant.id_number == fields["id_number"]))
    if existing is not None:
        check_same_person(existing, fields["name"], unit.id)
        return existing, False
    person = CivilServant(**fields, unit_id=unit.id, created_by=actor.name)
    session.add(person)
    session.flush()
    # the audit detail names the person but never the full identity number
    record(session, actor=actor.name, role=actor.role, action="ra.civil_servant.add",
           target_type="ra_civil_servant", target_id=person.id, name=name, unit_id=unit.id,
           id_number_suffix=id_number[-4:])
    return person, True


def add_server(session: Session, actor: Actor, *, host_name: str, unit_id: int,
               dns_names: list[str] | tuple[str, ...] = (), ip_addresses: list[str] | tuple[str, ...] = ()
               ) -> tuple[Server, bool]:
    """Register a server; (server, created). Every DNS name and IP belongs to one server only: a name
    already held by another server is a conflict; the same registration again returns the existing row."""
    host = validate_hostname(host_name)
    unit = _get(session, Unit, unit_id, "unit")
    names = [host] + [n for n in dict.fromkeys(validate_hostname(n) for n in dns_names) if n != host]
    ips = list(dict.fromkeys(validate_ip(ip) for ip in ip_addresses))
    if len(names) + len(ips) > 100:
        raise ValidationError("a server may carry at most 100 names and addresses")
    wanted = [("dns", n) for n in names] + [("ip", ip) for ip in ips]
    existing = session.scalar(select(Server).where(Server.host_name == host))
    if existing is not None:
        if existing.unit_id == unit.id and sorted((n.kind, n.value) for n in existing.names) == sorted(wanted):
            return existing, False
        raise ConflictError(f"host name {host} is already registered (server {existing.id}, unit {existing.unit_id})")
    for kind, value in wanted:
        holder = session.scalar(select(ServerName).where(ServerName.kind == kind, ServerName.value == value))
        if holder is not None:
            raise ConflictError(f"{'host name' if kind == 'dns' else 'IP address'} {value} already belongs "
                                f"to server {holder.server_id}")
    server = Server(host_name=host, unit_id=unit.id, created_by=actor.name,
                    names=[ServerName(kind=k, value=v) for k, v in wanted])
    session.add(server)
    session.flush()
    record(session, actor=actor.name, role=actor.role, action="ra.server.add", target_type="ra_server",
           target_id=server.id, host_name=host, unit_id=unit.id, dns_names=names, ip_addresses=ips)
    return server, True


# ------------------------------------------------------------------------------------- subject building

_KEEP = "ra.subject_rows"


def _subject_row(session: Session, model, ident):
    """``session.get`` that keeps the row referenced for the session's life. The identity map holds
    objects weakly, so without this an approval SELECTed the same unit/server/person (and the server's
    names) again in each of vetted_subject, identity_extensions, _issue and the response."""
    row = session.get(model, ident)
    if row is not None:
        session.info.setdefault(_KEEP, {})[(model, ident)] = row
    return row


def subject_rdns(rtype: str, unit, person=None, server=None) -> tuple[tuple[str, str], ...]:
    """The certificate subject of a vetted record: C=CN, O=<unit>, [OU=<department>], CN=<person|unit|host>.
    ``unit``/``person``/``server``: ORM rows or Core rows with the same column names."""
    rdns = [("country_name", "CN"), ("organization_name", unit.name)]
    if rtype == RequestType.CIVIL_SERVANT_DUAL.value:
        if person.department:
            rdns.append(("organizational_unit_name", person.department))
        rdns.append(("common_name", person.name))
    elif rtype == RequestType.UNIT.value:
        rdns.append(("common_name", unit.name))
    else:
        rdns.append(("common_name", server.host_name))
    return tuple(rdns)


def identity_pairs(rtype: str, unit, person=None) -> tuple[tuple[str, str], ...]:
    """GM/T 0015 identity extensions: the identity number for people, the USCC for units."""
    if rtype == RequestType.CIVIL_SERVANT_DUAL.value:
        return ((OID.ID_CARD_NUMBER, person.id_number),)
    if rtype == RequestType.UNIT.value:
        return ((OID.UNIFIED_SOCIAL_CREDIT_CODE, unit.uscc),)
    return ()


def vetted_subject(session: Session, req: CertRequest) -> tuple[tuple[str, str], ...]:
    """``subject_rdns`` of a request's stored subject."""
    # the person or server first: its unit comes with it (joined), so the unit is an identity-map hit
    person = server = None
    if req.type == RequestType.CIVIL_SERVANT_DUAL.value:
        person = _subject_row(session, CivilServant, req.civil_servant_id)
    elif req.type != RequestType.UNIT.value:
        server = _subject_row(session, Server, req.server_id)
    return subject_rdns(req.type, _subject_row(session, Unit, req.unit_id), person, server)


def identity_extensions(session: Session, req: CertRequest) -> tuple[tuple[str, str], ...]:
    """``identity_pairs`` of a request's stored subject."""
    person = None
    if req.type == RequestType.CIVIL_SERVANT_DUAL.value:
        person = _subject_row(session, CivilServant, req.civil_servant_id)
    unit = _subject_row(session, Unit, req.unit_id) if req.type == RequestType.UNIT.value else None
    return identity_pairs(req.type, unit, person)


# ------------------------------------------------------------------------------------------------ submit

def _parse_type(value: str) -> RequestType:
    try:
        return RequestType(value)
    except ValueError:
        raise ValidationError(f"request type must be one of {', '.join(t.value for t in RequestType)}") from None


def _parse_kind(value: str) -> RequestKind:
    try:
        return RequestKind(value)
    except ValueError:
        raise ValidationError(f"request kind must be one of {', '.join(k.value for k in RequestKind)}") from None


def _parse_reason(value: str | None) -> RevocationReason:
    try:
        reason = RevocationReason(value or "unspecified")
    except ValueError:
        raise ValidationError("revocation reason must be one of "
                              f"{', '.join(r.value for r in RevocationReason)}") from None
    if reason in (RevocationReason.remove_from_crl, RevocationReason.ca_compromise, RevocationReason.aa_compromise):
        raise ValidationError(f"revocation reason {reason.value} cannot be requested through the RA")
    return reason


def submit(session: Session, actor: Actor, *, type: str, kind: str = "new", subject_id: int | None = None,
           sign_csr: bytes | str | None = None, enc_csr: bytes | str | None = None,
           enc_public_key: bytes | str | None = None, target_request_id: int | None = None,
           revocation_reason: str | None = None, policy: Policy = Policy(), enrol_by_cmp: bool = False,
           status_reason: str | None = None) -> CertRequest:
    """Record a request. New requests name their subject; renewal (换发), re-key, re-issue (补发),
    revocation, suspension (冻结) and release (解冻) requests name the issued request whose certificates they
    replace, revoke, hold or release. CSRs are parsed and their proof of possession checked now, so bad input
    fails at once (400) rather than at vetting. ``enrol_by_cmp``: a new server or unit request without a CSR:
    once vetted and approved, an officer issues a one-time CMP secret bound to it and the subscriber enrols
    over CMP (``cmp_enrolment``). ``status_reason``: the officer's own words for a suspension, release or
    revocation (free text, at most ``MAX_STATUS_REASON`` characters), kept on the request and in its audit
    rows."""
    rtype, rkind = _parse_type(type), _parse_kind(kind)
    req = CertRequest(type=rtype.value, kind=rkind.value, state=RequestState.SUBMITTED.value,
                      submitted_by=actor.name, checks={})
    if rkind is RequestKind.NEW:
        if target_request_id is not None:
            raise ValidationError("new requests take subject_id, not target_request_id")
        if rtype is RequestType.CIVIL_SERVANT_DUAL:
            person = _get(session, CivilServant, subject_id, "civil servant")
            req.civil_servant_id, req.unit_id = person.id, person.unit_id
        elif rtype is RequestType.UNIT:
            req.unit_id = _get(session, Unit, subject_id, "unit").id
        else:
            server = _get(session, Server, subject_id, "server")
            req.server_id, req.unit_id = server.id, server.unit_id
    else:
        target = _get(session, CertRequest, target_request_id, "request")
        if target.state != RequestState.ISSUED.value or target.kind == RequestKind.REVOCATION.value:
            raise ConflictError(f"request {target.id} has no issued certificates to {rkind.value}")
        if target.type != rtype.value:
            raise ValidationError(f"request {target.id} is a {target.type} request, not {rtype.value}")
        if subject_id is not None and subject_id != (target.civil_servant_id or target.server_id or target.unit_id):
            raise ValidationError(f"subject_id does not match the subject of request {target.id}")
        req.target_request_id = target.id
        req.unit_id, req.civil_servant_id, req.server_id = target.unit_id, target.civil_servant_id, target.server_id
        if rkind in (RequestKind.SUSPEND, RequestKind.RESUME) and not _target_certificates(session, target.id,
                                                                                          rkind.value):
            raise ConflictError(f"request {target.id} has no certificate "
                                f"{'in force' if rkind is RequestKind.SUSPEND else 'on hold'} to {rkind.value}")
    if enrol_by_cmp:
        if rkind is not RequestKind.NEW or rtype is RequestType.CIVIL_SERVANT_DUAL:
            raise ValidationError("enrolment over CMP is for new server and unit requests")
        if sign_csr or enc_csr or enc_public_key or revocation_reason is not None:
            raise ValidationError("a request enrolled over CMP carries no CSR: the key is made at enrolment")
    elif rkind.value in STATUS_KINDS:
        if sign_csr or enc_csr or enc_public_key:
            raise ValidationError(f"{rkind.value} requests carry no CSR or public key")
        req.status_reason = status_reason_text(status_reason)
        if rkind is RequestKind.REVOCATION:
            req.revocation_reason = _parse_reason(revocation_reason).value
        elif revocation_reason is not None:
            raise ValidationError("only revocation requests take a revocation reason")
        else:      # RFC 5280 §5.3.1: certificateHold, released by removeFromCRL
            req.revocation_reason = (RevocationReason.certificate_hold if rkind is RequestKind.SUSPEND
                                     else RevocationReason.remove_from_crl).value
    else:
        if revocation_reason is not None:
            raise ValidationError("only revocation requests take a revocation reason")
        if status_reason is not None and status_reason.strip():
            raise ValidationError("only suspension, release and revocation requests take a status reason")
        _set_keys(session, req, rtype, rkind, sign_csr, enc_csr, enc_public_key, policy, target_request_id)
    session.add(req)
    session.flush()
    record(session, actor=actor.name, role=actor.role, action="ra.request.submit", target_type=TARGET,
           target_id=req.id, type=req.type, kind=req.kind, unit_id=req.unit_id,
           target_request_id=req.target_request_id,
           **_status_reason(req))
    if approval.submitter_is_first_approver(rkind.value, actor.role):
        # an officer who asks for a revocation, suspension or release is its first approver (ra.approval)
        req.approvals.append(Approval(officer=actor.name))
        session.flush()
        record(session, actor=actor.name, role=actor.role, action="ra.request.approve", target_type=TARGET,
               target_id=req.id, approvals=1, threshold=policy.approvals[req.type], as_submitter=True)
    return req


def _set_keys(session: Session, req: CertRequest, rtype: RequestType, rkind: RequestKind, sign_csr, enc_csr,
              enc_public_key, policy: Policy, target_request_id) -> None:
    """Parse the CSRs (proof of possession) and check their subject against the registered subject now, at
    submission, so a wrong subject is refused (400) before anyone vets it."""
    if not sign_csr:
        raise ValidationError("a CSR is required")
    sign = parse_csr(sign_csr, max_size=policy.max_csr_size)
    req.sign_csr, req.sign_spki = sign.der, sign.public_key_info
    enc = _encryption_key(rtype, rkind, sign.key, enc_csr, enc_public_key, policy, session, target_request_id)
    req.enc_csr, req.enc_spki = enc if enc is not None else (None, None)
    _subject_check(session, req, policy)


def _encryption_key(rtype, rkind, sign_key: KeyInfo, enc_csr, enc_public_key, policy, session,
                    target_request_id) -> tuple[bytes | None, bytes] | None:
    if rtype is not RequestType.CIVIL_SERVANT_DUAL:
        if enc_csr or enc_public_key:
            raise ValidationError("only civil-servant dual requests carry an encryption key")
        return None
    if enc_csr and enc_public_key:
        raise ValidationError("give the encryption key as enc_csr or enc_public_key, not both")
    if enc_csr:
        enc = parse_csr(enc_csr, max_size=policy.max_csr_size)
        pair = (enc.der, enc.public_key_info)
        key = enc.key
    elif enc_public_key:
        key = load_public_key_info(enc_public_key)
        pair = (None, key.public_key_info)
    elif rkind is RequestKind.RENEWAL:
        target = session.get(CertRequest, target_request_id)
        if target.enc_spki is None:
            return None          # the KMC generated the last one: it generates the next (GM/T 0034)
        return target.enc_csr, target.enc_spki        # renewal keeps a subscriber-held encryption key
    else:
        return None              # GM/T 0034: the KMC generates the encryption key pair at issuance
    if key.key_type != sign_key.key_type:
        raise ValidationError("the signing and encryption keys of a dual pair must be of the same type")
    if key.public_key_info == sign_key.public_key_info:
        raise ValidationError("the encryption key must differ from the signing key")
    return pair


# -------------------------------------------------------------------------------------------------- vet

def _lock(session: Session, request_id: int) -> CertRequest:
    """The request row, locked for this transaction (FOR UPDATE; SQLite already holds the write lock)."""
    check_id(request_id, "request")
    # certificates load when first used (approve refreshes them at the end): one SELECT fewer per call
    req = session.scalar(select(CertRequest).where(CertRequest.id == request_id).with_for_update()
                         .options(lazyload(CertRequest.certificates))
                         .execution_options(populate_existing=True))
    if req is None:
        raise NotFound(f"request {request_id} not found")
    return req


def _check(checks: dict, name: str, fn) -> None:
    try:
        detail = fn()
        checks[name] = {"ok": True, "detail": detail or "passed"}
    except PkiError as exc:
        checks[name] = {"ok": False, "detail": exc.public_message}


def _active_certificates(session: Session, request_id: int, statuses=("good",)) -> list[RaCertificate]:
    return list(session.scalars(select(RaCertificate).where(RaCertificate.request_id == request_id,
                                                            RaCertificate.status.in_(statuses))
                                .order_by(RaCertificate.id)))


def _target_certificates(session: Session, request_id: int, kind: str) -> list[RaCertificate]:
    """The certificates of ``request_id`` a request of ``kind`` acts on (``TARGET_STATUSES``)."""
    return _active_certificates(session, request_id, TARGET_STATUSES[kind])


def _identity_check(session: Session, req: CertRequest, policy: Policy) -> str:
    unit = session.get(Unit, req.unit_id)
    validate_uscc(unit.uscc, check_org_code=policy.check_org_code)
    if req.type == RequestType.CIVIL_SERVANT_DUAL.value:
        validate_id_number(session.get(CivilServant, req.civil_servant_id).id_number)
        return "identity number and unit code valid"
    if req.type == RequestType.SERVER.value:
        server = session.get(Server, req.server_id)
        for name in server.dns_names:
            validate_hostname(name)
        for ip in server.ip_addresses:
            validate_ip(ip)
        return "host names, addresses and unit code valid"
    return "unit code valid"


def cmp_enrolment(req) -> bool:
    """A new request without a key: the subscriber's key is made at its CMP enrolment (an ir protected by
    a one-time secret bound to this request, RFC 9483 §4.1.5), whose proof of possession the CA checks."""
    return req.kind == RequestKind.NEW.value and req.sign_csr is None and req.sign_spki is None


def _csr_check(req: CertRequest, policy: Policy) -> str:
    if cmp_enrolment(req):
        return "no CSR: the key is made at the CMP enrolment, whose proof of possession the CA checks"
    sign = parse_csr(req.sign_csr, max_size=policy.max_csr_size)
    if sign.public_key_info != req.sign_spki:
        raise CsrError("stored signing key differs from the CSR")
    if req.enc_csr is not None:
        parse_csr(req.enc_csr, max_size=policy.max_csr_size)
    if req.enc_spki is not None:
        check_public_key(req.enc_spki)
    return f"proof of possession verified ({sign.signature_algorithm}, {sign.key.key_type} {sign.key.bits})"


def _subject_check(session: Session, req: CertRequest, policy: Policy) -> str:
    expected = vetted_subject(session, req)
    reasons = []
    for der in (req.sign_csr, req.enc_csr):
        if der is not None:
            reasons += subject_conflicts(parse_csr(der, max_size=policy.max_csr_size).subject, expected)
    if reasons:
        raise ValidationError("; ".join(reasons))
    return "CSR subject consistent with " + ", ".join(f"{k}={v}" for k, v in expected)


def _key_check(session: Session, req: CertRequest) -> str:
    for spki in (req.sign_spki, req.enc_spki):
        if spki is None:
            continue
        others = session.scalars(select(RaCertificate).join(CertRequest).where(
            RaCertificate.public_key_info == spki, RaCertificate.status.in_(("good", "hold"))))
        for cert in others:
            same_subject = (cert.request.unit_id, cert.request.civil_servant_id, cert.request.server_id) == (
                req.unit_id, req.civil_servant_id, req.server_id)
            if not same_subject:
                raise ConflictError("the public key is already certified for another subject")
            if req.kind != RequestKind.RENEWAL.value:
                raise ConflictError("the public key is already certified; use a renewal or a new key")
    if req.kind in (RequestKind.RENEWAL.value, RequestKind.REKEY.value, RequestKind.REISSUE.value):
        old = {c.public_key_info for c in _target_certificates(session, req.target_request_id, req.kind)
               if c.usage == "sign"}
        if req.kind == RequestKind.RENEWAL.value and req.sign_spki not in old:
            raise ValidationError("a renewal must keep the signing key of the certificate it renews")
        if req.kind != RequestKind.RENEWAL.value and req.sign_spki in old:
            raise ValidationError("a re-key needs a new signing key")
    return "key not certified for anyone else"


def _target_check(session: Session, req: CertRequest) -> str:
    active = _target_certificates(session, req.target_request_id, req.kind)
    if not active:
        held = req.kind == RequestKind.RESUME.value
        raise ConflictError(f"request {req.target_request_id} has no certificate {'on hold' if held else 'in force'}")
    return ("certificates on hold: " if req.kind == RequestKind.RESUME.value else "certificates in force: ") + \
        ", ".join(f"{c.ca}/{c.serial}" for c in active)


def vet(session: Session, actor: Actor, request_id: int, *, documents_checked: bool, note: str | None = None,
        policy: Policy = Policy()) -> CertRequest:
    """RA operator's vetting: runs every check and records which passed. ``documents_checked`` is the
    operator's statement that the paper/electronic identity documents were seen. All passed: vetted;
    any failed: rejected with the failed checks as the reason."""
    req = _lock(session, request_id)
    if req.state != RequestState.SUBMITTED.value:
        raise ConflictError(f"request {req.id} is {req.state}, only submitted requests can be vetted")
    if actor.name == req.submitted_by:
        raise DutiesNotSeparated("the submitter of a request cannot vet it")
    if documents_checked is not True:
        # a missing tick is the operator's slip, not the applicant's fault: refused, nothing recorded
        raise ValidationError("confirm that the identity documents were checked (documents_checked) before "
                              "vetting; the request is unchanged")
    checks: dict = {}

    def documents():
        return note or "identity documents checked by the operator"

    _check(checks, "documents", documents)
    _check(checks, "identity", lambda: _identity_check(session, req, policy))
    if req.kind in STATUS_KINDS:
        _check(checks, "target", lambda: _target_check(session, req))
    else:
        _check(checks, "csr", lambda: _csr_check(req, policy))
        _check(checks, "subject", lambda: _subject_check(session, req, policy))
        _check(checks, "key", lambda: _key_check(session, req))
        if req.kind != RequestKind.NEW.value:
            _check(checks, "target", lambda: _target_check(session, req))
    failed = [name for name, result in checks.items() if not result["ok"]]
    req.checks = checks
    req.vetted_by, req.vetted_at = actor.name, utcnow()
    if failed:
        req.state = RequestState.REJECTED.value
        req.rejected_by = actor.name
        req.reject_reason = "vetting failed: " + "; ".join(f"{n}: {checks[n]['detail']}" for n in failed)
        req.completed_at = utcnow()
    else:
        req.state = RequestState.VETTED.value
    _flush(session)
    record(session, actor=actor.name, role=actor.role, action="ra.request.vet", target_type=TARGET,
           target_id=req.id, passed=not failed, failed=failed, checks=checks)
    return req


# ------------------------------------------------------------------------------------ approve / reject

def _flush(session: Session) -> None:
    try:
        session.flush()
    except StaleDataError as exc:
        raise ConflictError("the request was changed concurrently; reload and retry") from exc
    except IntegrityError as exc:
        raise ConflictError("the change conflicts with a concurrent one; reload and retry") from exc


def escrow_needed(session: Session, actor: Actor, request_id: int, *,
                  policy: Policy = Policy()) -> EscrowedKeyRequest | None:
    """What to ask the CA's KMC for before ``approve`` runs (outside its transaction), when this
    officer's approval will carry out a dual request whose encryption key the KMC generates."""
    check_id(request_id, "request")
    # one narrow SELECT settles every other request type (no request, approvals and certificates load)
    if session.scalar(select(CertRequest.type).where(CertRequest.id == request_id)) \
            != RequestType.CIVIL_SERVANT_DUAL.value:
        return None
    req = session.get(CertRequest, request_id)
    if req is None or req.type != RequestType.CIVIL_SERVANT_DUAL.value or req.enc_spki is not None \
            or not approval.decide(req, (a.officer for a in req.approvals), actor.name, policy.approvals).issues:
        return None
    person = session.get(CivilServant, req.civil_servant_id)
    return EscrowedKeyRequest(request_id=ca_request_id(req, "enc"), profile=policy.profiles[req.type]["enc"],
                              subscriber_public_key_info=req.sign_spki, user_name=person.name if person else None)


def ca_request_id(req: CertRequest, usage: str) -> str:
    return f"{ca_request_prefix(req.id)}{usage}"


def ca_request_prefix(request_id: int) -> str:
    """What the CA request ids of RA request ``request_id`` start with (``ra-<id>-``, then the usage)."""
    return f"ra-{request_id}-"


def approve(session: Session, actor: Actor, request_id: int, ca: CABackend, *,
            policy: Policy = Policy(), escrowed: EscrowedKey | None = None) -> CertRequest:
    """An officer's approval, as ``ra.approval.decide`` rules it. At the type's threshold the request is
    carried out in this transaction (issue through ``ca``, or revoke / suspend / release); a CA failure
    raises and rolls everything back. Approving again a
    request one has already approved returns it unchanged (a retry never issues twice). ``escrowed``:
    the KMC key reserved beforehand (``escrow_needed``) for a dual request's encryption certificate."""
    req = _lock(session, request_id)
    # _lock loaded the approvals after taking the row lock, so they are every committed one: no COUNT
    decision = approval.decide(req, (a.officer for a in req.approvals), actor.name, policy.approvals)
    if decision.verdict is Verdict.UNCHANGED:
        return req                                        # idempotent retry (whatever the state now)
    if decision.error is not None:
        raise decision.error
    req.approvals.append(Approval(officer=actor.name))
    _flush(session)
    # a vetted request has no certificates yet (they are added with the move to issued): none to load
    set_committed_value(req, "certificates", [])
    record(session, actor=actor.name, role=actor.role, action="ra.request.approve", target_type=TARGET,
           target_id=req.id, approvals=decision.approvals, threshold=decision.threshold)
    if decision.completes:
        req.state = RequestState.APPROVED.value
        _carry_out(session, actor, req, ca, policy, escrowed, decision.verdict)
    _flush(session)
    return req


def reject(session: Session, actor: Actor, request_id: int, reason: str) -> CertRequest:
    """Refuse a submitted or vetted request, with a reason that the applicant sees."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError("a rejection needs a reason")
    if len(reason) > 2000:
        raise ValidationError("the rejection reason is longer than 2000 characters")
    req = _lock(session, request_id)
    if req.state not in (RequestState.SUBMITTED.value, RequestState.VETTED.value):
        raise ConflictError(f"request {req.id} is {req.state} and can no longer be rejected")
    req.state = RequestState.REJECTED.value
    req.rejected_by, req.reject_reason, req.completed_at = actor.name, reason.strip(), utcnow()
    _flush(session)
    record(session, actor=actor.name, role=actor.role, action="ra.request.reject", target_type=TARGET,
           target_id=req.id, reason=reason.strip())
    return req


MAX_REASON = 2000


def status_reason_text(value) -> str | None:
    """The officer's free-text reason for a suspension, release or revocation: trimmed, at most
    ``MAX_STATUS_REASON`` characters, no control characters but line breaks; blank is None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("status_reason must be text")
    value = value.strip()
    if len(value) > MAX_STATUS_REASON:
        raise ValidationError(f"the status reason is longer than {MAX_STATUS_REASON} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t" for ch in value):
        raise ValidationError("the status reason contains control characters")
    return value or None


def _reason(reason, what: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationError(f"{what} needs a reason")
    if len(reason) > MAX_REASON:
        raise ValidationError(f"the reason is longer than {MAX_REASON} characters")
    return reason.strip()


def return_for_correction(session: Session, actor: Actor, request_id: int, reason: str) -> CertRequest:
    """退回补正: send a submitted or vetted request back for correction (not a final rejection). Its vetting
    and approvals are void; the submitter (or an operator) corrects and resubmits it (``resubmit``)."""
    reason = _reason(reason, "returning a request for correction")
    req = _lock(session, request_id)
    if req.state not in (RequestState.SUBMITTED.value, RequestState.VETTED.value):
        raise ConflictError(f"request {req.id} is {req.state}; only submitted or vetted requests can be returned")
    if req.kind in STATUS_KINDS:
        raise ValidationError(f"a {req.kind} request is approved or rejected, not returned for correction")
    req.state = RequestState.RETURNED.value
    req.rejected_by, req.reject_reason = actor.name, reason
    _flush(session)
    record(session, actor=actor.name, role=actor.role, action="ra.request.return", target_type=TARGET,
           target_id=req.id, reason=reason)
    return req


def resubmit(session: Session, actor: Actor, request_id: int, *, sign_csr=None, enc_csr=None, enc_public_key=None,
             policy: Policy = Policy()) -> CertRequest:
    """A returned request, corrected (new CSRs, or the registry's data corrected and the same CSRs), back to
    submitted: vetting and approvals start again; the subject is checked again now."""
    req = _lock(session, request_id)
    if req.state != RequestState.RETURNED.value:
        raise ConflictError(f"request {req.id} is {req.state}; only returned requests can be resubmitted")
    if actor.name != req.submitted_by and actor.role != "ra_operator":
        raise DutiesNotSeparated("only the submitter or an RA operator can resubmit a returned request")
    if sign_csr or enc_csr or enc_public_key:
        if not (enc_csr or enc_public_key):          # a new signing CSR keeps the encryption key given before
            enc_csr, enc_public_key = (req.enc_csr, None) if req.enc_csr is not None else (None, req.enc_spki)
        _set_keys(session, req, RequestType(req.type), RequestKind(req.kind), sign_csr or req.sign_csr,
                  enc_csr, enc_public_key, policy, req.target_request_id)
    else:
        _subject_check(session, req, policy)
    for prior in list(req.approvals):
        session.delete(prior)
    req.approvals.clear()
    req.state, req.vetted_by, req.vetted_at, req.checks = RequestState.SUBMITTED.value, None, None, {}
    req.rejected_by = req.reject_reason = None
    _flush(session)
    record(session, actor=actor.name, role=actor.role, action="ra.request.resubmit", target_type=TARGET,
           target_id=req.id, new_csr=bool(sign_csr or enc_csr or enc_public_key))
    return req


def emergency_revoke(session: Session, actor: Actor, target_request_id: int, justification: str,
                     ca: CABackend, reason: str = RevocationReason.key_compromise.value) -> CertRequest:
    """Key compromise: one RA officer revokes the certificates of an issued request at once (reason
    keyCompromise unless another is given: ``racentre ca revoke`` of an RA certificate comes here too),
    without vetting or a second approval, and must say why. The revocation is its own request (kind
    revocation, state revoked) naming the officer, and audited as ``ra.request.emergency_revoke`` with the
    justification, for the auditor's review; the RA and the CA then show the same status.

    With reason certificateHold (挂失: the holder reports the USB key lost, ``racentre ca revoke --reason
    certificate_hold``) it is an immediate 冻结 of the certificates in force: a request of kind suspend, state
    suspended, audited as ``ra.request.emergency_suspend``; their release (解冻) is a resume request through
    the four-eyes gate (RFC 5280 §5.3.1: the hold is reversible, its release is not an emergency)."""
    justification = _reason(justification, "an emergency revocation")
    why = _parse_reason(reason)
    kind = RequestKind.SUSPEND if why is RevocationReason.certificate_hold else RequestKind.REVOCATION
    target = _get(session, CertRequest, target_request_id, "request")
    if target.state != RequestState.ISSUED.value or target.kind == RequestKind.REVOCATION.value:
        raise ConflictError(f"request {target.id} has no issued certificates to revoke")
    if not _target_certificates(session, target.id, kind.value):
        raise ConflictError(f"request {target.id} has no certificate in force")
    now = utcnow()
    req = CertRequest(type=target.type, kind=kind.value, state=RequestState.APPROVED.value,
                      submitted_by=actor.name, vetted_by=actor.name, vetted_at=now, unit_id=target.unit_id,
                      civil_servant_id=target.civil_servant_id, server_id=target.server_id,
                      target_request_id=target.id, revocation_reason=why.value,
                      status_reason=justification[:MAX_STATUS_REASON],
                      checks={"emergency": {"ok": True, "detail": justification}})
    session.add(req)
    req.approvals.append(Approval(officer=actor.name))
    session.flush()
    record(session, actor=actor.name, role=actor.role, target_type=TARGET,
           action="ra.request.emergency_suspend" if kind is RequestKind.SUSPEND else "ra.request.emergency_revoke",
           target_id=req.id, target_request_id=target.id, reason=why.value, justification=justification)
    _revoke_all(session, actor, req, target.id, why, ca, TARGET_STATUSES[kind.value])
    req.state, req.completed_at = DONE_STATES[kind.value], utcnow()
    _flush(session)
    return req


# ------------------------------------------------------------------------------------ issue and revoke

def ca_call(what: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except PkiError:
        raise
    except Exception as exc:  # noqa: BLE001 - any CA failure aborts the whole approval
        raise IssuanceFailed(f"the CA failed to {what}; nothing was recorded") from exc


def _carry_out(session: Session, actor: Actor, req: CertRequest, ca: CABackend, policy: Policy,
               escrowed: EscrowedKey | None, verdict: Verdict) -> None:
    """What ``ra.approval.decide`` said the final approval does: change the status of the target's
    certificates (revoke, suspend, release), or issue (then supersede the target's, ``supersedes``)."""
    if verdict is Verdict.CHANGE_STATUS:
        reason = RevocationReason(req.revocation_reason)
        if req.kind == RequestKind.RESUME.value:
            _release_all(session, actor, req, req.target_request_id, ca)
        else:
            _revoke_all(session, actor, req, req.target_request_id, reason, ca, TARGET_STATUSES[req.kind])
        req.state, req.completed_at = DONE_STATES[req.kind], utcnow()
        return
    if cmp_enrolment(req):
        # approved; the certificate comes when the subscriber enrols with the one-time secret an officer
        # issues for this request (record_cmp_enrolment)
        record(session, actor=actor.name, role=actor.role, action="ra.request.awaiting_enrolment",
               target_type=TARGET, target_id=req.id)
        return
    if not _issue(session, actor, req, ca, policy, escrowed):
        req.state = RequestState.AWAITING_CA.value       # a re-key revokes the old certificates when issued
        return
    if supersedes(req.kind, policy):
        _revoke_all(session, actor, req, req.target_request_id, RevocationReason.superseded, ca,
                    TARGET_STATUSES[req.kind])
    req.state, req.completed_at = RequestState.ISSUED.value, utcnow()


def supersedes(kind: str, policy: Policy) -> bool:
    """Whether issuing a request of ``kind`` revokes its target's certificates (superseded, RFC 5280 §5.3.1):
    re-key and re-issue (补发) always, renewal (换发) when ``policy.renewal_supersedes``."""
    return kind in (RequestKind.REKEY.value, RequestKind.REISSUE.value) or \
        (kind == RequestKind.RENEWAL.value and policy.renewal_supersedes)


def carries_out_one_by_one(kind: str, policy: Policy) -> bool:
    """Whether approving a request of ``kind`` at its threshold changes other certificates' status (the bulk
    engine leaves those to ``approve``, a transaction each)."""
    return kind in STATUS_KINDS or supersedes(kind, policy)


def _issue(session: Session, actor: Actor, req: CertRequest, ca: CABackend, policy: Policy,
           escrowed: EscrowedKey | None = None) -> bool:
    """Issue in this transaction (True), or queue for a ``DeferredIssuanceCA`` (False: awaiting the CA)."""
    subject = vetted_subject(session, req)
    identity = identity_extensions(session, req)
    dns, ips = (), ()
    if req.type == RequestType.SERVER.value:
        server = _subject_row(session, Server, req.server_id)
        dns, ips = server.dns_names, server.ip_addresses
    pairs = issue_requests(req, policy, subject, identity, dns, ips, escrowed, central_keygen=central_keygen(ca))
    if isinstance(ca, DeferredIssuanceCA):
        ca_call("queue the requests for the CA", ca.enqueue, [r for _, r in pairs], session)
        record(session, actor=actor.name, role=actor.role, action="ra.request.awaiting_ca", target_type=TARGET,
               target_id=req.id, ca_request_ids=[r.request_id for _, r in pairs])
        return False
    for usage, ca_request in pairs:
        issued: IssuedCertificate = ca_call("issue a certificate", ca.issue, ca_request, session=session)
        if issued.request_id != ca_request.request_id:
            raise IssuanceFailed("the CA answered for another request")
        req.certificates.append(RaCertificate(**ra_certificate_fields(usage, ca_request, issued)))
        record(session, actor=actor.name, role=actor.role, action="ra.certificate.issue", target_type=TARGET,
               target_id=req.id, usage=usage, profile=issued.profile, ca=issued.ca, serial=format(issued.serial, "x"),
               ca_request_id=ca_request.request_id)
    _flush(session)
    return True


CA_ACTOR = Actor("upstream-ca", "system")      # who moves a request on when the CA answers (audit)


def awaited_ca_requests(rtype: str, request_id: int, policy: Policy) -> list[tuple[str, str]]:
    """(usage, CA request id) of each certificate an ``awaiting_ca`` request waits for."""
    return [(usage, f"{ca_request_prefix(request_id)}{usage}") for usage in policy.profiles[rtype]]


def complete_from_ca(session: Session, request_id: int, results: Mapping[str, IssuedCertificate | PkiError],
                     ca: CABackend, policy: Policy = Policy()) -> CertRequest:
    """The upstream CA answered every request of an ``awaiting_ca`` request (``results``: usage -> the
    certificate, or the ``PkiError`` of its refusal). All issued: the certificates are recorded, a
    re-key's old certificates revoked, state ``issued``. One refused: state ``failed`` with the CA's
    reason (final; certificates of the group the CA did issue are revoked there: the revocation is queued
    in this transaction, ``DeferredIssuanceCA.queue_revocation``, and sent after the commit -- nothing
    goes over the network while this transaction holds its locks). A request no longer awaiting the CA
    (another worker completed it) is returned unchanged: never recorded twice."""
    req = _lock(session, request_id)
    if req.state != RequestState.AWAITING_CA.value:
        return req
    actor = CA_ACTOR
    refused = [(usage, exc) for usage, exc in results.items() if isinstance(exc, PkiError)]
    if refused:
        reason = "; ".join(f"{usage}: {exc.public_message}" for usage, exc in refused)[:MAX_REASON]
        for usage, issued in results.items():
            if isinstance(issued, IssuedCertificate):
                try:
                    if isinstance(ca, DeferredIssuanceCA):
                        queued = ca.queue_revocation(issued.ca, issued.serial, RevocationReason.cessation_of_operation,
                                                     session)
                        record(session, actor=actor.name, role=actor.role, action="ra.certificate.revocation_queued",
                               target_type=TARGET, target_id=req.id, usage=usage, serial=format(issued.serial, "x"),
                               ca_request_id=queued)
                    else:
                        ca.revoke(issued.ca, issued.serial, RevocationReason.cessation_of_operation, session=session)
                except PkiError as exc:                 # kept in the audit row: an officer revokes it by hand
                    record(session, actor=actor.name, role=actor.role, action="ra.certificate.orphaned",
                           target_type=TARGET, target_id=req.id, usage=usage, serial=format(issued.serial, "x"),
                           error=exc.public_message)
        req.state, req.completed_at = RequestState.FAILED.value, utcnow()
        req.rejected_by, req.reject_reason = actor.name, f"the CA refused the request: {reason}"
        record(session, actor=actor.name, role=actor.role, action="ra.request.ca_refused", target_type=TARGET,
               target_id=req.id, reason=reason)
        _flush(session)
        return req
    keys = {"sign": req.sign_spki, "enc": req.enc_spki}
    set_committed_value(req, "certificates", [])
    for usage, ca_request_id_ in awaited_ca_requests(req.type, req.id, policy):
        issued = results[usage]
        if issued.request_id != ca_request_id_:
            raise IssuanceFailed("the CA answered for another request")
        # a key the CA generated (central key generation): the certified key is the one in the certificate
        key = keys[usage] or x509.Certificate.load(issued.certificate).public_key.dump()
        ca_request = IssueRequest(request_id=ca_request_id_, profile=issued.profile, subject=(),
                                  public_key_info=key)
        req.certificates.append(RaCertificate(**ra_certificate_fields(usage, ca_request, issued)))
        record(session, actor=actor.name, role=actor.role, action="ra.certificate.issue", target_type=TARGET,
               target_id=req.id, usage=usage, profile=issued.profile, ca=issued.ca, serial=format(issued.serial, "x"),
               ca_request_id=ca_request_id_)
    _flush(session)
    if supersedes(req.kind, policy):
        # the old certificates' rr queued with this completion and sent after its commit (as a refusal's)
        _revoke_all(session, actor, req, req.target_request_id, RevocationReason.superseded, ca,
                    TARGET_STATUSES[req.kind], queue=isinstance(ca, DeferredIssuanceCA))
    req.state, req.completed_at = RequestState.ISSUED.value, utcnow()
    _flush(session)
    return req


CMP_ACTOR = Actor("cmp", "cmp")


def record_cmp_enrolment(session: Session, request_id: int, issue_request: IssueRequest,
                         issued: IssuedCertificate) -> None:
    """The CA issued the certificate of an approved ``cmp_enrolment`` request to the subscriber who
    enrolled with the one-time secret bound to it (in the CA's transaction: both commit or neither).
    The request takes the enrolled key and the certificate and is issued; any other state refuses."""
    req = _lock(session, request_id)
    if req.state != RequestState.APPROVED.value or not cmp_enrolment(req):
        raise ConflictError(f"request {req.id} is {req.state}: not an approved request awaiting its CMP enrolment")
    req.sign_spki = issue_request.public_key_info
    set_committed_value(req, "certificates", [])
    req.certificates.append(RaCertificate(**ra_certificate_fields("sign", issue_request, issued)))
    req.state, req.completed_at = RequestState.ISSUED.value, utcnow()
    record(session, actor=CMP_ACTOR.name, role=CMP_ACTOR.role, action="ra.certificate.issue", target_type=TARGET,
           target_id=req.id, usage="sign", profile=issued.profile, ca=issued.ca, serial=format(issued.serial, "x"),
           ca_request_id=issue_request.request_id, enrolled_by="cmp")
    _flush(session)


def cmp_secret_fields(session: Session, request_id: int, policy: Policy = Policy()) -> dict:
    """What a one-time CMP secret for request ``request_id`` enrols: its vetted subject, names, identity
    and profile (the request must be approved and awaiting its CMP enrolment)."""
    req = _get(session, CertRequest, request_id, "request")
    if req.state != RequestState.APPROVED.value or not cmp_enrolment(req):
        raise ConflictError(f"request {req.id} is {req.state}; a CMP secret is issued for an approved request "
                            "submitted for enrolment over CMP")
    dns, ips = (), ()
    if req.type == RequestType.SERVER.value:
        server = _subject_row(session, Server, req.server_id)
        dns, ips = server.dns_names, server.ip_addresses
    return {"profile": policy.profiles[req.type]["sign"], "subject": vetted_subject(session, req),
            "dns_names": tuple(dns), "ip_addresses": tuple(ips), "identity": identity_extensions(session, req),
            "ra_request_id": req.id}


def upstream_pending(exc: PkiError) -> bool:
    """True for a CA that is down, slow or still processing (collect again), False for a refusal."""
    return exc.code == ErrorCode.UPSTREAM_UNAVAILABLE


def central_keygen(ca: CABackend) -> bool:
    """True when ``ca`` (a CA reached over CMP) has its KMC generate a dual pair's encryption key with
    the certificate (RFC 9483 §4.1.6) instead of reserving it before the approval."""
    return isinstance(ca, DeferredIssuanceCA) and bool(getattr(ca, "central_keygen", False))


def issue_requests(req, policy: Policy, subject, identity, dns_names=(), ip_addresses=(),
                   escrowed: EscrowedKey | None = None, *, central_keygen: bool = False) -> list[tuple[str, IssueRequest]]:
    """(usage, IssueRequest) for each certificate of the request's profile set (sign, and enc for a
    GM/T 0034 dual pair, whose KMC-generated key is ``escrowed``, or -- ``central_keygen``, an upstream CA
    over CMP -- generated by the CA's KMC with the certificate and enveloped to the signing key).
    ``req``: ORM or Core row."""
    keys = {"sign": req.sign_spki, "enc": req.enc_spki}
    central = {}
    if req.type == RequestType.CIVIL_SERVANT_DUAL.value and req.enc_spki is None and central_keygen:
        keys["enc"], central["enc"] = b"", req.sign_spki
    elif req.type == RequestType.CIVIL_SERVANT_DUAL.value and req.enc_spki is None:
        if escrowed is None or escrowed.request_id != ca_request_id(req, "enc"):
            raise KmcKeyNotReserved("the encryption key comes from the key-management centre, and the CA has "
                                    "none attached (or reserved no key for this request)")
        keys["enc"] = escrowed.public_key_info
    csrs = {"sign": getattr(req, "sign_csr", None), "enc": getattr(req, "enc_csr", None)}
    return [(usage, IssueRequest(request_id=ca_request_id(req, usage), profile=profile, subject=subject,
                                 public_key_info=keys[usage], dns_names=tuple(dns_names),
                                 ip_addresses=tuple(ip_addresses), identity=identity, csr=csrs[usage],
                                 central_keygen_for=central.get(usage)))
            for usage, profile in policy.profiles[req.type].items()]


def ra_certificate_fields(usage: str, ca_request: IssueRequest, issued: IssuedCertificate) -> dict:
    """The ``ra_certificate`` columns of one issued certificate (less the request id)."""
    return {"ca_request_id": ca_request.request_id, "usage": usage, "profile": issued.profile, "ca": issued.ca,
            "serial": format(issued.serial, "x"), "public_key_info": ca_request.public_key_info,
            "certificate": issued.certificate, "key_envelope": issued.key_envelope,
            "not_before": issued.not_before, "not_after": issued.not_after, "status": "good"}


def _revoke_all(session: Session, actor: Actor, req: CertRequest, target_id: int, reason: RevocationReason,
                ca: CABackend, statuses=("good",), *, queue: bool = False) -> None:
    """Revoke the target's certificates in ``statuses`` at the CA in this transaction. certificateHold
    makes them ``hold`` (冻结, released by ``_release_all``); any other reason makes them ``revoked`` (a held
    certificate too: RFC 5280 §5.3.1, the hold made permanent). ``queue`` (a ``DeferredIssuanceCA``): the
    revocations are queued in this transaction and sent after its commit (``queue_revocation``)."""
    certificates = _active_certificates(session, target_id, statuses)
    if not certificates:
        raise ConflictError(f"request {target_id} has no certificate in force")
    for cert in certificates:
        if queue:
            ca_call("queue a revocation for the CA", ca.queue_revocation, cert.ca, cert.serial_int, reason, session)
            revoked_at = None
        else:
            revoked_at = ca_call("revoke a certificate", ca.revoke, cert.ca, cert.serial_int, reason,
                                 session=session).revoked_at
        cert.status = "hold" if reason is RevocationReason.certificate_hold else "revoked"
        cert.revoked_at = revoked_at or utcnow()
        cert.revocation_reason = reason.value
        record(session, actor=actor.name, role=actor.role, target_type=TARGET,
               action="ra.certificate.hold" if cert.status == "hold" else "ra.certificate.revoke",
               target_id=req.id, ca=cert.ca, serial=cert.serial, reason=reason.value,
               certificate_request_id=target_id, **_status_reason(req))


def _release_all(session: Session, actor: Actor, req: CertRequest, target_id: int, ca: CABackend) -> None:
    """解冻: release the target's certificates on hold (removeFromCRL, RFC 5280 §5.3.1): good again at the CA
    (the next CRL drops them, a delta CRL lists them with removeFromCRL, OCSP answers good) and in the RA."""
    certificates = _active_certificates(session, target_id, ("hold",))
    if not certificates:
        raise ConflictError(f"request {target_id} has no certificate on hold")
    for cert in certificates:
        ca_call("release a certificate", ca.revoke, cert.ca, cert.serial_int, RevocationReason.remove_from_crl,
                session=session)
        cert.status, cert.revoked_at, cert.revocation_reason = "good", None, None
        record(session, actor=actor.name, role=actor.role, action="ra.certificate.release", target_type=TARGET,
               target_id=req.id, ca=cert.ca, serial=cert.serial, certificate_request_id=target_id,
               **_status_reason(req))


def _status_reason(req: CertRequest) -> dict:
    """The audit detail of the officer's reason, when the request has one."""
    return {"status_reason": req.status_reason} if req.status_reason else {}


def request_summary_subject(session: Session, req: CertRequest) -> dict:
    """The subject and identity the request will certify (for display)."""
    return {"subject": [list(p) for p in vetted_subject(session, req)],
            "identity": [list(p) for p in identity_extensions(session, req)]}

