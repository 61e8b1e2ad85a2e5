"""An insider with write access to the database (issue 15), against a real site made by `racentre setup` in
a subprocess (own token directory, SQLite file or PostgreSQL schema): with plain SQL they delete the last
checkpoint, delete every checkpoint and the newest rows, truncate a chain's tail, delete a writer, rewrite
and re-hash a chain, replace the site identity. `racentre audit verify` exits 1 and names each; the
untouched trail verifies (exit 0); `racentre audit checkpoint` refuses to sign over a tampered trail; the
append-only sink file has every checkpoint. And someone with the token directory but not the PIN: an
edited anchor is unusable, a deleted one is named; a swapped TSA token is named."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from audit.trail import body_digest, link_hash
from tests.cli_session import CliSession
from tests.pgschema import empty_engine, url_of

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("audit_site", "audit_writer", "audit_event", "audit_checkpoint")


class Site:
    def __init__(self, root: Path, url: str, engine):
        self.dir, self.engine = root / "site", engine
        self.session: CliSession | None = None
        self.dir.mkdir()
        (root / "remote").mkdir()
        self.sink = root / "remote" / "checkpoints.jsonl"       # stands in for a file on another host
        (self.dir / "softtoken").mkdir()
        (self.dir / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
        (self.dir / "racentre.toml").write_text(
            '[hsm]\ntoken = "insider"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
            '[service]\npublic_url = "http://pki.insider.test"\n'
            f'[audit]\nnode_id = "node-a"\nsink_file = "{self.sink}"\n[tsa]\npolicy = "1.2.3.4.1"\n')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
        self.env.update(PYTHONPATH=str(ROOT), RACENTRE_CONFIG=str(self.dir / "racentre.toml"),
                        RACENTRE_DATABASE_URL=url, RACENTRE_HSM_PIN="insider-user-pin",
                        RACENTRE_SOFTTOKEN_SO_PIN="insider-so-pin",
                        RACENTRE_TSA_REQUIRE_SYNC="false")     # this box's kernel clock is unsynchronised

    def run(self, *args, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "racentre.cli", *args], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def sql(self, statement: str, **params):
        with self.engine.begin() as conn:
            return conn.execute(text(statement), params)

    def query(self, statement: str, **params) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(text(statement), params))

    def verify(self, own_process: bool = False) -> subprocess.CompletedProcess:
        """`racentre audit verify`: in a process of its own, or (read-only, the token's files untouched
        since the session started) the next command of one long-lived interpreter (tests/cli_session.py)."""
        if own_process:
            return self.run("audit", "verify", "--no-checkpoint", check=False)
        if self.session is None:
            self.session = CliSession(self.env, self.dir)
        return self.session.run("audit", "verify", "--no-checkpoint")

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def snapshot(self) -> None:
        for t in TABLES:
            self.sql(f"create table bk_{t} as select * from {t}")

    def restore(self) -> None:
        for t in reversed(TABLES):
            self.sql(f"delete from {t}")
        for t in TABLES:
            self.sql(f"insert into {t} select * from bk_{t}")


@pytest.fixture(params=["sqlite", "postgresql"])
def site(request, tmp_path):
    with empty_engine(request.param, tmp_path, "insider") as engine:
        url = f"sqlite:///{tmp_path / 'insider.db'}" if request.param == "sqlite" else url_of(engine)
        s = Site(tmp_path, url, engine)
        out = s.run("setup").stdout
        assert "audit site identity" in out and "anchored in the HSM" in out
        s.run("audit", "export", "--out", str(tmp_path / "review.json"))     # a second process, a second writer
        s.run("audit", "checkpoint")
        try:
            yield s
        finally:
            s.close()


def test_an_insider_with_the_database_is_named_by_verify(site):
    ok = site.verify()
    assert ok.returncode == 0 and "audit trail OK" in ok.stdout, ok.stdout + ok.stderr
    [(top,)] = site.query("select max(seq) from audit_checkpoint")
    tokens = site.query("select tsa_token from audit_checkpoint where tsa_token is not null")
    assert len(tokens) == top                                 # every checkpoint time-stamped by the site's TSA
    lines = [json.loads(line) for line in site.sink.read_text().splitlines()]
    assert [e["seq"] for e in lines] == list(range(1, top + 1))
    writers = site.query("select writer_id, max(seq) from audit_event group by writer_id order by 2 desc")
    assert len(writers) >= 2
    big, big_top = writers[0]
    small, small_top = writers[-1]
    site.snapshot()
    findings = {}

    # 1. the last checkpoint deleted
    site.sql("delete from audit_checkpoint where seq = :n", n=top)
    findings["deleted checkpoint"] = out = site.verify()
    assert out.returncode == 1
    assert f"[checkpoint] checkpoints #{top} are missing: the HSM anchor counter is at #{top}" in out.stdout
    assert f"checkpoint #{top} (" in out.stdout and "append-only sink but not in the database" in out.stdout
    refused = site.run("audit", "checkpoint", check=False)
    assert refused.returncode == 1 and "REFUSED" in refused.stderr
    site.restore()

    # 2. every checkpoint deleted, and the newest rows with them
    site.sql("delete from audit_checkpoint")
    site.sql("delete from audit_event where writer_id = :w and seq > :s", w=big, s=big_top - 3)
    findings["all checkpoints and the newest rows deleted"] = out = site.verify()
    assert out.returncode == 1 and f"checkpoints #1..#{top} are missing" in out.stdout
    site.restore()

    # 3. the tail of a chain truncated (checkpoints left alone)
    site.sql("delete from audit_event where writer_id = :w and seq > :s", w=big, s=big_top - 2)
    findings["truncated tail"] = out = site.verify()
    assert out.returncode == 1
    assert f"[deleted] writer {big}: its tail #{big_top - 1}..#{big_top} is missing" in out.stdout
    assert "truncated" in out.stdout
    site.restore()

    # 4. a writer deleted with all its rows
    site.sql("delete from audit_event where writer_id = :w", w=small)
    site.sql("delete from audit_writer where id = :w", w=small)
    findings["deleted writer"] = out = site.verify()
    assert out.returncode == 1 and f"[deleted-writer] writer {small} is gone" in out.stdout
    site.restore()

    # 5. a row rewritten and every later row re-hashed, so that each row and link is consistent
    first = big_top - 4
    rows = site.query("select id, at, actor, role, action, target_type, target_id, detail, seq, prev_hash "
                      "from audit_event where writer_id = :w and seq >= :s order by seq", w=big, s=first)
    prev = rows[0].prev_hash
    for r in rows:
        actor = "mallory" if r.seq == first else r.actor
        detail = r.detail if isinstance(r.detail, dict) else json.loads(r.detail)
        h = link_hash(big, r.seq, prev, body_digest(r.at, actor, r.role, r.action, r.target_type, r.target_id,
                                                    detail))
        site.sql("update audit_event set actor = :a, prev_hash = :p, hash = :h where id = :id",
                 a=actor, p=prev, h=h, id=r.id)
        prev = h
    findings["rewritten and re-hashed row"] = out = site.verify()
    assert out.returncode == 1
    assert f"[rewritten] writer {big}: the chain was rewritten and re-hashed" in out.stdout
    assert "[modified]" not in out.stdout and "[broken-link]" not in out.stdout
    site.restore()

    # 6. the site identity replaced (to point verify at an anchor of the insider's choosing)
    site.sql("update audit_site set site_id = :s", s="0" * 32)
    findings["replaced site identity"] = out = site.verify()
    assert out.returncode == 1 and "[site]" in out.stdout and "the site identity was replaced" in out.stdout
    site.restore()

    # 7. the checkpoints' TSA tokens swapped (a token of another time for checkpoint #1)
    [(t1,)] = site.query("select tsa_token from audit_checkpoint where seq = 1")
    [(t2,)] = site.query("select tsa_token from audit_checkpoint where seq = 2")
    site.sql("update audit_checkpoint set tsa_token = :t where seq = 1", t=t2)
    findings["swapped time-stamp token"] = out = site.verify()
    assert out.returncode == 1 and "[timestamp] checkpoint #1: its RFC 3161 token does not verify" in out.stdout
    site.sql("update audit_checkpoint set tsa_token = :t where seq = 1", t=t1)

    # 8. someone with the token directory but no PIN: edits the anchor's sealed value, then deletes it
    #    (each verify in a fresh process, which reads the token's files at C_Initialize)
    [anchor_file] = [f for f in (site.dir / "softtoken").rglob("*.obj") if b"racentre-audit-anchor:" in f.read_bytes()]
    raw = bytearray(anchor_file.read_bytes())
    raw[-40] ^= 1                          # inside the sealed part (the file ends with its SHA-256)
    body = bytes(raw[:-32])
    anchor_file.write_bytes(body + hashlib.sha256(body).digest())
    findings["anchor edited without the PIN"] = out = site.verify(own_process=True)
    assert out.returncode == 1 and "[anchor] the HSM anchor of site" in out.stdout and "cannot be read" in out.stdout
    anchor_file.unlink()
    findings["anchor deleted without the PIN"] = out = site.verify(own_process=True)
    assert out.returncode == 1 and "[anchor] the HSM holds no anchor" in out.stdout
    for case, out in findings.items():          # what an operator sees, in the test log
        print(f"== {case}: exit {out.returncode}\n{out.stdout}")
