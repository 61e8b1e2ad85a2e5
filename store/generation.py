"""Generation counters that keep per-process caches true across processes and nodes.

A process may hold data that changes rarely (the CA list, the KMC's certificate) in memory, but another
worker, node or CLI run may change it in the shared database. Each such kind of data has a row in
``db_generation``; whoever changes the data calls ``bump`` in the same transaction, and each cache holds
a ``GenerationWatch`` that reads the row (one primary-key SELECT) at most every ``interval`` seconds and
says when the cache must be reloaded. A change is therefore seen everywhere within ``interval``
seconds, without a restart, and the hot path pays one clock read per call.
"""
from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import BigInteger, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from store.db import Base, reading, upsert_insert

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0            # seconds between two looks at one generation row per process
CA_AUTHORITIES = "ca_authority"     # the CA hierarchy (ca_bridge.directory)
KMC_SETTINGS = "kms_setting"        # the KMC's certificate and stored trust (kms.escrow, kms.endpoint)


class DbGeneration(Base):
    """One counter per kind of cached data, incremented by every transaction that changes that data."""
    __tablename__ = "db_generation"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


_TABLE = DbGeneration.__table__


def bump(session: Session, name: str) -> None:
    """Count one change of the data ``name`` in ``session``'s transaction (an upsert: the row need not
    exist, and concurrent first bumps do not collide)."""
    insert = upsert_insert(session.get_bind().dialect.name)
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
        self._thread: threading.Thread | None = None
        self._moved = False
        self._stopped = threading.Event()

    def read(self) -> int:
        return read(self.db, self.name)

    def loaded(self, value: int) -> None:
        with self._lock:
            self._seen, self._checked, self._moved = value, time.monotonic(), False

    def watch_in_background(self) -> None:
        """From now on a daemon thread looks at the generation every ``interval`` seconds and ``due()``
        only reports what it saw: no database read on the caller's thread (a serving worker's main
        thread, which answers every hot-path request, never waits for it)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._watch, name=f"generation-watch-{self.name}", daemon=True)
        self._thread.start()

    def stop_watching(self) -> None:
        """End the background looks (``watch_in_background``); ``due()`` then looks itself again."""
        self._stopped.set()
        with self._lock:
            self._thread, self._checked = None, float("-inf")

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                value = self.read()
            except Exception as exc:  # noqa: BLE001 - the database away for a moment: look again later
                log.warning("generation %s not read: %s", self.name, exc)
                continue
            with self._lock:
                if value != self._seen:
                    self._moved = True

    def due(self) -> bool:
        if self._thread is not None:
            return self._moved or self._seen is None
        now = time.monotonic()
        if now - self._checked < self.interval:
            return False
        with self._lock:
            if now - self._checked < self.interval:
                return False          # another thread looked meanwhile
            self._checked = now
        return self.read() != self._seen
