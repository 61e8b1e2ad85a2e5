"""Per-writer hash chains (audit.trail) on SQLite and PostgreSQL: the canonical encoding survives both
databases' round trips, two nodes interleave, rollbacks and savepoints leave no gap, a failed COMMIT
retires its writer, and concurrent threads produce valid chains."""
from __future__ import annotations

import datetime as dt
import time

import pytest
from gmssl import sm3 as gm_sm3
from sqlalchemy import func, select

from audit.trail import (AuditEvent, AuditWriter, body_digest, canonical_json, link_hash, record, record_many,
                           row_hash)
from store.db import transaction
from racentre.audit import audit_public_key, ensure_audit_key, verify
from tests.unit.audit.helpers import LABEL, add, build_trail, rows
from tests.threads import run_threads

TRICKY = {"名字": "张三", "z": [1, 2.5, -0.0, 10 ** 20, True, None], "a": {"y": "é\u0000\U0001F600", "b": ""},
          "quote": "\"\\/\n\t"}


def _independent_lp(text: str) -> bytes:
    raw = text.encode("utf-8")
    return len(raw).to_bytes(4, "big") + raw


def _gm_sm3_hex(data: bytes) -> str:
    return gm_sm3.sm3_hash(list(data))


def test_row_hash_matches_an_independent_implementation():
    """The encoding as documented, rebuilt here with gmssl's pure-Python SM3."""
    at = dt.datetime(2026, 3, 1, 8, 30, 0, 120, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    detail_text = '{"a":{"b":"","y":"é\\u0000😀"},"quote":"\\"\\\\/\\n\\t","z":[1,2.5,-0.0,100000000000000000000,true,null],"名字":"张三"}'
    assert canonical_json(TRICKY) == detail_text
    body = (b"racentre.audit.body.v1" + _independent_lp("2026-03-01T00:30:00.000120Z") + _independent_lp("张三")
            + _independent_lp("ra_officer") + _independent_lp("request.approve") + _independent_lp("request")
            + _independent_lp("42") + _independent_lp(detail_text))
    digest = _gm_sm3_hex(body)
    assert body_digest(at, "张三", "ra_officer", "request.approve", "request", "42", TRICKY) == digest
    link = (b"racentre.audit.row.v1" + _independent_lp("n/1/ab/0") + _independent_lp("7")
            + _independent_lp("00" * 32) + _independent_lp(digest))
    assert link_hash("n/1/ab/0", 7, "00" * 32, digest) == _gm_sm3_hex(link)


def test_canonical_encoding_survives_the_database_round_trip(db):
    at = dt.datetime(2026, 5, 4, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with transaction(db) as session:
        event = record(session, actor="审计员", role="auditor", action="config.change", target_type="setting",
                       target_id=7, **TRICKY)
        event.at = at
        session.flush()
        row_id, stored = event.id, event.hash
        expected = body_digest(at, "审计员", "auditor", "config.change", "setting", "7", TRICKY)
        assert stored == link_hash(event.writer_id, event.seq, event.prev_hash, expected)
    with db() as session:        # a fresh session: values as the database gives them back
        back = session.get(AuditEvent, row_id)
        assert back.detail == TRICKY
        assert row_hash(back) == stored
        writer = session.get(AuditWriter, back.writer_id)
        assert writer is not None and back.seq >= 1


def test_two_nodes_interleaved_chain_independently(nodes, softtoken_km):
    a, b = nodes
    build_trail(a, b, softtoken_km)
    chain = rows(a)
    writers = sorted({r["writer_id"] for r in chain})
    assert len(writers) == 2 and writers[0].startswith("node-a/") and writers[1].startswith("node-b/")
    for w in writers:
        assert [r["seq"] for r in chain if r["writer_id"] == w] == list(range(1, 9))
    result = verify(a, audit_public_key(softtoken_km, LABEL))
    assert result.ok, result.problems
    assert (result.rows, result.writers, result.checkpoints, result.unanchored) == (16, 2, 1, 4)


def test_overlapping_transactions_lease_separate_writers_and_rollbacks_leave_no_gap(db, softtoken_km):
    overlap = db.kw["bind"].dialect.name == "postgresql"   # SQLite serialises writers at BEGIN IMMEDIATE
    with transaction(db) as first:
        record(first, actor="a", role="ra_officer", action="t.first", target_type="t", target_id=1)
        if overlap:
            first.flush()
        with pytest.raises(RuntimeError):
            with transaction(db) as doomed:
                record(doomed, actor="b", role="ra_officer", action="t.doomed", target_type="t", target_id=2)
                doomed.flush()
                raise RuntimeError("the change failed after its audit row was flushed")
        with transaction(db) as second:
            record(second, actor="c", role="ra_officer", action="t.second", target_type="t", target_id=3)
            second.flush()
            second_writer = record(second, actor="c", role="ra_officer", action="t.second", target_type="t",
                                   target_id=4)
        if overlap:
            assert first.scalar(select(func.count()).select_from(AuditEvent)
                                .where(AuditEvent.action == "t.first")) >= 1
    with db() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "t.doomed")) == 0
        mine = session.scalars(select(AuditEvent).where(AuditEvent.action.in_(("t.first", "t.second")))).all()
        if overlap:
            assert len({e.writer_id for e in mine}) == 2          # two open transactions, two chains
        assert second_writer.seq > 1 or len(mine) == 3
    result = verify(db, audit_public_key(softtoken_km, LABEL))
    assert result.ok, result.problems


