"""The certificate status store read by OCSP and the REST API (XiPKI ``OcspStore`` shape): a narrow
interface over the issued-certificate table, so the responder never reaches into CA internals."""
from __future__ import annotations

from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import CertificateStatus, RevocationReason
from ca_bridge.directory import CaDirectory
from ca_bridge.models import IssuedCert
from pkicore.db import as_utc, reading


class OcspStore(Protocol):
    """What an OCSP responder needs: the status of one serial under one CA ("unknown" when never issued)."""

    def status(self, ca: str, serial: int) -> CertificateStatus: ...

    def statuses(self, ca: str, serials: list[int]) -> dict[int, CertificateStatus]: ...


def to_status(ca: str, serial: int, status: str | None, revoked_at, reason: str | None) -> CertificateStatus:
    if status is None:
        return CertificateStatus(serial, ca, "unknown")
    if status != "revoked":
        return CertificateStatus(serial, ca, "good")
    return CertificateStatus(serial, ca, "revoked", as_utc(revoked_at), RevocationReason(reason or "unspecified"))


class DbStatusStore:
    """Status from ``ca_issued_cert``: one indexed SELECT of three columns per serial."""

    def __init__(self, db: sessionmaker[Session], directory: CaDirectory):
        self.db = db
        self.directory = directory

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
        with reading(self.db) as session:
            rows = session.execute(select(IssuedCert.serial, IssuedCert.status, IssuedCert.revoked_at, IssuedCert.reason)
                                   .where(IssuedCert.ca_id == info.id, IssuedCert.serial.in_(list(wanted))))
            found = {row.serial: row for row in rows}
        out = {}
        for hex_serial, serial in wanted.items():
            row = found.get(hex_serial)
            out[serial] = to_status(ca, serial, *(row[1:] if row is not None else (None, None, None)))
        return out
