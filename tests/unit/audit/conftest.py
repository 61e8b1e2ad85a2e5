"""A fresh database per test for the tampering tests (SQLite and PostgreSQL), so an edited trail never
leaks into another test."""
from __future__ import annotations

import pytest

from audit.trail import bind_node
from store.db import make_session_factory
from tests.pgschema import models_engine
from tests.unit.audit.helpers import second_node


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path):
    with models_engine(request.param, tmp_path, "audit") as engine:
        yield make_session_factory(engine)


@pytest.fixture
def nodes(fresh_db):
    """(node-a, node-b): two engines on the fresh database, each a node of its own."""
    bind_node(fresh_db.kw["bind"], "node-a")
    other = second_node(fresh_db, "node-b")
    yield fresh_db, other
    other.kw["bind"].dispose()
