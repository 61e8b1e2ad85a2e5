"""`racentre serve` as operators run it: waitress with one worker, gunicorn with two (each worker
reinitialises the PKCS#11 module after the fork); health answers from every worker."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.pgschema import migrated


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _checkpoints(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("select count(*) from audit_checkpoint").fetchone()[0]


@pytest.mark.parametrize("workers", [1, 2])
def test_service_answers_health(tmp_path, softtoken_module, workers):
    (tmp_path / "softtoken").mkdir()
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    (tmp_path / "racentre.toml").write_text(
        '[hsm]\ntoken = "serve-test"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
        f'[database]\nurl = "{migrated(f"sqlite:///{tmp_path}/db.sqlite")}"\n[audit]\ncheckpoint_interval = 1\n'
        '[tsa]\npolicy = "1.2.3.4.1"\n')
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(RACENTRE_CONFIG=str(tmp_path / "racentre.toml"), RACENTRE_HSM_PIN="serve-pin",
               RACENTRE_SOFTTOKEN_SO_PIN="serve-so-pin", HOME=str(tmp_path / "home"),
               RACENTRE_TSA_REQUIRE_SYNC="false")      # this box's kernel clock is unsynchronised
    env.pop("XDG_RUNTIME_DIR", None)
    proc = subprocess.Popen([sys.executable, "-m", "racentre.cli", "serve", "--port", str(port),
                             "--workers", str(workers)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90        # start-up takes ~10 s alone, far longer on a loaded CI box
        answers = []
        while time.monotonic() < deadline and len(answers) < 6:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/hsm/health", timeout=5) as resp:
                    answers.append(json.loads(resp.read()))
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.2)
        assert len(answers) == 6 and all(a["status"] == "ok" and a["token"] == "serve-test" for a in answers)
        # every serving process signs periodic audit checkpoints ([audit] checkpoint_interval)
        while time.monotonic() < deadline + 15 and _checkpoints(tmp_path / "db.sqlite") == 0:
            time.sleep(0.3)
        assert _checkpoints(tmp_path / "db.sqlite") > 0
        # no per-host file: gunicorn's control socket ($HOME/.gunicorn/gunicorn.ctl) stays off
        assert not (tmp_path / "home" / ".gunicorn").exists()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "serve-pin" not in out and "serve-so-pin" not in out
