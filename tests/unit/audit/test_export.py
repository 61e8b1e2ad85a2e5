"""Auditor export: a signed range with links to signed checkpoint heads; `verify-export` checks it with
nothing but the file, its signature and the public key (OpenSSL checks the detached signature too);
a one-byte edit, a re-signed forgery and a truncated range fail; the demo artefacts verify."""
from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from audit.trail import body_digest, link_hash
from racentre.audit import export_range, load_public_key, parse_bound, verify, verify_export
from racentre.audit_cli import audit_group
from racentre.config import AuditConfig
from racentre.demo.audit import write_audit_export
from tests.unit.audit.helpers import LABEL, add, build_trail, rows


@pytest.fixture
def exported(nodes, softtoken_km, tmp_path):
    a, b = nodes
    build_trail(a, b, softtoken_km)
    result = export_range(a, softtoken_km, tmp_path / "range.json", key_label=LABEL)
    return SimpleNamespace(db=a, result=result, key=load_public_key(result.public_key_path))


def test_round_trip(exported):
    check = verify_export(exported.result.path, public_key_info=exported.key)
    assert check.ok, check.problems
    assert (check.rows, check.checkpoints, check.key_source) == (16, 1, "given")
    doc = json.loads(exported.result.path.read_text(encoding="utf-8"))
    assert {r["actor"] for r in doc["rows"]} == {"officer-a", "officer-b"}
    assert doc["rows"][0]["detail"]["note"] == "四眼原则 approved"
    assert verify(exported.db, exported.key).ok          # the export's own audit row chains too


def test_a_middle_range_carries_links_to_the_signed_heads(exported, softtoken_km, tmp_path):
    chain = rows(exported.db)
    ids = sorted(r["id"] for r in chain)
    out = tmp_path / "middle.json"
    result = export_range(exported.db, softtoken_km, out, start=parse_bound(str(ids[2])),
                          end=parse_bound(str(ids[5])), key_label=LABEL)
    assert result.rows == 4 and result.links > 0
    check = verify_export(out)            # key embedded in the export
    assert check.ok and check.key_source == "embedded in the export", check.problems
    doc = json.loads(out.read_text(encoding="utf-8"))
    link = doc["links"][0]
    assert set(link) == {"writer", "seq", "prev_hash", "body_digest", "hash"}     # no content beyond the range
    by_time = export_range(exported.db, softtoken_km, tmp_path / "time.json",
                           start=parse_bound(doc["rows"][0]["at"]), key_label=LABEL)
    assert by_time.rows >= 4 and verify_export(by_time.path, public_key_info=exported.key).ok


@pytest.mark.parametrize("where", ["actor", "signature", "first"])
def test_a_one_byte_edit_fails(exported, where):
    data = bytearray(exported.result.path.read_bytes())
    if where == "actor":
        pos = data.index(b"officer-b") + len(b"officer-")
    elif where == "signature":
        pos = data.index(b'"signature": "') + len(b'"signature": "') + 10
    else:
        pos = 0
    data[pos] = ord("c") if data[pos] != ord("c") else ord("d")
    exported.result.path.write_bytes(bytes(data))
    check = verify_export(exported.result.path, public_key_info=exported.key)
    assert not check.ok
    assert any(p.kind == "signature" and "range.json.sig" in p.message for p in check.problems)
    if where == "actor":
        assert any(p.kind == "modified" and p.writer.startswith("node-b/") for p in check.problems)


def test_a_re_signed_forgery_fails(exported, softtoken_km):
    """Mallory edits a row, re-hashes the chain to its head, and re-signs the file with his own key."""
    doc = json.loads(exported.result.path.read_text(encoding="utf-8"))
    row = doc["rows"][0]
    row["actor"] = "mallory"
    row["hash"] = link_hash(row["writer"], row["seq"], row["prev_hash"],
                            body_digest(row["at"], row["actor"], row["role"], row["action"], row["target_type"],
                                        row["target_id"], row["detail"]))
    label = f"mallory-{secrets.token_hex(3)}"
    mallory = softtoken_km.generate_key_pair(label, "sm2").public_key_info
    data = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    exported.result.path.write_bytes(data)
    exported.result.signature_path.write_bytes(softtoken_km.sign(label, data))
    assert any(p.kind == "signature" for p in verify_export(exported.result.path,
                                                            public_key_info=exported.key).problems)
    under_mallory = verify_export(exported.result.path, public_key_info=mallory)     # his signature holds...
    assert not under_mallory.ok
    assert any(p.kind == "signature" and p.checkpoint == 2 for p in under_mallory.problems)   # ...the HSM's doesn't
    assert any(p.kind == "broken-link" and p.seq == 2 for p in under_mallory.problems)
    softtoken_km.delete_key(label)


def test_a_row_dropped_from_the_export_is_named(exported):
    doc = json.loads(exported.result.path.read_text(encoding="utf-8"))
    dropped = doc["rows"].pop(3)
    exported.result.path.write_bytes(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    check = verify_export(exported.result.path, public_key_info=exported.key)
    assert any(p.kind == "deleted" and p.writer == dropped["writer"] and p.seq == dropped["seq"]
               for p in check.problems)


def test_openssl_verifies_the_detached_signature(exported):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    r = exported.result
    done = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(r.public_key_path), "-rawin",
                           "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", str(r.path),
                           "-sigfile", str(r.signature_path)], capture_output=True, text=True)
    assert done.returncode == 0 and "Signature Verified Successfully" in done.stdout, done.stderr


def test_cli_export_and_verify_export(nodes, softtoken_km, tmp_path):
    a, b = nodes
    build_trail(a, b, softtoken_km)
    obj = {"config": SimpleNamespace(audit=AuditConfig(key_label=LABEL)),
           "services": SimpleNamespace(db=a, key_manager=softtoken_km)}
    runner = CliRunner()
    out = tmp_path / "cli.json"
    done = runner.invoke(audit_group, ["export", "--from", "1", "--out", str(out)], obj=obj)
    assert done.exit_code == 0, done.output
    assert "exported 16 rows" in done.output
    checked = runner.invoke(audit_group, ["verify-export", str(out), "--public-key", str(out) + ".pub.pem", "--json"])
    assert checked.exit_code == 0 and json.loads(checked.output)["ok"]
    out.write_bytes(out.read_bytes().replace(b"officer-a", b"officer-x", 1))
    failed = runner.invoke(audit_group, ["verify-export", str(out)])
    assert failed.exit_code == 1 and "FAILED" in failed.output and "[signature]" in failed.output
    bad = runner.invoke(audit_group, ["export", "--from", "yesterday", "--out", str(out)], obj=obj)
    assert bad.exit_code != 0


def test_demo_artefacts(nodes, softtoken_km, tmp_path):
    a, b = nodes
    add(a, 3)
    services = SimpleNamespace(db=a, key_manager=softtoken_km, config=SimpleNamespace(audit=AuditConfig(key_label=LABEL)))
    written = write_audit_export(services, tmp_path / "demo")
    assert written == ["audit-export.json", "audit-export.json.sig", "audit-public-key.pem"]
    for name in written:
        assert (tmp_path / "demo" / name).stat().st_size > 0
    check = verify_export(tmp_path / "demo" / "audit-export.json",
                          public_key_info=load_public_key(tmp_path / "demo" / "audit-public-key.pem"))
    assert check.ok and check.rows == 3
