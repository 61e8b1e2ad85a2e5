"""The tamper-evident audit table: rows written in the caller's transaction, hash-chained per writer.

Every security-relevant action is appended with ``record()`` inside the transaction that makes the
change, so the row commits or rolls back with it. Rows are only ever inserted.

Chains that scale past one node (REFERENCES.md §8, after EJBCA's (node, sequence) keys and XiPKI's
per-writer chains): there is no single chain head to serialise on. A *writer* is one chain; its id is
``node/pid/boot-nonce/slot`` and it is registered in ``audit_writer`` by the transaction that writes its
first row. Each ``audit_event`` row carries ``writer_id``, ``seq`` (1, 2, 3, ... within the writer) and
``prev_hash`` (the previous row's ``hash``; for seq 1 the writer's genesis hash, which covers the
writer row). ``hash`` is SM3 over a length-prefixed encoding (see ``row_hash``).

Assigning seq/prev_hash without a global lock, and without gaps when a transaction rolls back:

* Each process keeps, per database engine, a pool of writers in memory (``_WriterPool``, one small
  lock around check-out/check-in, never held during database I/O).
* A transaction *leases* one writer exclusively when its first audit row is flushed (mapper
  ``before_insert``), and assigns seq/prev_hash/hash to its rows from the lease in flush order.
  Concurrent transactions lease different writers, so they never wait for each other; a process
  has as many writers as it ever had concurrent audit-writing transactions.
* ``after_commit`` (outermost) advances the writer's committed head and returns it to the pool. On a
  rollback, or a session closed without commit, the lease is simply dropped: nobody else used the
  writer meanwhile, so the next transaction continues from the committed head and no gap appears.
  A savepoint rolled back rewinds the lease to where the savepoint began.
* If the COMMIT itself failed, its outcome is uncertain (the server may have committed): the writer
  is retired rather than rewound, and the process starts a fresh writer. Either way its chain ends
  on a committed row, so verification never sees a false gap.
* A forked child (gunicorn workers) never continues its parent's writers: the pool notices the new
  pid and starts new ones.

Because a writer is leased by one transaction at a time, the committed rows of every chain always form
a prefix 1..n, which is what the signed checkpoints (``racentre.audit``) cover.

Canonical encoding (identical on SQLite and PostgreSQL round trips): each field is UTF-8 and
prefixed with its length as 4 bytes big-endian; integers in decimal; timestamps in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (microseconds, what both databases store); ``detail`` as JSON with
``sort_keys``, ``ensure_ascii=False``, ``separators=(",", ":")`` and no NaN/Infinity. The row hash is
``SM3("racentre.audit.row.v1" || lp(writer_id) || lp(seq) || lp(prev_hash) || lp(body_digest))`` where
``body_digest = SM3("racentre.audit.body.v1" || lp(at) || lp(actor) || lp(role) || lp(action) ||
lp(target_type) || lp(target_id) || lp(detail))``, so an export can carry the links beyond a range
(writer, seq, prev_hash, body digest) without their contents. The surrogate key ``id`` is not hashed:
the chain position (writer, seq) is the record's identity and order; verification names both.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import threading
import weakref
from dataclasses import dataclass

from sqlalchemy import (JSON, BigInteger, DateTime, Integer, String, Text, UniqueConstraint, event, func, insert,
                        select)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column, object_session

from store.db import Base, as_utc, transaction, utcnow

ROW_TAG = b"racentre.audit.row.v1"
BODY_TAG = b"racentre.audit.body.v1"
WRITER_TAG = b"racentre.audit.writer.v1"
CHECKPOINT_TAG = b"racentre.audit.checkpoint.v1"
CHECKPOINT_TAG_V2 = b"racentre.audit.checkpoint.v2"
HASH_ALGORITHM = "sm3"

_SM3 = hashlib.new("sm3")
_LEASE = "racentre.audit.lease"
_COMMITTING = "racentre.audit.committing"
_log = logging.getLogger(__name__)
_MARKS = "racentre.audit.savepoints"


class AuditWriter(Base):
    """One hash chain: a process (node, pid, boot nonce) and a slot within it."""
    __tablename__ = "audit_writer"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    pid: Mapped[int] = mapped_column(Integer)
    nonce: Mapped[str] = mapped_column(String(32))
    slot: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    __tablename__ = "audit_event"
    __table_args__ = (UniqueConstraint("writer_id", "seq", name="uq_audit_event_writer_seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128), index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    writer_id: Mapped[str] = mapped_column(String(160))
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditSite(Base):
    """The site's identity (one row, made by ``racentre setup``): names the HSM anchor of this site's trail
    (racentre.audit) and is signed into every checkpoint, so replacing it is seen."""
    __tablename__ = "audit_site"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class AuditCheckpoint(Base):
    """A signed statement of every chain's head, chained to the previous checkpoint (racentre.audit)."""
    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    heads: Mapped[list] = mapped_column(JSON)            # [[writer_id, seq, hash], ...] sorted by writer
    key_label: Mapped[str] = mapped_column(String(128))
    key_fingerprint: Mapped[str] = mapped_column(String(64))   # SM3 of the audit key's SPKI DER, hex
    signature: Mapped[str] = mapped_column(String(256))         # SM2-with-SM3 DER (r, s), hex
    hash: Mapped[str] = mapped_column(String(64))               # SM3 of the signed bytes
    site_id: Mapped[str | None] = mapped_column(String(64), nullable=True)   # signed (v2); None: a v1 checkpoint
    tsa_token: Mapped[str | None] = mapped_column(Text, nullable=True)   # RFC 3161 token over SM3(tbs), base64
    last_event_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # max(audit_event.id) seen; not signed


