"""store.db.SqliteWriterLock: SQLite write transactions take a mutex + flock before BEGIN IMMEDIATE and
give it back after COMMIT/ROLLBACK, so waiting writers are handed the database at once (instead of
sleeping in SQLite's busy handler) and no transaction is lost or interleaved."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from store.db import SqliteWriterLock, make_engine


@pytest.fixture
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'lock.db'}")
    with eng.begin() as conn:
        conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    yield eng
    eng.dispose()


def _increment(eng, times: int) -> None:
    for _ in range(times):
        with eng.begin() as conn:      # read-modify-write: lost updates if two ever interleaved
            n = conn.execute(text("SELECT n FROM counter WHERE id = 1")).scalar_one()
            conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})


def test_threads_serialise_without_lost_updates_or_busy_errors(engine):
    threads = [threading.Thread(target=_increment, args=(engine, 100)) for _ in range(16)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 1600
    # 1600 tiny transactions: the busy handler's sleeps would take many seconds; a handed-over lock doesn't
    assert elapsed < 20, elapsed


def _child_increments(url: str, times: int) -> None:
    eng = make_engine(url)
    _increment(eng, times)
    eng.dispose()


def test_processes_serialise_through_the_lock_file(engine, tmp_path):
    url = str(engine.url)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_child_increments, args=(url, 150)) for _ in range(2)]
    for p in procs:
        p.start()
    _increment(engine, 150)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 450
    assert (tmp_path / "lock.db-writelock").exists()


def test_the_lock_is_given_back_after_commit_rollback_and_errors(engine, tmp_path):
    lock = SqliteWriterLock.for_file(str(tmp_path / "lock.db"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE counter SET n = 5"))
        assert lock._mutex.locked()
    assert not lock._mutex.locked()
    with pytest.raises(RuntimeError):
        with engine.begin() as conn:
            conn.execute(text("UPDATE counter SET n = 6"))
            raise RuntimeError("boom")
    assert not lock._mutex.locked()
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO counter VALUES (1, 0)"))     # primary key violation
    assert not lock._mutex.locked()
    with engine.connect() as conn:                                      # a plain session (read) ends too
        conn.execute(text("SELECT n FROM counter")).scalar_one()
    assert not lock._mutex.locked()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 5


def test_a_writer_that_never_gets_the_lock_fails_with_a_clear_error(engine, tmp_path):
    lock = SqliteWriterLock.for_file(str(tmp_path / "lock.db"))
    lock.acquire()
    try:
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            SqliteWriterLock.for_file(str(tmp_path / "lock.db")).acquire(timeout=0.2)
    finally:
        lock.release()
    with engine.begin() as conn:                                        # and the database is usable after
        conn.execute(text("UPDATE counter SET n = 7"))


def test_memory_databases_need_no_lock():
    eng = make_engine("sqlite://")
    with eng.begin() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    eng.dispose()


def test_reading_takes_no_writer_lock_and_refuses_to_write(engine, tmp_path):
    from sqlalchemy import Column, Integer, MetaData, Table
    from sqlalchemy.orm import registry

    from store.db import make_session_factory, reading
    lock = SqliteWriterLock.for_file(str(tmp_path / "lock.db"))
    factory = make_session_factory(engine)
    lock.acquire()                      # a writer holds the database: a reader still reads at once
    try:
        t0 = time.perf_counter()
        with reading(factory) as session:
            assert session.execute(text("SELECT n FROM counter")).scalar_one() == 0
        assert time.perf_counter() - t0 < 1.0
    finally:
        lock.release()

    class Counter:
        pass

    table = Table("counter", MetaData(), Column("id", Integer, primary_key=True), Column("n", Integer))
    registry().map_imperatively(Counter, table)
    with pytest.raises(RuntimeError, match="read-only"):
        with reading(factory) as session:
            session.get(Counter, 1).n = 99
            session.flush()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT n FROM counter")).scalar_one() == 0


def test_new_sqlite_database_is_private(tmp_path):
    """Issue 15: the default database holds full identity numbers; a new one is created 0600 in a folder
    created 0700, and SQLite's -wal/-shm files follow the database file's mode."""
    import stat

    from sqlalchemy import text

    from store.db import make_engine
    path = tmp_path / "site" / "var" / "racentre.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("create table t (x integer)"))
        conn.execute(text("insert into t values (1)"))
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert mode(path.with_name("racentre.db-wal")) == 0o600
    engine.dispose()
