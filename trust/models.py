"""Trust-service tables (SQLAlchemy 2.x, SQLite and PostgreSQL): the applications' HSM keys with their
certificates, login challenges (shared by every node: any node answers a challenge another issued), and
evidence records (责任认定) kept for later dispute."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow


def _id_type():
    return BigInteger().with_variant(Integer, "sqlite")


class TrustKey(Base):
    """An application's key pair in the HSM (label), its purpose and the certificate our CA issued for it."""

    __tablename__ = "trust_key"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    application: Mapped[str] = mapped_column(String(128), index=True)     # the principal (API token name)
    label: Mapped[str] = mapped_column(String(128), unique=True)          # HSM key label
    purpose: Mapped[str] = mapped_column(String(8))                       # sign | encrypt
    algorithm: Mapped[str] = mapped_column(String(32))                    # sm2-sm3, ecdsa-sha256, ... (enc: sm2)
    profile: Mapped[str] = mapped_column(String(32))
    ca: Mapped[str] = mapped_column(String(64))
    serial: Mapped[str] = mapped_column(String(42))                       # hex
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    chain: Mapped[bytes] = mapped_column(LargeBinary)                     # concatenated DER, issuing CA upwards
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class TrustChallenge(Base):
    """A login challenge: random, bound to one application, answerable once until ``expires_at``."""

    __tablename__ = "trust_challenge"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)         # random, 128 bits hex
    application: Mapped[str] = mapped_column(String(128), index=True)
    value: Mapped[str] = mapped_column(String(64))                        # what the user's key signs (base64)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)


class TrustEvidence(Base):
    """A signed, timestamped evidence record (trust.evidence): its DER and what it is about."""

    __tablename__ = "trust_evidence"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)         # random, 128 bits hex
    kind: Mapped[str] = mapped_column(String(16), index=True)             # sign | verify | login
    application: Mapped[str] = mapped_column(String(128), index=True)
    decision: Mapped[str] = mapped_column(String(32))
    data_digest: Mapped[str] = mapped_column(String(128), index=True)     # "<alg>:<hex>"
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
