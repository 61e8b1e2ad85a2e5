"""Audit test helpers: a second engine on the same database (a second node), a small trail of two
writers with a checkpoint, and SQL tampering straight in the database."""
from __future__ import annotations

import secrets

from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit.trail import bind_node, record
from store.db import make_engine, make_session_factory, transaction
from racentre.audit import checkpoint

LABEL = "audit-test"


def engine_of(factory) -> Engine:
    return factory.kw["bind"]


def second_node(factory, node: str):
    """Another engine on the same database (SQLite file or PostgreSQL schema) writing as ``node``."""
    engine = engine_of(factory)
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":
        other = make_engine(url)
    else:
        with engine.connect() as conn:
            path = conn.exec_driver_sql("show search_path").scalar()
        other = make_engine(url, connect_args={"options": f"-csearch_path={path}"})
    bind_node(other, node)
    return make_session_factory(other)


def add(factory, n: int = 1, actor: str = "officer-1", **detail) -> None:
    with transaction(factory) as session:
        for _ in range(n):
            record(session, actor=actor, role="ra_officer", action="request.approve", target_type="request",
                   target_id=secrets.token_hex(4), note="四眼原则 approved", **detail)


def build_trail(factory, other, km, *, after: int = 2) -> None:
    """Two nodes interleaved (6 transactions each), a checkpoint, then ``after`` more rows per node."""
    for i in range(6):
        add(factory, actor="officer-a", i=i, amount=1.5, nested={"z": [1, "二"], "a": None})
        add(other, actor="officer-b", i=i)
    checkpoint(factory, km, key_label=LABEL)
    for i in range(after):
        add(factory, actor="officer-a", i=100 + i)
        add(other, actor="officer-b", i=100 + i)


def rows(factory) -> list[dict]:
    with engine_of(factory).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(
            "select id, writer_id, seq, prev_hash, hash, actor from audit_event order by writer_id, seq"))]


def sql(factory, statement: str, **params) -> None:
    with engine_of(factory).begin() as conn:
        conn.execute(text(statement), params)


def named(result, kind: str, **where) -> list:
    """The problems of ``kind`` naming the given row_id / writer / seq / checkpoint."""
    return [p for p in result.problems
            if p.kind == kind and all(getattr(p, k) == v for k, v in where.items())]
