"""The seal registry (GB/T 38540 §8 seal management): a seal administrator makes SESeal v4 seals for units,
signed in the HSM by the seal-making authority; seals are listed, suspended, resumed, revoked and expired;
staff are authorised per seal; every change and every use is audited (audit.trail) in its transaction.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hsm import KeyManager
from audit import trail as audit
from pkicore.algorithms import Algorithm, algorithm
from store.db import as_utc, reading, transaction, utcnow
from seal import ses
from seal.errors import SealConflict, SealError, SealForbidden, SealNotFound
from seal.models import SealRow, SealSignerRow, SealStatus, SealUserRow, SigningRecordRow
from seal.picture import check_size_mm, validate_picture
from seal.timestamps import FAMILY_NAMES, key_family
from seal.validation import SealState

MAX_VALIDITY_DAYS = 3 * 366


@dataclass(frozen=True)
class SealMaker:
    """The seal-making authority: its HSM key, certificate and algorithm, and the vendor id (vid)."""

    label: str
    certificate: bytes
    alg: Algorithm
    vid: str = "RACENTRE"


@dataclass(frozen=True)
class Signer:
    """A unit signing key in the HSM and its certificate, to bind to a seal."""

    key_label: str
    certificate: bytes
    alg: Algorithm


@dataclass(frozen=True)
class SealRecord:
    id: int
    es_id: str
    unit: str
    name: str
    seal_type: str
    status: str
    valid_start: dt.datetime
    valid_end: dt.datetime
    width_mm: int
    height_mm: int
    picture_type: str
    users: tuple[str, ...]
    signer_subjects: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"id": self.id, "es_id": self.es_id, "unit": self.unit, "name": self.name,
                "seal_type": self.seal_type, "status": self.status, "valid_start": self.valid_start.isoformat(),
                "valid_end": self.valid_end.isoformat(), "width_mm": self.width_mm, "height_mm": self.height_mm,
                "picture_type": self.picture_type, "users": list(self.users),
                "signers": list(self.signer_subjects)}


@dataclass(frozen=True)
class SealUse:
    """What sealing needs once the registry said yes: the seal bytes, its picture and a signing key."""

    seal_id: int
    es_id: str
    seal_der: bytes
    picture_type: str
    picture: bytes
    width_mm: int
    height_mm: int
    signer: Signer


def _record(row: SealRow) -> SealRecord:
    return SealRecord(row.id, row.es_id, row.unit, row.name, row.seal_type, row.status, as_utc(row.valid_start),
                      as_utc(row.valid_end), row.width_mm, row.height_mm, row.picture_type,
                      tuple(u.principal for u in row.users),
                      tuple(ses.cert_subject(s.certificate) for s in row.signers))


class SealRegistry:
    """Seal making and management over a database and the key manager."""

    def __init__(self, db: sessionmaker[Session], km: KeyManager, maker: SealMaker | None):
        """``maker``: the seal-making authority (GB/T 38540 §6) with its CA-issued certificate; None on a
        site without a CA yet, whose registry reads, uses and verifies seals but makes none."""
        self.db = db
        self.km = km
        self.maker = maker

    def state(self, es_id: str):
        """A seal's state in this registry by esID (seal.validation.SealState), None for seals made
        elsewhere; an active seal past its validEnd reads as expired."""
        with reading(self.db) as session:
            row = session.execute(select(SealRow.status, SealRow.status_changed_at, SealRow.status_reason)
                                  .where(SealRow.es_id == es_id)).first()
        if row is None:
            return None
        return SealState(row.status, as_utc(row.status_changed_at) if row.status_changed_at else None,
                         row.status_reason)

    # ------------------------------------------------------------ making
    def make_seal(self, *, actor: str, role: str, unit: str, name: str, seal_type: str, picture: bytes,
                  width_mm: int, height_mm: int, signers: list[Signer], valid_start: dt.datetime | None = None,
                  valid_end: dt.datetime | None = None, valid_days: int = 365, users: tuple[str, ...] = ()
                  ) -> SealRecord:
        if self.maker is None:
            raise SealConflict("no seal maker certificate yet: run `racentre setup`, which has the site's CA "
                               "certify the seal-making authority")
        if seal_type not in ses.SEAL_TYPES:
            raise SealError(f"unknown seal type {seal_type!r} (one of {', '.join(ses.SEAL_TYPES)})")
        if not name.strip() or len(name) > 128 or not unit.strip() or len(unit) > 128:
            raise SealError("seal name and unit are required (at most 128 characters)")
        pic = validate_picture(picture)
        check_size_mm(width_mm, height_mm)
        now = utcnow().replace(microsecond=0)
        start = (valid_start or now).astimezone(dt.timezone.utc).replace(microsecond=0)
        end = (valid_end or start + dt.timedelta(days=valid_days)).astimezone(dt.timezone.utc).replace(microsecond=0)
        if end <= start:
            raise SealError("seal validity must end after it starts")
        if (end - start).days > MAX_VALIDITY_DAYS:
            raise SealError(f"seal validity may not exceed {MAX_VALIDITY_DAYS} days")
        if not signers:
            raise SealError("a seal binds at least one signing certificate")
        for s in signers:
            self._check_signer(s, start, end, unit)
        es_id = f"{now:%Y%m%d}{secrets.randbelow(10 ** 10):010d}"
        info = ses.build_seal_info(vid=self.maker.vid, es_id=es_id, seal_type=ses.SEAL_TYPES[seal_type], name=name,
                                   certs=[s.certificate for s in signers], create_date=now, valid_start=start,
                                   valid_end=end, picture_type=pic.type, picture=pic.data,
                                   width_mm=width_mm, height_mm=height_mm)
        der = ses.make_seal(info, self.maker.certificate, lambda d: self.km.sign(self.maker.label, d,
                                                                                 self.maker.alg.mechanism),
                            self.maker.alg)
        check = ses.verify_seal(der)
        if not check.ok:
            raise SealError("the seal made does not verify: " + "; ".join(check.reasons))
        with transaction(self.db) as session:
            row = SealRow(es_id=es_id, unit=unit, name=name, seal_type=seal_type, status=SealStatus.ACTIVE.value,
                          picture_type=pic.type, picture=pic.data, width_mm=width_mm, height_mm=height_mm,
                          valid_start=start, valid_end=end, der=der, created_by=actor)
            row.signers = [SealSignerRow(key_label=s.key_label, algorithm=s.alg.name, certificate=s.certificate)
                           for s in signers]
            row.users = [SealUserRow(principal=u, granted_by=actor) for u in dict.fromkeys(users)]
            session.add(row)
            session.flush()
            audit.record(session, actor=actor, role=role, action="seal.make", target_type="seal", target_id=row.id,
                         es_id=es_id, unit=unit, name=name, seal_type=seal_type, valid_start=start, valid_end=end,
                         signers=[ses.cert_subject(s.certificate) for s in signers], users=list(users))
            return _record(row)

    def _check_signer(self, signer: Signer, start: dt.datetime, end: dt.datetime, unit: str) -> None:
        try:
            cert = x509.Certificate.load(signer.certificate, strict=True)
            spki = cert.public_key.dump()
            owners = [v for k, v in cert.subject.native.items() if k == "organization_name"]
        except (ValueError, TypeError) as exc:
            raise SealError(f"signing certificate unreadable: {exc}") from exc
        owners = [o for v in owners for o in (v if isinstance(v, list) else [v])]
        if unit.strip() not in owners:
            # GB/T 38540 §8: a seal is its unit's; another unit's certificate would make it that unit's signature
            raise SealError(f"the signing certificate belongs to {', '.join(owners) or 'no organisation (no O)'}, "
                            f"not to the seal's unit {unit.strip()}")
        if spki != self.km.public_key_info(signer.key_label):
            raise SealError(f"certificate does not belong to HSM key {signer.key_label!r}")
        why = algorithm_mismatch(signer.alg, cert.public_key)
        if why:
            raise SealError(why)
        validity = cert["tbs_certificate"]["validity"]
        if validity["not_after"].native < start:
            raise SealError("signing certificate expired before the seal would start")
        key_usage = cert.key_usage_value
        if key_usage is not None and "digital_signature" not in key_usage.native:
            raise SealError("signing certificate lacks digitalSignature key usage")

    # ------------------------------------------------------------ reading
    def get(self, seal_id: int) -> SealRecord:
        with self.db() as session:
            return _record(self._row(session, seal_id))

    def seal_der(self, seal_id: int) -> bytes:
        with self.db() as session:
            return self._row(session, seal_id).der

    def list(self, *, unit: str | None = None, status: str | None = None) -> list[SealRecord]:
        with self.db() as session:
            q = select(SealRow).order_by(SealRow.id)
            if unit:
                q = q.where(SealRow.unit == unit)
            if status:
                q = q.where(SealRow.status == status)
            return [_record(r) for r in session.scalars(q)]

    @staticmethod
    def _row(session: Session, seal_id: int, *, lock: bool = False) -> SealRow:
        q = select(SealRow).where(SealRow.id == seal_id)
        if lock:
            q = q.with_for_update()
        row = session.scalar(q)
        if row is None:
            raise SealNotFound(f"no seal {seal_id}")
        return row

    # ------------------------------------------------------------ life cycle
    _TRANSITIONS = {"suspend": ({SealStatus.ACTIVE}, SealStatus.SUSPENDED),
                    "resume": ({SealStatus.SUSPENDED}, SealStatus.ACTIVE),
                    "revoke": ({SealStatus.ACTIVE, SealStatus.SUSPENDED}, SealStatus.REVOKED)}

    def _transition(self, verb: str, seal_id: int, *, actor: str, role: str, reason: str) -> SealRecord:
        allowed, target = self._TRANSITIONS[verb]
        with transaction(self.db) as session:
            row = self._row(session, seal_id, lock=True)
            if SealStatus(row.status) not in allowed:
                raise SealConflict(f"seal {seal_id} is {row.status}; cannot {verb} it")
            old = row.status
            row.status = target.value
            row.status_reason = reason[:256] if reason else None
            row.status_changed_at = utcnow()
            audit.record(session, actor=actor, role=role, action=f"seal.{verb}", target_type="seal", target_id=row.id,
                         es_id=row.es_id, reason=reason, old_status=old, new_status=target.value)
            return _record(row)

    def suspend(self, seal_id: int, *, actor: str, role: str, reason: str = "") -> SealRecord:
        return self._transition("suspend", seal_id, actor=actor, role=role, reason=reason)

    def resume(self, seal_id: int, *, actor: str, role: str, reason: str = "") -> SealRecord:
        return self._transition("resume", seal_id, actor=actor, role=role, reason=reason)

    def revoke(self, seal_id: int, *, actor: str, role: str, reason: str = "") -> SealRecord:
        return self._transition("revoke", seal_id, actor=actor, role=role, reason=reason)

    def expire(self, *, actor: str = "system", role: str = "system", now: dt.datetime | None = None) -> list[int]:
        """Mark every active or suspended seal past its validity as expired; returns their ids."""
        now = now or utcnow()
        done = []
        with transaction(self.db) as session:
            rows = session.scalars(select(SealRow).where(
                SealRow.status.in_([SealStatus.ACTIVE.value, SealStatus.SUSPENDED.value]))).all()
            for row in rows:
                if as_utc(row.valid_end) < now:
                    row.status = SealStatus.EXPIRED.value
                    row.status_changed_at = now
                    audit.record(session, actor=actor, role=role, action="seal.expire", target_type="seal",
                                 target_id=row.id, es_id=row.es_id, valid_end=row.valid_end)
                    done.append(row.id)
        return done

    # ------------------------------------------------------------ who may use which seal
    def authorise(self, seal_id: int, principal: str, *, actor: str, role: str) -> SealRecord:
        with transaction(self.db) as session:
            row = self._row(session, seal_id, lock=True)
            if any(u.principal == principal for u in row.users):
                raise SealConflict(f"{principal!r} may already use seal {seal_id}")
            row.users.append(SealUserRow(principal=principal, granted_by=actor))
            audit.record(session, actor=actor, role=role, action="seal.authorise", target_type="seal",
                         target_id=row.id, principal=principal)
            session.flush()
            return _record(row)

    def deauthorise(self, seal_id: int, principal: str, *, actor: str, role: str) -> SealRecord:
        with transaction(self.db) as session:
            row = self._row(session, seal_id, lock=True)
            keep = [u for u in row.users if u.principal != principal]
            if len(keep) == len(row.users):
                raise SealNotFound(f"{principal!r} is not authorised for seal {seal_id}")
            row.users = keep
            audit.record(session, actor=actor, role=role, action="seal.deauthorise", target_type="seal",
                         target_id=row.id, principal=principal)
            session.flush()
            return _record(row)

    def use(self, seal_id: int, principal: str, *, now: dt.datetime | None = None) -> SealUse:
        """The seal ready to apply, when ``principal`` may use it now; SealForbidden/SealError otherwise."""
        now = now or utcnow()
        with self.db() as session:
            row = self._row(session, seal_id)
            if principal not in {u.principal for u in row.users}:
                raise SealForbidden(f"not authorised to use seal {seal_id}")
            if row.status != SealStatus.ACTIVE.value:
                raise SealError(f"seal {seal_id} is {row.status}")
            if not (as_utc(row.valid_start) <= now <= as_utc(row.valid_end)):
                raise SealError(f"seal {seal_id} is outside its validity period")
            signer = row.signers[0]
            return SealUse(row.id, row.es_id, row.der, row.picture_type, row.picture, row.width_mm, row.height_mm,
                           Signer(signer.key_label, signer.certificate, algorithm(signer.algorithm)))

    def record_signing(self, use: SealUse, *, signer: str, role: str, token: str | None, document_type: str,
                       document_sha256: str, sealed_sha256: str) -> int:
        """The signing record (document hash, seal, signer, time, token), audited."""
        with transaction(self.db) as session:
            rec = SigningRecordRow(seal_id=use.seal_id, signer=signer, token=token, document_type=document_type,
                                   document_sha256=document_sha256, sealed_sha256=sealed_sha256)
            session.add(rec)
            session.flush()
            audit.record(session, actor=signer, role=role, action="seal.sign", target_type="seal",
                         target_id=use.seal_id, es_id=use.es_id, record=rec.id, document_type=document_type,
                         document_sha256=document_sha256, sealed_sha256=sealed_sha256, token=token)
            return rec.id

    def signing_records(self, seal_id: int) -> list[dict]:
        with self.db() as session:
            rows = session.scalars(select(SigningRecordRow).where(SigningRecordRow.seal_id == seal_id)
                                   .order_by(SigningRecordRow.id))
            return [{"id": r.id, "at": as_utc(r.at).isoformat(), "signer": r.signer, "token": r.token,
                     "document_type": r.document_type, "document_sha256": r.document_sha256,
                     "sealed_sha256": r.sealed_sha256} for r in rows]


# a signing key's default signature algorithm: by key family, for EC keys by curve
_DEFAULT_ALGORITHMS = {("sm2", None): "sm2-sm3", ("ec", "secp256r1"): "ecdsa-sha256",
                       ("ec", "secp384r1"): "ecdsa-sha384", ("rsa", None): "rsa-sha256"}


def _key_kind(public_key: x509.PublicKeyInfo) -> tuple[str, str | None]:
    family = key_family(public_key)
    return family, public_key.curve[1] if family == "ec" else None


def algorithm_mismatch(alg: Algorithm, public_key: x509.PublicKeyInfo) -> str | None:
    """None when ``alg`` signs with this key (its family, and for ECDSA its curve), else the reason."""
    try:
        family, curve = _key_kind(public_key)
    except ValueError as exc:
        return f"signing certificate: {exc}"
    if alg.key_type != family or (family == "ec" and alg.curve != curve):
        return (f"algorithm {alg.name} does not sign with the certificate's {FAMILY_NAMES[family]}"
                f"{' ' + curve if curve else ''} key")
    return None


def signer_algorithm(certificate: bytes, name: str | None = None) -> Algorithm:
    """The signature algorithm a unit's signing certificate is used with: ``name`` when given, else the
    default of its key (SM2 -> sm2-sm3, P-256 -> ecdsa-sha256, P-384 -> ecdsa-sha384, RSA -> rsa-sha256).
    SealError for an unknown name or a certificate without a usable key."""
    try:
        key = x509.Certificate.load(certificate).public_key
        if name:
            return algorithm(name)
        return algorithm(_DEFAULT_ALGORITHMS[_key_kind(key)])
    except KeyError as exc:
        raise SealError(f"no signature algorithm {name!r} for this certificate's key" if name else
                        "the certificate's key has no supported signature algorithm") from exc
    except ValueError as exc:
        raise SealError(f"signing certificate unreadable: {exc}") from exc


def sign_with(km: KeyManager, signer: Signer):
    """A signing callable over the HSM for ``signer`` (SM2: default user ID)."""
    return lambda data: km.sign(signer.key_label, data, signer.alg.mechanism)

