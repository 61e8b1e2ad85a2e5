"""Full and delta CRLs (RFC 5280 §5) signed in the HSM by the CA key, stored in ``ca_crl`` and served
from there while fresh.

* v2 CertificateList; extensions: authorityKeyIdentifier (§5.2.1), cRLNumber (§5.2.3; full and delta
  CRLs share one sequence per CA), deltaCRLIndicator (§5.2.4, critical) naming the base full CRL.
* entries: serial, revocationDate, reasonCode (§5.3.1; absent for unspecified, as the RFC asks);
  a delta lists every status change since its base's thisUpdate, including removeFromCRL for a
  released certificateHold. No issuingDistributionPoint: every CRL here has full scope.
* ``current`` regenerates when the stored CRL is older than ``refresh``, past nextUpdate, or older than
  the CA's last revocation (one indexed MAX query), so publishing after a revocation needs no signal.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from asn1crypto import algos, crl, x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.certbuilder import signature_algorithm
from ca_bridge.directory import CaDirectory, CaInfo
from ca_bridge.models import CertificateAuthority, CrlRecord, IssuedCert
from hsm import KeyManager
from pkicore.db import as_utc, transaction, utcnow


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


class CrlPublisher:
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
        if delta:
            base = self.current(ca_name)      # a delta is only as good as a fresh base
        now = utcnow()
        with self.db() as session:
            latest = session.scalar(select(CrlRecord).where(CrlRecord.ca_id == ca.id, CrlRecord.delta == delta)
                                    .order_by(CrlRecord.number.desc()).limit(1))
            changed = session.scalar(select(func.max(IssuedCert.changed_at)).where(IssuedCert.ca_id == ca.id))
        if latest is not None:
            this_update, next_update = as_utc(latest.this_update), as_utc(latest.next_update)
            fresh = (now < this_update + self.refresh and now < next_update
                     and (changed is None or as_utc(changed) < this_update)
                     and (not delta or latest.base_number == base.number))
            if fresh:
                return PublishedCrl(ca.name, latest.number, latest.delta, latest.base_number, this_update,
                                    next_update, latest.der)
        return self.generate(ca_name, delta=delta)

    # ------------------------------------------------------------------ generation
    def generate(self, ca_name: str, *, delta: bool = False) -> PublishedCrl:
        """Sign and store a new full (or delta) CRL now."""
        ca = self.directory.get(ca_name)
        with transaction(self.db) as session:
            if delta:
                base = session.scalar(select(CrlRecord).where(CrlRecord.ca_id == ca.id, CrlRecord.delta.is_(False))
                                      .order_by(CrlRecord.number.desc()).limit(1))
                if base is None:
                    base_published = self._generate(session, ca, None)
                    base_number, since = base_published.number, base_published.this_update
                else:
                    base_number, since = base.number, as_utc(base.this_update)
                return self._generate(session, ca, (base_number, since))
            return self._generate(session, ca, None)

    def _next_number(self, session: Session, ca: CaInfo) -> int:
        row = session.scalar(select(CertificateAuthority).where(CertificateAuthority.id == ca.id).with_for_update())
        row.crl_number = (row.crl_number or 0) + 1
        session.flush()
        return row.crl_number

    def _generate(self, session: Session, ca: CaInfo, base: tuple[int, dt.datetime] | None) -> PublishedCrl:
        number = self._next_number(session, ca)
        this_update = utcnow()            # taken before reading the table: later changes go to the next CRL
        next_update = this_update + self.validity
        if base is None:
            rows = session.execute(select(IssuedCert.serial, IssuedCert.revoked_at, IssuedCert.reason)
                                   .where(IssuedCert.ca_id == ca.id, IssuedCert.status == "revoked")
                                   .order_by(IssuedCert.revoked_at))
            entries = [CrlEntry(int(s, 16), at, reason) for s, at, reason in rows]
        else:
            rows = session.execute(select(IssuedCert.serial, IssuedCert.status, IssuedCert.revoked_at,
                                          IssuedCert.reason, IssuedCert.changed_at)
                                   .where(IssuedCert.ca_id == ca.id, IssuedCert.changed_at >= base[1])
                                   .order_by(IssuedCert.changed_at))
            entries = [CrlEntry(int(s, 16), at if status == "revoked" else changed,
                                reason if status == "revoked" else "remove_from_crl")
                       for s, status, at, reason, changed in rows]
        der = build_crl(ca, self._sign(ca), number=number, this_update=this_update, next_update=next_update,
                        entries=entries, base_number=base[0] if base else None)
        session.add(CrlRecord(ca_id=ca.id, number=number, delta=base is not None,
                              base_number=base[0] if base else None, this_update=this_update,
                              next_update=next_update, der=der))
        session.flush()
        return PublishedCrl(ca.name, number, base is not None, base[0] if base else None,
                            this_update, next_update, der)
