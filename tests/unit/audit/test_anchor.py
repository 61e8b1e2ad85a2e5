"""The trail anchored outside the database (issue 15): an insider who can write the database deletes
checkpoints, truncates the tail, deletes a writer, rewrites and re-hashes a chain or replaces the site
identity, each with plain SQL, on SQLite and PostgreSQL; `verify` with the HSM anchor names each, while
`verify` on the database alone does not see the first three. Also: the anchor's compare-and-set, a lagging
anchor after a crash, concurrent checkpointers, the periodic test, the append-only sink."""
from __future__ import annotations

import datetime as dt
import json
import threading
from types import SimpleNamespace

import pytest
from sqlalchemy import text

from hsm import HsmError
from audit.trail import body_digest, link_hash
from racentre.audit import (ANCHOR_APPLICATION, AuditTampered, Checkpointer, CheckpointSink, anchor_label,
                            audit_public_key, checkpoint, ensure_site, read_anchor, read_sink, verify)
from tests.unit.audit.helpers import LABEL, add, build_trail, named, rows, sql


@pytest.fixture
def site(nodes, softtoken_km):
    """Two nodes' trail (checkpoint #1 after 6 rows per writer, then #2 after 8), anchored in the HSM."""
    a, b = nodes
    build_trail(a, b, softtoken_km)
    checkpoint(a, softtoken_km, key_label=LABEL)
    spki = audit_public_key(softtoken_km, LABEL)
    chain = rows(a)
    writers = sorted({r["writer_id"] for r in chain})
    site_id = ensure_site(a)
    yield SimpleNamespace(db=a, other=b, km=softtoken_km, spki=spki, chain=chain, writers=writers, site_id=site_id,
                          check=lambda: verify(a, spki, km=softtoken_km),
                          row=lambda w, seq: next(r for r in chain if r["writer_id"] == writers[w] and r["seq"] == seq))
    softtoken_km.delete_data(anchor_label(site_id))


def test_the_untouched_trail_verifies_against_its_anchor(site):
    result = site.check()
    assert result.ok, result.problems
    anchor, _raw = read_anchor(site.km, site.site_id)
    assert (anchor.seq, anchor.heads, anchor.site_id) == (2, 2, site.site_id)
    assert any("HSM anchor of site" in n and "#2" in n for n in result.notes)
    assert anchor_label(site.site_id) in site.km.list_data(ANCHOR_APPLICATION)


def test_a_deleted_last_checkpoint_is_named_by_the_anchor(site):
    sql(site.db, "delete from audit_checkpoint where seq = 2")
    assert verify(site.db, site.spki).ok          # the database alone cannot tell: this is what the anchor adds
    result = site.check()
    [problem] = named(result, "checkpoint", checkpoint=2)
    assert "HSM anchor counter is at #2" in problem.message and "database ends at #1" in problem.message
    with pytest.raises(AuditTampered, match="refusing to checkpoint"):   # nothing is signed over it
        checkpoint(site.db, site.km, key_label=LABEL)


def test_deleting_every_checkpoint_then_rewriting_rows_is_named(site):
    sql(site.db, "delete from audit_checkpoint")
    target = site.row(0, 2)
    _rehash_from(site, target["writer_id"], 2, actor="mallory")
    assert verify(site.db, site.spki).ok          # without the anchor this verified OK before issue 15
    result = site.check()
    [problem] = named(result, "checkpoint", checkpoint=2)
    assert "#1..#2 are missing" in problem.message and "deleted" in problem.message


def test_a_truncated_tail_is_named(site):
    w = site.writers[0]
    sql(site.db, "delete from audit_event where writer_id = :w and seq > 6", w=w)
    result = site.check()
    [problem] = named(result, "deleted", writer=w, seq=8, checkpoint=2)
    assert "its tail #7..#8 is missing" in problem.message and "truncated" in problem.message
    # the insider also deletes the checkpoint that signed the tail: the HSM counter names it
    sql(site.db, "delete from audit_checkpoint where seq = 2")
    result = site.check()
    assert named(result, "checkpoint", checkpoint=2)
    assert not named(result, "deleted", writer=w)            # checkpoint #1 still matches what is left


def test_newest_rows_after_the_anchor_are_unprotected_until_the_next_checkpoint(site):
    add(site.db, 3)
    result = site.check()
    assert result.ok and result.unanchored == 3
    checkpoint(site.db, site.km, key_label=LABEL)
    newest = max(r["seq"] for r in rows(site.db) if r["writer_id"] == site.writers[0])
    sql(site.db, "delete from audit_event where writer_id = :w and seq = :s", w=site.writers[0], s=newest)
    assert named(site.check(), "deleted", writer=site.writers[0], seq=newest, checkpoint=3)


def test_a_deleted_writer_is_named(site):
    w = site.writers[1]
    sql(site.db, "delete from audit_event where writer_id = :w", w=w)
    sql(site.db, "delete from audit_writer where id = :w", w=w)
    result = site.check()
    [problem] = named(result, "deleted-writer", writer=w, seq=8, checkpoint=2)
    assert f"writer {w} is gone" in problem.message and "deleted writer" in problem.message


def test_a_rewritten_and_rehashed_chain_is_named(site):
    w = site.writers[1]
    _rehash_from(site, w, 7, actor="mallory")
    result = site.check()
    [problem] = named(result, "rewritten", writer=w, seq=8, checkpoint=2)
    assert "rewritten and re-hashed" in problem.message and "among #7..#8" in problem.message
    assert [p.kind for p in result.problems] == ["rewritten"]     # every row hashes and links correctly


