"""Several `racentre` nodes on one PostgreSQL schema and one token directory (standing in for a network
HSM), each with its own working directory and no local files of the site: concurrent `racentre setup`
(schema upgrade, CA hierarchy, every HSM key) and `racentre hsm keygen` on an empty schema leave one of
everything; a node that never ran setup, started before the site existed, serves TSA tokens that verify
against the site's root once `racentre setup` ran elsewhere — no restart, no file copied."""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from asn1crypto import tsp
from sqlalchemy import text

from racentre.migrate import current, head
from tests.pgschema import postgres_unreachable, schema_engine, url_of
from timestamp.tsa import TimeStampResp
from timestamp.verify import verify_token

ROOT = Path(__file__).resolve().parents[2]
PUBLIC_URL = "http://pki.nodes.test"


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """One node: its own directory and racentre.toml (own ports and node ids), the shared database and token."""

    def __init__(self, root: Path, name: str, url: str, token_dir: Path, index: int):
        self.dir = root / name
        self.dir.mkdir()
        self.port = _free_port()
        (self.dir / "racentre.toml").write_text(
            f'[hsm]\ntoken = "nodes"\n[softtoken]\ndir = "{token_dir}"\nauto_init = true\n'
            f'[service]\nport = {self.port}\npublic_url = "{PUBLIC_URL}"\n'
            f'[audit]\nnode_id = "{name}"\n[tsa]\nnode_id = {index}\npolicy = "1.2.3.4.1"\n')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
        self.env.update(PYTHONPATH=str(ROOT), RACENTRE_CONFIG=str(self.dir / "racentre.toml"),
                        RACENTRE_DATABASE_URL=url, RACENTRE_HSM_PIN="nodes-user-pin",
                        RACENTRE_SOFTTOKEN_SO_PIN="nodes-so-pin",
                        RACENTRE_TSA_REQUIRE_SYNC="false")      # this box's kernel clock is unsynchronised
        self.proc: subprocess.Popen | None = None

    def start(self, *args) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "racentre.cli", *args], cwd=self.dir, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, *args) -> subprocess.CompletedProcess:
        proc = self.start(*args)
        out, err = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(args, proc.returncode, out, err)

    def serve(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "racentre.cli", "serve"], cwd=self.dir, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/hsm/health", timeout=5).read()
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, self.stop()

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        out = self.proc.communicate(timeout=30)[0].decode()
        self.proc = None
        return out

    def stamp(self, data: bytes) -> TimeStampResp:
        query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": "sm3"}, "hashed_message": hashlib.new("sm3", data).digest()},
            "nonce": secrets.randbits(62), "cert_req": True}).dump()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/tsa", data=query,
                                         headers={"Content-Type": "application/timestamp-query"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            return TimeStampResp.load(resp.read())


@pytest.fixture
def nodes(tmp_path, softtoken_module):
    why = postgres_unreachable()
    if why:
        pytest.skip(f"PostgreSQL not reachable ({why})")
    token_dir = tmp_path / "softtoken"             # the "network HSM" both nodes use
    token_dir.mkdir()
    (token_dir / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    with schema_engine("nodes") as engine:
        url = url_of(engine)
        a, b = Node(tmp_path, "node-a", url, token_dir, 1), Node(tmp_path, "node-b", url, token_dir, 2)
        try:
            yield engine, a, b
        finally:
            for node in (a, b):
                node.stop()


def test_concurrent_setup_and_keygen_on_an_empty_schema_leave_one_of_everything(nodes):
    engine, a, b = nodes
    procs = [a.start("setup"), b.start("setup")]
    results = [(p.communicate(timeout=300), p.returncode) for p in procs]
    assert [r[1] for r in results] == [0, 0], results
    outputs = [r[0][0] for r in results]
    assert sum("created CA" in o for o in outputs) == 1          # one made the site, the other found it
    assert any("the site is already set up" in o for o in outputs)
    assert current(engine) == (head(),)
    keys = json.loads(a.run("hsm", "list", "--json").stdout)
    counts = Counter(k["label"] for k in keys)
    assert counts and max(counts.values()) == 1, counts            # every label once
    for label in ("audit-signing", "tsa-sm2", "kmc-sign", "kmc-mac", "kmc-kek-v1", "kmc-dr", "seal-maker"):
        assert label in counts, (label, sorted(counts))
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from ca_authority")).scalar() == 2     # root + issuing
    # the same key made from both nodes at once: one is made, the other refused, one object
    procs = [a.start("hsm", "keygen", "shared-key"), b.start("hsm", "keygen", "shared-key")]
    results = [(p.communicate(timeout=120), p.returncode) for p in procs]
    assert sorted(r[1] for r in results) == [0, 2], results
    assert any("already exists" in r[0][1] for r in results)
    labels = [k["label"] for k in json.loads(b.run("hsm", "list", "--json").stdout)]
    assert labels.count("shared-key") == 1


def test_tsa_on_a_node_that_never_ran_setup(nodes):
    engine, a, b = nodes
    assert a.run("db", "upgrade").returncode == 0
    b.serve()                                     # no CA, no TSA certificate yet, nothing local
    refused = b.stamp(b"before the site exists")
    assert refused["status"]["status"].native == "rejection"
    assert refused["status"]["fail_info"].native == {"system_failure"}
    setup = a.run("setup")                       # on the other node, while B serves
    assert setup.returncode == 0, setup.stderr
    assert "TSA unit default: certificate issued by our CA" in setup.stdout
    deadline = time.monotonic() + 30
    while True:                                  # B takes the certificate up by itself (no restart)
        reply = b.stamp(b"stamped by node B")
        if reply["status"]["status"].native == "granted" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert reply["status"]["status"].native == "granted", reply["status"].native
    with engine.connect() as conn:
        root = conn.execute(text("select certificate from ca_authority where parent_id is null")).scalar_one()
    result = verify_token(reply.dump(), data=b"stamped by node B", trust=[bytes(root)])
    assert result.ok, result.reasons
    assert not (b.dir / "tsa-certs").exists() and not (a.dir / "tsa-certs").exists()
    assert "Traceback" not in b.stop()
