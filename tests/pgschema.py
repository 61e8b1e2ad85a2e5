"""Databases for the tests: PostgreSQL (CI: 127.0.0.1:5432, trust auth, database ``test``) reachability, a
throw-away schema per use so concurrent runs never see each other's tables, and an empty SQLite or
PostgreSQL engine for the fixtures that run a test on both."""
from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import pytest
import sqlalchemy

from store.db import Base, make_engine
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


@contextlib.contextmanager
def models_engine(kind: str, directory: Path, prefix: str = "t"):
    """``empty_engine`` with the models' tables made (``Base.metadata.create_all``); a SQLite file is a copy
    of one made so once per process (``fresh_sqlite``)."""
    from racentre.migrate import import_models
    import_models()
    if kind == "sqlite":
        fresh_sqlite(directory / f"{prefix}.db", "models", Base.metadata.create_all)
        with empty_engine(kind, directory, prefix) as engine:
            yield engine
        return
    with empty_engine(kind, directory, prefix) as engine:
        Base.metadata.create_all(engine)
        yield engine


_TEMPLATES: dict[str, Path] = {}


def fresh_sqlite(path: Path | str, key: str, build: Callable) -> None:
    """Make ``path``, a new SQLite file (0600, as ``store.db`` makes one), a copy of the database that
    ``build(engine)`` made once in this process under the name ``key`` (SQLite's backup API: a consistent
    copy whatever the journal mode). Making the schema costs 15 ms (create_all) to 70 ms (the migrations)
    of CPU; the copy, under 1 ms."""
    template = _TEMPLATES.get(key)
    if template is None:
        folder = Path(tempfile.mkdtemp(prefix="racentre-sqlite-templates-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / f"{key}.db"
        engine = make_engine(f"sqlite:///{template}")
        try:
            build(engine)
        finally:
            engine.dispose()
        _TEMPLATES[key] = template
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    with contextlib.closing(sqlite3.connect(template)) as source, contextlib.closing(sqlite3.connect(path)) as copy:
        source.backup(copy)


def migrated(url: str) -> str:
    """Bring the database at ``url`` to this code's schema, as `racentre db upgrade` does, and return
    ``url``. Services and every command but `racentre setup` / `db upgrade` refuse a database at any
    other revision, so a test that hands a fresh database to a ``racentre.services.Services`` or to a
    `racentre` subprocess calls this first (``database_url`` does). A SQLite file that does not exist yet
    is a copy of one migrated once per process (``fresh_sqlite``)."""
    path = sqlalchemy.engine.make_url(url).database if url.startswith("sqlite") else None
    if path and path != ":memory:" and not path.startswith("file:") and not os.path.exists(path):
        fresh_sqlite(path, "migrated", upgrade)
        return url
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
