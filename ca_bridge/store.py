"""The certificate status store read by OCSP and the REST API (XiPKI ``OcspStore`` shape): a narrow
interface over the issued-certificate table, so the responder never reaches into CA internals, plus the
table of pre-produced OCSP responses (RFC 5019 §2.2.1) shared by every node.

The responder's reads are the hot path: one statement each through ``store.db.HotReader`` (the
current status and any pre-produced response of one certificate come back together, in one snapshot),
so a response is never served for a status the database no longer holds."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, Protocol

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import CertificateStatus, RevocationReason
from ca_bridge.directory import CaDirectory
from ca_bridge.errors import StatusUnavailable
from ca_bridge.models import IssuedCert, PreProducedOcsp
from store.db import HotReader, as_utc, db_datetime, reading, transaction, upsert_insert
from store.generation import bump


@dataclass(frozen=True)
class StoredResponse:
    """A pre-produced OCSP response as kept: the CertID it answers, the status it states, until when it
    is served."""

    cert_id: bytes
    status_key: str
    refresh_after: dt.datetime
    der: bytes


@dataclass(frozen=True)
class Current:
    """One certificate as the responder reads it: its status now and its pre-produced responses (by the
    CertID hash algorithm), from one statement."""

    status: CertificateStatus
    responses: Mapping[str, StoredResponse]


class OcspStore(Protocol):
    """What an OCSP responder needs: the status of serials under one CA ("unknown" when never issued)
    with the pre-produced responses kept beside them, and a way to keep new ones."""

    def current(self, ca: str, serials: Iterable[int]) -> dict[int, Current]: ...

    def keep_responses(self, ca: str, responses: Iterable[tuple[int, str, StoredResponse]], *,
                       strict: bool = False) -> None: ...

    def generations(self) -> dict[int, int]: ...

    # optional: ``generations_nowait()`` and ``prepare_nowait()`` (``DbStatusStore``): the counters read
    # without the calling thread waiting (a serving worker's main thread, ``racentre.arbiter``)

    def kept(self, ca: str) -> list[tuple[int, str, bytes]]: ...

    def purge(self, ca: str, serials: Iterable[int] | None = None, session: Session | None = None) -> int: ...


def to_status(ca: str, serial: int, status: str | None, revoked_at, reason: str | None) -> CertificateStatus:
    if status is None:
        return CertificateStatus(serial, ca, "unknown")
    if status != "revoked":
        return CertificateStatus(serial, ca, "good")
    return CertificateStatus(serial, ca, "revoked", as_utc(revoked_at), RevocationReason(reason or "unspecified"))


def status_key(status: CertificateStatus) -> str:
    """What an OCSP answer states about a certificate (status, reason, revocation time to the
    microsecond): a pre-produced response is served only while the certificate's key equals its own."""
    if status.status != "revoked":
        return status.status
    return f"revoked|{status.reason.value}|{status.revoked_at.isoformat()}"


log = logging.getLogger(__name__)

MAX_SERIALS = 500                     # serials per statement
_CURRENT = (
    "SELECT c.serial, c.status, c.revoked_at, c.reason, r.digest, r.cert_id, r.status_key, r.refresh_after, r.der "
    "FROM ca_issued_cert c LEFT JOIN ca_ocsp_response r ON r.ca_id = c.ca_id AND r.serial = c.serial "
    "WHERE c.ca_id = ? AND c.serial IN ({})")
_NONE: Mapping[str, StoredResponse] = MappingProxyType({})
OCSP_RESPONSES = "ca_ocsp_response"        # db_generation row: an operator purged kept responses
KEPT = -1                                  # its key in ``generations``
_GENERATIONS = ("SELECT id, revocation_seq FROM ca_authority "
                "UNION ALL SELECT -1, value FROM db_generation WHERE name = ?")


def _generations(rows) -> dict[int, int]:
    return {int(ca_id): int(value) for ca_id, value in rows}