# ----------------------------------------------------------------------------- canonical encoding
def canonical_json(value) -> str:
    """The one JSON text of a detail value (sorted keys, UTF-8 as is, no whitespace, no NaN)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def canonical_time(value: dt.datetime | str) -> str:
    """UTC with microseconds and a Z; a naive value (SQLite gives those back) is taken as UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None and value.tzinfo is not dt.timezone.utc:
        value = value.astimezone(dt.timezone.utc)
    return value.replace(tzinfo=None).isoformat(sep="T", timespec="microseconds") + "Z"


def _lp(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def sm3_hex(data: bytes) -> str:
    h = _SM3.copy()
    h.update(data)
    return h.hexdigest()


def body_digest(at: dt.datetime | str, actor: str, role: str, action: str, target_type: str, target_id: str,
                detail) -> str:
    """SM3 over the record's content columns (everything but its chain position)."""
    return sm3_hex(BODY_TAG + _lp(canonical_time(at)) + _lp(actor) + _lp(role) + _lp(action)
                   + _lp(target_type) + _lp(target_id) + _lp(canonical_json(detail)))


def link_hash(writer_id: str, seq: int, prev_hash: str, digest: str) -> str:
    """SM3 binding a body digest to its chain position and predecessor."""
    return sm3_hex(ROW_TAG + _lp(writer_id) + _lp(str(seq)) + _lp(prev_hash) + _lp(digest))


def row_hash(row) -> str:
    """The hash a stored row (ORM object, Row or mapping with the column names) must carry."""
    get = row.get if isinstance(row, dict) else (lambda k: getattr(row, k))
    digest = body_digest(get("at"), get("actor"), get("role"), get("action"), get("target_type"),
                         get("target_id"), get("detail"))
    return link_hash(get("writer_id"), get("seq"), get("prev_hash"), digest)


def genesis_hash(writer_id: str, node: str, pid: int, nonce: str, slot: int, started_at: dt.datetime) -> str:
    """prev_hash of a writer's first row: covers the writer's registration."""
    return sm3_hex(WRITER_TAG + _lp(writer_id) + _lp(node) + _lp(str(pid)) + _lp(nonce) + _lp(str(slot))
                   + _lp(canonical_time(started_at)))


def writer_genesis(writer) -> str:
    get = writer.get if isinstance(writer, dict) else (lambda k: getattr(writer, k))
    return genesis_hash(get("id"), get("node"), get("pid"), get("nonce"), get("slot"), get("started_at"))


CHECKPOINT_GENESIS = sm3_hex(CHECKPOINT_TAG + _lp("genesis"))
"""prev_hash of the first checkpoint."""


def checkpoint_tbs(seq: int, at: dt.datetime | str, prev_hash: str, key_fingerprint: str, heads,
                   site_id: str | None = None) -> bytes:
    """The bytes an audit checkpoint signs: its number, time, predecessor, key and every chain head; v2
    (``site_id`` given) also the site's identity, so a checkpoint of one site never passes for another's."""
    heads_text = canonical_json(sorted([str(w), int(n), str(h)] for w, n, h in heads))
    body = _lp(str(seq)) + _lp(canonical_time(at)) + _lp(prev_hash) + _lp(key_fingerprint) + _lp(heads_text)
    if site_id is None:
        return CHECKPOINT_TAG + body
    return CHECKPOINT_TAG_V2 + _lp(site_id) + body


def heads_digest(heads) -> str:
    """SM3 over the canonical text of every chain head (writer, seq, hash), as a checkpoint signs them."""
    return sm3_hex(canonical_json(sorted([str(w), int(n), str(h)] for w, n, h in heads)).encode("utf-8"))


def checkpoint_fields(cp) -> dict:
    get = cp.get if isinstance(cp, dict) else (lambda k: getattr(cp, k))
    return {"seq": get("seq"), "at": get("at"), "prev_hash": get("prev_hash"),
            "key_fingerprint": get("key_fingerprint"), "heads": get("heads"), "site_id": get("site_id")}


# ----------------------------------------------------------------------------- writers and leases
class _Writer:
    """In-memory state of one chain: its committed head. Touched only by the transaction leasing it."""
    __slots__ = ("id", "node", "pid", "nonce", "slot", "started_at", "seq", "hash", "registered")

    def __init__(self, node: str, pid: int, nonce: str, slot: int):
        self.node, self.pid, self.nonce, self.slot = node, pid, nonce, slot
        self.id = f"{node}/{pid}/{nonce}/{slot}"
        self.started_at = utcnow().replace(tzinfo=dt.timezone.utc)
        self.seq = 0
        self.hash = genesis_hash(self.id, node, pid, nonce, slot, self.started_at)
        self.registered = False

    def row(self) -> dict:
        return {"id": self.id, "node": self.node, "pid": self.pid, "nonce": self.nonce, "slot": self.slot,
                "started_at": self.started_at}


class _Lease:
    __slots__ = ("pool", "writer", "seq", "hash", "registering")

    def __init__(self, pool: "_WriterPool", writer: _Writer):
        self.pool, self.writer = pool, writer
        self.seq, self.hash = writer.seq, writer.hash
        self.registering = False

    @property
    def dirty(self) -> bool:
        return self.seq != self.writer.seq or self.registering

    def append(self, at, actor, role, action, target_type, target_id: str, detail) -> tuple[int, str, str]:
        """Take the next position of this chain for a row with this content: (seq, prev_hash, hash)."""
        seq, prev = self.seq + 1, self.hash
        h = link_hash(self.writer.id, seq, prev, body_digest(at, actor, role, action, target_type, target_id, detail))
        self.seq, self.hash = seq, h
        return seq, prev, h


class _WriterPool:
    """The writers of this process on one database: free ones on a stack, leased ones out."""

    def __init__(self, node: str):
        self.node = node[:64]
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.pid = os.getpid()
        self.nonce = os.urandom(6).hex()
        self._free: list[_Writer] = []
        self._slots = 0

    def checkout(self) -> _Writer:
        with self._lock:
            if self.pid != os.getpid():    # forked: never continue the parent's chains
                self._reset()
            if self._free:
                return self._free.pop()
            self._slots += 1
            return _Writer(self.node, self.pid, self.nonce, self._slots - 1)

    def checkin(self, writer: _Writer) -> None:
        with self._lock:
            if writer.pid == self.pid and writer.nonce == self.nonce:
                self._free.append(writer)


_pools: "weakref.WeakKeyDictionary[Engine, _WriterPool]" = weakref.WeakKeyDictionary()
_pools_lock = threading.Lock()


def bind_node(engine: Engine, node_id: str) -> None:
    """Name the node that writes through ``engine`` (from the configuration); default: the host name.
    Call before the first audit row; later calls start new writers under the new name."""
    with _pools_lock:
        _pools[engine] = _WriterPool(node_id or socket.gethostname())


def _pool(engine: Engine) -> _WriterPool:
    pool = _pools.get(engine)
    if pool is None:
        with _pools_lock:
            pool = _pools.get(engine)
            if pool is None:
                pool = _pools[engine] = _WriterPool(socket.gethostname())
    return pool


def _lease(session: Session, connection) -> _Lease:
    """The writer this transaction leases (checked out on its first audit row, registered in
    ``audit_writer`` by the transaction that writes the writer's first row)."""
    info = session.info
    lease = info.get(_LEASE)
    if lease is None:
        pool = _pool(connection.engine)
        lease = info[_LEASE] = _Lease(pool, pool.checkout())
    if not lease.writer.registered and not lease.registering:
        connection.execute(insert(AuditWriter.__table__).values(**lease.writer.row()))
        lease.registering = True
    return lease


@event.listens_for(AuditEvent, "before_insert")
def _chain_row(_mapper, connection, target: AuditEvent) -> None:
    lease = _lease(object_session(target), connection)
    d = target.__dict__       # plain reads; only the four chain columns are set through the ORM below
    at = d.get("at")
    if at is None or at.tzinfo is not dt.timezone.utc:
        target.at = at = utcnow() if at is None else as_utc(at).astimezone(dt.timezone.utc)
    detail = d.get("detail")
    if detail is None:
        target.detail = detail = {}
    target_id = d.get("target_id")
    if not isinstance(target_id, str):
        target.target_id = target_id = str(target_id)
    target.seq, target.prev_hash, target.hash = lease.append(at, d.get("actor"), d.get("role"), d.get("action"),
                                                             d.get("target_type"), target_id, detail)
    target.writer_id = lease.writer.id


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction) -> None:
    if transaction.nested:
        lease = session.info.get(_LEASE)
        session.info.setdefault(_MARKS, {})[id(transaction)] = None if lease is None else (lease.seq, lease.hash)


