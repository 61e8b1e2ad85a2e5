"""``store.db.HotReader``'s read without waiting (``open_nowait`` / ``start`` / ``PendingRows``): a statement
sent on a non-blocking PostgreSQL connection of the process's own, whose answer a serving worker's main
thread waits for on its poller (``racentre.arbiter``). It sees every commit made before it was sent, the
same rows ``rows`` reads; a connection the server ends is dropped and reopened; SQLite never reads so
(``rows`` on a thread that may wait)."""
from __future__ import annotations

import contextlib
import select

import pytest
from sqlalchemy import text

from store.db import HotReader
from tests.pgschema import empty_engine

SQL = "SELECT id, value FROM hot_probe WHERE id >= ? ORDER BY id"


@contextlib.contextmanager
def _engine(kind: str, directory):
    with empty_engine(kind, directory, "hot") as engine:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE hot_probe (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)"))
            conn.execute(text("INSERT INTO hot_probe VALUES (1, 10), (2, 20)"))
        yield engine


@pytest.fixture
def engine(tmp_path):
    """PostgreSQL (a fresh schema): the only database read without waiting."""
    with _engine("postgresql", tmp_path) as engine:
        yield engine


def _wait(pending, timeout: float = 10.0):
    """As the worker's poller does: readable, then ``ready()`` until the whole answer is in."""
    waiter = select.poll()
    waiter.register(pending.fileno(), select.POLLIN)
    while True:
        assert waiter.poll(timeout * 1000), "no answer from PostgreSQL"
        if pending.ready():
            return pending.result()


def _ints(rows):
    return [(int(a), int(b)) for a, b in rows]


def test_sqlite_never_reads_without_waiting(tmp_path):
    with _engine("sqlite", tmp_path) as engine:
        reader = HotReader(engine)
        reader.open_nowait(SQL)
        assert reader.start(SQL, (1,), _ints) is None
        assert _ints(reader.rows(SQL, (1,))) == [(1, 10), (2, 20)]


@pytest.mark.postgres
def test_a_read_without_waiting_sees_what_was_committed_before_it(engine):
    reader = HotReader(engine)
    assert reader.start(SQL, (1,), _ints) is None            # not opened yet: the caller reads the usual way
    reader.open_nowait(SQL)
    reader.open_nowait(SQL)                                  # once
    with pytest.raises(ValueError):
        reader.open_nowait("SELECT 1")                       # one statement per reader
    pending = reader.start(SQL, (1,), _ints)
    assert pending is not None
    assert reader.start(SQL, (1,), _ints) is None            # busy with the first: never two at once
    assert _wait(pending) == [(1, 10), (2, 20)] == _ints(reader.rows(SQL, (1,)))

    with engine.begin() as conn:                             # committed by another connection (another node)
        conn.execute(text("UPDATE hot_probe SET value = 21 WHERE id = 2"))
        conn.execute(text("INSERT INTO hot_probe VALUES (3, 30)"))
    assert _wait(reader.start(SQL, (2,), _ints)) == [(2, 21), (3, 30)]
    assert _wait(reader.start(SQL, (3,), list)) == [("3", "30")]   # values as PostgreSQL sends text


@pytest.mark.postgres
def test_a_connection_the_server_ended_is_dropped_and_reopened(engine):
    reader = HotReader(engine)
    reader.open_nowait(SQL)
    backend = reader._nowait[0].dbapi_connection.pgconn.backend_pid
    with engine.begin() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend}).scalar()
    with pytest.raises(reader.errors):                       # on sending or on reading the answer
        pending = reader.start(SQL, (1,), _ints)
        assert pending is not None
        _wait(pending)
    assert reader.start(SQL, (1,), _ints) is None            # dropped: the caller reads the usual way
    reader.open_nowait(SQL)                                  # (the OCSP batch thread reopens it)
    assert reader._nowait[0].dbapi_connection.pgconn.backend_pid != backend
    assert _wait(reader.start(SQL, (1,), _ints)) == [(1, 10), (2, 20)]


@pytest.mark.postgres
def test_an_abandoned_read_closes_its_connection(engine):
    reader = HotReader(engine)
    reader.open_nowait(SQL)
    first = reader.start(SQL, (1,), _ints)
    first.abandon()                                          # too slow for the worker: given up
    assert reader.start(SQL, (1,), _ints) is None
    reader.open_nowait(SQL)
    second = reader.start(SQL, (1,), _ints)
    first.abandon()                                          # a stale handle never closes the new connection
    assert _wait(second) == [(1, 10), (2, 20)]
