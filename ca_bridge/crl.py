"""Full and delta CRLs (RFC 5280 §5) signed in the HSM by the CA key, stored in ``ca_crl`` and served
from there while fresh.

* v2 CertificateList; extensions: authorityKeyIdentifier (§5.2.1), cRLNumber (§5.2.3; full and delta
  CRLs share one sequence per CA), deltaCRLIndicator (§5.2.4, critical) naming the base full CRL.
* entries: serial, revocationDate, reasonCode (§5.3.1; absent for unspecified, as the RFC asks);
  a delta lists every status change counted after its base (``covers_seq``), including removeFromCRL
  for a released certificateHold. No issuingDistributionPoint: every CRL here has full scope.
* ``current`` regenerates when the stored CRL is older than ``refresh``, past nextUpdate, or does not
  cover the CA's revocation counter (``bump_revocation_seq``, counted in each revoking transaction), so
  publishing after a revocation needs no signal and never depends on which node's clock said what.
* thisUpdate (§5.1.2.4) never goes back from CRL n to CRL n+1.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import algos, crl, x509
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.certbuilder import signature_algorithm
from ca_bridge.directory import CaDirectory, CaInfo
from ca_bridge.models import CertificateAuthority, CrlRecord, IssuedCert
from hsm import KeyManager
from store.db import as_utc, reading, transaction, utcnow


@dataclass(frozen=True)
class CrlEntry:
    serial: int
    revoked_at: dt.datetime
    reason: str | None          # RevocationReason value; None / "unspecified" -> no reasonCode


@dataclass(frozen=True)
class PublishedCrl:
    ca: str
    number: int
    delta: bool
    base_number: int | None
    this_update: dt.datetime
    next_update: dt.datetime
    der: bytes


def _time(when: dt.datetime) -> x509.Time:
    when = as_utc(when).replace(microsecond=0)
    return x509.Time(name="utc_time" if when.year < 2050 else "general_time", value=when)


def build_crl(ca: CaInfo, sign, *, number: int, this_update: dt.datetime, next_update: dt.datetime,
              entries: list[CrlEntry], base_number: int | None = None) -> bytes:
    """A signed CertificateList DER (``sign(tbs) -> signature`` runs in the HSM)."""
    revoked = []
    for e in entries:
        item = {"user_certificate": e.serial, "revocation_date": _time(e.revoked_at)}
        if e.reason and e.reason != "unspecified":
            item["crl_entry_extensions"] = [{"extn_id": "crl_reason", "critical": False, "extn_value": e.reason}]
        revoked.append(item)
    extensions = [{"extn_id": "authority_key_identifier", "critical": False,
                   "extn_value": {"key_identifier": ca.key_id}},
                  {"extn_id": "crl_number", "critical": False, "extn_value": number}]
    if base_number is not None:
        extensions.append({"extn_id": "delta_crl_indicator", "critical": True, "extn_value": base_number})
    sig_alg = algos.SignedDigestAlgorithm.load(signature_algorithm(ca.algorithm))
    tbs = {"version": "v2", "signature": sig_alg, "issuer": x509.Name.load(ca.subject_der),
           "this_update": _time(this_update), "next_update": _time(next_update), "crl_extensions": extensions}
    if revoked:   # RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked
        tbs["revoked_certificates"] = revoked
    tbs = crl.TbsCertList(tbs)
    signature = sign(tbs.dump())
    return crl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": sig_alg,
                                "signature": signature}).dump()


def bump_revocation_seq(session: Session, ca_id: int) -> int:
    """Count one status change of a certificate CA ``ca_id`` issued, in the changing transaction, and
    return the new value (the changed row's ``change_seq``). The UPDATE locks the CA row until commit:
    changes of one CA are ordered, and a CRL signed under the same lock (``CrlPublisher``) lists every
    change counted before it and is stale after any counted later, however late that one commits and
    whatever the changing node's clock says."""
    table = CertificateAuthority.__table__
    return session.execute(update(table).where(table.c.id == ca_id)
                           .values(revocation_seq=table.c.revocation_seq + 1)
                           .returning(table.c.revocation_seq)).scalar_one()


_CA = CertificateAuthority.__table__


class CrlPublisher:
    """Signs, stores and serves the CRLs of the CAs in ``directory``.

    A stored CRL is served while it is *fresh*: it covers the CA's current ``revocation_seq`` (every
    status change committed so far, read from the database, never inferred from clocks), it is younger
    than ``refresh`` and before its nextUpdate, and (delta) its base is the current full CRL. CRLs of a
    CA are numbered and signed one at a time under the CA row lock (RFC 5280 §5.2.3: full and delta
    share the cRLNumber sequence), and thisUpdate never goes back from one CRL to the next even when
    this node's clock is behind the one that signed the previous CRL."""

    def __init__(self, km: KeyManager, db: sessionmaker[Session], directory: CaDirectory, *,
                 validity: dt.timedelta = dt.timedelta(days=1), refresh: dt.timedelta = dt.timedelta(hours=1)):
        self.km = km
        self.db = db
        self.directory = directory
        self.validity = validity
        self.refresh = refresh

    def _sign(self, ca: CaInfo):
        return lambda tbs: self.km.sign(ca.key_label, tbs, ca.algorithm.mechanism)

    # ------------------------------------------------------------------ serving
    def current(self, ca_name: str, *, delta: bool = False) -> PublishedCrl:
        """The CRL to publish now: the stored one while fresh, otherwise a new one."""
        ca = self.directory.get(ca_name)
        base = self.current(ca_name) if delta else None      # a delta is only as good as a fresh base
        with reading(self.db) as session:
            seq = session.scalar(select(_CA.c.revocation_seq).where(_CA.c.id == ca.id))
            latest = _latest(session, ca, delta)
            if self._fresh(latest, seq, base.number if base else None, utcnow()):
                return _published(ca, latest)
        return self.generate(ca_name, delta=delta, unless_fresh=True)

    def _fresh(self, crl: CrlRecord | None, seq: int | None, base_number: int | None, now: dt.datetime) -> bool:
        if crl is None or crl.covers_seq is None or crl.covers_seq != (seq or 0):
            return False
        if crl.delta and crl.base_number != base_number:
            return False
        return now < as_utc(crl.this_update) + self.refresh and now < as_utc(crl.next_update)

    # ------------------------------------------------------------------ generation
    def generate(self, ca_name: str, *, delta: bool = False, unless_fresh: bool = False) -> PublishedCrl:
        """Sign and store a new full (or delta) CRL now. ``unless_fresh``: return the stored one instead if,
        under the CA row lock, it is fresh after all (another worker or node signed it meanwhile)."""
        ca = self.directory.get(ca_name)
        with transaction(self.db) as session:
            # the CA row lock: a revocation counted before it is committed and read below; one counted
            # after it waits for this CRL to commit and then makes it stale
            number, seq = session.execute(select(_CA.c.crl_number, _CA.c.revocation_seq)
                                          .where(_CA.c.id == ca.id).with_for_update()).one()
            number, seq, now = number or 0, seq or 0, utcnow()
            full = _latest(session, ca, False)
            if delta:
                if full is None or full.covers_seq is None:
                    number += 1
                    full = self._generate(session, ca, number, seq, None)
                if unless_fresh:
                    latest = _latest(session, ca, True)
                    if self._fresh(latest, seq, full.number, now):
                        return _published(ca, latest)
                number += 1
                published = _published(ca, self._generate(session, ca, number, seq, full))
            else:
                if unless_fresh and self._fresh(full, seq, None, now):
                    return _published(ca, full)
                number += 1
                published = _published(ca, self._generate(session, ca, number, seq, None))
            session.execute(update(_CA).where(_CA.c.id == ca.id).values(crl_number=number))
            return published

    def _generate(self, session: Session, ca: CaInfo, number: int, seq: int, base: CrlRecord | None) -> CrlRecord:
        """Sign and add CRL ``number`` covering revocation_seq ``seq`` (a delta of ``base`` if given)."""
        previous = session.scalar(select(CrlRecord.this_update).where(CrlRecord.ca_id == ca.id)
                                  .order_by(CrlRecord.number.desc()).limit(1))
        this_update = utcnow().replace(microsecond=0)
        if previous is not None:          # thisUpdate of CRL n+1 is never before CRL n's, whatever our clock
            this_update = max(this_update, as_utc(previous))
        next_update = this_update + self.validity
        if base is None:
            rows = session.execute(select(IssuedCert.serial, IssuedCert.revoked_at, IssuedCert.reason)
                                   .where(IssuedCert.ca_id == ca.id, IssuedCert.status == "revoked")
                                   .order_by(IssuedCert.revoked_at))
            entries = [CrlEntry(int(s, 16), at, reason) for s, at, reason in rows]
        else:                             # every change counted after the base's (RFC 5280 §5.2.4)
            rows = session.execute(select(IssuedCert.serial, IssuedCert.status, IssuedCert.revoked_at,
                                          IssuedCert.reason, IssuedCert.changed_at)
                                   .where(IssuedCert.ca_id == ca.id, IssuedCert.change_seq > base.covers_seq)
                                   .order_by(IssuedCert.change_seq))
            entries = [CrlEntry(int(s, 16), at if status == "revoked" else changed,
                                reason if status == "revoked" else "remove_from_crl")
                       for s, status, at, reason, changed in rows]
        der = build_crl(ca, self._sign(ca), number=number, this_update=this_update, next_update=next_update,
                        entries=entries, base_number=base.number if base else None)
        record = CrlRecord(ca_id=ca.id, number=number, delta=base is not None,
                           base_number=base.number if base else None, this_update=this_update,
                           next_update=next_update, der=der, covers_seq=seq)
        session.add(record)
        session.flush()
        return record


def _latest(session: Session, ca: CaInfo, delta: bool) -> CrlRecord | None:
    return session.scalar(select(CrlRecord).where(CrlRecord.ca_id == ca.id, CrlRecord.delta == delta)
                          .order_by(CrlRecord.number.desc()).limit(1))


def _published(ca: CaInfo, row: CrlRecord) -> PublishedCrl:
    return PublishedCrl(ca.name, row.number, row.delta, row.base_number, as_utc(row.this_update),
                        as_utc(row.next_update), row.der)
