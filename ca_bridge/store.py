"""The certificate status store read by OCSP and the REST API (XiPKI ``OcspStore`` shape): a narrow
interface over the issued-certificate table, so the responder never reaches into CA internals, plus the
table of pre-produced OCSP responses (RFC 5019 §2.2.1) shared by every node.

The responder's reads are the hot path: one statement each through ``pkicore.db.HotReader`` (the
current status and any pre-produced response of one certificate come back together, in one snapshot),
so a response is never served for a status the database no longer holds."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import CertificateStatus, RevocationReason
from ca_bridge.directory import CaDirectory
from ca_bridge.models import IssuedCert, PreProducedOcsp
from pkicore.db import HotReader, as_utc, db_datetime, reading, transaction


@dataclass(frozen=True)
class StoredResponse:
    """A pre-produced OCSP response as kept: the CertID it answers, the status it states, until when it
    is served."""

    cert_id: bytes
    status_key: str
    refresh_after: dt.datetime
    der: bytes


class OcspStore(Protocol):
    """What an OCSP responder needs: the status of serials under one CA ("unknown" when never issued),
    and pre-produced responses kept beside them."""

    def statuses(self, ca: str, serials: list[int]) -> dict[int, CertificateStatus]: ...

    def status_and_response(self, ca: str, serial: int, digest: str) -> tuple[CertificateStatus,
                                                                                StoredResponse | None]: ...

    def keep_response(self, ca: str, serial: int, digest: str, response: StoredResponse) -> None: ...


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


_STATUSES = "SELECT serial, status, revoked_at, reason FROM ca_issued_cert WHERE ca_id = ? AND serial IN ({})"
_STATUS_AND_RESPONSE = (
    "SELECT c.status, c.revoked_at, c.reason, r.cert_id, r.status_key, r.refresh_after, r.der "
    "FROM ca_issued_cert c LEFT JOIN ca_ocsp_response r "
    "ON r.ca_id = c.ca_id AND r.serial = c.serial AND r.digest = ? WHERE c.ca_id = ? AND c.serial = ?")


class DbStatusStore:
    """Status from ``ca_issued_cert``, pre-produced responses in ``ca_ocsp_response``."""

    def __init__(self, db: sessionmaker[Session], directory: CaDirectory):
        self.db = db
        self.directory = directory
        engine = db.kw["bind"]
        self._hot = HotReader(engine)
        self._upsert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[engine.dialect.name]

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
        """Several serials of one CA in one SELECT (an OCSP request may carry many CertIDs)."""
        info = self.directory.get(ca)
        wanted = {format(s, "x"): s for s in serials}
        rows = self._hot.rows(_STATUSES.format(", ".join("?" * len(wanted))), (info.id, *wanted))
        found = {row[0]: row for row in rows}
        out = {}
        for hex_serial, serial in wanted.items():
            row = found.get(hex_serial)
            out[serial] = (to_status(ca, serial, row[1], db_datetime(row[2]), row[3]) if row is not None
                           else CertificateStatus(serial, ca, "unknown"))
        return out

    def status_and_response(self, ca: str, serial: int, digest: str) -> tuple[CertificateStatus,
                                                                                StoredResponse | None]:
        """The certificate's status and its pre-produced response for CertIDs hashed with ``digest``
        (None when there is none), read in one statement."""
        info = self.directory.get(ca)
        rows = self._hot.rows(_STATUS_AND_RESPONSE, (digest, info.id, format(serial, "x")))
        if not rows:
            return CertificateStatus(serial, ca, "unknown"), None
        status, revoked_at, reason, cert_id, key, refresh_after, der = rows[0]
        current = to_status(ca, serial, status, db_datetime(revoked_at), reason)
        if der is None:
            return current, None
        return current, StoredResponse(bytes(cert_id), key, db_datetime(refresh_after), bytes(der))

    def keep_response(self, ca: str, serial: int, digest: str, response: StoredResponse) -> None:
        """Store (or replace) the pre-produced response of one certificate and CertID hash algorithm."""
        info = self.directory.get(ca)
        values = {"ca_id": info.id, "serial": format(serial, "x"), "digest": digest, "cert_id": response.cert_id,
                  "status_key": response.status_key, "refresh_after": response.refresh_after, "der": response.der}
        statement = self._upsert(PreProducedOcsp.__table__).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["ca_id", "serial", "digest"],
            set_={k: statement.excluded[k] for k in ("cert_id", "status_key", "refresh_after", "der")})
        with transaction(self.db) as session:
            session.execute(statement)
