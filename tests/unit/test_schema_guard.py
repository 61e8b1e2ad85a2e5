"""`racentre db upgrade` is the one step that changes the schema, and the only one that may run on an
empty, older or newer database: concurrent upgrades on an empty schema both succeed (the second waits
on the advisory lock, then finds nothing to do); every other command — and `racentre serve` before it
forks — refuses an absent, older or newer schema with a clear message and exit status 2; a running node
whose schema another version changed stops serving (503) instead of using tables it does not know."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import text

from racentre.migrate import _scripts, current, head, upgrade
from tests.pgschema import empty_engine, url_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(engine, url) of an empty database."""
    with empty_engine(request.param, tmp_path, "guard") as engine:
        yield engine, (url_of(engine) if request.param == "postgresql" else str(engine.url))


def _racentre(tmp_path: Path, url: str, *args) -> subprocess.Popen:
    (tmp_path / "softtoken").mkdir(exist_ok=True)
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(PYTHONPATH=str(ROOT), RACENTRE_DATABASE_URL=url, RACENTRE_HSM_TOKEN="guard",
               RACENTRE_HSM_PIN="guard-pin", RACENTRE_SOFTTOKEN_SO_PIN="guard-so-pin",
               RACENTRE_SOFTTOKEN_DIR=str(tmp_path / "softtoken"), RACENTRE_SOFTTOKEN_AUTO_INIT="true",
               RACENTRE_SERVICE_SCHEMA_CHECK_INTERVAL="1")
    return subprocess.Popen([sys.executable, "-m", "racentre.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(tmp_path: Path, url: str, *args) -> subprocess.CompletedProcess:
    proc = _racentre(tmp_path, url, *args)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_concurrent_upgrades_of_an_empty_schema_both_succeed(database, tmp_path):
    engine, url = database
    procs = [_racentre(tmp_path, url, "db", "upgrade") for _ in range(3)]
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0, 0, 0], results
    assert all(f"database schema is at {head()}" in r[0] for r in results)
    assert current(engine) == (head(),)


def test_commands_refuse_an_empty_schema(database, tmp_path):
    _, url = database
    refused = _run(tmp_path, url, "ca", "list")
    assert refused.returncode == 2 and "no racentre schema yet: run `racentre db upgrade`" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_commands_and_serve_refuse_an_older_schema(database, tmp_path):
    engine, url = database
    older = _scripts().get_revision(head()).down_revision
    upgrade(engine, older)
    for args in (("ca", "list"), ("serve", "--port", "1")):
        refused = _run(tmp_path, url, *args)
        assert refused.returncode == 2, (args, refused)
        assert f"is older than this code ({head()}): run `racentre db upgrade`" in refused.stderr, refused.stderr
    assert current(engine) == (older,)              # nothing was migrated under the operator's feet
    assert _run(tmp_path, url, "db", "upgrade").returncode == 0
    assert _run(tmp_path, url, "db", "check").returncode == 0


def test_commands_and_serve_refuse_a_newer_schema(database, tmp_path):
    engine, url = database
    upgrade(engine)
    with engine.begin() as conn:           # a later version's CLI upgraded it to a revision unknown here
        conn.execute(text("update alembic_version set version_num = 'f00dfeedbeef'"))
    for args in (("serve", "--port", "1"), ("db", "upgrade")):
        refused = _run(tmp_path, url, *args)
        assert refused.returncode == 2, (args, refused)
        assert (f"the database schema (f00dfeedbeef) is newer than this code ({head()})" in refused.stderr
                and "install the same racentre version" in refused.stderr), refused.stderr
        assert "Traceback" not in refused.stderr
    assert current(engine) == ("f00dfeedbeef",)


def test_a_running_node_stops_serving_once_another_version_upgraded_the_schema(database, tmp_path):
    engine, url = database
    upgrade(engine)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = _racentre(tmp_path, url, "serve", "--port", str(port))
    health = f"http://127.0.0.1:{port}/hsm/health"

    def status() -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(health, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert status()[0] == 200
                break
            except OSError:
                assert node.poll() is None and time.monotonic() < deadline, node.communicate()
                time.sleep(0.2)
        with engine.begin() as conn:         # a newer version's `racentre db upgrade`, run elsewhere
            conn.execute(text("update alembic_version set version_num = 'f00dfeedbeef'"))
        deadline = time.monotonic() + 15
        while (answer := status())[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert answer[0] == 503 and answer[1]["error"]["code"] == "configuration"
        assert "newer than this code" in answer[1]["error"]["message"]
    finally:
        node.terminate()
        node.communicate(timeout=30)
