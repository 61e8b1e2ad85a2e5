"""Alembic: the migrated schema is exactly what the models declare (every package's tables), on SQLite
and PostgreSQL, and upgrading twice is a no-op."""
from __future__ import annotations

import pytest
import sqlalchemy

from store.db import Base
from racentre.migrate import differences, import_models, upgrade
from tests.pgschema import empty_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_engine(request, tmp_path):
    with empty_engine(request.param, tmp_path, "migrated") as engine:
        yield engine


def test_migrated_schema_matches_the_models(fresh_engine):
    upgrade(fresh_engine)
    upgrade(fresh_engine)           # idempotent
    assert differences(fresh_engine) == []
    import_models()
    tables = set(sqlalchemy.inspect(fresh_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    for prefix in ("ra_", "ca_", "kms_", "tsa_", "seal"):
        assert any(t.startswith(prefix) for t in tables), prefix
