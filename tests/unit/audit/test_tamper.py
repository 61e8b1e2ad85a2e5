"""Tampering straight in the database (SQL UPDATE/DELETE/INSERT, swapped sequence numbers, forged
checkpoints) is detected by `racentre audit verify`, which names the row; checkpoint signatures also
verify with independent SM2 verifiers (gmssl, OpenSSL)."""
from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from asn1crypto import pem
from click.testing import CliRunner
from gmssl import sm2 as gm_sm2
from sqlalchemy import text

from pkicore import point_from_public_key_info
from audit.trail import AuditCheckpoint, body_digest, checkpoint_tbs, link_hash, sm3_hex
from pkicore.signatures import der_to_raw
from pkicore.sm2 import SM2PublicKey, sm2_e
from racentre.audit import audit_public_key, checkpoint, verify
from racentre.audit_cli import audit_group
from racentre.config import AuditConfig
from tests.unit.audit.helpers import LABEL, add, build_trail, named, rows, sql


@pytest.fixture
def trail(nodes, softtoken_km):
    a, b = nodes
    build_trail(a, b, softtoken_km)
    spki = audit_public_key(softtoken_km, LABEL)
    assert verify(a, spki).ok
    chain = rows(a)
    writers = sorted({r["writer_id"] for r in chain})
    return SimpleNamespace(db=a, spki=spki, chain=chain, writers=writers,
                           row=lambda w, seq: next(r for r in chain if r["writer_id"] == writers[w] and r["seq"] == seq))


def test_a_modified_row_is_named(trail):
    target = trail.row(0, 3)
    sql(trail.db, "update audit_event set actor = 'mallory' where id = :id", id=target["id"])
    result = verify(trail.db, trail.spki)
    assert not result.ok
    [problem] = named(result, "modified", row_id=target["id"])
    assert problem.writer == trail.writers[0] and problem.seq == 3 and f"row id {target['id']}" in problem.message
    assert all(p.row_id == target["id"] for p in result.problems)


def test_a_modified_and_rehashed_row_breaks_the_next_link(trail):
    target, following = trail.row(1, 2), trail.row(1, 3)
    with trail.db() as session:
        ev = session.execute(text(
            "select at, role, action, target_type, target_id, detail, writer_id, seq, prev_hash from audit_event "
            "where id = :id"), {"id": target["id"]}).one()
    detail = ev.detail if isinstance(ev.detail, dict) else json.loads(ev.detail)
    new_hash = link_hash(ev.writer_id, ev.seq, ev.prev_hash,
                         body_digest(ev.at, "mallory", ev.role, ev.action, ev.target_type, ev.target_id, detail))
    sql(trail.db, "update audit_event set actor = 'mallory', hash = :h where id = :id", h=new_hash, id=target["id"])
    result = verify(trail.db, trail.spki)
    [problem] = named(result, "broken-link", row_id=following["id"])
    assert f"row id {target['id']} was modified" in problem.message


def test_a_rewritten_signed_head_fails_against_the_checkpoint(trail):
    head = trail.row(0, 6)           # the head signed by the checkpoint
    sql(trail.db, "update audit_event set hash = :h where id = :id", h="ab" * 32, id=head["id"])
    result = verify(trail.db, trail.spki)
    assert named(result, "modified", row_id=head["id"], checkpoint=1)


def test_a_deleted_row_is_named(trail):
    gone, before = trail.row(1, 4), trail.row(1, 3)
    sql(trail.db, "delete from audit_event where id = :id", id=gone["id"])
    result = verify(trail.db, trail.spki)
    [problem] = named(result, "deleted", writer=trail.writers[1], seq=4)
    assert f"after row id {before['id']}" in problem.message
    assert len(result.problems) == 1


def test_deleting_the_tail_up_to_a_signed_head_is_caught(trail):
    for seq in (6, 7, 8):
        sql(trail.db, "delete from audit_event where id = :id", id=trail.row(0, seq)["id"])
    result = verify(trail.db, trail.spki)
    assert named(result, "deleted", writer=trail.writers[0], seq=6, checkpoint=1)


