"""Encryption-key escrow (GM/T 0034 dual certificates; envelopes per GB/T 35276 and GM/T 0010).

For each encryption certificate the KMC generates the SM2 key pair inside the HSM (extractable only
by wrapping), archives d wrapped under the current key-encryption key (SM4, HSM-resident, versioned),
and returns it to the subscriber as an SM2EnvelopedKey and a SignedAndEnvelopedData: a fresh SM4 key
wraps d (SM4-ECB) and is itself wrapped to the subscriber's *signing* public key; the KMC signs.
The clear private key never exists outside the HSM: afterwards the token copies of the key pair and of
the SM4 key are destroyed; what remains is the KEK, the MAC key and the KMC signing key.

Archive rows carry a MAC: SM4-CMAC (``KeyManager.mac``, NIST SP 800-38B) under an HSM key over SM3 of the
row's canonical bytes (rows written before carry the SM4-CBC-MAC of that digest, still accepted). A row
whose MAC fails raises ``TamperDetected`` and is never used.
"""
from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import logging
import secrets
import struct
import time
from dataclasses import dataclass

from asn1crypto import x509
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from hsm import KeyManager, KeyNotFound
from hsm.errors import SignatureInvalid
from kms.config import KmsConfig
from kms.errors import EscrowConflict, EscrowError, EscrowNotFound, TamperDetected
from kms.identity import self_signed_certificate
from kms.models import EscrowedKey, KekVersion, KmsSetting
from kms.recovery import (DestructionAuthorisation, ExportAuthorisation, RecoveryAuthorisation, consume)
from audit.trail import record
from store.db import as_utc, reading, transaction, utcnow
from pkicore.envelope import Party, build_signed_and_enveloped, build_sm2_enveloped_key
from store.generation import KMC_SETTINGS, GenerationWatch, bump
from pkicore.keys import KeyProblem, inspect_key, point_from_public_key_info, verify_signature
from pkicore.algorithms import algorithm
from pkicore.sm2 import sm3

log = logging.getLogger(__name__)

EXPORT_FORMAT = "racentre-kms-export/1"


@dataclass(frozen=True)
class EscrowRequest:
    """One encryption certificate to generate, archive and envelope a key for (``escrow_new_keys``)."""

    ca_id: str
    ca_name: str
    user_cert_no: int
    subscriber_public_key_info: bytes   # the subscriber's signing key: the envelope is encrypted to it
    not_before: dt.datetime
    not_after: dt.datetime
    recipient: Party
    user_name: str | None = None


@dataclass(frozen=True)
class Delivery:
    """What the subscriber (or a named recipient) receives, plus the public key for the certificate."""

    key_id: int
    user_cert_no: int
    public_key_info: bytes         # SPKI DER of the encryption key pair (goes into the encryption certificate)
    enveloped_key: bytes           # GB/T 35276 SM2EnvelopedKey DER
    signed_and_enveloped: bytes    # GM/T 0010 SignedAndEnvelopedData DER (bare; GM/T 0014 retPriKey)


def _ts(value: dt.datetime | None) -> bytes:
    return as_utc(value).strftime("%Y%m%d%H%M%S%f").encode() if value is not None else b"-"


def _canonical(row: EscrowedKey) -> bytes:
    fields = [b"kms-escrowed-key/1", str(row.id).encode(), row.ca_id.encode(), row.user_cert_no.encode(),
              row.public_key_info, row.wrapped_private_key, str(row.kek_version).encode(), row.status.encode(),
              _ts(row.not_before), _ts(row.not_after), _ts(row.revoked_at), _ts(row.destroyed_at)]
    return b"".join(struct.pack(">I", len(f)) + f for f in fields)


