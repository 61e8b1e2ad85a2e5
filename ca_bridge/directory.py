"""The CAs this process serves, read from the database into frozen ``CaInfo`` rows (certificate, key
label, issuer hashes), so the issuance, CRL and OCSP paths never reload them per request; reloaded when
another process or node changed the hierarchy (``store.generation``: seen within a second, no restart)."""
from __future__ import annotations

import datetime as dt
import hashlib
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.errors import UnknownCA
from ca_bridge.models import CertificateAuthority
from pkicore.algorithms import Algorithm, algorithm
from store.db import reading
from store.generation import CA_AUTHORITIES, CHECK_INTERVAL, GenerationWatch

MISS_RELOAD_INTERVAL = 1.0   # seconds between reloads caused by unknown names
CERTID_DIGESTS = ("sha1", "sha256", "sha384", "sha512", "sm3")


@dataclass(frozen=True)
class CaInfo:
    id: int
    name: str
    algorithm: Algorithm
    key_label: str
    certificate: bytes
    subject_der: bytes
    key_id: bytes                              # subjectKeyIdentifier of the CA certificate
    key_bits: bytes                            # subjectPublicKey BIT STRING value (OCSP key hashes)
    not_after: dt.datetime
    parent: str | None
    chain: tuple[bytes, ...]                   # this CA up to, not including, the root
    ocsp_key_label: str | None = None
    ocsp_certificate: bytes | None = None
    # OCSP CertID hashes of this CA as issuer: digest name -> (issuerNameHash, issuerKeyHash)
    certid_hashes: Mapping[str, tuple[bytes, bytes]] = field(default_factory=dict)

    @property
    def is_root(self) -> bool:
        return self.parent is None


def _info(row: CertificateAuthority, rows: dict[int, CertificateAuthority]) -> CaInfo:
    cert = x509.Certificate.load(row.certificate)
    key_bits = cert.public_key["public_key"].contents[1:]
    subject = cert.subject.dump()
    chain, parent, cur = [], None, row
    if row.parent_id is not None:
        parent = rows[row.parent_id].name
        while cur.parent_id is not None:
            chain.append(cur.certificate)
            cur = rows[cur.parent_id]
    return CaInfo(
        id=row.id, name=row.name, algorithm=algorithm(row.algorithm), key_label=row.key_label,
        certificate=row.certificate, subject_der=subject,
        key_id=cert.key_identifier or hashlib.sha1(key_bits).digest(), key_bits=key_bits,
        not_after=cert.not_valid_after, parent=parent, chain=tuple(chain),
        ocsp_key_label=row.ocsp_key_label, ocsp_certificate=row.ocsp_certificate,
        certid_hashes=MappingProxyType({d: (hashlib.new(d, subject).digest(), hashlib.new(d, key_bits).digest())
                                        for d in CERTID_DIGESTS}))


class CaDirectory:
    """Cached view of the ``ca_authority`` table. Reloaded when the ``ca_authority`` generation moved
    (``ca_bridge.ca.init_hierarchy`` bumps it in the creating transaction, on whatever node or CLI run;
    looked at most every ``check_interval`` seconds) and on a miss (throttled)."""

    def __init__(self, db: sessionmaker[Session], check_interval: float = CHECK_INTERVAL):
        self.db = db
        self._lock = threading.Lock()
        self._by_name: Mapping[str, CaInfo] = MappingProxyType({})
        self._loaded = False
        self._reloaded_at = 0.0
        self.watch = GenerationWatch(db, CA_AUTHORITIES, check_interval)

    def reload(self) -> Mapping[str, CaInfo]:
        generation = self.watch.read()        # before the rows: a change committed meanwhile reloads again
        # read-only: a first use inside a caller's write transaction must not wait for the SQLite writer
        # lock that transaction holds (a fresh CA's first issuance inside an RA approval did, for 30 s)
        with reading(self.db) as session:
            rows = {r.id: r for r in session.scalars(select(CertificateAuthority))}
            by_name = MappingProxyType({r.name: _info(r, rows) for r in rows.values()})
        with self._lock:
            self._by_name, self._loaded, self._reloaded_at = by_name, True, time.monotonic()
        self.watch.loaded(generation)
        return by_name

    def all(self) -> Mapping[str, CaInfo]:
        if not self._loaded or self.watch.due():
            return self.reload()
        return self._by_name

    def find(self, name: str) -> CaInfo | None:
        info = self.all().get(name)
        if info is None and time.monotonic() - self._reloaded_at > MISS_RELOAD_INTERVAL:
            info = self.reload().get(name)   # throttled: unknown names from the web cannot hammer the DB
        return info

    def by_id(self, ca_id: int) -> CaInfo:
        for info in self.all().values():
            if info.id == ca_id:
                return info
        for info in self.reload().values():
            if info.id == ca_id:
                return info
        raise UnknownCA(f"no CA with id {ca_id}")

    def get(self, name: str) -> CaInfo:
        info = self.find(name)
        if info is None:
            raise UnknownCA(f"no CA named {name!r}")
        return info