def test_inserted_rows_are_named(trail):
    template = trail.row(0, 8)
    sql(trail.db, "insert into audit_event (at, actor, role, action, target_type, target_id, detail, writer_id, seq, "
        "prev_hash, hash) values (:at, 'mallory', 'ra_admin', 'cert.issue', 'certificate', 'x', '{}', 'evil/1/00/0', "
        "1, :z, :z)", at=dt.datetime.now(dt.timezone.utc), z="00" * 32)
    # a perfect forgery appended to a real chain, back-dated before the checkpoint
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)
    h = link_hash(template["writer_id"], 9, template["hash"],
                  body_digest(at, "mallory", "ra_admin", "cert.issue", "certificate", "y", {}))
    sql(trail.db, "insert into audit_event (at, actor, role, action, target_type, target_id, detail, writer_id, seq, "
        "prev_hash, hash) values (:at, 'mallory', 'ra_admin', 'cert.issue', 'certificate', 'y', '{}', :w, 9, :p, :h)",
        at=at, w=template["writer_id"], p=template["hash"], h=h)
    # and one that leaves a gap in the other chain
    sql(trail.db, "insert into audit_event (at, actor, role, action, target_type, target_id, detail, writer_id, seq, "
        "prev_hash, hash) values (:at, 'mallory', 'ra_admin', 'cert.issue', 'certificate', 'z', '{}', :w, 12, :z, :z)",
        at=dt.datetime.now(dt.timezone.utc), w=trail.writers[1], z="00" * 32)
    result = verify(trail.db, trail.spki)
    new = {r["writer_id"]: r["id"] for r in rows(trail.db) if r["actor"] == "mallory"}
    assert named(result, "inserted", row_id=new["evil/1/00/0"], writer="evil/1/00/0")
    assert named(result, "inserted", row_id=new[template["writer_id"]], seq=9)
    assert named(result, "deleted", writer=trail.writers[1], seq=9)     # 9..11 missing before the forged 12
    assert named(result, "modified", row_id=new[trail.writers[1]])


def test_reordered_rows_are_named(trail):
    first, second = trail.row(0, 4), trail.row(0, 5)
    sql(trail.db, "update audit_event set seq = -1 where id = :id", id=first["id"])
    sql(trail.db, "update audit_event set seq = 4 where id = :id", id=second["id"])
    sql(trail.db, "update audit_event set seq = 5 where id = :id", id=first["id"])
    result = verify(trail.db, trail.spki)
    [moved_up] = named(result, "reordered", row_id=second["id"])
    [moved_down] = named(result, "reordered", row_id=first["id"])
    assert "hashes correctly at" in moved_up.message and moved_up.message.endswith("reordered (seq changed)")
    assert f"#{5}" in moved_up.message and f"#{4}" in moved_down.message


def test_forged_checkpoints_fail(trail, softtoken_km):
    with trail.db() as session:
        cp = session.query(AuditCheckpoint).one()
        signature = bytearray(bytes.fromhex(cp.signature))
    signature[-3] ^= 0x01
    sql(trail.db, "update audit_checkpoint set signature = :s", s=bytes(signature).hex())
    assert named(verify(trail.db, trail.spki), "signature", checkpoint=1)

    # an outsider's own SM2 key signs a checkpoint over rewritten heads
    label = f"mallory-{secrets.token_hex(3)}"
    mallory = softtoken_km.generate_key_pair(label, "sm2").public_key_info
    with trail.db() as session:
        cp = session.query(AuditCheckpoint).one()
        heads = [[w, s, "cd" * 32] for w, s, _h in cp.heads]
        fingerprint = cp.key_fingerprint
        at, prev, site = cp.at, cp.prev_hash, cp.site_id
    tbs = checkpoint_tbs(1, at, prev, fingerprint, heads, site)
    sql(trail.db, "update audit_checkpoint set heads = :h, signature = :s, hash = :x",
        h=json.dumps(heads), s=softtoken_km.sign(label, tbs).hex(), x=sm3_hex(tbs))
    result = verify(trail.db, trail.spki)
    assert named(result, "signature", checkpoint=1)
    assert named(result, "modified", checkpoint=1)          # the signed heads no longer match the chains
    assert verify(trail.db, mallory).problems                # nor does it pass under the outsider's key
    softtoken_km.delete_key(label)


