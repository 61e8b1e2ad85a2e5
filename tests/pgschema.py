"""PostgreSQL for the tests (CI: 127.0.0.1:5432, trust auth, database ``test``): reachability and a
throw-away schema per use, so concurrent runs never see each other's tables."""
from __future__ import annotations

import contextlib
import os
import secrets

import sqlalchemy

from pkicore.db import make_engine

POSTGRES_URL = os.environ.get("RACENTRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def postgres_unreachable() -> str | None:
    """None when PostgreSQL answers, else why not (for the skip message)."""
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


@contextlib.contextmanager
def schema_engine(prefix: str = "t"):
    """An engine whose search_path is a fresh schema, dropped on exit."""
    schema = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(POSTGRES_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