def test_a_replaced_site_identity_is_named(site):
    sql(site.db, "update audit_site set site_id = :s", s="f" * 32)
    result = site.check()
    assert len(named(result, "site")) == 2                      # both checkpoints were signed for the old site
    assert any(p.kind == "anchor" and "site identity was replaced" in p.message for p in result.problems)
    sql(site.db, "delete from audit_site")
    assert any("audit_site) is gone" in p.message for p in site.check().problems)


def test_an_anchor_lagging_after_a_crash_is_tolerated_and_caught_up(site, monkeypatch):
    def crash(*_a, **_k):
        raise HsmError("the HSM went away")
    monkeypatch.setattr(site.km, "compare_and_set_data", crash)
    add(site.db)
    with pytest.raises(HsmError):
        checkpoint(site.db, site.km, key_label=LABEL)          # #3 committed, its anchor update lost
    monkeypatch.undo()
    result = site.check()
    assert result.ok and any("#3 is not yet anchored" in n for n in result.notes)
    assert checkpoint(site.db, site.km, key_label=LABEL).anchored
    assert read_anchor(site.km, site.site_id)[0].seq == 4 and site.check().ok


def test_concurrent_checkpointers_on_two_nodes_sign_one_at_a_time(site):
    errors = []

    def work(db):
        try:
            for _ in range(3):
                add(db)
                checkpoint(db, site.km, key_label=LABEL)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(db,)) for db in (site.db, site.other, site.db, site.other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    result = site.check()
    assert result.ok, result.problems
    assert result.checkpoints == 2 + 12 and read_anchor(site.km, site.site_id)[0].seq == 14


def test_the_periodic_test_signs_only_when_due_and_once_across_nodes(site):
    a = Checkpointer(site.db, site.km, key_label=LABEL, interval=3600, rows=5)
    b = Checkpointer(site.other, site.km, key_label=LABEL, interval=3600, rows=5)
    assert a.tick() is None                                    # nothing moved
    add(site.db, 2)
    assert a.tick() is None and b.tick() is None               # moved, but neither 5 rows nor an hour
    add(site.other, 4)
    done = [c.tick() for c in (a, b)]
    assert done[0] is not None and done[0].seq == 3 and done[1] is None   # the second finds it signed
    assert site.check().ok


def test_the_sink_keeps_each_checkpoint_and_verify_compares(site, tmp_path):
    sink = CheckpointSink(tmp_path / "remote" / "audit.jsonl")
    (tmp_path / "remote").mkdir()
    add(site.db)
    cp = Checkpointer(site.db, site.km, key_label=LABEL, sink=sink).checkpoint()
    [line] = read_sink(sink.path)
    assert (line["seq"], line["hash"], line["site"]) == (cp.seq, cp.hash, site.site_id)
    assert verify(site.db, site.spki, km=site.km, sink_path=sink.path).ok
    sql(site.db, "update audit_checkpoint set hash = :h where seq = :n", h="00" * 32, n=cp.seq)
    result = verify(site.db, site.spki, sink_path=sink.path)
    assert any(p.checkpoint == cp.seq and "append-only sink" in p.message for p in result.problems)


def test_anchors_of_two_sites_on_one_token_do_not_interfere(site, tmp_path):
    from store.db import Base, make_session_factory
    from store.db import make_engine
    other = make_session_factory(make_engine(f"sqlite:///{tmp_path}/other-site.db"))
    Base.metadata.create_all(other.kw["bind"])
    add(other, 2)
    checkpoint(other, site.km, key_label=LABEL)
    other_site = ensure_site(other)
    try:
        assert other_site != site.site_id
        assert verify(other, site.spki, km=site.km).ok and site.check().ok
    finally:
        site.km.delete_data(anchor_label(other_site))
        other.kw["bind"].dispose()


def _rehash_from(site, writer: str, first: int, **change) -> None:
    """Rewrite rows ``writer#first..`` with ``change`` and re-hash them and every later link (the insider's
    perfect rewrite)."""
    with site.db() as session:
        chain = [dict(r._mapping) for r in session.execute(text(
            "select id, at, actor, role, action, target_type, target_id, detail, seq, prev_hash from audit_event "
            "where writer_id = :w order by seq"), {"w": writer})]
    prev = None
    for r in chain:
        if r["seq"] < first:
            continue
        detail = r["detail"] if isinstance(r["detail"], dict) else json.loads(r["detail"])
        r.update(change)
        prev = r["prev_hash"] if prev is None else prev
        h = link_hash(writer, r["seq"], prev, body_digest(r["at"], r["actor"], r["role"], r["action"],
                                                          r["target_type"], r["target_id"], detail))
        sql(site.db, "update audit_event set actor = :a, prev_hash = :p, hash = :h where id = :id",
            a=r["actor"], p=prev, h=h, id=r["id"])
        prev = h


def test_wiping_checkpoints_and_the_site_identity_is_named(site):
    """The DBA deletes every checkpoint and the site identity, so that no anchor is looked for: rows older
    than the grace period with no checkpoint at all are named."""
    sql(site.db, "update audit_event set at = :t", t=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
    sql(site.db, "delete from audit_checkpoint")
    sql(site.db, "delete from audit_site")
    result = site.check()
    assert any(p.kind == "checkpoint" and "no checkpoint exists: the checkpoints were deleted" in p.message
               for p in result.problems)
    assert verify(site.db, site.spki, km=site.km, expected_site=site.site_id).problems   # a pinned id names it too