@event.listens_for(Session, "after_soft_rollback")
def _rewind_savepoint(session: Session, previous_transaction) -> None:
    if not previous_transaction.nested:
        return
    mark = session.info.get(_MARKS, {}).pop(id(previous_transaction), "absent")
    lease = session.info.get(_LEASE)
    if lease is None or mark == "absent":
        return
    lease.seq, lease.hash = mark if mark is not None else (lease.writer.seq, lease.writer.hash)


@event.listens_for(Session, "before_commit")
def _committing(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info[_COMMITTING] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_COMMITTING, None)
    lease = session.info.pop(_LEASE, None)
    if lease is not None:
        writer = lease.writer
        writer.seq, writer.hash = lease.seq, lease.hash
        writer.registered = writer.registered or lease.registering
        lease.pool.checkin(writer)


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction) -> None:
    if transaction.parent is not None:
        return      # savepoint marks live until the outermost end (after_soft_rollback comes after this)
    committing = session.info.pop(_COMMITTING, False)
    session.info.pop(_MARKS, None)
    lease = session.info.pop(_LEASE, None)
    if lease is None:
        return
    if committing and lease.dirty:
        return    # the COMMIT failed: its outcome is uncertain, so retire the writer (never reuse a seq)
    lease.pool.checkin(lease.writer)   # rolled back: the committed head is unchanged