def test_a_deleted_checkpoint_is_named(trail, softtoken_km):
    checkpoint(trail.db, softtoken_km, key_label=LABEL)
    checkpoint(trail.db, softtoken_km, key_label=LABEL)
    assert verify(trail.db, trail.spki).ok
    sql(trail.db, "delete from audit_checkpoint where seq = 2")
    result = verify(trail.db, trail.spki)
    assert [p.checkpoint for p in result.problems if p.kind == "checkpoint"] == [3]


def test_checkpoint_signatures_verify_independently(trail):
    with trail.db() as session:
        cp = session.query(AuditCheckpoint).one()
        tbs = checkpoint_tbs(cp.seq, cp.at, cp.prev_hash, cp.key_fingerprint, cp.heads, cp.site_id)
        signature = bytes.fromhex(cp.signature)
    _curve, point = point_from_public_key_info(trail.spki)
    crypt = gm_sm2.CryptSM2(private_key="", public_key=point[1:].hex(), asn1=False)
    crypt.public_key = point[1:].hex()     # gmssl 3.2.2 strips a leading "04" from the hex otherwise
    e = sm2_e(SM2PublicKey.from_point(point), tbs)
    assert crypt.verify(der_to_raw(signature).hex(), e)
    assert not crypt.verify(der_to_raw(signature).hex(), sm2_e(SM2PublicKey.from_point(point), tbs + b"x"))


def test_openssl_verifies_a_checkpoint_signature(trail, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    with trail.db() as session:
        cp = session.query(AuditCheckpoint).one()
        (tmp_path / "tbs").write_bytes(checkpoint_tbs(cp.seq, cp.at, cp.prev_hash, cp.key_fingerprint, cp.heads, cp.site_id))
        (tmp_path / "sig").write_bytes(bytes.fromhex(cp.signature))
    (tmp_path / "pub.pem").write_bytes(pem.armor("PUBLIC KEY", trail.spki))
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(tmp_path / "pub.pem"), "-rawin", "-digest", "sm3",
           "-pkeyopt", "distid:1234567812345678", "-in", str(tmp_path / "tbs"), "-sigfile", str(tmp_path / "sig")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stderr


def test_cli_verify_exits_non_zero_and_names_the_row(trail, softtoken_km):
    obj = {"config": SimpleNamespace(audit=AuditConfig(key_label=LABEL)),
           "services": SimpleNamespace(db=trail.db, key_manager=softtoken_km)}
    runner = CliRunner()
    ok = runner.invoke(audit_group, ["verify", "--json"], obj=obj)
    assert ok.exit_code == 0, ok.output
    body = json.loads(ok.output)
    assert body["ok"] and body["checkpoint"]["seq"] == 2 and body["rows"] == 16
    add(trail.db)
    target = trail.row(1, 1)
    sql(trail.db, "update audit_event set detail = :d where id = :id", d='{"note":"nothing happened"}', id=target["id"])
    bad = runner.invoke(audit_group, ["verify", "--json"], obj=obj)
    assert bad.exit_code == 1
    body = json.loads(bad.output)
    assert not body["ok"] and "checkpoint" not in body
    assert any(p["row_id"] == target["id"] and p["kind"] == "modified" for p in body["problems"])
    plain = runner.invoke(audit_group, ["verify", "--no-checkpoint"], obj=obj)
    assert plain.exit_code == 1 and f"row id {target['id']}" in plain.output and "FAILED" in plain.output
    cp = runner.invoke(audit_group, ["checkpoint", "--json"], obj=obj)
    assert cp.exit_code == 0 and json.loads(cp.output)["seq"] == 3