class KeyEscrow:
    """The KMC domain over one key manager and one database. Thread-safe."""

    def __init__(self, key_manager: KeyManager, db: sessionmaker[Session], config: KmsConfig | None = None):
        self.km = key_manager
        self.db = db
        self.config = config or KmsConfig()
        p = self.config.key_prefix
        self.sign_label, self.mac_label, self.dr_label = f"{p}-sign", f"{p}-mac", f"{p}-dr"
        self._certificate: bytes | None = None
        # `racentre kms install-certificate` (another process or node) bumps it: seen within a second
        self._certificate_watch = GenerationWatch(db, KMC_SETTINGS)
        self._kek_cache: tuple[float, int, str] | None = None
        self._signer_cache: tuple[bytes, Party] | None = None

    # ------------------------------------------------------------------ set-up
    def setup(self, actor: str = "system") -> None:
        """Create what the KMC needs if missing: signing key + certificate, MAC key, KEK version 1.
        Idempotent; several worker processes may run it at once (the database serialises them)."""
        self.km.ensure_key_pair(self.sign_label, "sm2")        # several nodes may race here: the key manager
        self.km.ensure_secret_key(self.mac_label, "sm4")       # makes each under its creation lock
        with transaction(self.db) as session:
            if session.get(KmsSetting, "certificate") is None:
                cert = self_signed_certificate(self.km, self.sign_label, self.config.kmc_subject)
                session.add(KmsSetting(name="certificate", value=cert))
                bump(session, KMC_SETTINGS)
                record(session, actor=actor, role="system", action="kms.identity.self_signed",
                       target_type="kms_identity", target_id=self.sign_label)
            if session.scalar(select(func.count()).select_from(KekVersion)) == 0:
                self._new_kek(session, 1, actor)
        self._certificate = None
        self.certificate  # noqa: B018 - load it now, outside any later transaction

    def _new_kek(self, session: Session, version: int, actor: str) -> KekVersion:
        label = f"{self.config.key_prefix}-kek-v{version}"
        try:
            self.km.find_key(label)
            raise EscrowError(f"the HSM already holds {label} but the database does not know it; "
                              "refusing to reuse a key of unknown origin")
        except KeyNotFound:
            self.km.generate_secret_key(label, "sm4")   # token, sensitive, never extractable
        kek = KekVersion(version=version, label=label, state="active", created_at=utcnow())
        session.add(kek)
        record(session, actor=actor, role="system", action="kms.kek.created", target_type="kms_kek",
               target_id=version, label=label)
        return kek

    @property
    def certificate(self) -> bytes:
        """The KMC's certificate, cached; read again once another process or node installed a new one
        (``store.generation``, looked at most once a second; read-only, so safe inside a transaction)."""
        if self._certificate is None or self._certificate_watch.due():
            generation = self._certificate_watch.read()
            with reading(self.db) as session:
                value = session.scalar(select(KmsSetting.value).where(KmsSetting.name == "certificate"))
            if value is None:
                raise EscrowError("the KMC is not set up (run setup())")
            self._certificate = bytes(value)
            self._certificate_watch.loaded(generation)
        return self._certificate

    @property
    def public_key_info(self) -> bytes:
        return self.km.public_key_info(self.sign_label)

    def install_certificate(self, certificate: bytes, actor: str = "system") -> None:
        """Replace the KMC certificate (e.g. by one the CA issued) — it must certify the signing key."""
        cert = x509.Certificate.load(certificate, strict=True)
        if cert.public_key.dump() != self.public_key_info:
            raise EscrowError("the certificate does not certify the KMC signing key")
        with transaction(self.db) as session:
            row = session.get(KmsSetting, "certificate")
            if row is None:
                session.add(KmsSetting(name="certificate", value=certificate))
            else:
                row.value = certificate
            bump(session, KMC_SETTINGS)          # every process's KeyEscrow.certificate reloads
            record(session, actor=actor, role="system", action="kms.identity.certificate_installed",
                   target_type="kms_identity", target_id=self.sign_label, serial=cert.serial_number)
        self._certificate = certificate

    def _signer(self) -> Party:
        """The KMC as signer (issuer and serial of its certificate), parsed once per certificate."""
        cert = self.certificate
        cached = self._signer_cache
        if cached is None or cached[0] is not cert:
            cached = self._signer_cache = (cert, Party.from_certificate(cert))
        return cached[1]

    def sign(self, data: bytes) -> bytes:
        """SM2-with-SM3 (default ID) by the KMC signing key."""
        return self.km.sign(self.sign_label, data)

    # ------------------------------------------------------------------ MAC
    def _mac(self, row: EscrowedKey) -> bytes:
        return self.km.mac(self.mac_label, sm3(_canonical(row)))

    def _legacy_mac(self, row: EscrowedKey) -> bytes:
        """The MAC rows written before ``KeyManager.mac`` carry: SM4-CBC-MAC of the 32-byte digest (ISO/IEC
        9797-1 alg. 1, sound for this fixed length). Only verified, never written: any update of the
        row (``racentre kms rewrap`` after ``rotate-kek`` moves every row) writes the CMAC."""
        return self.km.encrypt(self.mac_label, sm3(_canonical(row)), "sm4-cbc", iv=bytes(16))[-16:]

    def check_record(self, row: EscrowedKey) -> None:
        """Raise TamperDetected unless the row's MAC verifies."""
        mac = bytes(row.mac or b"")
        if not mac or not (hmac.compare_digest(mac, self._mac(row)) or hmac.compare_digest(mac, self._legacy_mac(row))):
            log.error("archive record %s failed its MAC check", row.id)
            raise TamperDetected(f"archive record {row.id} failed its integrity check")

    def _seal(self, row: EscrowedKey) -> None:
        row.mac = self._mac(row)

    def _active_kek(self, session: Session) -> KekVersion:
        kek = session.scalar(select(KekVersion).where(KekVersion.state == "active"))
        if kek is None:
            raise EscrowError("no active key-encryption key (run setup())")
        return kek

    # ------------------------------------------------------------------ HSM primitives
    def _tmp_label(self, kind: str) -> str:
        return f"{self.config.key_prefix}-{kind}-{secrets.token_hex(8)}"

    def _envelope_parts(self, pair_label: str, recipient_spki: bytes) -> tuple[bytes, bytes]:
        """(SM2Cipher of a fresh SM4 key to the recipient, SM4-ECB(d) under it); the SM4 key is destroyed."""
        cek = self._tmp_label("cek")
        self.km.generate_secret_key(cek, "sm4", extractable=True, token=False)
        try:
            encrypted_d = self.km.wrap(cek, pair_label, "sm4-ecb")
            sym_encrypted_key = self.km.wrap_to(recipient_spki, cek)
        finally:
            self.km.delete_key(cek)
        return sym_encrypted_key, encrypted_d

    def _package(self, key_id: int, user_cert_no: int, spki: bytes, sym_encrypted_key: bytes,
                 encrypted_d: bytes, recipient: Party) -> Delivery:
        _, point = point_from_public_key_info(spki)
        enveloped = build_sm2_enveloped_key(sym_encrypted_key, point, encrypted_d)
        sed = build_signed_and_enveloped(recipient=recipient, encrypted_key=sym_encrypted_key,
                                         encrypted_content=encrypted_d, signer=self._signer(),
                                         sign=self.sign)
        return Delivery(key_id, user_cert_no, spki, enveloped, sed)

    # ------------------------------------------------------------------ escrow
    def escrow_new_key(self, *, ca_id: str, ca_name: str, user_cert_no: int, subscriber_public_key_info: bytes,
                       not_before: dt.datetime, not_after: dt.datetime, recipient: Party,
                       user_name: str | None = None, actor: str = "ca", session: Session | None = None) -> Delivery:
        """Generate, archive and envelope a new SM2 encryption key pair for encryption certificate
        ``user_cert_no``; the envelope is encrypted to ``subscriber_public_key_info`` (the subscriber's
        signing key). ``session``: join the caller's transaction (else one of our own).

        The HSM work runs before the database transaction, which stays short."""
        return self.escrow_new_keys([EscrowRequest(
            ca_id=ca_id, ca_name=ca_name, user_cert_no=user_cert_no,
            subscriber_public_key_info=subscriber_public_key_info, not_before=not_before, not_after=not_after,
            recipient=recipient, user_name=user_name)], actor=actor, session=session)[0]

    def escrow_new_keys(self, requests: "list[EscrowRequest]", *, actor: str = "ca",
                        session: Session | None = None) -> list[Delivery]:
        """``escrow_new_key`` for several certificates (bulk issuance; a GM/T 0014 request may carry
        several ApplyKeyReq items) in one database transaction: all archived or none (a certificate
        that already has a key, or appears twice, raises EscrowConflict and nothing is written). Each key
        gets its own row, MAC and audit row, exactly as one at a time."""
        requests = list(requests)
        seen = set()
        for req in requests:
            _sm2_spki(req.subscriber_public_key_info)
            key = (req.ca_id, str(req.user_cert_no))
            if key in seen:
                raise EscrowConflict(f"certificate {req.user_cert_no} appears twice in the request")
            seen.add(key)
        if not requests:
            return []
        kek_version, kek_label = self._current_kek()
        # one HSM session per key: session pair + session SM4 key, d wrapped under the KEK and the SM4
        # key, the SM4 key wrapped to the subscriber, all destroyed -- the archive copy is the only one left
        made = [self.km.generate_enveloped_pair(kek_label, req.subscriber_public_key_info,
                                                label=self._tmp_label("enc")) for req in requests]
        with _maybe_transaction(self.db, session) as s:
            kek = s.get(KekVersion, kek_version, with_for_update=True)
            if kek is None or kek.state == "retired":
                self._kek_cache = None
                raise EscrowError("the key-encryption key was retired meanwhile; retry")
            by_ca: dict[str, list[str]] = {}
            for req in requests:
                by_ca.setdefault(req.ca_id, []).append(str(req.user_cert_no))
            for ca_id, serials in by_ca.items():
                taken = s.scalar(select(EscrowedKey.user_cert_no).where(
                    EscrowedKey.ca_id == ca_id, EscrowedKey.user_cert_no.in_(serials)).limit(1))
                if taken is not None:
                    raise EscrowConflict(f"a key is already archived for certificate {taken}")
            now = utcnow()
            rows = [EscrowedKey(ca_id=req.ca_id, ca_name=req.ca_name, user_cert_no=str(req.user_cert_no),
                                user_name=req.user_name, public_key_info=m.public_key_info,
                                wrapped_private_key=m.archived, kek_version=kek_version, status="active",
                                not_before=req.not_before, not_after=req.not_after, created_at=now, mac=b"")
                    for req, m in zip(requests, made)]
            s.add_all(rows)
            s.flush()
            for req, row in zip(requests, rows):
                self._seal(row)
                record(s, actor=actor, role="system", action="kms.key.escrowed", target_type="kms_key",
                       target_id=row.id, user_cert_no=str(req.user_cert_no), ca=req.ca_name,
                       kek_version=kek_version)
            key_ids = [row.id for row in rows]
        return [self._package(key_id, req.user_cert_no, m.public_key_info, m.sym_encrypted_key,
                              m.encrypted_private_key, req.recipient)
                for key_id, req, m in zip(key_ids, requests, made)]

    def _current_kek(self) -> tuple[int, str]:
        """(version, label) of the active KEK, cached a few seconds (a row names its KEK version, and the
        insert re-checks it under lock, so a just-rotated cache is harmless)."""
        cached = self._kek_cache
        now = time.monotonic()
        if cached is None or cached[0] < now:
            with self.db() as s:
                kek = self._active_kek(s)
                cached = self._kek_cache = (now + 5.0, kek.version, kek.label)
        return cached[1], cached[2]

    def find(self, ca_id: str, user_cert_no: int) -> int:
        with self.db() as s:
            key_id = s.scalar(select(EscrowedKey.id).where(EscrowedKey.ca_id == ca_id,
                                                           EscrowedKey.user_cert_no == str(user_cert_no)))
        if key_id is None:
            raise EscrowNotFound(f"no archived key for certificate {user_cert_no}")
        return key_id

    def describe(self, key_id: int) -> dict:
        with self.db() as s:
            row = s.get(EscrowedKey, key_id)
            if row is None:
                raise EscrowNotFound(f"no archived key {key_id}")
            return {"id": row.id, "ca": row.ca_name, "user_cert_no": row.user_cert_no, "status": row.status,
                    "kek_version": row.kek_version, "not_after": as_utc(row.not_after).isoformat()}

    # ------------------------------------------------------------------ recovery
    def recover(self, auth: RecoveryAuthorisation, *, recipient: Party | None = None, actor: str) -> Delivery:
        """Deliver an archived key, in a new envelope, to the recipient the authorisation names.

        Judicial/administrative recovery: ``auth`` from ``ApprovalBook.authorise`` (M-of-N), recipient =
        the certificate named in the request. Subscriber recovery: ``auth`` from a verified RestoreKeyReq.
        """
        with transaction(self.db) as s:
            consume(s, auth, RecoveryAuthorisation)
            row = s.get(EscrowedKey, auth.key_id, with_for_update=True)
            if row is None:
                raise EscrowNotFound(f"no archived key {auth.key_id}")
            self.check_record(row)
            if row.status == "destroyed":
                raise EscrowConflict("the archived key has been destroyed")
            if auth.subscriber_restore and row.status != "active":
                raise EscrowConflict("a revoked key is recovered only by the judicial procedure")
            if recipient is None:
                if auth.recipient_certificate is None:
                    raise EscrowError("name the recipient of the envelope")
                recipient = Party.from_certificate(auth.recipient_certificate)
            kek = s.get(KekVersion, row.kek_version)
            delivery = self._redeliver(row, kek.label, auth.recipient_public_key_info, recipient)
            record(s, actor=actor, role="key_recovery_officer" if not auth.subscriber_restore else "system",
                   action="kms.key.recovered" if not auth.subscriber_restore else "kms.key.restored_to_subscriber",
                   target_type="kms_key", target_id=row.id, request_id=auth.request_id,
                   approvers=list(auth.approvers), recipient_serial=recipient.serial,
                   recipient_key_sm3=sm3(auth.recipient_public_key_info).hex())
            return delivery

    def _unwrap_archived(self, kek, blob: bytes, expected_spki: bytes, tmp: str, what: str) -> None:
        """Unwrap an archived SM2 private key into the HSM as the session object ``tmp``, proved to be the
        private half of ``expected_spki`` (the record's public key); otherwise nothing is left behind and
        the record counts as tampered with. ``KeyManager.unwrap`` reads the point the token computed or,
        on a token that keeps none on private keys, runs a pair-wise consistency test."""
        try:
            info = self.km.unwrap(kek, blob, "sm4-ecb", label=tmp, algorithm="sm2", extractable=True, token=False,
                                  public_key_info=expected_spki)
        except SignatureInvalid as exc:
            raise TamperDetected(f"{what} does not unwrap to its public key") from exc
        if info.public_key_info != expected_spki:
            self.km.delete_key(tmp)
            raise TamperDetected(f"{what} does not unwrap to its public key")

    def _redeliver(self, row: EscrowedKey, kek_label: str, recipient_spki: bytes, recipient: Party) -> Delivery:
        _sm2_spki(recipient_spki)
        tmp = self._tmp_label("rec")
        self._unwrap_archived(kek_label, bytes(row.wrapped_private_key), bytes(row.public_key_info), tmp,
                              f"archive record {row.id}")
        try:
            sym_encrypted_key, encrypted_d = self._envelope_parts(tmp, recipient_spki)
        finally:
            self.km.delete_key(tmp)
        return self._package(row.id, int(row.user_cert_no), bytes(row.public_key_info), sym_encrypted_key,
                             encrypted_d, recipient)

    # ------------------------------------------------------------------ life cycle
    def revoke(self, ca_id: str, user_cert_no: int, *, actor: str, session: Session | None = None) -> int:
        """Mark the archived key of a revoked encryption certificate (it stays archived until destroyed)."""
        with _maybe_transaction(self.db, session) as s:
            row = s.scalar(select(EscrowedKey).where(EscrowedKey.ca_id == ca_id,
                                                     EscrowedKey.user_cert_no == str(user_cert_no)))
            if row is None:
                raise EscrowNotFound(f"no archived key for certificate {user_cert_no}")
            self.check_record(row)
            if row.status == "active":
                row.status = "revoked"
                row.revoked_at = utcnow()
                self._seal(row)
                record(s, actor=actor, role="system", action="kms.key.revoked", target_type="kms_key",
                       target_id=row.id, user_cert_no=row.user_cert_no)
            return row.id

    def destroy(self, auth: DestructionAuthorisation, *, actor: str, now: dt.datetime | None = None) -> None:
        """Destroy an archived key after its retention period (approved M-of-N)."""
        now = now or utcnow()
        with transaction(self.db) as s:
            consume(s, auth, DestructionAuthorisation)
            row = s.get(EscrowedKey, auth.key_id, with_for_update=True)
            self.check_record(row)
            end = as_utc(row.revoked_at) if row.revoked_at is not None else as_utc(row.not_after)
            end = min(end, as_utc(row.not_after))
            if row.status == "destroyed":
                raise EscrowConflict("already destroyed")
            if now < end + self.config.retention:
                raise EscrowConflict(f"the retention period runs until {(end + self.config.retention).date()}")
            row.wrapped_private_key = b""
            row.status = "destroyed"
            row.destroyed_at = now
            self._seal(row)
            record(s, actor=actor, role="key_recovery_officer", action="kms.key.destroyed", target_type="kms_key",
                   target_id=row.id, request_id=auth.request_id, approvers=list(auth.approvers))

    # ------------------------------------------------------------------ KEK rotation
    def rotate_kek(self, *, actor: str) -> int:
        """Start a rotation: a new active KEK; older ones become 'retiring' until every row moved."""
        with transaction(self.db) as s:
            current = self._active_kek(s)
            current.state = "retiring"
            new = self._new_kek(s, (s.scalar(select(func.max(KekVersion.version))) or 0) + 1, actor)
            self._kek_cache = None
            record(s, actor=actor, role="system", action="kms.kek.rotation_started", target_type="kms_kek",
                   target_id=new.version, previous=current.version)
            return new.version

    def rewrap_batch(self, *, actor: str, limit: int | None = None) -> int:
        """Move up to ``limit`` rows from retiring KEKs to the active one (each row: unwrap in the HSM as a
        session object, wrap under the new KEK, destroy). Returns how many moved; 0 when done, at which
        point retiring KEKs are retired and destroyed in the HSM. Escrow and recovery keep running."""
        limit = limit or self.config.rotation_batch
        moved = 0
        with transaction(self.db) as s:
            active = self._active_kek(s)
            keks = {k.version: k for k in s.scalars(select(KekVersion))}
            rows = list(s.scalars(select(EscrowedKey).where(EscrowedKey.kek_version != active.version,
                                                            EscrowedKey.status != "destroyed")
                                  .order_by(EscrowedKey.id).limit(limit)))
            for row in rows:
                self.check_record(row)
                tmp = self._tmp_label("rot")
                self._unwrap_archived(keks[row.kek_version].label, bytes(row.wrapped_private_key),
                                      bytes(row.public_key_info), tmp, f"archive record {row.id}")
                try:
                    wrapped = self.km.wrap(active.label, tmp, "sm4-ecb")
                finally:
                    self.km.delete_key(tmp)
                old = row.kek_version
                row.wrapped_private_key, row.kek_version = wrapped, active.version
                self._seal(row)
                moved += 1
                log.debug("re-wrapped archive record %s from KEK v%s to v%s", row.id, old, active.version)
            if moved:
                record(s, actor=actor, role="system", action="kms.kek.rewrapped", target_type="kms_kek",
                       target_id=active.version, rows=moved)
            else:
                self._retire_keks(s, active.version, actor)
        return moved

    def _retire_keks(self, s: Session, active_version: int, actor: str) -> None:
        for kek in s.scalars(select(KekVersion).where(KekVersion.state == "retiring").with_for_update()):
            in_use = s.scalar(select(func.count()).select_from(EscrowedKey).where(
                EscrowedKey.kek_version == kek.version, EscrowedKey.status != "destroyed"))
            if in_use:
                continue
            kek.state, kek.retired_at = "retired", utcnow()
            try:
                self.km.delete_key(kek.label)
            except KeyNotFound:
                pass
            record(s, actor=actor, role="system", action="kms.kek.retired", target_type="kms_kek",
                   target_id=kek.version, label=kek.label)

    def kek_status(self) -> list[dict]:
        with self.db() as s:
            counts = dict(s.execute(select(EscrowedKey.kek_version, func.count()).group_by(EscrowedKey.kek_version)).all())
            return [{"version": k.version, "label": k.label, "state": k.state, "rows": counts.get(k.version, 0)}
                    for k in s.scalars(select(KekVersion).order_by(KekVersion.version))]

    # ------------------------------------------------------------------ disaster recovery
    def dr_public_key_info(self) -> bytes:
        """The SM2 key another KMC exports to when this one is its disaster-recovery site (made by
        ``racentre setup``, else on demand under the key manager's creation lock)."""
        return self.km.ensure_key_pair(self.dr_label, "sm2")

    def export_archive(self, auth: ExportAuthorisation, dr_public_key_info: bytes, *, actor: str) -> bytes:
        """The archive re-wrapped under a one-time SM4 transport key, itself wrapped to the DR site's SM2
        key, signed by this KMC. Never in clear: each d moves HSM-to-HSM as SM4-ECB(d)."""
        _sm2_spki(dr_public_key_info)
        with transaction(self.db) as s:
            consume(s, auth, ExportAuthorisation)
            transport = self._tmp_label("xport")
            self.km.generate_secret_key(transport, "sm4", extractable=True, token=False)
            try:
                wrapped_transport = self.km.wrap_to(dr_public_key_info, transport)
                keks = {k.version: k.label for k in s.scalars(select(KekVersion))}
                records = []
                for row in s.scalars(select(EscrowedKey).where(EscrowedKey.status != "destroyed").order_by(EscrowedKey.id)):
                    self.check_record(row)
                    tmp = self._tmp_label("exp")
                    self._unwrap_archived(keks[row.kek_version], bytes(row.wrapped_private_key),
                                          bytes(row.public_key_info), tmp, f"archive record {row.id}")
                    try:
                        blob = self.km.wrap(transport, tmp, "sm4-ecb")
                    finally:
                        self.km.delete_key(tmp)
                    records.append({"ca_id": row.ca_id, "ca_name": row.ca_name, "user_cert_no": row.user_cert_no,
                                    "user_name": row.user_name, "status": row.status,
                                    "public_key_info": _b64(row.public_key_info), "wrapped": _b64(blob),
                                    "not_before": as_utc(row.not_before).isoformat(),
                                    "not_after": as_utc(row.not_after).isoformat(),
                                    "revoked_at": as_utc(row.revoked_at).isoformat() if row.revoked_at else None})
            finally:
                self.km.delete_key(transport)
            payload = json.dumps({"format": EXPORT_FORMAT, "created": utcnow().isoformat(),
                                  "transport_key": _b64(wrapped_transport), "records": records},
                                 sort_keys=True, separators=(",", ":")).encode()
            record(s, actor=actor, role="key_recovery_officer", action="kms.archive.exported",
                   target_type="kms_archive", target_id=auth.request_id, rows=len(records),
                   approvers=list(auth.approvers), dr_key_sm3=sm3(dr_public_key_info).hex())
        return json.dumps({"payload": _b64(payload), "signature": _b64(self.sign(payload)),
                           "certificate": _b64(self.certificate)}, indent=1).encode()

    def import_archive(self, blob: bytes, exporter_certificate: bytes, *, actor: str) -> int:
        """Import an export made to this KMC's DR key: the signature must verify with the (trusted)
        exporter certificate; each d is unwrapped under the transport key and wrapped under our KEK."""
        try:
            outer = json.loads(blob)
            payload, signature = _unb64(outer["payload"]), _unb64(outer["signature"])
        except (ValueError, KeyError, TypeError) as exc:
            raise EscrowError("malformed archive export") from exc
        spki = x509.Certificate.load(exporter_certificate).public_key.dump()
        if not verify_signature(spki, algorithm("sm2-sm3"), payload, signature):
            raise TamperDetected("the archive export's signature does not verify")
        doc = json.loads(payload)
        if doc.get("format") != EXPORT_FORMAT:
            raise EscrowError("unknown export format")
        transport = self._tmp_label("ximp")
        self.km.unwrap(self.dr_label, _unb64(doc["transport_key"]), "sm2-encrypt", label=transport,
                       algorithm="sm4", token=False)
        imported = 0
        try:
            with transaction(self.db) as s:
                kek = self._active_kek(s)
                for rec in doc["records"]:
                    tmp = self._tmp_label("imp")
                    self._unwrap_archived(transport, _unb64(rec["wrapped"]), _unb64(rec["public_key_info"]), tmp,
                                          f"imported key for {rec['user_cert_no']}")
                    try:
                        wrapped = self.km.wrap(kek.label, tmp, "sm4-ecb")
                    finally:
                        self.km.delete_key(tmp)
                    row = EscrowedKey(ca_id=rec["ca_id"], ca_name=rec["ca_name"], user_cert_no=rec["user_cert_no"],
                                      user_name=rec["user_name"], public_key_info=_unb64(rec["public_key_info"]),
                                      wrapped_private_key=wrapped, kek_version=kek.version, status=rec["status"],
                                      not_before=dt.datetime.fromisoformat(rec["not_before"]),
                                      not_after=dt.datetime.fromisoformat(rec["not_after"]),
                                      revoked_at=dt.datetime.fromisoformat(rec["revoked_at"]) if rec["revoked_at"] else None,
                                      created_at=utcnow(), mac=b"")
                    s.add(row)
                    s.flush()
                    self._seal(row)
                    imported += 1
                record(s, actor=actor, role="system", action="kms.archive.imported", target_type="kms_archive",
                       target_id=sm3(payload).hex()[:32], rows=imported)
        finally:
            self.km.delete_key(transport)
        return imported


# ---------------------------------------------------------------------- helpers

def _sm2_spki(spki: bytes) -> tuple[str, bytes]:
    try:
        key = inspect_key(spki)
    except KeyProblem as exc:
        raise EscrowError("not a valid SM2 public key") from exc
    if key.family != "sm2":
        raise EscrowError("the envelope recipient key must be an SM2 key")
    return key.curve, key.point


def _b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


class _maybe_transaction:
    """Join the caller's session, or run a transaction of our own."""

    def __init__(self, db, session):
        self.db, self.session, self._cm = db, session, None

    def __enter__(self) -> Session:
        if self.session is not None:
            return self.session
        self._cm = transaction(self.db)
        return self._cm.__enter__()

    def __exit__(self, *exc):
        if self._cm is not None:
            return self._cm.__exit__(*exc)
        return False