# ----------------------------------------------------------------------------- the API
def _plain(detail):
    """``detail`` as JSON gives it back (what the column stores and the hash covers); fails early on
    an unserialisable value."""
    return json.loads(json.dumps(detail, default=str, allow_nan=False))


def record(session: Session, *, actor: str, role: str, action: str, target_type: str, target_id: str | int,
           **detail) -> AuditEvent:
    """Append an audit row in the caller's transaction (it commits or rolls back with the change).

    The chain position and hash are assigned when the row is flushed (see the module docstring)."""
    event_ = AuditEvent(at=utcnow(), actor=actor, role=role, action=action, target_type=target_type,
                        target_id=str(target_id), detail=_plain(detail))
    session.add(event_)
    return event_


_INSERT_EVENTS = insert(AuditEvent.__table__)


def record_many(session: Session, events) -> int:
    """Append many audit rows in the caller's transaction with one multi-row INSERT (the batch paths:
    ``ra.bulk``, ``EmbeddedCA.issue_groups``). ``events``: mappings with the keyword arguments of
    ``record`` (``actor``, ``role``, ``action``, ``target_type``, ``target_id``, ``detail``).

    The rows take the next positions of this transaction's chain in the order given, exactly as
    ``record`` rows flushed in that order would (same hashes); rows ``record`` added earlier are
    flushed first so the chain order is the order of the calls. Returns the number of rows."""
    session.flush()
    connection = session.connection()
    lease = None
    rows = []
    for e in events:
        if lease is None:
            lease = _lease(session, connection)
        detail = _plain(e.get("detail") or {})
        at, target_id = utcnow(), str(e["target_id"])
        seq, prev, h = lease.append(at, e["actor"], e["role"], e["action"], e["target_type"], target_id, detail)
        rows.append({"at": at, "actor": e["actor"], "role": e["role"], "action": e["action"],
                     "target_type": e["target_type"], "target_id": target_id, "detail": detail,
                     "writer_id": lease.writer.id, "seq": seq, "prev_hash": prev, "hash": h})
    if rows:
        connection.execute(_INSERT_EVENTS, rows)
    return len(rows)


