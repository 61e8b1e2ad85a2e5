"""A fresh database per test for the tampering tests (SQLite and PostgreSQL), so an edited trail never
leaks into another test."""
from __future__ import annotations

import pytest

from pkicore.audit import bind_node
from pkicore.db import Base, make_engine, make_session_factory
from racentre.migrate import import_models
from tests.pgschema import POSTGRES_URL, postgres_unreachable, schema_engine
from tests.unit.audit.helpers import second_node


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path):
    import_models()
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'audit.db'}")
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)
        engine.dispose()
        return
    why = postgres_unreachable()
    if why:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({why})")
    with schema_engine("a") as engine:
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)


@pytest.fixture
def nodes(fresh_db):
    """(node-a, node-b): two engines on the fresh database, each a node of its own."""
    bind_node(fresh_db.kw["bind"], "node-a")
    other = second_node(fresh_db, "node-b")
    yield fresh_db, other
    other.kw["bind"].dispose()