class DbStatusStore:
    """Status from ``ca_issued_cert``, pre-produced responses in ``ca_ocsp_response``."""

    def __init__(self, db: sessionmaker[Session], directory: CaDirectory):
        self.db = db
        self.directory = directory
        engine = db.kw["bind"]
        self._hot = HotReader(engine)
        self._upsert = upsert_insert(engine.dialect.name)

    def status(self, ca: str, serial: int, session: Session | None = None) -> CertificateStatus:
        info = self.directory.get(ca)
        query = (select(IssuedCert.status, IssuedCert.revoked_at, IssuedCert.reason)
                 .where(IssuedCert.ca_id == info.id, IssuedCert.serial == format(serial, "x")))
        if session is not None:
            row = session.execute(query).first()
        else:
            with reading(self.db) as own:
                row = own.execute(query).first()
        return to_status(ca, serial, *(row if row is not None else (None, None, None)))

    def statuses(self, ca: str, serials: list[int]) -> dict[int, CertificateStatus]:
        """Several serials of one CA, read as the OCSP responder reads them."""
        return {serial: now.status for serial, now in self.current(ca, serials).items()}

    def current(self, ca: str, serials: Iterable[int]) -> dict[int, Current]:
        """Status and pre-produced responses of serials of one CA: one statement (per ``MAX_SERIALS``),
        one snapshot, so a response and the status it is checked against are never read apart."""
        info = self.directory.get(ca)
        wanted = {format(s, "x"): s for s in serials}
        hexes = list(wanted)
        rows = []
        try:
            for i in range(0, len(hexes), MAX_SERIALS):
                chunk = hexes[i:i + MAX_SERIALS]
                rows += self._hot.rows(_CURRENT.format(", ".join("?" * len(chunk))), (info.id, *chunk))
        except self._hot.errors as exc:
            raise StatusUnavailable("the certificate status store cannot be read") from exc
        found: dict[str, tuple] = {}
        kept: dict[str, dict[str, StoredResponse]] = {}
        for serial, status, revoked_at, reason, digest, cert_id, key, refresh_after, der in rows:
            found[serial] = (status, revoked_at, reason)
            if der is not None:
                kept.setdefault(serial, {})[digest] = StoredResponse(bytes(cert_id), key, db_datetime(refresh_after),
                                                                     bytes(der))
        out = {}
        for hex_serial, serial in wanted.items():
            row = found.get(hex_serial)
            status = (to_status(ca, serial, row[0], db_datetime(row[1]), row[2]) if row is not None
                      else CertificateStatus(serial, ca, "unknown"))
            out[serial] = Current(status, MappingProxyType(kept[hex_serial]) if hex_serial in kept else _NONE)
        return out

    def generations(self) -> dict[int, int]:
        """Every CA's revocation counter (``ca_bridge.crl.bump_revocation_seq``: counted in the transaction
        of every status change of a certificate it issued) by CA id, and under ``KEPT`` the generation of
        operators' purges of kept responses (``purge`` outside a revocation): one statement. While a CA's
        counter has not moved, no certificate of it changed status since (a responder may keep answers it
        gave in memory: ``ca_bridge.ocsp.AnswerMemo``). Raises StatusUnavailable when unreadable."""
        try:
            return {ca_id: value for ca_id, value in self._hot.rows(_GENERATIONS, (OCSP_RESPONSES,))}
        except self._hot.errors as exc:
            raise StatusUnavailable("the certificate status store cannot be read") from exc

    def generations_nowait(self):
        """``generations`` sent without the calling thread waiting on the database (``HotReader.start``,
        PostgreSQL): a pending read (``fileno()``, ``ready()``, then ``result()`` is the mapping), or None —
        read ``generations`` where waiting is allowed. Raises StatusUnavailable when unreadable."""
        try:
            return self._hot.start(_GENERATIONS, (OCSP_RESPONSES,), _generations)
        except self._hot.errors as exc:
            raise StatusUnavailable("the certificate status store cannot be read") from exc

    def prepare_nowait(self) -> None:
        """Make ``generations_nowait`` possible from now on (blocks on the database: a thread that may wait)."""
        try:
            self._hot.open_nowait(_GENERATIONS)
        except self._hot.errors as exc:
            log.warning("the status store's non-blocking reader is not open: %s", exc)

    def keep_responses(self, ca: str, responses: Iterable[tuple[int, str, StoredResponse]], *,
                       strict: bool = False) -> None:
        """Store (or replace) pre-produced responses, ``(serial, CertID hash algorithm, response)`` each,
        in one statement; the last of duplicates wins. A failure is logged, not raised (unless ``strict``:
        an operator's regeneration): what was kept is an optimisation, the answers given are valid either way."""
        info = self.directory.get(ca)
        rows = {(serial, digest): {"ca_id": info.id, "serial": format(serial, "x"), "digest": digest,
                                   "cert_id": r.cert_id, "status_key": r.status_key,
                                   "refresh_after": r.refresh_after, "der": r.der}
                for serial, digest, r in responses}
        if not rows:
            return
        statement = self._upsert(PreProducedOcsp.__table__).values(list(rows.values()))
        statement = statement.on_conflict_do_update(
            index_elements=["ca_id", "serial", "digest"],
            set_={k: statement.excluded[k] for k in ("cert_id", "status_key", "refresh_after", "der")})
        try:
            with transaction(self.db) as session:
                session.execute(statement)
        except SQLAlchemyError as exc:
            if strict:
                raise StatusUnavailable(f"pre-produced OCSP responses of {ca} could not be kept") from exc
            log.warning("pre-produced OCSP responses of %s not kept: %s", ca, exc)

    # ------------------------------------------------------------------ operators (racentre ca ocsp-*)
    def kept(self, ca: str) -> list[tuple[int, str, bytes]]:
        """The pre-produced responses kept for one CA: ``(serial, CertID hash algorithm, CertID DER)`` each."""
        info = self.directory.get(ca)
        with reading(self.db) as session:
            rows = session.execute(select(PreProducedOcsp.serial, PreProducedOcsp.digest, PreProducedOcsp.cert_id)
                                   .where(PreProducedOcsp.ca_id == info.id)
                                   .order_by(PreProducedOcsp.serial, PreProducedOcsp.digest)).all()
        return [(int(serial, 16), digest, bytes(cert_id)) for serial, digest, cert_id in rows]

    def purge(self, ca: str, serials: Iterable[int] | None = None, session: Session | None = None) -> int:
        """Delete the pre-produced responses of one CA (of ``serials`` only, when given); -> rows deleted.
        Every node then signs afresh on the next request without a nonce. Inside a caller's transaction (a
        revocation, which counts its change itself) that is all; on its own (an operator's purge) it also
        bumps the ``OCSP_RESPONSES`` generation, so no node answers from what it kept in memory either."""
        info = self.directory.get(ca)
        statement = delete(PreProducedOcsp).where(PreProducedOcsp.ca_id == info.id)
        if serials is not None:
            statement = statement.where(PreProducedOcsp.serial.in_([format(s, "x") for s in serials]))
        if session is not None:
            return session.execute(statement).rowcount or 0
        with transaction(self.db) as own:
            bump(own, OCSP_RESPONSES)
            return own.execute(statement).rowcount or 0