def events_for(session: Session, target_type: str, target_id: str | int) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.target_type == target_type,
                                                         AuditEvent.target_id == str(target_id))
                                .order_by(AuditEvent.id)))


@dataclass(frozen=True)
class ChainHead:
    writer_id: str
    seq: int
    hash: str

    def as_list(self) -> list:
        return [self.writer_id, self.seq, self.hash]


def chain_heads(session: Session) -> list[ChainHead]:
    """The last committed row of every writer, read in one statement (one snapshot)."""
    last = (select(AuditEvent.writer_id.label("w"), func.max(AuditEvent.seq).label("m"))
            .group_by(AuditEvent.writer_id).subquery())
    rows = session.execute(select(AuditEvent.writer_id, AuditEvent.seq, AuditEvent.hash)
                           .join(last, (AuditEvent.writer_id == last.c.w) & (AuditEvent.seq == last.c.m))
                           .order_by(AuditEvent.writer_id))
    return [ChainHead(w, int(s), h) for w, s, h in rows]


# ----------------------------------------------------------------------------- refusals, counted
class RefusalTally:
    """Refusals of requests from sources that did not authenticate, counted instead of written one by one,
    so that nobody can flood the trail with junk (1,000 junk GM/T 0014 requests wrote 1,000 rows).

    Counts are kept per (source, reason) in memory for one window of ``window`` seconds (aligned on the
    clock) and written as ONE audit row per window and process when the window is over: at the first
    refusal of a later window, by a timer at the window's end, or by ``flush()``.
    At most ``max_keys`` (source, reason) pairs are named in a row; the rest are summed under source "*".
    A process killed mid-window loses at most that window's counts (the log has each refusal)."""

    def __init__(self, db, *, action: str, target_type: str, window: float = 60.0, max_keys: int = 256,
                 clock=None):
        self.db, self.action, self.target_type = db, action, target_type
        self.window, self.max_keys = float(window), max_keys
        self._clock = clock or (lambda: utcnow().timestamp())
        self._lock = threading.Lock()
        self._start: float | None = None
        self._counts: dict[tuple[str, str], int] = {}
        self._timer: threading.Timer | None = None

    def _window_of(self, now: float) -> float:
        return now - (now % self.window)

    def count(self, source: str, reason: str) -> None:
        """One refusal from ``source`` (e.g. the client address) for ``reason`` (e.g. an error code)."""
        now = self._clock()
        start = self._window_of(now)
        closed = None
        with self._lock:
            if self._start is not None and start != self._start:
                closed = self._take()
            if self._start is None:
                self._start = start
                self._arm(start + self.window - now)
            key = (str(source)[:64] or "?", str(reason)[:64])
            if key not in self._counts and len(self._counts) >= self.max_keys:
                key = ("*", key[1])
            self._counts[key] = self._counts.get(key, 0) + 1
        if closed:
            self._write(*closed)

    def _arm(self, delay: float) -> None:
        timer = threading.Timer(max(delay, 0) + 0.5, self._due)
        timer.daemon = True
        timer.start()
        self._timer = timer

    def _due(self) -> None:
        with self._lock:
            closed = self._take() if self._start is not None and self._clock() >= self._start + self.window else None
        if closed:
            self._write(*closed)

    def _take(self):
        start, counts = self._start, self._counts
        self._start, self._counts = None, {}
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        return (start, counts) if counts else None

    def flush(self) -> int:
        """Write the current window's counts now (one row; 0 rows when nothing was counted)."""
        with self._lock:
            closed = self._take()
        if not closed:
            return 0
        self._write(*closed)
        return 1

    def _write(self, start: float, counts: dict[tuple[str, str], int]) -> None:
        begin = dt.datetime.fromtimestamp(start, dt.timezone.utc)
        by = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(counts.items())]
        try:
            with transaction(self.db) as session:
                record(session, actor="anonymous", role="unauthenticated", action=self.action,
                       target_type=self.target_type, target_id=canonical_time(begin),
                       window_start=canonical_time(begin),
                       window_end=canonical_time(begin + dt.timedelta(seconds=self.window)),
                       total=sum(counts.values()), refusals=by)
        except Exception:  # noqa: BLE001 - counting refusals must never hide the refusal itself
            _log.exception("could not audit %d refusals", sum(counts.values()))
