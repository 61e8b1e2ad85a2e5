"""The RA service: one unit of work (transaction) per call over ``ra.workflow``, returning plain dicts
for the REST views and the CLI. Built by ``build_ra_service`` and kept in ``app.extensions["racentre.ra"]``.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from typing import Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from ca_bridge.api import REVOCATION_PREFIX, CABackend, DeferredIssuanceCA, KeyEscrowCA, RevocationReason
from audit.trail import AuditEvent
from store.db import as_utc, reading, transaction
from pkicore.envelope import enveloped_key_from_signed_and_enveloped, parse_signed_and_enveloped
from pkicore.errors import PkiError

from ra import bulk, intake, records, workflow
from ra.config import RaConfig
from ra.errors import ConflictError, KmcKeyNotReserved, NotFound, ValidationError
from ra.models import CertRequest, CivilServant, RequestState, RequestType, Server, Unit
from ra.workflow import Actor, Policy

log = logging.getLogger(__name__)

SUBJECT_MODELS = {"unit": Unit, "civil-servant": CivilServant, "server": Server}
MAX_PAGE = 500
KMC_RACE_ATTEMPTS = 3       # approve: KMC pre-step + transaction, again when a concurrent approval made ours final


def _limit(limit) -> int:
    if limit is None:
        return 100
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise ValidationError(f"limit must be an integer from 1 to {MAX_PAGE}")
    return limit


class RaService:
    """The registration authority over a session factory and a CA backend."""

    def __init__(self, db: sessionmaker[Session], ca: CABackend, policy: Policy | None = None):
        self.db = db
        self.ca = ca
        self.policy = policy or Policy()
        # issues a one-time CMP secret (``CmpServer.issue_secret``) where this node's CA serves CMP
        self.cmp_secrets = None

    @property
    def escrows_keys(self) -> bool:
        """True when the CA's KMC generates dual-pair encryption keys (GM/T 0034)."""
        profile = self.policy.profiles[RequestType.CIVIL_SERVANT_DUAL.value]["enc"]
        return (isinstance(self.ca, KeyEscrowCA) and self.ca.can_escrow(profile)) or workflow.central_keygen(self.ca)

    # --- subjects
    def add_unit(self, actor: Actor, **fields) -> tuple[dict, bool]:
        with transaction(self.db) as session:
            unit, created = workflow.add_unit(session, actor, policy=self.policy, **fields)
            return unit.as_dict(), created

    def add_civil_servant(self, actor: Actor, **fields) -> tuple[dict, bool]:
        with transaction(self.db) as session:
            person, created = workflow.add_civil_servant(session, actor, **fields)
            return person.as_dict(), created

    def add_server(self, actor: Actor, **fields) -> tuple[dict, bool]:
        with transaction(self.db) as session:
            server, created = workflow.add_server(session, actor, **fields)
            return server.as_dict(), created

    def get_subject(self, kind: str, subject_id: int) -> dict:
        model = self._subject_model(kind)
        with reading(self.db) as session:
            row = session.get(model, workflow.check_id(subject_id, kind))
            if row is None:
                raise NotFound(f"{kind} {subject_id} not found")
            return row.as_dict()

    def list_subjects(self, kind: str, *, unit_id: int | None = None, limit: int | None = None,
                      after_id: int | None = None) -> list[dict]:
        model = self._subject_model(kind)
        unit_id = workflow.check_id(unit_id, "unit") if unit_id is not None else None
        after_id = workflow.check_id(after_id, "after") if after_id is not None else None
        query = select(model).order_by(model.id).limit(_limit(limit))
        if unit_id is not None and model is not Unit:
            query = query.where(model.unit_id == unit_id)
        if after_id is not None:
            query = query.where(model.id > after_id)
        with reading(self.db) as session:
            return [row.as_dict() for row in session.scalars(query)]

    @staticmethod
    def _subject_model(kind: str):
        try:
            return SUBJECT_MODELS[kind]
        except KeyError:
            raise ValidationError(f"subject kind must be one of {', '.join(SUBJECT_MODELS)}") from None

    # --- requests
    def _request_dict(self, session: Session, req: CertRequest) -> dict:
        result = req.as_dict()
        result.update(workflow.request_summary_subject(session, req))
        result["approvals_required"] = self.policy.approvals[req.type]
        return result

    def submit(self, actor: Actor, **fields) -> dict:
        if fields.get("type") == RequestType.CIVIL_SERVANT_DUAL.value and fields.get("kind", "new") == "new" \
                and not fields.get("enc_csr") and not fields.get("enc_public_key") and not self.escrows_keys:
            raise ValidationError("a civil-servant dual request needs an encryption key (enc_csr or enc_public_key): "
                                  "this CA has no key-management centre to generate one")
        with transaction(self.db) as session:
            return self._request_dict(session, workflow.submit(session, actor, policy=self.policy, **fields))

    def intake(self, actor: Actor, **fields) -> dict:
        """受理: subject (new or registered), documents and a new request in one transaction (``ra.intake``)."""
        if fields.get("type") == RequestType.CIVIL_SERVANT_DUAL.value and not fields.get("enc_csr") \
                and not self.escrows_keys:
            raise ValidationError("a civil-servant dual request needs an encryption CSR (enc_csr): "
                                  "this CA has no key-management centre to generate one")
        with transaction(self.db) as session:
            return self._request_dict(session, intake.intake(session, actor, policy=self.policy, **fields))

    def documents_received(self, request_id: int) -> list[str] | None:
        """The documents recorded at 受理 (``ra.intake``), or None for a request not entered at the counter."""
        with reading(self.db) as session:
            event = session.scalar(select(AuditEvent).where(
                AuditEvent.target_type == workflow.TARGET, AuditEvent.target_id == str(request_id),
                AuditEvent.action == intake.DOCUMENTS_ACTION).order_by(AuditEvent.id.desc()).limit(1))
            return None if event is None else list(event.detail.get("documents", []))

    def vet(self, actor: Actor, request_id: int, *, documents_checked: bool, note: str | None = None) -> dict:
        with transaction(self.db) as session:
            req = workflow.vet(session, actor, request_id, documents_checked=documents_checked, note=note,
                               policy=self.policy)
            return self._request_dict(session, req)

    def _reserve_kmc_keys(self, actor: Actor, request_ids: list[int]) -> tuple[dict, dict]:
        """GM/T 0034: the KMC makes a dual request's encryption key before the approving transaction opens
        (it may be remote; no lock is held across the call; a reservation is reused if the approval
        fails). (reserved keys, refusals) by request id, for the approvals here that will issue."""
        escrowed, refused = {}, {}
        if not isinstance(self.ca, KeyEscrowCA):
            return escrowed, refused
        with reading(self.db) as session:
            needs = bulk.escrow_needs(session, actor, request_ids, policy=self.policy)
        for rid, need in needs.items():
            try:
                escrowed[rid] = workflow.ca_call("reserve a KMC encryption key", self.ca.prepare_escrowed_key, need)
            except PkiError as exc:
                refused[rid] = exc
        return escrowed, refused

    def approve(self, actor: Actor, request_id: int) -> dict:
        workflow.check_id(request_id, "request")
        for _ in range(KMC_RACE_ATTEMPTS):
            try:
                return self._approve_once(actor, request_id)
            except KmcKeyNotReserved:
                # another officer's approval committed after our KMC pre-step and made ours the final one:
                # nothing was written; reserve the key now and approve again
                if not self.escrows_keys:
                    raise
        raise ConflictError("the request kept changing while it was approved; reload and retry")

    def _approve_once(self, actor: Actor, request_id: int) -> dict:
        escrowed, refused = self._reserve_kmc_keys(actor, [request_id])
        if refused:
            raise refused[request_id]
        # plain issuance goes through the bulk engine (Core statements, no ORM unit of work, so the SQLite
        # writer lock is held for a fraction of the time); approvals that revoke take workflow.approve
        try:
            with transaction(self.db) as session:
                outcomes, one_by_one = bulk.approve_many(session, actor, [request_id], self.ca, policy=self.policy,
                                                         escrowed=escrowed)
                if one_by_one:
                    req = workflow.approve(session, actor, request_id, self.ca, policy=self.policy,
                                           escrowed=escrowed.get(request_id))
                    done = self._request_dict(session, req)
                    if done["state"] != RequestState.AWAITING_CA.value:
                        return done
                elif outcomes[request_id].error is not None:
                    raise outcomes[request_id].error
        except (IntegrityError, StaleDataError) as exc:
            raise ConflictError("the change conflicts with a concurrent one; reload and retry") from exc
        # queued for an upstream CA with the commit: collect it now (still awaiting it when the CA is down)
        self.collect_awaiting([request_id])
        return self.get_request(request_id)       # after the commit, in a read-only unit of work

    def approve_many(self, actor: Actor, request_ids) -> list[dict]:
        """This officer's approval of each of ``request_ids`` in one transaction (``ra.bulk``): one
        outcome per request, in the order given."""
        ids = bulk.check_ids(request_ids)
        escrowed, refused = self._reserve_kmc_keys(actor, ids)
        try:
            with transaction(self.db) as session:
                outcomes, one_by_one = bulk.approve_many(session, actor, [i for i in ids if i not in refused],
                                                         self.ca, policy=self.policy, escrowed=escrowed)
        except (IntegrityError, StaleDataError) as exc:
            raise ConflictError("a request was changed concurrently; nothing was recorded, retry") from exc
        outcomes.update((rid, bulk.Outcome(rid, "failed", RequestState.VETTED.value, error=exc))
                        for rid, exc in refused.items())
        # dual requests another officer's concurrent approval made final after our KMC pre-step: nothing of
        # them was written; approve them again one by one (approve reserves their keys first)
        one_by_one += [rid for rid, outcome in outcomes.items()
                       if isinstance(outcome.error, KmcKeyNotReserved) and self.escrows_keys]
        awaiting = [rid for rid, outcome in outcomes.items() if outcome.result == "awaiting_ca"]
        if awaiting:                        # queued for an upstream CA with the commit: collect them now
            collected = self.collect_awaiting(awaiting)
            with reading(self.db) as session:
                found = records.request_records(session, awaiting, self.policy)
            for rid in awaiting:
                state = found[rid]["state"]
                outcomes[rid] = bulk.Outcome(rid, {RequestState.ISSUED.value: "issued",
                                                   RequestState.FAILED.value: "failed"}.get(state, "awaiting_ca"),
                                             state, found[rid]["certificates"],
                                             error=collected.get(rid) if isinstance(collected.get(rid), PkiError)
                                             else None)
        for rid in one_by_one:              # revocations and re-keys: a transaction each, as approve
            try:
                done = self.approve(actor, rid)
                finished = (RequestState.REVOKED.value, RequestState.SUSPENDED.value, RequestState.RESUMED.value,
                            RequestState.ISSUED.value, RequestState.AWAITING_CA.value, RequestState.FAILED.value)
                outcomes[rid] = bulk.Outcome(rid, done["state"] if done["state"] in finished else "approved",
                                             done["state"], done["certificates"])
            except PkiError as exc:
                with reading(self.db) as session:
                    state = session.scalar(select(CertRequest.state).where(CertRequest.id == rid))
                outcomes[rid] = bulk.Outcome(rid, "failed", state, error=exc)
        return [outcomes[i].as_dict() for i in ids]

    def issue_cmp_secret(self, actor: Actor, request_id: int) -> dict:
        """An officer's one-time CMP secret bound to approved request ``request_id`` (submitted for
        enrolment over CMP): the subscriber's ir gets the request's vetted subject, names and profile, once,
        and the certificate is recorded on the request (RFC 9483 §4.1.5). A new secret voids an unused one."""
        if self.cmp_secrets is None:
            raise ConflictError("this node's CA does not serve CMP enrolment")
        with reading(self.db) as session:
            fields = workflow.cmp_secret_fields(session, workflow.check_id(request_id, "request"), self.policy)
        reference, secret = self.cmp_secrets(actor.name, role=actor.role, **fields)
        return {"request_id": request_id, "reference": reference, "secret": secret}

    # --- an upstream CA (DeferredIssuanceCA): approved requests awaiting it
    def collect_awaiting(self, request_ids: Iterable[int] | None = None, *, limit: int = 100) -> dict:
        """Carry on requests ``awaiting_ca`` (those of ``request_ids``, else the oldest ``limit``): collect
        each CA request (outside any transaction), then record the outcome in a transaction of its own
        (``workflow.complete_from_ca``). Request id -> the state now (``issued``, ``failed``, or still
        ``awaiting_ca``), or the ``PkiError`` of the CA's refusal for a ``failed`` one. The sweep stops
        early when the CA cannot be reached (the rest wait for the next one). A refused group's queued
        revocations are sent after its commit; the sweep (no ``request_ids``) also retries those still queued."""
        if not isinstance(self.ca, DeferredIssuanceCA):
            return {}
        query = (select(CertRequest.id, CertRequest.type).where(CertRequest.state == RequestState.AWAITING_CA.value)
                 .order_by(CertRequest.id).limit(limit))
        if request_ids is not None:
            query = query.where(CertRequest.id.in_(list(request_ids)))
        with reading(self.db) as session:
            rows = list(session.execute(query))
        out: dict = {}
        down = False
        for rid, rtype in rows:
            results, pending, down = {}, False, False
            for usage, ca_request_id in workflow.awaited_ca_requests(rtype, rid, self.policy):
                try:
                    results[usage] = self.ca.collect(ca_request_id)
                except Exception as exc:  # noqa: BLE001 - the sweep survives anything a CA answer can raise
                    if not isinstance(exc, PkiError):
                        log.exception("collecting %s from the CA failed; it stays queued", ca_request_id)
                        pending, down = True, True
                        break
                    if workflow.upstream_pending(exc):
                        pending, down = True, not getattr(exc, "waiting", False)
                        log.info("request %s still awaits the CA: %s", rid, exc.public_message)
                        break
                    results[usage] = exc
                    break
            if pending:
                out[rid] = RequestState.AWAITING_CA.value
                if down:
                    break
                continue
            try:
                with transaction(self.db) as session:
                    completed = workflow.complete_from_ca(session, rid, results, self.ca, self.policy)
                    state, kind, target = completed.state, completed.kind, completed.target_request_id
            except PkiError as exc:          # e.g. a re-key's revocation of the old certificates: next sweep
                log.warning("request %s: the CA's answer could not be recorded yet: %s", rid, exc.public_message)
                out[rid] = RequestState.AWAITING_CA.value
                continue
            refusal = next((r for r in results.values() if isinstance(r, PkiError)), None)
            out[rid] = refusal if state == RequestState.FAILED.value and refusal is not None else state
            if state == RequestState.FAILED.value:
                # the revocations of the certificates the CA did issue for the refused group, queued in that
                # transaction: sent now that it committed (down: the sweep below, or the next, sends them)
                self._send_revocations(prefix=REVOCATION_PREFIX + workflow.ca_request_prefix(rid))
            elif state == RequestState.ISSUED.value and target is not None \
                    and workflow.supersedes(kind, self.policy):
                self._send_revocations(prefix=REVOCATION_PREFIX + workflow.ca_request_prefix(target))  # a re-key's old ones
        if request_ids is None and not down:
            self._send_revocations()
        return out

    def _send_revocations(self, **kw) -> None:
        try:
            self.ca.send_revocations(**kw)
        except Exception:  # noqa: BLE001 - a queued revocation stays queued; the sweep retries it
            log.exception("queued revocations for the upstream CA could not be sent; they stay queued")

    def start_collect_sweep(self, interval: float) -> threading.Event | None:
        """A daemon thread running ``collect_awaiting`` every ``interval`` seconds until the returned event
        is set (``racentre serve``; ``racentre ca cmp-sweep`` from cron does one sweep). None when the CA
        is not a ``DeferredIssuanceCA``."""
        if not isinstance(self.ca, DeferredIssuanceCA):
            return None
        stop = threading.Event()

        def loop():
            while not stop.wait(interval):
                try:
                    self.collect_awaiting()
                except Exception:  # noqa: BLE001 - a timer must survive a transient database failure
                    log.exception("sweep of requests awaiting the upstream CA failed")

        threading.Thread(target=loop, name="ra-awaiting-ca", daemon=True).start()
        return stop

    def reject(self, actor: Actor, request_id: int, reason: str) -> dict:
        with transaction(self.db) as session:
            req = workflow.reject(session, actor, request_id, reason)
            if isinstance(self.ca, KeyEscrowCA) and req.type == RequestType.CIVIL_SERVANT_DUAL.value:
                # an approval attempt may have reserved a KMC key for the encryption certificate: give it back
                workflow.ca_call("release the reserved KMC key", self.ca.release_escrowed_key,
                                 workflow.ca_request_id(req, "enc"), session)
            return self._request_dict(session, req)

    def return_for_correction(self, actor: Actor, request_id: int, reason: str) -> dict:
        """退回补正 (``workflow.return_for_correction``); a KMC key an approval reserved is given back."""
        with transaction(self.db) as session:
            req = workflow.return_for_correction(session, actor, request_id, reason)
            if isinstance(self.ca, KeyEscrowCA) and req.type == RequestType.CIVIL_SERVANT_DUAL.value:
                workflow.ca_call("release the reserved KMC key", self.ca.release_escrowed_key,
                                 workflow.ca_request_id(req, "enc"), session)
            return self._request_dict(session, req)

    def resubmit(self, actor: Actor, request_id: int, *, sign_csr=None, enc_csr=None, enc_public_key=None) -> dict:
        with transaction(self.db) as session:
            req = workflow.resubmit(session, actor, request_id, sign_csr=sign_csr, enc_csr=enc_csr,
                                    enc_public_key=enc_public_key, policy=self.policy)
            return self._request_dict(session, req)

    def emergency_revoke(self, actor: Actor, target_request_id: int, justification: str,
                         reason: str = RevocationReason.key_compromise.value) -> dict:
        """Key compromise: one officer's audited revocation at once (``workflow.emergency_revoke``)."""
        workflow.check_id(target_request_id, "request")
        try:
            with transaction(self.db) as session:
                req = workflow.emergency_revoke(session, actor, target_request_id, justification, self.ca,
                                                reason=reason)
                return self._request_dict(session, req)
        except (IntegrityError, StaleDataError) as exc:
            raise ConflictError("the change conflicts with a concurrent one; reload and retry") from exc

    def get_request(self, request_id: int) -> dict:
        with reading(self.db) as session:
            found = records.request_records(session, [workflow.check_id(request_id, "request")], self.policy)
        if request_id not in found:
            raise NotFound(f"request {request_id} not found")
        return found[request_id]

    def _issued(self, session: Session, request_id: int, usage: str):
        req = session.get(CertRequest, workflow.check_id(request_id, "request"))
        if req is None:
            raise NotFound(f"request {request_id} not found")
        for cert in req.certificates:
            if cert.usage == usage:
                return cert
        raise NotFound(f"request {request_id} has no {usage} certificate")

    def certificate(self, request_id: int, usage: str) -> bytes:
        with reading(self.db) as session:
            return self._issued(session, request_id, usage).certificate

    def key_envelope(self, request_id: int, fmt: str = "signed-and-enveloped") -> bytes:
        """The KMC's SignedAndEnvelopedData for the request's encryption certificate (GM/T 0034), or the
        same key repackaged as a GB/T 35276 SM2EnvelopedKey (``fmt="sm2-enveloped-key"``)."""
        with reading(self.db) as session:
            cert = self._issued(session, request_id, "enc")
            envelope, spki = cert.key_envelope, cert.public_key_info
        if envelope is None:
            raise NotFound(f"the encryption key of request {request_id} was not generated by the KMC")
        if not is_signed_and_enveloped(envelope):
            # an upstream CA sent the key without the KMC's signed envelope: only the SM2EnvelopedKey exists
            if fmt == "signed-and-enveloped":
                raise NotFound(f"the CA sent the key of request {request_id} as a GB/T 35276 SM2EnvelopedKey "
                               "only (format=sm2-enveloped-key)")
            return envelope
        return envelope if fmt == "signed-and-enveloped" else enveloped_key_from_signed_and_enveloped(envelope, spki)

    def list_requests(self, *, state: str | None = None, type: str | None = None, unit_id: int | None = None,
                      limit: int | None = None, after_id: int | None = None) -> list[dict]:
        unit_id = workflow.check_id(unit_id, "unit") if unit_id is not None else None
        after_id = workflow.check_id(after_id, "after") if after_id is not None else None
        query = select(CertRequest.id).order_by(CertRequest.id).limit(_limit(limit))
        if state is not None:
            if state not in {s.value for s in RequestState}:
                raise ValidationError(f"state must be one of {', '.join(s.value for s in RequestState)}")
            query = query.where(CertRequest.state == state)
        if type is not None:
            if type not in {t.value for t in RequestType}:
                raise ValidationError(f"type must be one of {', '.join(t.value for t in RequestType)}")
            query = query.where(CertRequest.type == type)
        if unit_id is not None:
            query = query.where(CertRequest.unit_id == unit_id)
        if after_id is not None:
            query = query.where(CertRequest.id > after_id)
        with reading(self.db) as session:
            ids = list(session.scalars(query))
            found = records.request_records(session, ids, self.policy)
        return [found[i] for i in ids]

    # --- audit
    def audit_events(self, target_type: str, target_id: str, *, limit: int | None = None) -> list[dict]:
        with reading(self.db) as session:
            rows = session.scalars(select(AuditEvent).where(AuditEvent.target_type == target_type,
                                                            AuditEvent.target_id == str(target_id))
                                   .order_by(AuditEvent.id).limit(_limit(limit)))
            return [{"id": e.id, "at": as_utc(e.at).isoformat(), "actor": e.actor, "role": e.role,
                     "action": e.action, "target_type": e.target_type, "target_id": e.target_id,
                     "detail": e.detail} for e in rows]


def is_signed_and_enveloped(der: bytes) -> bool:
    try:
        parse_signed_and_enveloped(der)
    except ValueError:
        return False
    return True


def build_ra_service(db: sessionmaker[Session], ca_backend: CABackend,
                     config: Mapping | Policy | None = None) -> RaService:
    """The RA service for an app or a CLI command. ``config``: the ``[ra]`` section (``RaConfig``), a
    ``Policy``, or a mapping such as ``{"approvals": {"server": 2}, "max_csr_size": 8192}`` (see
    ``Policy.from_mapping``)."""
    if not isinstance(ca_backend, CABackend):
        raise TypeError("ca_backend must implement ca_bridge.api.CABackend")
    if isinstance(config, RaConfig):
        config = config.policy()
    if dataclasses.is_dataclass(config) and not isinstance(config, Policy):
        config = {k: v for k, v in dataclasses.asdict(config).items() if v is not None}
    policy = config if isinstance(config, Policy) else Policy.from_mapping(config)
    return RaService(db, ca_backend, policy)
