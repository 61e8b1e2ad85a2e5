"""Seal registry tables (SQLAlchemy 2.x, SQLite and PostgreSQL): seals made for units (the SESeal v4 DER
as signed by the seal-making authority), the signing keys bound to each seal, the staff authorised to use
each seal, and one signing record per sealed document (GB/T 38540 §8 management requirements)."""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.db import Base, utcnow


def _id_type():
    return BigInteger().with_variant(Integer, "sqlite")


class SealStatus(str, enum.Enum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"
    EXPIRED = "expired"


class SealRow(Base):
    __tablename__ = "seal"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    es_id: Mapped[str] = mapped_column(String(64), unique=True)
    unit: Mapped[str] = mapped_column(String(128), index=True)
    name: Mapped[str] = mapped_column(String(128))
    seal_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=SealStatus.ACTIVE.value, index=True)
    picture_type: Mapped[str] = mapped_column(String(8))
    picture: Mapped[bytes] = mapped_column(LargeBinary)
    width_mm: Mapped[int] = mapped_column(Integer)
    height_mm: Mapped[int] = mapped_column(Integer)
    valid_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    der: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    status_reason: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    signers: Mapped[list["SealSignerRow"]] = relationship(back_populates="seal", cascade="all, delete-orphan",
                                                          order_by="SealSignerRow.id")
    users: Mapped[list["SealUserRow"]] = relationship(back_populates="seal", cascade="all, delete-orphan",
                                                      order_by="SealUserRow.id")


class SealSignerRow(Base):
    """A unit signing certificate bound to the seal, and the HSM key that signs with it."""

    __tablename__ = "seal_signer"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seal.id", ondelete="CASCADE"), index=True)
    key_label: Mapped[str] = mapped_column(String(128))
    algorithm: Mapped[str] = mapped_column(String(32))
    certificate: Mapped[bytes] = mapped_column(LargeBinary)

    seal: Mapped[SealRow] = relationship(back_populates="signers")


class SealUserRow(Base):
    """A principal (API token name) authorised to use the seal."""

    __tablename__ = "seal_user"
    __table_args__ = (UniqueConstraint("seal_id", "principal"),)

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seal.id", ondelete="CASCADE"), index=True)
    principal: Mapped[str] = mapped_column(String(128))
    granted_by: Mapped[str] = mapped_column(String(128))
    granted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    seal: Mapped[SealRow] = relationship(back_populates="users")


class SigningRecordRow(Base):
    """One sealed document: its hash before and after sealing, the seal, who, when, and the token used."""

    __tablename__ = "seal_signing_record"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    seal_id: Mapped[int] = mapped_column(ForeignKey("seal.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    signer: Mapped[str] = mapped_column(String(128))
    token: Mapped[str | None] = mapped_column(String(128), nullable=True)
    document_type: Mapped[str] = mapped_column(String(8))
    document_sha256: Mapped[str] = mapped_column(String(64), index=True)
    sealed_sha256: Mapped[str] = mapped_column(String(64), index=True)
