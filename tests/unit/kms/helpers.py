"""KMC test helpers (plain module: test files import these, never the conftest)."""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import func, select

from kms.config import KmsConfig
from kms.escrow import KeyEscrow
from kms.identity import subject_name
from kms.models import TABLES
from kms.recovery import Officer
from audit.trail import AuditEvent
from pkicore.envelope import Party

OFFICERS = [Officer(f"officer-{i}", frozenset({"key_recovery_officer"})) for i in range(1, 4)]


def make_escrow(km, db, **config) -> KeyEscrow:
    escrow = KeyEscrow(km, db, KmsConfig(key_prefix=f"kmc-{secrets.token_hex(4)}", **config))
    escrow.setup()
    with db() as s:
        escrow.test_audit_mark = s.scalar(select(func.max(AuditEvent.id))) or 0
    return escrow


def wipe(db) -> None:
    """One KMC per database: each test starts from empty KMC tables (the db fixture is session-wide)."""
    with db() as s, s.begin():
        for table in reversed(TABLES):
            s.execute(table.delete())


def audit(escrow, target_type: str | None = None, target_id=None) -> list[str]:
    """Audit actions written since the test's KMC was set up (optionally for one target)."""
    q = select(AuditEvent).where(AuditEvent.id > escrow.test_audit_mark).order_by(AuditEvent.id)
    if target_type:
        q = q.where(AuditEvent.target_type == target_type)
    if target_id is not None:
        q = q.where(AuditEvent.target_id == str(target_id))
    with escrow.db() as s:
        return [e.action for e in s.scalars(q)]


def escrow_one(escrow, subscriber_spki, serial=None, ca_id="ca-test"):
    serial = serial or secrets.randbits(63)
    now = dt.datetime.now(dt.timezone.utc)
    return escrow.escrow_new_key(ca_id=ca_id, ca_name="CN=Test CA", user_cert_no=serial,
                                 subscriber_public_key_info=subscriber_spki, not_before=now,
                                 not_after=now + dt.timedelta(days=365),
                                 recipient=Party(subject_name((("common_name", "Test CA"),)), serial))
