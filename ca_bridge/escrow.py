"""The CA's side of key escrow for GM/T 0034 dual certificates, over GM/T 0014 (``kms.client``).

Before an encryption certificate is issued the CA reserves a key for it: it picks the certificate's
serial and validity, asks the KMC for a key pair (ApplyKeyReq: userCertNo = that serial, userPubKey =
the subscriber's *signing* key, to which the KMC envelopes the private key) and stores the answer as an
``EscrowReservation``. This happens outside the caller's transaction — the KMC may be a remote service,
and no database lock is held across the call — and is idempotent on the request id. Issuance later
uses the reservation's serial, validity and key, and hands the envelope to the subscriber.

When such a certificate is revoked the KMC is told (RevokeKeyReq) after the revocation has committed.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import EscrowedKey, EscrowedKeyRequest
from ca_bridge.certbuilder import inspect_public_key, random_serial
from ca_bridge.directory import CaDirectory, CaInfo
from ca_bridge.errors import IssuanceError, RequestConflict
from ca_bridge.models import EscrowReservation
from hsm import KeyManager
from kms.client import KmcClient, Transport
from kms.errors import KmcRefused
from pkicore.audit import record
from pkicore.db import as_utc, transaction, utcnow

log = logging.getLogger(__name__)

BACKDATE = dt.timedelta(seconds=60)
_PENDING = "ca_bridge.kmc_revocations"


def _as_key(row: EscrowReservation, ca: str) -> EscrowedKey:
    return EscrowedKey(row.request_id, ca, int(row.serial, 16), row.public_key_info, row.key_envelope,
                       as_utc(row.not_before), as_utc(row.not_after))


class KmcLink:
    """GM/T 0014 client per SM2 CA (each CA signs its own requests with its HSM key)."""

    def __init__(self, key_manager: KeyManager, db: sessionmaker[Session], directory: CaDirectory,
                 transport: Transport, kmc_certificate: bytes):
        self.km = key_manager
        self.db = db
        self.directory = directory
        self.transport = transport
        self.kmc_certificate = kmc_certificate
        self._clients: dict[int, KmcClient] = {}
        self._lock = threading.Lock()

    def client(self, ca: CaInfo) -> KmcClient:
        client = self._clients.get(ca.id)
        if client is None:
            if ca.algorithm.key_type != "sm2":
                raise IssuanceError(f"CA {ca.name} is not an SM2 CA; GM/T 0014 requests are signed SM2-with-SM3")
            label, mechanism = ca.key_label, ca.algorithm.mechanism
            client = KmcClient(self.transport, ca_certificate=ca.certificate,
                               sign=lambda data: self.km.sign(label, data, mechanism),
                               kmc_certificate=self.kmc_certificate)
            with self._lock:
                self._clients[ca.id] = client
        return client

    # ------------------------------------------------------------------ reservation
    def reservation(self, session: Session, request_id: str) -> EscrowReservation | None:
        return session.scalar(select(EscrowReservation).where(EscrowReservation.request_id == request_id))

    def prepare(self, request: EscrowedKeyRequest, ca: CaInfo, days: int) -> EscrowedKey:
        with self.db() as session:
            row = self.reservation(session, request.request_id)
            if row is not None:
                return self._reuse(row, request, ca)
        now = utcnow().replace(microsecond=0)
        serial = random_serial()
        not_before, not_after = now - BACKDATE, min(now + dt.timedelta(days=days), ca.not_after)
        try:
            answer = self.client(ca).apply_key(serial, request.subscriber_public_key_info, not_before, not_after,
                                               user_name=request.user_name)
            if answer.user_cert_no != serial or inspect_public_key(answer.public_key_info).algorithm != "sm2":
                raise IssuanceError("the KMC answered with another certificate number or a non-SM2 key")
        except KmcRefused:
            raise                           # a verified Failure: the KMC made no key
        except Exception:
            # no usable answer (lost, a 5xx, unverifiable): the KMC may have archived a key for this serial
            # that no certificate will ever name -- ask it to revoke that key (best-effort), then fail
            self.notify_revoked(ca, serial)
            raise
        try:
            with transaction(self.db) as session:
                row = EscrowReservation(request_id=request.request_id, ca_id=ca.id, profile=request.profile,
                                        serial=format(serial, "x"),
                                        subscriber_public_key_info=request.subscriber_public_key_info,
                                        public_key_info=answer.public_key_info,
                                        key_envelope=answer.signed_and_enveloped, not_before=not_before,
                                        not_after=not_after, created_at=now)
                session.add(row)
                session.flush()
                record(session, actor=f"ca:{ca.name}", role="ca", action="ca.escrow.reserve",
                       target_type="certificate", target_id=f"{ca.name}/{serial:x}", request_id=request.request_id)
                return _as_key(row, ca.name)
        except IntegrityError:
            # a concurrent prepare for the same request won: give our KMC key back, use theirs
            self.notify_revoked(ca, serial)
            with self.db() as session:
                row = self.reservation(session, request.request_id)
                if row is None:
                    raise
                return self._reuse(row, request, ca)

    def _reuse(self, row: EscrowReservation, request: EscrowedKeyRequest, ca: CaInfo) -> EscrowedKey:
        if row.subscriber_public_key_info != request.subscriber_public_key_info or row.profile != request.profile \
                or row.ca_id != ca.id:
            raise RequestConflict(f"request {request.request_id} already reserved a key for another subscriber key")
        return _as_key(row, ca.name)

    def release(self, session: Session, request_id: str) -> bool:
        """Give back the key reserved for ``request_id`` when that request will never be issued (the RA
        rejected it after an approval attempt reserved one): the reservation goes in ``session``'s
        transaction, and the KMC gets a RevokeKeyReq for the reserved serial once it has committed, so the
        archive holds no live key that no certificate names. False if nothing was reserved."""
        row = self.reservation(session, request_id)
        if row is None:
            return False
        ca = self.directory.by_id(row.ca_id)
        serial = int(row.serial, 16)
        session.delete(row)
        record(session, actor=f"ca:{ca.name}", role="ca", action="ca.escrow.release", target_type="certificate",
               target_id=f"{ca.name}/{serial:x}", request_id=request_id)
        self.revoke_after_commit(session, ca, serial)
        return True

    # ------------------------------------------------------------------ revocation
    def notify_revoked(self, ca: CaInfo, serial: int) -> None:
        """RevokeKeyReq now; a failure is logged (the archive keeps the key; revocation stands)."""
        try:
            self.client(ca).revoke_key(serial)
        except Exception:  # noqa: BLE001 - the revocation has committed; the KMC is told best-effort
            log.exception("could not tell the KMC that certificate %s/%x was revoked", ca.name, serial)

    def revoke_after_commit(self, session: Session, ca: CaInfo, serial: int) -> None:
        """Tell the KMC once ``session``'s transaction has committed (never for a rolled-back one)."""
        session.info.setdefault(_PENDING, []).append((self, ca, serial))


@event.listens_for(Session, "after_commit")
def _notify_after_commit(session: Session) -> None:
    for link, ca, serial in session.info.pop(_PENDING, ()):
        link.notify_revoked(ca, serial)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)
