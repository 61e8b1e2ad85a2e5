"""KeyManager.ensure_key_pair / ensure_secret_key: processes starting together on a fresh token (gunicorn
workers) end up with exactly one key per label, and every process gets that key."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from hsm import KeyManager

ROOT = Path(__file__).resolve().parents[3]

WORKER = """
import json, sys
from hsm import KeyManager
from hsm.config import HsmConfig, SoftTokenConfig
from pkicore.secret import Secret
module, token, pin, tokdir, label = sys.argv[1:6]
km = KeyManager(HsmConfig(module=module, token=token, pin=Secret(pin), softtoken=SoftTokenConfig(dir=tokdir)))
spki = km.ensure_key_pair(label, "sm2")
mac = km.ensure_secret_key(label + "-mac", "sm4")
print(json.dumps({"spki": spki.hex(), "mac": mac.key_id.hex()}))
km.close()
"""


def test_racing_processes_make_one_key_each(softtoken_config, softtoken_km: KeyManager):
    label = f"race-{secrets.token_hex(4)}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [softtoken_config.module, softtoken_config.token, softtoken_config.pin.reveal(),
            softtoken_config.softtoken.dir, label]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, text=True) for _ in range(4)]
    answers = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        answers.append(json.loads(out))
    assert len({a["spki"] for a in answers}) == 1 and len({a["mac"] for a in answers}) == 1
    keys = [k for k in softtoken_km.list_keys() if k.label in (label, label + "-mac")]
    assert sorted(k.label for k in keys) == [label, label + "-mac"]
    assert softtoken_km.ensure_key_pair(label) == bytes.fromhex(answers[0]["spki"])
