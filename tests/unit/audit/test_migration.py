"""The Alembic revision chains audit rows written before it into one legacy writer, on SQLite and
PostgreSQL; the trail then verifies and new rows chain in writers of their own."""
from __future__ import annotations

import datetime as dt
import importlib.util

import pytest
from sqlalchemy import text

from store.db import make_session_factory, transaction
from audit.trail import record
from racentre.migrate import MIGRATIONS, upgrade
from racentre.audit import verify
from tests.pgschema import empty_engine

_spec = importlib.util.spec_from_file_location("audit_rev", MIGRATIONS / "versions" / "980db7b06bb6_audit_hash_chains_per_writer_and_signed_.py")
REVISION = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(REVISION)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    with empty_engine(request.param, tmp_path, "legacy") as eng:
        yield eng


def test_existing_rows_are_chained_by_the_upgrade(engine):
    upgrade(engine, REVISION.down_revision)
    with engine.begin() as conn:
        for i in range(5):
            conn.execute(text("insert into audit_event (at, actor, role, action, target_type, target_id, detail) "
                              "values (:at, 'old', 'ra_officer', 'request.approve', 'request', :t, :d)"),
                         {"at": dt.datetime(2025, 1, 1, 9, i, tzinfo=dt.timezone.utc), "t": str(i),
                          "d": '{"note": "旧记录", "i": %d}' % i})
    upgrade(engine)
    with engine.connect() as conn:
        legacy = conn.execute(text("select writer_id, seq from audit_event order by id")).all()
    assert legacy == [(REVISION.LEGACY_WRITER, s) for s in range(1, 6)]
    db = make_session_factory(engine)
    with transaction(db) as session:
        record(session, actor="new", role="ra_officer", action="request.approve", target_type="request", target_id=9)
    result = verify(db, None)
    assert result.ok and result.rows == 6 and result.writers == 2, result.problems
