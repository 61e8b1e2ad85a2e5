"""Alembic: the migrated schema is exactly what the models declare (every package's tables), on SQLite
and PostgreSQL, and upgrading twice is a no-op."""
from __future__ import annotations

import pytest
import sqlalchemy

from pkicore.db import Base, make_engine
from racentre.migrate import differences, import_models, upgrade
from tests.pgschema import POSTGRES_URL, postgres_unreachable, schema_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_engine(request, tmp_path):
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
        yield engine
        engine.dispose()
        return
    why = postgres_unreachable()
    if why:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({why})")
    with schema_engine("m") as engine:
        yield engine


def test_migrated_schema_matches_the_models(empty_engine):
    upgrade(empty_engine)
    upgrade(empty_engine)           # idempotent
    assert differences(empty_engine) == []
    import_models()
    tables = set(sqlalchemy.inspect(empty_engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    for prefix in ("ra_", "ca_", "kms_", "tsa_", "seal"):
        assert any(t.startswith(prefix) for t in tables), prefix
