"""Persistent state of the CA: authorities, issued certificates, CRLs, key-escrow reservations and the
outbox of GM/T 0014 notifications owed to the KMC (SQLAlchemy 2.x, SQLite and PostgreSQL).
Serials are stored as lowercase hex text (they exceed 64 bits; RFC 5280 §4.1.2.2 allows 20 octets),
unique per CA; ``request_id`` is unique across the CA so issuance is idempotent.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow

_BIGID = BigInteger().with_variant(Integer, "sqlite")


class CertificateAuthority(Base):
    __tablename__ = "ca_authority"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    algorithm: Mapped[str] = mapped_column(String(32))            # pkicore.algorithms row name, e.g. sm2-sm3
    key_label: Mapped[str] = mapped_column(String(128))           # the CA key in the HSM
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("ca_authority.id"), nullable=True)
    ocsp_key_label: Mapped[str | None] = mapped_column(String(128), nullable=True)
    ocsp_certificate: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    crl_number: Mapped[int] = mapped_column(BigInteger, default=0)   # last number used (full and delta share it)
    # one more per status change (revocation, hold made permanent, release) of a certificate this CA
    # issued, bumped in the changing transaction: the row lock orders changes, and a CRL names the value
    # it covers (``CrlRecord.covers_seq``), so freshness is decided by the database, never by clocks
    revocation_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IssuedCert(Base):
    __tablename__ = "ca_issued_cert"
    __table_args__ = (
        UniqueConstraint("ca_id", "serial", name="uq_ca_issued_cert_ca_serial"),
        Index("ix_ca_issued_cert_ca_status", "ca_id", "status"),
        Index("ix_ca_issued_cert_ca_change_seq", "ca_id", "change_seq"),
    )

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    serial: Mapped[str] = mapped_column(String(42))               # lowercase hex, no leading zeros
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    profile: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)                    # RFC 4514-ish text, for people and search
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="good")   # good | revoked
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)   # RevocationReason value
    changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)  # last status change
    # the CA's revocation_seq that the last status change took (NULL: never changed, or changed before
    # the counter existed and so covered by every CRL signed since): a delta CRL lists change_seq > its
    # base's covers_seq
    change_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EscrowReservation(Base):
    """A KMC-generated encryption key reserved for the certificate ``request_id`` will issue (GM/T 0034):
    the serial and validity were sent to the KMC as userCertNo / notBefore / notAfter, so the certificate
    must use them."""
    __tablename__ = "ca_escrow_reservation"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    profile: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(42))               # lowercase hex
    subscriber_public_key_info: Mapped[bytes] = mapped_column(LargeBinary)
    public_key_info: Mapped[bytes] = mapped_column(LargeBinary)
    key_envelope: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EscrowAttempt(Base):
    """An ApplyKeyReq for ``request_id`` that reached the KMC but got no usable answer: the KMC may have
    archived a key for ``serial``. The next attempt for the same request sends the same serial and
    validity (and takes the key back with RestoreKeyReq if the KMC already has it), so retries leave no
    orphan key each; a RevokeKeyReq is queued only when the request is released or the attempt
    expires (``ca_bridge.kmc_link``)."""
    __tablename__ = "ca_escrow_attempt"

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), unique=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    serial: Mapped[str] = mapped_column(String(42))               # lowercase hex
    subscriber_public_key_info: Mapped[bytes] = mapped_column(LargeBinary)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    failures: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)   # short, public text only
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CrlRecord(Base):
    __tablename__ = "ca_crl"
    __table_args__ = (UniqueConstraint("ca_id", "number", name="uq_ca_crl_ca_number"),
                      Index("ix_ca_crl_ca_delta_number", "ca_id", "delta", "number"))

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    number: Mapped[int] = mapped_column(BigInteger)
    delta: Mapped[bool] = mapped_column(Boolean, default=False)
    base_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    this_update: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    next_update: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    # the CA's revocation_seq when this CRL was signed: it lists every change up to that value (NULL:
    # signed before the counter existed, never fresh)
    covers_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class KmcNotification(Base):
    """The outbox of GM/T 0014 notifications the CA owes the KMC (``kind`` "revoke-key": a RevokeKeyReq
    for ``serial``). Written in the transaction that makes the notification necessary, delivered after it
    and retried until the KMC has answered; ``done_at`` is set once it has (``outcome`` delivered, or
    refused with the KMC's reason in ``last_error``), and ``next_attempt_at`` is then NULL."""
    __tablename__ = "ca_kmc_notification"
    __table_args__ = (UniqueConstraint("ca_id", "serial", "kind", name="uq_ca_kmc_notification_ca_serial_kind"),
                      Index("ix_ca_kmc_notification_next_attempt_at", "next_attempt_at"))

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    serial: Mapped[str] = mapped_column(String(42))               # lowercase hex
    kind: Mapped[str] = mapped_column(String(16))                 # revoke-key
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)   # short, public text only
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    done_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)       # delivered | refused


class PreProducedOcsp(Base):
    """A pre-produced OCSP response (RFC 5019 §2.2.1, §6): the signed answer for one certificate, one
    CertID hash algorithm and no nonce, shared by every node. It is served only while ``status_key``
    equals the certificate's current status (``ca_bridge.store.status_key``: status, reason, revocation
    time — read in the same statement as the response) plus the responder key that signed it, and
    ``refresh_after`` is ahead, so a revocation makes it unusable the moment it commits, on every node,
    with no clock involved."""
    __tablename__ = "ca_ocsp_response"
    __table_args__ = (UniqueConstraint("ca_id", "serial", "digest", name="uq_ca_ocsp_response_ca_serial_digest"),)

    id: Mapped[int] = mapped_column(_BIGID, primary_key=True)
    ca_id: Mapped[int] = mapped_column(ForeignKey("ca_authority.id"))
    serial: Mapped[str] = mapped_column(String(42))               # lowercase hex, as in ca_issued_cert
    digest: Mapped[str] = mapped_column(String(16))               # the CertID hash algorithm
    cert_id: Mapped[bytes] = mapped_column(LargeBinary)           # the CertID DER the response answers
    status_key: Mapped[str] = mapped_column(String(128))          # the status it states, and its signer
    refresh_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    der: Mapped[bytes] = mapped_column(LargeBinary)               # the OCSPResponse
