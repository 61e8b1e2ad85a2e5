"""Generation counters that keep per-process caches true across processes and nodes.

A process may hold data that changes rarely (the CA list, the KMC's certificate) in memory, but another
worker, node or CLI run may change it in the shared database. Each such kind of data has a row in
``db_generation``; whoever changes the data calls ``bump`` in the same transaction, and each cache holds
a ``GenerationWatch`` that reads the row (one primary-key SELECT) at most every ``interval`` seconds and
says when the cache must be reloaded. A change is therefore seen everywhere within ``interval``
seconds, without a restart, and the hot path pays one clock read per call.
"""
from __future__ import annotations

import threading
import time

from sqlalchemy import BigInteger, String, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from pkicore.db import Base, reading

CHECK_INTERVAL = 1.0            # seconds between two looks at one generation row per process
CA_AUTHORITIES = "ca_authority"     # the CA hierarchy (ca_bridge.directory)
KMC_SETTINGS = "kms_setting"        # the KMC's certificate and stored trust (kms.escrow, kms.endpoint)


class DbGeneration(Base):
    """One counter per kind of cached data, incremented by every transaction that changes that data."""
    __tablename__ = "db_generation"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


_TABLE = DbGeneration.__table__
_INSERTS = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def bump(session: Session, name: str) -> None:
    """Count one change of the data ``name`` in ``session``'s transaction (an upsert: the row need not
    exist, and concurrent first bumps do not collide)."""
    insert = _INSERTS[session.get_bind().dialect.name]
    statement = insert(_TABLE).values(name=name, value=1)
    session.execute(statement.on_conflict_do_update(index_elements=[_TABLE.c.name],
                                                    set_={"value": _TABLE.c.value + 1}))


def read(db: sessionmaker[Session], name: str) -> int:
    """The current generation of ``name`` (0 when it never changed)."""
    with reading(db) as session:
        return session.scalar(select(_TABLE.c.value).where(_TABLE.c.name == name)) or 0


class GenerationWatch:
    """Tells a cache when generation ``name`` has moved past the one it loaded. Thread-safe.

    The cache calls ``read()`` *before* reading its data and ``loaded(value)`` after, so a change that
    commits while it loads is seen at the next check; ``due()`` on each use is True when a reload is
    needed (it looks at the database at most every ``interval`` seconds)."""

    def __init__(self, db: sessionmaker[Session], name: str, interval: float = CHECK_INTERVAL):
        self.db = db
        self.name = name
        self.interval = interval
        self._seen: int | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def read(self) -> int:
        return read(self.db, self.name)

    def loaded(self, value: int) -> None:
        with self._lock:
            self._seen, self._checked = value, time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return False
        with self._lock:
            if now - self._checked < self.interval:
                return False          # another thread looked meanwhile
            self._checked = now
        return self.read() != self._seen
