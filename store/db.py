"""SQL persistence plumbing shared by every package: one declarative Base, engines and sessions.

SQLite is the embedded default, PostgreSQL the production database (SQLAlchemy 2.x). Schema changes go
through Alembic (``migrations/``); ``create_all`` is used only by tests of a single package.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from sqlalchemy import MetaData, bindparam, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "ck": "ck_%(table_name)s_%(constraint_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    """Timezone-aware UTC now (stored as UTC; SQLite gives naive values back, see ``as_utc``)."""
    return dt.datetime.now(dt.timezone.utc)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.timezone.utc)


SQLITE_LOCK_TIMEOUT = 30.0
READ_ONLY = "racentre_read_only"        # execution option set by ``reading``


class SqliteWriterLock:
    """One SQLite write transaction at a time per database file, across the threads of a process
    (a mutex) and across processes (``flock`` on ``<file>-writelock``), taken before BEGIN IMMEDIATE
    and given back after COMMIT or ROLLBACK.

    SQLite itself serialises writers too, but a writer that finds the database locked sleeps in its busy
    handler (1, 2, 5 ... 100 ms) and is not woken when the lock is free: with a few dozen request threads
    the database then sits idle while they sleep (p99 of seconds). Waiting here hands the lock over at
    once. SQLite's own locking stays underneath for any process that does not take this lock."""

    _registry: dict[tuple[int, str], "SqliteWriterLock"] = {}
    _registry_lock = threading.Lock()

    def __init__(self, path: str):
        self.path = path
        self._mutex = threading.Lock()
        self._fd: int | None = None

    @classmethod
    def for_file(cls, path: str) -> "SqliteWriterLock":
        """The process's lock for ``path`` (per pid: a forked worker gets its own mutex and descriptor)."""
        key = (os.getpid(), os.path.realpath(path))
        with cls._registry_lock:
            lock = cls._registry.get(key)
            if lock is None:
                lock = cls._registry[key] = cls(key[1])
            return lock

    def acquire(self, timeout: float = SQLITE_LOCK_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        if not self._mutex.acquire(timeout=timeout):
            raise sqlite3.OperationalError(f"database is locked (no write transaction within {timeout:.0f} s)")
        try:
            if self._fd is None:
                self._fd = os.open(self.path + "-writelock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            pause = 5e-5
            while True:           # another process holds it: poll (only one thread of ours waits here)
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError(
                            f"database is locked (no write transaction within {timeout:.0f} s)") from None
                    time.sleep(pause)
                    pause = min(pause * 2, 5e-4)
        except BaseException:
            self._mutex.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._mutex.release()


class _LockingConnection(sqlite3.Connection):
    """pysqlite connection that gives the writer lock back once its transaction has ended."""

    writer_lock: SqliteWriterLock | None = None
    holds_writer_lock = False

    def _give_back(self) -> None:
        if self.holds_writer_lock:
            self.holds_writer_lock = False
            self.writer_lock.release()

    def commit(self) -> None:
        super().commit()          # a failed COMMIT leaves the transaction open: rollback gives the lock back
        self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def _sqlite_file(url: str) -> str | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


def _private_sqlite_file(path: str) -> None:
    """Create a new SQLite database file 0600 in a folder created 0700: it holds full identity numbers.
    SQLite gives its -wal and -shm files the database file's permissions. An existing file is left as
    the operator set it."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def make_engine(url: str, **kwargs) -> Engine:
    """An engine with the settings we rely on: SQLite foreign keys, WAL and one writer at a time
    (``SqliteWriterLock``), a new database file private to its owner; PostgreSQL pre-ping."""
    if url.startswith("sqlite"):
        path = _sqlite_file(url)
        if path is not None:
            _private_sqlite_file(path)
        connect_args = {"check_same_thread": False, "timeout": SQLITE_LOCK_TIMEOUT}
        if path is not None:
            connect_args["factory"] = _LockingConnection
        kwargs.setdefault("connect_args", connect_args)
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Leave transaction control to SQLAlchemy's events below (pysqlite's own is broken).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # BEGIN IMMEDIATE: writers serialise at the start, so read-then-write never deadlocks.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")       # deferred: a WAL reader neither waits nor blocks anyone
                return
            dbapi_conn = conn.connection.dbapi_connection
            if isinstance(dbapi_conn, _LockingConnection) and not dbapi_conn.holds_writer_lock:
                lock = SqliteWriterLock.for_file(path)
                lock.acquire()
                dbapi_conn.writer_lock, dbapi_conn.holds_writer_lock = lock, True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                if isinstance(dbapi_conn, _LockingConnection):
                    dbapi_conn._give_back()
                raise

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


IDS = bindparam("ids", expanding=True)
"""The expanding ``ids`` parameter of statements read with ``select_in``: ``... .where(Table.id.in_(IDS))``."""
IN_CHUNK = 500                                   # ids per IN (...) list


def select_in(connection, statement, ids) -> list:
    """The rows of ``statement`` (a SELECT filtering on ``IDS``) for any number of ids: distinct, not
    None, ascending, at most ``IN_CHUNK`` per statement, so row locks a statement takes (FOR UPDATE) are
    taken in id order and concurrent batches never deadlock."""
    wanted = sorted({i for i in ids if i is not None})
    rows = []
    for i in range(0, len(wanted), IN_CHUNK):
        rows += connection.execute(statement, {"ids": wanted[i:i + IN_CHUNK]}).all()
    return rows


_AFTER_COMMIT = "store.db.after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback()`` once the unit of work ``session`` belongs to (``transaction``) has committed:
    after COMMIT returned and the session is closed, outside SQLAlchemy's commit hooks, so it may do
    I/O (e.g. a GM/T 0014 request) without holding the transaction. Never run when it rolls back; a
    callback must itself check what a rolled-back savepoint may have taken back. A session not opened
    by ``transaction`` never runs them (the caller's work must then not depend on them: an outbox)."""
    session.info.setdefault(_AFTER_COMMIT, []).append(callback)


@contextmanager
def transaction(factory: sessionmaker[Session]):
    """One unit of work: commit on success, roll back on any exception (nothing half-written); then
    the ``after_commit`` callbacks, in order."""
    with factory() as session:
        try:
            with session.begin():
                yield session
        finally:
            callbacks = session.info.pop(_AFTER_COMMIT, ())
    for callback in callbacks:
        callback()


@contextmanager
def reading(factory: sessionmaker[Session]):
    """A unit of work that only reads (a token look-up, a pre-check): on SQLite a deferred transaction
    that takes no writer lock, so it never queues behind writers; rolled back at the end. Writing in it
    is refused (a flush raises), so a misuse cannot slip past the writer lock."""
    with factory() as session:
        session.connection(execution_options={READ_ONLY: True})
        session.info[READ_ONLY] = True
        try:
            yield session
        finally:
            session.rollback()


@event.listens_for(Session, "before_flush")
def _no_writes_when_reading(session: Session, _context, _instances) -> None:
    if session.info.get(READ_ONLY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError("a read-only unit of work (store.db.reading) tried to write")


def lock_key(schema: str, name: str) -> int:
    """The 64-bit PostgreSQL advisory lock key of ``name`` in ``schema`` (signed, as bigint takes it)."""
    return int.from_bytes(hashlib.sha256(f"racentre\0{schema}\0{name}".encode()).digest()[:8], "big", signed=True)


_MEMORY_LOCKS: dict[str, threading.Lock] = {}
_MEMORY_LOCKS_GUARD = threading.Lock()


@contextmanager
def named_lock(engine: Engine, name: str):
    """Hold the lock ``name`` of this database: one holder at a time among every thread, process and host
    that uses the same database (and, on PostgreSQL, the same schema). It needs no table, so it also
    guards work on an empty database (the schema upgrade, site set-up) and work outside the database
    (creating an HSM key once for every node sharing the token).

    PostgreSQL: a session-level advisory lock (``pg_advisory_lock``, PostgreSQL docs §13.3.5) on a
    connection kept for the duration, keyed by ``lock_key(current_schema(), name)``; a node that dies
    loses its session and so the lock. SQLite (one host by nature): ``flock`` on
    ``<database>-locks/<hash of name>``, opened anew for each holder, so threads of one process exclude
    each other too; an in-memory database: a process lock."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("select current_schema()")).scalar_one()
            key = lock_key(schema, name)
            conn.execute(text("select pg_advisory_lock(:k)"), {"k": key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("select pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    path = _sqlite_file(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if path is None:
        with _MEMORY_LOCKS_GUARD:
            lock = _MEMORY_LOCKS.setdefault(name, threading.Lock())
        with lock:
            yield
        return
    directory = Path(os.path.realpath(path) + "-locks")
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory / hashlib.sha256(name.encode()).hexdigest()[:32], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)              # closing the only descriptor of this open file gives the flock back


class HotReader:
    """Hot-path reads straight on the DBAPI: one autocommit connection per thread, kept (no pool
    checkout, pre-ping or ORM per call), and each statement its own implicit transaction, so it sees
    everything committed before it started (SQLite WAL, PostgreSQL READ COMMITTED). For the few
    statements that run thousands of times a second (the OCSP responder's status look-up); write with
    a ``transaction`` as usual. Statements are written with ``?`` placeholders; rows are DBAPI tuples
    (SQLite hands datetimes back as text: see ``db_datetime``). A connection that fails is dropped and
    the statement retried once on a new one (a restarted PostgreSQL). The connections come from a pool of
    their own (``Pool.recreate``: same settings and connect events as the engine's), so holding one per
    thread never takes a connection the engine's sessions need."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._pool = engine.pool.recreate()
        self._qmark = engine.dialect.paramstyle == "qmark"
        self._local = threading.local()
        self.errors = (engine.dialect.loaded_dbapi.Error, SQLAlchemyError)   # what ``rows`` may raise
        self._nowait_lock = threading.Lock()
        self._nowait_pid, self._nowait, self._nowait_busy = os.getpid(), None, False   # ``start``'s connection

    def _connection(self):
        local = self._local
        if getattr(local, "pid", None) != os.getpid():         # never a connection inherited over fork
            local.pid, local.conn = os.getpid(), None
        if local.conn is None:
            conn = self._pool.connect()
            if self.engine.dialect.name == "sqlite":
                conn.dbapi_connection.isolation_level = None     # already so (make_engine); made sure
            else:
                conn.rollback()                                 # the pool's pre-ping may have begun one
                conn.dbapi_connection.autocommit = True
            local.conn = conn
        return local.conn

    # -------------------------------------------------------- without waiting (a serving worker's main thread)
    def open_nowait(self, sql: str) -> None:
        """Open the connection ``start`` uses for ``sql`` (one statement per reader), if there is none, and
        prepare the statement on it. PostgreSQL only (a SQLite read is a file read: ``rows`` on a thread that
        may wait). Blocks on the database: call it from a thread that may wait, never from the one ``start``
        serves; the connection is handed over whole, prepared."""
        if self.engine.dialect.name != "postgresql":
            return
        from psycopg import pq                          # PostgreSQL's driver (loaded already)
        if self._nowait_pid != os.getpid():             # never a connection inherited over fork
            self._nowait_pid, self._nowait, self._nowait_busy = os.getpid(), None, False
            self._nowait_lock = threading.Lock()
        with self._nowait_lock:
            current = self._nowait
            if current is not None:
                if current[1] != sql:
                    raise ValueError("a HotReader reads one statement without waiting")
                return
            conn = self._pool.connect()
            try:
                conn.rollback()                         # the pool's pre-ping may have begun one
                conn.dbapi_connection.autocommit = True
                res = conn.dbapi_connection.pgconn.prepare(_NOWAIT_STATEMENT, _numbered(sql).encode())
                if res.status != pq.ExecStatus.COMMAND_OK:
                    raise self.engine.dialect.loaded_dbapi.Error((res.error_message or b"").decode(errors="replace"))
            except BaseException:
                conn.invalidate()
                raise
            self._nowait = (conn, sql)

    def start(self, sql: str, params: tuple, convert: Callable = list) -> "PendingRows | None":
        """``rows(sql, params)`` through ``convert``, sent without the calling thread waiting on the database
        (a serving worker's main thread, which reads every client's requests): a ``PendingRows``, the
        statement (prepared by ``open_nowait``) sent on a non-blocking connection of this process's own.
        None — not now: no such connection is open (``open_nowait``; SQLite never has one), or it is busy
        with an earlier statement; the caller then reads with ``rows`` on a thread that may wait. Raises the
        driver's errors (the connection is dropped; ``open_nowait`` opens another). One thread calls it."""
        current = self._nowait
        if current is None or current[1] != sql or self._nowait_busy or self._nowait_pid != os.getpid():
            return None
        pg = current[0].dbapi_connection.pgconn
        try:
            pg.nonblocking = 1
            pg.send_query_prepared(_NOWAIT_STATEMENT, [str(p).encode() for p in params])
            if pg.flush() != 0:                         # not all sent without waiting: never expected when idle
                self._drop_nowait()
                return None
        except self.errors:
            self._drop_nowait()
            raise
        self._nowait_busy = True
        return PendingRows(self, pg, convert)

    def _drop_nowait(self) -> None:
        current, self._nowait, self._nowait_busy = self._nowait, None, False
        if current is not None:
            try:
                current[0].invalidate()
            except Exception:  # noqa: BLE001 - the connection is gone either way
                pass

    def _sql(self, sql: str) -> str:
        return sql if self._qmark else sql.replace("?", "%s")

    def rows(self, sql: str, params: tuple) -> list[tuple]:
        sql = self._sql(sql)
        for attempt in (0, 1):
            conn = self._connection()
            try:
                cursor = conn.dbapi_connection.cursor()
                try:
                    cursor.execute(sql, params)
                    return cursor.fetchall()
                finally:
                    cursor.close()
            except self.engine.dialect.loaded_dbapi.Error:
                self._local.conn = None
                try:
                    conn.invalidate()
                except Exception:  # noqa: BLE001 - the connection is gone either way
                    pass
                if attempt:
                    raise
        raise AssertionError("unreachable")


_NOWAIT_STATEMENT = b"racentre_hot"          # the name of ``HotReader.start``'s prepared statement


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's own ``$1, $2 ...`` (a prepared statement's)."""
    parts = sql.split("?")
    return "".join(part + (f"${i + 1}" if i < len(parts) - 1 else "") for i, part in enumerate(parts))


class PendingRows:
    """A statement ``HotReader.start`` sent on its non-blocking PostgreSQL connection: wait until
    ``fileno()`` is readable, call ``ready()`` (True once the whole result is in; it may raise the driver's
    errors), then ``result()``. ``abandon()`` gives the statement up (the connection is closed)."""

    __slots__ = ("_reader", "_pg", "_convert", "_rows", "_error")

    def __init__(self, reader: "HotReader", pg, convert: Callable):
        self._reader, self._pg, self._convert = reader, pg, convert
        self._rows: list[tuple] = []
        self._error: str | None = None

    def fileno(self) -> int:
        return self._pg.socket

    def ready(self) -> bool:
        from psycopg import pq                      # PostgreSQL only: psycopg is loaded already
        pg = self._pg
        try:
            pg.consume_input()
            while not pg.is_busy():
                res = pg.get_result()
                if res is None:                     # the statement is over: the connection is idle again
                    self._reader._nowait_busy = False
                    if self._error is not None:
                        raise self._reader.engine.dialect.loaded_dbapi.Error(self._error)
                    return True
                if res.status == pq.ExecStatus.TUPLES_OK:
                    self._rows = [tuple(None if v is None else v.decode() for v in
                                        (res.get_value(r, c) for c in range(res.nfields)))
                                  for r in range(res.ntuples)]
                else:
                    self._error = (res.error_message or b"").decode(errors="replace") or str(res.status)
        except self._reader.engine.dialect.loaded_dbapi.Error:
            self._reader._drop_nowait()
            raise
        return False

    def result(self):
        """The rows (values as text, as PostgreSQL sends them), through the caller's ``convert``."""
        return self._convert(self._rows)

    def abandon(self) -> None:
        current = self._reader._nowait
        if current is not None and current[0].dbapi_connection.pgconn is self._pg:
            self._reader._drop_nowait()


def upsert_insert(dialect: str):
    """The INSERT construct of ``dialect`` ("postgresql" or "sqlite", an engine's ``dialect.name``): both
    have ``on_conflict_do_nothing`` / ``on_conflict_do_update``, so one statement inserts or keeps a row
    even when two nodes write it at once (a check-then-insert would let both see no row)."""
    from sqlalchemy.dialects import postgresql, sqlite
    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}[dialect]


def db_datetime(value) -> dt.datetime | None:
    """A DateTime column read by ``HotReader`` as an aware UTC datetime (SQLite stores UTC text)."""
    if value is None or isinstance(value, dt.datetime):
        return as_utc(value)
    return as_utc(dt.datetime.fromisoformat(value))
