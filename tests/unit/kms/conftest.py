"""KMC fixtures: a KeyEscrow over the shared software token (random labels) and the db fixture."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import func, select

from kms.config import KmsConfig
from kms.escrow import KeyEscrow
from kms.models import TABLES
from pkicore.audit import AuditEvent
from kms.recovery import ApprovalBook, Officer
from pkicore.envelope import Party
from kms.identity import subject_name
from tests.unit.kms.subscriber import openssl_sm2_key

OFFICERS = [Officer(f"officer-{i}", frozenset({"key_recovery_officer"})) for i in range(1, 4)]


def make_escrow(km, db, **config) -> KeyEscrow:
    escrow = KeyEscrow(km, db, KmsConfig(key_prefix=f"kmc-{secrets.token_hex(4)}", **config))
    escrow.setup()
    return escrow


def wipe(db) -> None:
    """One KMC per database: each test starts from empty KMC tables (the db fixture is session-wide)."""
    with db() as s, s.begin():
        for table in reversed(TABLES):
            s.execute(table.delete())


@pytest.fixture
def escrow(softtoken_km, db):
    wipe(db)
    with db() as s:
        mark = s.scalar(select(func.max(AuditEvent.id))) or 0
    escrow = make_escrow(softtoken_km, db)
    escrow.test_audit_mark = mark
    return escrow


def audit(escrow, target_type: str | None = None, target_id=None) -> list[str]:
    """Audit actions written since the test's KMC was created (optionally for one target)."""
    q = select(AuditEvent).where(AuditEvent.id > escrow.test_audit_mark).order_by(AuditEvent.id)
    if target_type:
        q = q.where(AuditEvent.target_type == target_type)
    if target_id is not None:
        q = q.where(AuditEvent.target_id == str(target_id))
    with escrow.db() as s:
        return [e.action for e in s.scalars(q)]


@pytest.fixture
def book(escrow):
    return ApprovalBook(escrow.db, escrow.config)


@pytest.fixture(scope="session")
def subscriber(tmp_path_factory):
    """(d, SPKI) of the subscriber's signing key, made by OpenSSL."""
    return openssl_sm2_key(tmp_path_factory.mktemp("sub") / "sign.pem")


def escrow_one(escrow, subscriber_spki, serial=None, ca_id="ca-test"):
    serial = serial or secrets.randbits(63)
    now = dt.datetime.now(dt.timezone.utc)
    return escrow.escrow_new_key(ca_id=ca_id, ca_name="CN=Test CA", user_cert_no=serial,
                                 subscriber_public_key_info=subscriber_spki, not_before=now,
                                 not_after=now + dt.timedelta(days=365),
                                 recipient=Party(subject_name((("common_name", "Test CA"),)), serial))
