"""Applications' own keys (GM/T 0029 §5: the signature server signs with the application's key, which
the HSM holds): each key pair is generated in the HSM for one application (never extractable), certified
by our CA (``server`` or ``unit`` profile for signing, ``app-encryption`` for decryption) and recorded
with its owner. An application signs or decrypts with its own keys only; every creation is audited."""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Callable

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import CABackend, IssueRequest
from hsm import KeyManager
from audit import trail as audit
from pkicore.algorithms import Algorithm, algorithm
from store.db import as_utc, reading, transaction
from pkicore.errors import PkiError
from pkicore.oids import OID
from trust.errors import TrustError, TrustForbidden, TrustNotFound
from trust.models import TrustKey

# key algorithm (HSM) -> signature algorithm row of a signing key
SIGNING_ALGORITHMS = {"sm2": "sm2-sm3", "ec-p256": "ecdsa-sha256", "ec-p384": "ecdsa-sha384",
                      "rsa-2048": "rsa-sha256", "rsa-3072": "rsa-sha256"}
PROFILES = {"sign": ("server", "unit"), "encrypt": ("app-encryption",)}
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class AppKey:
    """One application key as the services use it (no secret: the private key stays in the HSM)."""

    id: int
    application: str
    label: str
    purpose: str
    key_algorithm: str
    profile: str
    ca: str
    serial: str
    certificate: bytes
    chain: tuple[bytes, ...]
    not_after: dt.datetime
    disabled: bool

    @property
    def algorithm(self) -> Algorithm:
        return algorithm(SIGNING_ALGORITHMS[self.key_algorithm])

    def as_dict(self) -> dict:
        return {"id": self.id, "application": self.application, "label": self.label, "purpose": self.purpose,
                "key_algorithm": self.key_algorithm, "profile": self.profile, "ca": self.ca, "serial": self.serial,
                "not_after": self.not_after.isoformat(), "disabled": self.disabled,
                "signature_algorithm": SIGNING_ALGORITHMS.get(self.key_algorithm) if self.purpose == "sign" else None}


def _split(blob: bytes) -> tuple[bytes, ...]:
    out, pos = [], 0
    while pos < len(blob):
        cert = x509.Certificate.load(blob[pos:])
        size = len(cert.dump())
        out.append(blob[pos:pos + size])
        pos += size
    return tuple(out)


def _view(row: TrustKey) -> AppKey:
    return AppKey(row.id, row.application, row.label, row.purpose, row.algorithm, row.profile, row.ca, row.serial,
                  row.certificate, _split(row.chain), as_utc(row.not_after), row.disabled)


class AppKeyStore:
    """The registry of application keys over the HSM and the CA (``ca_bridge.api.CABackend``)."""

    def __init__(self, db: sessionmaker[Session], km: KeyManager, ca: Callable[[], CABackend],
                 organization: str = "RA Centre"):
        self.db = db
        self.km = km
        self._ca = ca
        self.organization = organization

    def create(self, application: str, *, purpose: str = "sign", key_algorithm: str = "sm2",
               profile: str | None = None, common_name: str, organization: str | None = None,
               dns_names: tuple[str, ...] = (), uscc: str | None = None, actor: str, role: str) -> AppKey:
        """Generate a key pair for ``application`` in the HSM and have our CA certify it (one transaction for
        the certificate, the key row and the audit row; the HSM key is deleted again if that fails)."""
        if not _NAME.match(application or ""):
            raise TrustError("application must be 1..64 characters of A-Z a-z 0-9 . _ -")
        if purpose not in PROFILES:
            raise TrustError("purpose must be sign or encrypt")
        profile = profile or PROFILES[purpose][0]
        if profile not in PROFILES[purpose]:
            raise TrustError(f"a {purpose} key takes the profile {' or '.join(PROFILES[purpose])}")
        if purpose == "sign" and key_algorithm not in SIGNING_ALGORITHMS:
            raise TrustError(f"key_algorithm must be one of {', '.join(SIGNING_ALGORITHMS)}")
        if purpose == "encrypt" and key_algorithm != "sm2":
            raise TrustError("encryption keys are SM2 (GM/T 0010 envelopes)")
        if not isinstance(common_name, str) or not common_name.strip() or len(common_name) > 64:
            raise TrustError("common_name is required (at most 64 characters)")
        identity = ((OID.UNIFIED_SOCIAL_CREDIT_CODE, uscc),) if uscc else ()
        subject = (("country_name", "CN"), ("organization_name", organization or self.organization),
                   ("common_name", common_name.strip()))
        label = f"app:{application}:{purpose}:{secrets.token_hex(4)}"
        spki = self.km.generate_key_pair(label, key_algorithm).public_key_info
        try:
            with transaction(self.db) as session:
                issued = self._ca().issue(IssueRequest(
                    request_id=f"trust:{application}:{label}", profile=profile, subject=subject,
                    public_key_info=spki, dns_names=tuple(dns_names), identity=identity), session)
                row = TrustKey(application=application, label=label, purpose=purpose, algorithm=key_algorithm,
                               profile=profile, ca=issued.ca, serial=format(issued.serial, "X"),
                               certificate=issued.certificate, chain=b"".join(issued.chain),
                               not_after=issued.not_after, created_by=actor, disabled=False)
                session.add(row)
                session.flush()
                audit.record(session, actor=actor, role=role, action="trust.key.create", target_type="trust_key",
                             target_id=row.id, application=application, label=label, purpose=purpose,
                             algorithm=key_algorithm, profile=profile, serial=row.serial, ca=issued.ca)
                view = _view(row)
        except BaseException:
            try:
                self.km.delete_key(label)
            except PkiError:
                pass
            raise
        return view

    def list(self, application: str | None = None) -> list[AppKey]:
        with reading(self.db) as session:
            query = select(TrustKey).order_by(TrustKey.id)
            if application is not None:
                query = query.where(TrustKey.application == application)
            return [_view(r) for r in session.scalars(query)]

    def get(self, key_id: int) -> AppKey:
        with reading(self.db) as session:
            row = session.get(TrustKey, key_id)
            if row is None:
                raise TrustNotFound(f"no application key {key_id}")
            return _view(row)

    def for_application(self, application: str, purpose: str, key_id: int | None = None) -> AppKey:
        """The key ``application`` may use for ``purpose``: ``key_id`` if it is its own, else its newest usable
        one. Another application's key is refused (403) whatever its id."""
        if key_id is not None:
            key = self.get(key_id)
            if key.application != application:
                raise TrustForbidden("this key belongs to another application")
            if key.purpose != purpose:
                raise TrustError(f"key {key_id} is a {key.purpose} key, not a {purpose} key")
            if key.disabled:
                raise TrustForbidden(f"key {key_id} is disabled")
            return key
        usable = [k for k in self.list(application) if k.purpose == purpose and not k.disabled]
        if not usable:
            raise TrustNotFound(f"application {application} has no {purpose} key: an administrator creates one "
                                f"with `racentre trust key create {application} --purpose {purpose}`")
        return usable[-1]

    def set_disabled(self, key_id: int, disabled: bool, *, actor: str, role: str) -> AppKey:
        with transaction(self.db) as session:
            row = session.get(TrustKey, key_id, with_for_update=True)
            if row is None:
                raise TrustNotFound(f"no application key {key_id}")
            row.disabled = disabled
            audit.record(session, actor=actor, role=role, action="trust.key." + ("disable" if disabled else "enable"),
                         target_type="trust_key", target_id=key_id, application=row.application)
            return _view(row)
