"""The audit table: every security-relevant action, written in the same transaction as the change.

A row records who (actor and role), what (action, target), when, and a JSON detail. Rows are only
ever inserted. (The hash chain and HSM-signed checkpoints of the tamper-evident trail come with the
console issue; this table is the store they will cover.)
"""
from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from pkicore.db import Base, utcnow


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128), index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


def record(session: Session, *, actor: str, role: str, action: str, target_type: str, target_id: str | int,
           **detail) -> AuditEvent:
    """Append an audit row in the caller's transaction (it commits or rolls back with the change)."""
    json.dumps(detail, default=str)  # fail early on unserialisable detail rather than at flush
    event = AuditEvent(actor=actor, role=role, action=action, target_type=target_type,
                       target_id=str(target_id), detail=json.loads(json.dumps(detail, default=str)))
    session.add(event)
    return event


def events_for(session: Session, target_type: str, target_id: str | int) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.target_type == target_type,
                                                         AuditEvent.target_id == str(target_id))
                                .order_by(AuditEvent.id)))