def test_savepoint_rollback_rewinds_the_lease(db, softtoken_km):
    with transaction(db) as session:
        record(session, actor="a", role="ra_officer", action="sp.kept", target_type="t", target_id=1)
        session.flush()
        savepoint = session.begin_nested()
        record(session, actor="a", role="ra_officer", action="sp.dropped", target_type="t", target_id=2)
        session.flush()
        savepoint.rollback()
        kept = record(session, actor="a", role="ra_officer", action="sp.kept", target_type="t", target_id=3)
        with session.begin_nested():
            record(session, actor="a", role="ra_officer", action="sp.released", target_type="t", target_id=4)
    with db() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "sp.dropped")) == 0
        seqs = sorted(e.seq for e in session.scalars(select(AuditEvent).where(AuditEvent.writer_id == kept.writer_id,
                                                                             AuditEvent.seq >= kept.seq - 1)))
        assert seqs[:3] == [kept.seq - 1, kept.seq, kept.seq + 1]
    assert verify(db, audit_public_key(softtoken_km, LABEL)).ok


def test_record_many_continues_the_chain_in_call_order_and_rolls_back_cleanly(db, softtoken_km):
    """Batch rows (one multi-row INSERT) interleave with record() rows in call order; a rolled-back
    batch, also one inside a savepoint, leaves no gap; the stored rows hash as record() rows would."""
    batch = [{"actor": "officer-1", "role": "ra_officer", "action": "bulk.approve", "target_type": "t",
              "target_id": i, "detail": {"n": i, "名": "张三", "at": dt.datetime(2026, 1, 1)}} for i in range(5)]
    with pytest.raises(RuntimeError):
        with transaction(db) as doomed:
            record_many(doomed, batch)
            raise RuntimeError("the batch failed after its audit rows were written")
    with transaction(db) as session:
        first = record(session, actor="a", role="ra_officer", action="bulk.before", target_type="t", target_id=1)
        assert record_many(session, batch) == 5
        savepoint = session.begin_nested()
        record_many(session, [dict(batch[0], action="bulk.dropped")])
        savepoint.rollback()
        last = record(session, actor="a", role="ra_officer", action="bulk.after", target_type="t", target_id=2)
        assert record_many(session, []) == 0
    with db() as session:
        assert session.scalar(select(func.count()).where(AuditEvent.action == "bulk.dropped")) == 0
        chain = session.scalars(select(AuditEvent).where(AuditEvent.writer_id == first.writer_id,
                                                         AuditEvent.seq >= first.seq)
                                .order_by(AuditEvent.seq)).all()
        assert [e.action for e in chain] == ["bulk.before"] + ["bulk.approve"] * 5 + ["bulk.after"]
        assert [e.seq for e in chain] == list(range(first.seq, first.seq + 7)) and chain[-1].id == last.id
        assert [e.target_id for e in chain[1:6]] == ["0", "1", "2", "3", "4"]
        assert chain[1].detail == {"n": 0, "名": "张三", "at": "2026-01-01 00:00:00"}
        for prev, row in zip(chain, chain[1:]):
            assert row.prev_hash == prev.hash and row_hash(row) == row.hash
    result = verify(db, audit_public_key(softtoken_km, LABEL))
    assert result.ok, result.problems


def test_a_failed_commit_retires_its_writer(db, softtoken_km):
    add(db)
    with db() as session:
        taken = session.scalars(select(AuditWriter.id)).first()
    with pytest.raises(Exception) as failure:
        with transaction(db) as session:
            ev = record(session, actor="a", role="ra_officer", action="commit.fails", target_type="t", target_id=1)
            session.flush()
            doomed_writer = ev.writer_id
            session.add(AuditWriter(id=taken, node="x", pid=0, nonce="x", slot=0, started_at=ev.at))
    assert "IntegrityError" in type(failure.value).__name__
    with transaction(db) as session:
        ev = record(session, actor="a", role="ra_officer", action="commit.after", target_type="t", target_id=2)
    assert ev.writer_id != doomed_writer         # never continue a chain whose last COMMIT is uncertain
    assert verify(db, audit_public_key(softtoken_km, LABEL)).ok


def test_concurrent_threads_produce_valid_chains(db, softtoken_km):
    ensure_audit_key(softtoken_km, LABEL)
    with db() as session:
        before = session.scalar(select(func.count()).select_from(AuditEvent))

    def work(n):
        for i in range(15):
            with transaction(db) as session:
                for j in range(3):
                    record(session, actor=f"thread-{n}", role="ra_officer", action="issue.cert",
                           target_type="certificate", target_id=f"{n}-{i}-{j}", i=i)

    assert run_threads(work, 8) == []
    with db() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == before + 8 * 15 * 3
    result = verify(db, audit_public_key(softtoken_km, LABEL))
    assert result.ok, result.problems
