"""Databases for the tests: PostgreSQL (CI: 127.0.0.1:5432, trust auth, database ``test``) reachability, a
throw-away schema per use so concurrent runs never see each other's tables, and an empty SQLite or
PostgreSQL engine for the fixtures that run a test on both."""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy

from store.db import make_engine
from racentre.migrate import upgrade

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


def url_of(engine) -> str:
    """A database URL for ``engine``'s fresh schema (for code that builds its own engine from a URL)."""
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("select current_schema()").scalar()
    return f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def empty_engine(kind: str, directory: Path, prefix: str = "t"):
    """An engine on an empty database: ``kind`` "sqlite" (a file in ``directory``) or "postgresql" (a
    fresh schema, dropped on exit; the test is skipped, saying why, when no server answers)."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{directory / f'{prefix}.db'}")
        try:
            yield engine
        finally:
            engine.dispose()
        return
    why = postgres_unreachable()
    if why:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({why})")
    with schema_engine(prefix) as engine:
        yield engine


def migrated(url: str) -> str:
    """Bring the database at ``url`` to this code's schema, as `racentre db upgrade` does, and return
    ``url``. Services and every command but `racentre setup` / `db upgrade` refuse a database at any
    other revision, so a test that hands a fresh database to a ``racentre.services.Services`` or to a
    `racentre` subprocess calls this first (``database_url`` does)."""
    engine = make_engine(url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def database_url(kind: str, directory: Path, prefix: str = "t"):
    """A URL of a fresh database at this code's schema (``migrated``) for a service container."""
    if kind == "sqlite":
        yield migrated(f"sqlite:///{directory / f'{prefix}.db'}")
        return
    with empty_engine(kind, directory, prefix) as engine:
        yield migrated(url_of(engine))
