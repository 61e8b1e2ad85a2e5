"""KMC tables: key-encryption-key versions, the escrow archive, approvals and seen GM/T 0014 requests.

Every archive row carries a MAC (SM4-CBC-MAC under an HSM key over SM3 of the row's canonical bytes,
see ``kms.escrow``); a row whose MAC fails is never used.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow

_ID = BigInteger().with_variant(Integer, "sqlite")


class KekVersion(Base):
    __tablename__ = "kms_kek"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(String(128), unique=True)
    state: Mapped[str] = mapped_column(String(16))          # active | retiring | retired
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class EscrowedKey(Base):
    __tablename__ = "kms_escrowed_key"
    __table_args__ = (UniqueConstraint("ca_id", "user_cert_no"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    ca_id: Mapped[str] = mapped_column(String(64))            # hex SM3 of the CA's public key (EntName)
    ca_name: Mapped[str] = mapped_column(String(512))
    user_cert_no: Mapped[str] = mapped_column(String(64), index=True)   # encryption certificate serial, decimal
    user_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    public_key_info: Mapped[bytes] = mapped_column(LargeBinary)          # SPKI DER of the encryption key
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)      # SM4-ECB(d) under the KEK; b"" once destroyed
    kek_version: Mapped[int] = mapped_column(ForeignKey("kms_kek.version"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="active")   # active | revoked | destroyed
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    destroyed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    mac: Mapped[bytes] = mapped_column(LargeBinary)


class ApprovalRequest(Base):
    """A request for a dangerous operation: recover (judicial), destroy or export."""

    __tablename__ = "kms_approval_request"

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16))          # recover | destroy | export
    key_id: Mapped[int | None] = mapped_column(ForeignKey("kms_escrowed_key.id"), nullable=True, index=True)
    recipient_certificate: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    required: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="pending")   # pending | used | cancelled
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Approval(Base):
    __tablename__ = "kms_approval"
    __table_args__ = (UniqueConstraint("request_id", "officer"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("kms_approval_request.id"), index=True)
    officer: Mapped[str] = mapped_column(String(128))
    approved_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class SeenRequest(Base):
    """GM/T 0014 (CA, taskNo) pairs already answered: a replay is refused."""

    __tablename__ = "kms_seen_request"
    __table_args__ = (UniqueConstraint("ca_id", "task_no"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True)
    ca_id: Mapped[str] = mapped_column(String(64))
    task_no: Mapped[str] = mapped_column(String(64))
    request_time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KmsSetting(Base):
    """Small KMC state: its certificate (DER, hex) and similar single values."""

    __tablename__ = "kms_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)


TABLES = [KekVersion.__table__, EscrowedKey.__table__, ApprovalRequest.__table__, Approval.__table__,
          SeenRequest.__table__, KmsSetting.__table__]
