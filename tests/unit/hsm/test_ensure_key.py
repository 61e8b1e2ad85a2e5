"""KeyManager.ensure_key_pair / ensure_secret_key / generate_*: processes starting together on one token
(gunicorn workers, or nodes sharing a network HSM) end up with exactly one key per label, and every
process gets that key, when they share a database lock (``store.db.named_lock``, as
``racentre.services.Services`` wires it) — a PostgreSQL advisory lock, or SQLite's lock files."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from hsm import KeyManager
from tests.pgschema import empty_engine, url_of
from tests.threads import run_threads

ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import json, sys
from hsm import HsmError, KeyManager
from hsm.config import HsmConfig, SoftTokenConfig
from store.db import make_engine, named_lock
from pkicore.secret import Secret
module, token, pin, tokdir, label, url = sys.argv[1:7]
engine = make_engine(url)
km = KeyManager(HsmConfig(module=module, token=token, pin=Secret(pin), softtoken=SoftTokenConfig(dir=tokdir)),
                creation_lock=lambda name: named_lock(engine, "hsm-key:" + token + ":" + name))
spki = km.ensure_key_pair(label, "sm2")
mac = km.ensure_secret_key(label + "-mac", "sm4")
try:                                     # `racentre hsm keygen` of one label on every node at once
    km.generate_key_pair(label + "-gen", "sm2")
    made = True
except HsmError as exc:
    assert "already exists" in str(exc), exc
    made = False
print(json.dumps({"spki": spki.hex(), "mac": mac.key_id.hex(), "made": made}))
km.close()
engine.dispose()
"""


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_racing_processes_make_one_key_each(kind, softtoken_config, softtoken_km: KeyManager, tmp_path):
    label = f"race-{secrets.token_hex(4)}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with empty_engine(kind, tmp_path, "keylock") as engine:
        url = url_of(engine) if kind == "postgresql" else str(engine.url)
        args = [softtoken_config.module, softtoken_config.token, softtoken_config.pin.reveal(),
                softtoken_config.softtoken.dir, label, url]
        procs = [subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, text=True) for _ in range(6)]
        answers = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            answers.append(json.loads(out))
    assert len({a["spki"] for a in answers}) == 1 and len({a["mac"] for a in answers}) == 1
    assert sum(a["made"] for a in answers) == 1          # one keygen made it, five were refused
    labels = [k.label for k in softtoken_km.list_keys() if k.label.startswith(label)]
    assert sorted(labels) == [label, label + "-gen", label + "-mac"]     # one object each
    assert softtoken_km.ensure_key_pair(label) == bytes.fromhex(answers[0]["spki"])


def test_the_default_lock_covers_threads_of_one_process(softtoken_km: KeyManager):
    label = f"thread-race-{secrets.token_hex(4)}"
    spkis = set()
    assert run_threads(lambda n: spkis.add(softtoken_km.ensure_key_pair(label, "sm2")), 8) == []
    assert len(spkis) == 1
    assert [k.label for k in softtoken_km.list_keys()].count(label) == 1
