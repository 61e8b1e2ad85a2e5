"""The CA's side of key escrow for GM/T 0034 dual certificates, over GM/T 0014 (``gmt0014.client``).

Before an encryption certificate is issued the CA reserves a key for it: it picks the certificate's
serial and validity, asks the KMC for a key pair (ApplyKeyReq: userCertNo = that serial, userPubKey =
the subscriber's *signing* key, to which the KMC envelopes the private key) and stores the answer as an
``EscrowReservation``. This happens outside the caller's transaction — the KMC may be a remote service,
and no database lock is held across the call — and is idempotent on the request id. Issuance later
uses the reservation's serial, validity and key, and hands the envelope to the subscriber.

An ApplyKeyReq that never reached the KMC (``KmcUnreachable``) or that it refused leaves nothing behind:
no key can exist. One that reached it but got no usable answer (lost, a 5xx, unverifiable) may have
made a key: the CA records the attempt (``ca_escrow_attempt``, audited once) and the next attempt for the
same request sends the same serial and validity; if the KMC made the key the first time, it says the
certificate has one, and RestoreKeyReq hands that key to the same subscriber signing key. So repeated
failures never leave a key (or an outbox row) per attempt. An attempt whose request is rejected, or
that is not retried within ``ATTEMPT_TTL``, goes to the outbox below.

When such a certificate is revoked, or a reserved key is given back, the KMC must be told
(RevokeKeyReq). That goes through an outbox (``ca_kmc_notification``: the transactional-outbox pattern,
much like EJBCA's publisher queue): the row is written in the transaction that revokes or releases, so
it commits or rolls back with it (an orphan key's, from a lost race, in a transaction of its own); once
that has committed delivery is tried at once; a KMC that cannot be reached leaves the row pending with exponential
back-off (30 s doubling, capped at 1 h) for ``KmcLink.retry_due`` (``racentre ca kmc-retry``, or the
service's sweep). A RevokeKeyReq is idempotent at the KMC, so a repeated delivery is harmless; a
verified refusal that no retry can change (no such key) ends it. Queueing, delivery and refusal are
audited in the transaction that changes the row.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import EscrowedKey, EscrowedKeyRequest
from ca_bridge.certbuilder import inspect_public_key, random_serial
from ca_bridge.directory import CaDirectory, CaInfo
from ca_bridge.errors import IssuanceError, RequestConflict
from ca_bridge.models import EscrowAttempt, EscrowReservation, KmcNotification
from gmt0014.client import KmcClient, Transport
from gmt0014.errors import KmcRefused, KmcUnreachable
from gmt0014.messages import ErrNo
from hsm import KeyManager
from audit.trail import record
from store.db import after_commit, as_utc, reading, transaction, utcnow
from pkicore.errors import ErrorCode, PkiError

log = logging.getLogger(__name__)

BACKDATE = dt.timedelta(seconds=60)

REVOKE_KEY = "revoke-key"                       # KmcNotification.kind: a GM/T 0014 RevokeKeyReq
FIRST_RETRY = dt.timedelta(seconds=30)
MAX_RETRY = dt.timedelta(hours=1)
ATTEMPT_TTL = dt.timedelta(days=1)   # an unanswered ApplyKeyReq's serial is reused this long, then revoked
CLAIM = dt.timedelta(minutes=5)     # a delivery in progress holds its row this long; then a sweep may take it
ERROR_LENGTH = 200
# verified KMC refusals that no retry can change (e.g. no archived key for that serial): the row is done;
# any other (internal error, unknown CA, replay, stale clock) is retried like an unreachable KMC
FINAL_REFUSALS = frozenset({int(ErrNo.NOT_FOUND), int(ErrNo.CONFLICT), int(ErrNo.BAD_REQUEST),
                            int(ErrNo.UNSUPPORTED_ALGORITHM)})


def backoff(attempts: int) -> dt.timedelta:
    """The wait after the ``attempts``-th failed delivery: 30 s, 1 min, 2 min, ... at most 1 h."""
    return min(FIRST_RETRY * 2 ** min(max(attempts - 1, 0), 16), MAX_RETRY)


def _short_error(exc: BaseException) -> str:
    """What an operator may read: the public message of our errors, the class name of anything else
    (whose text might carry a URL or a library's internals)."""
    text = exc.public_message if isinstance(exc, PkiError) else type(exc).__name__
    return text[:ERROR_LENGTH]


@dataclass(frozen=True)
class PendingNotification:
    """One outbox row not yet answered by the KMC (``racentre ca kmc-pending``)."""
    ca: str
    serial: int
    kind: str
    created_at: dt.datetime
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None


def pending_notifications(db: sessionmaker[Session], directory: CaDirectory,
                          limit: int | None = None) -> list[PendingNotification]:
    """The outbox rows the KMC has not answered yet, oldest first (no KMC needed to list them)."""
    query = select(KmcNotification).where(KmcNotification.done_at.is_(None)).order_by(KmcNotification.id)
    with reading(db) as session:
        rows = [(r.ca_id, int(r.serial, 16), r.kind, as_utc(r.created_at), r.attempts, r.last_error,
                 as_utc(r.next_attempt_at)) for r in session.scalars(query.limit(limit) if limit else query)]
    return [PendingNotification(directory.by_id(ca_id).name, *rest) for ca_id, *rest in rows]


def _as_key(row: EscrowReservation, ca: str) -> EscrowedKey:
    return EscrowedKey(row.request_id, ca, int(row.serial, 16), row.public_key_info, row.key_envelope,
                       as_utc(row.not_before), as_utc(row.not_after))


class KmcLink:
    """GM/T 0014 client per SM2 CA (each CA signs its own requests with its HSM key)."""

    def __init__(self, key_manager: KeyManager, db: sessionmaker[Session], directory: CaDirectory,
                 transport: Transport, kmc_certificate: bytes | Callable[[], bytes]):
        """``kmc_certificate``: the KMC's certificate, or a callable returning the current one (the
        in-process KMC's ``KeyEscrow.certificate``, which follows ``racentre kms install-certificate``
        run anywhere)."""
        self.km = key_manager
        self.db = db
        self.directory = directory
        self.transport = transport
        self._kmc_certificate = kmc_certificate
        self._clients: dict[int, tuple[CaInfo, bytes, KmcClient]] = {}
        self._lock = threading.Lock()

    @property
    def kmc_certificate(self) -> bytes:
        certificate = self._kmc_certificate
        return certificate() if callable(certificate) else certificate

    def client(self, ca: CaInfo) -> KmcClient:
        """The GM/T 0014 client of ``ca``; built again when the CA (``CaDirectory`` reloaded it) or the
        KMC certificate changed."""
        kmc_certificate = self.kmc_certificate
        cached = self._clients.get(ca.id)
        if cached is not None and cached[0] is ca and cached[1] == kmc_certificate:
            return cached[2]
        if ca.algorithm.key_type != "sm2":
            raise IssuanceError(f"CA {ca.name} is not an SM2 CA; GM/T 0014 requests are signed SM2-with-SM3")
        label, mechanism = ca.key_label, ca.algorithm.mechanism
        client = KmcClient(self.transport, ca_certificate=ca.certificate,
                           sign=lambda data: self.km.sign(label, data, mechanism),
                           kmc_certificate=kmc_certificate)
        with self._lock:
            self._clients[ca.id] = (ca, kmc_certificate, client)
        return client

    # ------------------------------------------------------------------ reservation
    def reservation(self, session: Session, request_id: str) -> EscrowReservation | None:
        return session.scalar(select(EscrowReservation).where(EscrowReservation.request_id == request_id))

    def prepare(self, request: EscrowedKeyRequest, ca: CaInfo, days: int) -> EscrowedKey:
        with reading(self.db) as session:
            row = self.reservation(session, request.request_id)
            if row is not None:
                return self._reuse(row, request, ca)
            attempt = session.execute(select(EscrowAttempt.id, EscrowAttempt.ca_id, EscrowAttempt.serial,
                                             EscrowAttempt.subscriber_public_key_info, EscrowAttempt.not_before,
                                             EscrowAttempt.not_after)
                                      .where(EscrowAttempt.request_id == request.request_id)).first()
        if attempt is None:
            now = utcnow().replace(microsecond=0)
            serial = random_serial()
            not_before, not_after = now - BACKDATE, min(now + dt.timedelta(days=days), ca.not_after)
        else:     # an earlier ApplyKeyReq for this request went unanswered: same serial and validity again
            if attempt.subscriber_public_key_info != request.subscriber_public_key_info or attempt.ca_id != ca.id:
                raise RequestConflict(f"request {request.request_id} already asked for a key for another "
                                      "subscriber key")
            serial, not_before, not_after = int(attempt.serial, 16), as_utc(attempt.not_before), \
                as_utc(attempt.not_after)
        try:
            answer = self._apply(ca, serial, request, not_before, not_after, retried=attempt is not None)
        except (KmcRefused, KmcUnreachable):
            raise                           # a verified Failure, or never delivered: the KMC made no key now
        except Exception as exc:
            # no usable answer (lost, a 5xx, unverifiable): the KMC may have archived a key for this serial;
            # remember it, so the next attempt asks for (or takes back) that key instead of a new one
            self._unanswered(request, ca, serial, not_before, not_after, attempt, exc)
            raise
        try:
            with transaction(self.db) as session:
                if attempt is not None and session.execute(delete(EscrowAttempt).where(
                        EscrowAttempt.id == attempt.id, EscrowAttempt.serial == attempt.serial)).rowcount != 1:
                    won = self.reservation(session, request.request_id)
                    if won is not None:             # a concurrent prepare took the same key back first
                        return self._reuse(won, request, ca)
                    # expired meanwhile (retry_due): its RevokeKeyReq is queued, so this key must not be used
                    raise KmcUnreachable("the key-management centre's key for this request was withdrawn; "
                                         "try again", int(ErrNo.INTERNAL), code=ErrorCode.UPSTREAM_UNAVAILABLE)
                row = EscrowReservation(request_id=request.request_id, ca_id=ca.id, profile=request.profile,
                                        serial=format(serial, "x"),
                                        subscriber_public_key_info=request.subscriber_public_key_info,
                                        public_key_info=answer.public_key_info,
                                        key_envelope=answer.signed_and_enveloped, not_before=not_before,
                                        not_after=not_after, created_at=utcnow().replace(microsecond=0))
                session.add(row)
                session.flush()
                record(session, actor=f"ca:{ca.name}", role="ca", action="ca.escrow.reserve",
                       target_type="certificate", target_id=f"{ca.name}/{serial:x}", request_id=request.request_id)
                return _as_key(row, ca.name)
        except IntegrityError:
            # a concurrent prepare for the same request won: give our KMC key back (unless it is the very
            # key the winner reserved, as when both reused one unanswered attempt), use theirs
            with self.db() as session:
                row = self.reservation(session, request.request_id)
                if row is None:
                    raise
                won = self._reuse(row, request, ca)
            if won.serial != serial:
                self.notify_revoked(ca, serial, why="a concurrent reservation won")
            return won

    def _apply(self, ca: CaInfo, serial: int, request: EscrowedKeyRequest, not_before: dt.datetime,
               not_after: dt.datetime, *, retried: bool):
        """ApplyKeyReq for ``serial``; when it repeats an unanswered one that the KMC did carry out (it
        answers that the certificate has a key already), RestoreKeyReq hands that key to the same
        subscriber signing key instead (GM/T 0014)."""
        client = self.client(ca)
        try:
            answer = client.apply_key(serial, request.subscriber_public_key_info, not_before, not_after,
                                      user_name=request.user_name)
        except KmcRefused as exc:
            if not retried or exc.err_no != int(ErrNo.CONFLICT):
                raise
            answer = client.restore_key(serial, request.subscriber_public_key_info)
        if answer.user_cert_no != serial or inspect_public_key(answer.public_key_info).algorithm != "sm2":
            raise IssuanceError("the KMC answered with another certificate number or a non-SM2 key")
        return answer

    def _unanswered(self, request: EscrowedKeyRequest, ca: CaInfo, serial: int, not_before: dt.datetime,
                    not_after: dt.datetime, attempt, exc: BaseException) -> None:
        """Record an unanswered ApplyKeyReq: the first one inserts the attempt (audited), a repeat only
        counts it. Never raises (the caller is failing already)."""
        try:
            with transaction(self.db) as session:
                if attempt is not None:
                    session.execute(update(EscrowAttempt).where(EscrowAttempt.id == attempt.id).values(
                        failures=EscrowAttempt.failures + 1, last_error=_short_error(exc)))
                    return
                session.add(EscrowAttempt(request_id=request.request_id, ca_id=ca.id, serial=format(serial, "x"),
                                          subscriber_public_key_info=request.subscriber_public_key_info,
                                          not_before=not_before, not_after=not_after, failures=1,
                                          last_error=_short_error(exc), created_at=utcnow()))
                record(session, actor=f"ca:{ca.name}", role="ca", action="ca.escrow.unanswered",
                       target_type="certificate", target_id=f"{ca.name}/{serial:x}", request_id=request.request_id)
        except IntegrityError:
            # a concurrent attempt for the same request recorded its own serial first: ours is an orphan
            self.notify_revoked(ca, serial, why="no usable ApplyKeyReq answer")
        except Exception:  # noqa: BLE001 - the caller's own outcome must not be replaced by this one
            log.exception("could not record the unanswered ApplyKeyReq for %s/%x", ca.name, serial)
            self.notify_revoked(ca, serial, why="no usable ApplyKeyReq answer")

    def _reuse(self, row: EscrowReservation, request: EscrowedKeyRequest, ca: CaInfo) -> EscrowedKey:
        if row.subscriber_public_key_info != request.subscriber_public_key_info or row.profile != request.profile \
                or row.ca_id != ca.id:
            raise RequestConflict(f"request {request.request_id} already reserved a key for another subscriber key")
        return _as_key(row, ca.name)

    def release(self, session: Session, request_id: str) -> bool:
        """Give back the key reserved for ``request_id`` when that request will never be issued (the RA
        rejected it after an approval attempt reserved one, or left an unanswered ApplyKeyReq): the
        reservation or attempt goes in ``session``'s transaction, and the KMC gets a RevokeKeyReq for its
        serial once it has committed, so the archive holds no live key that no certificate names. False if
        nothing was reserved or attempted."""
        released = False
        for model, why in ((EscrowReservation, "reservation released"), (EscrowAttempt, "unanswered attempt released")):
            row = session.scalar(select(model).where(model.request_id == request_id).with_for_update())
            if row is None:
                continue
            ca = self.directory.by_id(row.ca_id)
            serial = int(row.serial, 16)
            session.delete(row)
            record(session, actor=f"ca:{ca.name}", role="ca", action="ca.escrow.release", target_type="certificate",
                   target_id=f"{ca.name}/{serial:x}", request_id=request_id)
            self.revoke_after_commit(session, ca, serial, why=why)
            released = True
        return released

    # ------------------------------------------------------------------ revocation (outbox)
    def notify_revoked(self, ca: CaInfo, serial: int, *, why: str = "orphan key") -> None:
        """RevokeKeyReq for a key no certificate will name: queued in its own transaction, then sent at
        once; a failure leaves the row for ``retry_due``. Never raises (the caller is already failing or
        has moved on); what could not even be queued is logged."""
        try:
            with transaction(self.db) as session:
                self._queue(session, ca, serial, why)
        except Exception:  # noqa: BLE001 - the caller's own outcome must not be replaced by this one
            log.exception("could not queue the RevokeKeyReq for %s/%x", ca.name, serial)
            return
        self._attempt(ca, serial)

    def revoke_after_commit(self, session: Session, ca: CaInfo, serial: int, *,
                            why: str = "certificate revoked") -> None:
        """Queue a RevokeKeyReq in ``session``'s transaction (it commits or rolls back with the change
        that needs it) and send it once that transaction has committed."""
        if self._queue(session, ca, serial, why):
            after_commit(session, lambda: self._deliver_committed(ca, serial))

    def _deliver_committed(self, ca: CaInfo, serial: int) -> None:
        """Once the revocation has committed: send its RevokeKeyReq, unless a rolled-back savepoint took
        the outbox row back with the revocation (then nothing is owed). Never raises: what is not sent
        now stays in the outbox for the sweep."""
        try:
            if self.queued(ca, serial):
                self._attempt(ca, serial)
        except Exception:  # noqa: BLE001 - the caller's committed outcome must not be replaced by this one
            log.exception("could not send the RevokeKeyReq for %s/%x; the outbox sweep will", ca.name, serial)

    def queued(self, ca: CaInfo, serial: int) -> bool:
        """Whether a RevokeKeyReq for this key is in the outbox and not answered yet."""
        with reading(self.db) as session:
            return session.scalar(select(KmcNotification.id).where(
                KmcNotification.ca_id == ca.id, KmcNotification.serial == format(serial, "x"),
                KmcNotification.kind == REVOKE_KEY, KmcNotification.done_at.is_(None))) is not None

    def _queue(self, session: Session, ca: CaInfo, serial: int, why: str) -> bool:
        """Add the outbox row (audited); False when this key's RevokeKeyReq is queued already. The row is
        held for the immediate attempt (``CLAIM``), after which a sweep takes it over if that one died."""
        hex_serial = format(serial, "x")
        known = session.scalar(select(KmcNotification.id).where(
            KmcNotification.ca_id == ca.id, KmcNotification.serial == hex_serial, KmcNotification.kind == REVOKE_KEY))
        if known is not None:
            return False
        now = utcnow()
        session.add(KmcNotification(ca_id=ca.id, serial=hex_serial, kind=REVOKE_KEY, created_at=now, attempts=0,
                                    next_attempt_at=now + CLAIM))
        record(session, actor=f"ca:{ca.name}", role="ca", action="ca.kmc.notify.queue", target_type="certificate",
               target_id=f"{ca.name}/{hex_serial}", kind=REVOKE_KEY, why=why)
        session.flush()
        return True

    def _attempt(self, ca: CaInfo, serial: int, now: dt.datetime | None = None) -> bool | None:
        """Send one queued RevokeKeyReq and record the outcome: True answered (revoked, or refused for
        good), False failed (retried later), None if even recording failed (the claim then expires and
        a sweep tries again). Never raises."""
        try:
            try:
                self.client(ca).revoke_key(serial)
            except KmcRefused as exc:
                if exc.err_no in FINAL_REFUSALS:
                    log.warning("the KMC refused the RevokeKeyReq for %s/%x for good: %s", ca.name, serial,
                                exc.public_message)
                    self._finish(ca, serial, "refused", _short_error(exc), now)
                    return True
                log.warning("the KMC refused the RevokeKeyReq for %s/%x for now (retried later): %s", ca.name,
                            serial, exc.public_message)
                self._finish(ca, serial, None, _short_error(exc), now)
                return False
            except Exception as exc:  # noqa: BLE001 - unreachable, 5xx, unverifiable: all are retried
                log.warning("could not tell the KMC that %s/%x is revoked (retried later): %s", ca.name, serial,
                            _short_error(exc))
                self._finish(ca, serial, None, _short_error(exc), now)
                return False
            self._finish(ca, serial, "delivered", None, now)
            return True
        except Exception:  # noqa: BLE001 - runs after the caller's commit: it must not fail the caller
            log.exception("could not record the RevokeKeyReq outcome for %s/%x", ca.name, serial)
            return None

    def _finish(self, ca: CaInfo, serial: int, outcome: str | None, error: str | None,
                now: dt.datetime | None) -> None:
        """Record one attempt in its own transaction: ``outcome`` delivered / refused marks the row done
        (audited), None schedules the next attempt after ``backoff``."""
        now = now or utcnow()
        hex_serial = format(serial, "x")
        with transaction(self.db) as session:
            row = session.scalar(select(KmcNotification).where(
                KmcNotification.ca_id == ca.id, KmcNotification.serial == hex_serial,
                KmcNotification.kind == REVOKE_KEY).with_for_update())
            if row is None or row.done_at is not None:
                return                                  # another worker recorded the answer meanwhile
            row.attempts += 1
            if error is not None:
                row.last_error = error
            if outcome is None:
                row.next_attempt_at = now + backoff(row.attempts)
                return
            row.done_at, row.next_attempt_at, row.outcome = now, None, outcome
            action = "ca.kmc.notify.done" if outcome == "delivered" else "ca.kmc.notify.refused"
            record(session, actor=f"ca:{ca.name}", role="ca", action=action, target_type="certificate",
                   target_id=f"{ca.name}/{hex_serial}", kind=REVOKE_KEY, attempts=row.attempts,
                   **({"refusal": error} if outcome == "refused" else {}))

    def retry_due(self, now: dt.datetime | None = None, limit: int = 100) -> tuple[int, int]:
        """One sweep of the outbox: send every notification due at ``now`` (at most ``limit``) and return
        (answered, failed); answered counts refusals for good too. The due rows are claimed first in one
        short transaction (FOR UPDATE SKIP LOCKED on PostgreSQL; on SQLite the write transaction
        serialises sweeps), so two workers never send the same one in parallel and no database lock is
        held across the GM/T 0014 calls."""
        now = now or utcnow()
        self._expire_attempts(now)
        with transaction(self.db) as session:
            rows = session.scalars(select(KmcNotification)
                                   .where(KmcNotification.kind == REVOKE_KEY, KmcNotification.next_attempt_at <= now)
                                   .order_by(KmcNotification.next_attempt_at, KmcNotification.id).limit(limit)
                                   .with_for_update(skip_locked=True)).all()
            for row in rows:
                row.next_attempt_at = now + CLAIM
            claimed = [(row.ca_id, int(row.serial, 16)) for row in rows]
        answered = failed = 0
        for ca_id, serial in claimed:
            try:
                ca = self.directory.by_id(ca_id)
            except Exception:  # noqa: BLE001 - one bad row must not stop the sweep; its claim expires
                log.exception("KMC outbox: no CA %s for serial %x", ca_id, serial)
                failed += 1
                continue
            if self._attempt(ca, serial, now):
                answered += 1
            else:
                failed += 1
        return answered, failed

    def _expire_attempts(self, now: dt.datetime) -> None:
        """Unanswered ApplyKeyReqs older than ``ATTEMPT_TTL`` whose request was not approved again: their
        possible key goes to the outbox (RevokeKeyReq, due at once), and a later approval starts afresh."""
        with transaction(self.db) as session:
            expired = session.scalars(select(EscrowAttempt).where(EscrowAttempt.created_at <= now - ATTEMPT_TTL)
                                      .order_by(EscrowAttempt.id).limit(100).with_for_update(skip_locked=True)).all()
            for row in expired:
                ca = self.directory.by_id(row.ca_id)
                session.delete(row)
                if self._queue(session, ca, int(row.serial, 16), "unanswered ApplyKeyReq expired"):
                    session.execute(update(KmcNotification).where(
                        KmcNotification.ca_id == ca.id, KmcNotification.serial == row.serial,
                        KmcNotification.kind == REVOKE_KEY).values(next_attempt_at=now))

    def pending(self, limit: int | None = None) -> list[PendingNotification]:
        return pending_notifications(self.db, self.directory, limit)

    def start_retry_sweep(self, interval: float) -> threading.Event:
        """A daemon thread running ``retry_due`` every ``interval`` seconds until the returned event is
        set (the service's hook; ``racentre ca kmc-retry`` from cron does the same once)."""
        stop = threading.Event()

        def loop():
            while not stop.wait(interval):
                try:
                    self.retry_due()
                except Exception:  # noqa: BLE001 - a timer must survive a transient database failure
                    log.exception("KMC outbox sweep failed")

        threading.Thread(target=loop, name="kmc-outbox", daemon=True).start()
        return stop
