"""What a serving process loads (issue 14: the service's RSS, summed over its processes, is bounded): the
schema is checked without Alembic (racentre.schema reads the revision graph itself and agrees with
Alembic); neither Alembic nor openpyxl (XLSX rosters only) is imported by the service app's modules; a
worker that made no seal and set no password carries neither pyHanko (seal.pdf, seal.ofd, seal.geometry)
nor zxcvbn; and `serve --workers N`'s arbiter loads neither SQLAlchemy nor the service (it keeps the
configuration pickled for the workers)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from racentre import migrate, schema
from tests.pgschema import migrated

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("alembic", "openpyxl", "pyhanko", "zxcvbn", "seal.pdf", "seal.ofd", "seal.geometry", "seal.verify")

# a serving worker as gunicorn makes one (racentre.arbiter._Gunicorn.load -> racentre.serve.worker_app),
# asked what a relying party and an officer's browser ask, then: which of HEAVY did it load?
_WORKER = """
import json, pickle, sys
from racentre.config import load_config
from racentre.app import DEFAULT_PACKAGES
from racentre.serve import worker_app

app = worker_app(pickle.loads(pickle.dumps(load_config(sys.argv[1]))), DEFAULT_PACKAGES)
client = app.test_client()
statuses = [client.get(path).status_code for path in ("/hsm/health", "/ca", "/console/login", "/seal/seals")]
statuses.append(client.post("/tsa", data=b"0", content_type="application/timestamp-query").status_code)
statuses.append(client.post("/ocsp", data=b"0", content_type="application/ocsp-request").status_code)
heavy = sys.argv[2].split(",")
print(json.dumps({"statuses": statuses,
                  "loaded": sorted(m for m in heavy if m in sys.modules or any(k.startswith(m + ".") for k in sys.modules))}))
"""

_ARBITER = """
import sys
import racentre.arbiter
print(sorted({m.split('.')[0] for m in sys.modules} & {'sqlalchemy', 'flask', 'ca_bridge', 'seal', 'pkcs11'}))
"""


def _child(code: str, *args: str, cwd: Path = ROOT, timeout: int = 120) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                "RACENTRE_TSA_REQUIRE_SYNC": "false"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_schema_head_agrees_with_alembic():
    assert schema.head() == migrate.alembic_head()
    assert all(schema.known(rev) for rev in schema.revisions())
    assert not schema.known("0123456789ab")


def test_serving_modules_do_not_load_alembic_or_openpyxl():
    code = ("import sys, racentre.serve, racentre.web, racentre.console.jobs; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'openpyxl'}))")
    assert _child(code) == "[]"


def test_arbiter_loads_no_service():
    assert _child(_ARBITER) == "[]"


@pytest.mark.slow
def test_worker_without_seals_loads_no_pyhanko(tmp_path, softtoken_module):
    """A worker built and asked as in production (health, CA list, console login page, seal list, a TSA and
    an OCSP request): pyHanko and zxcvbn stay out until a seal is made or checked, a password set."""
    (tmp_path / "softtoken").mkdir()
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    (tmp_path / "user.pin").write_text("footprint-pin\n")
    (tmp_path / "so.pin").write_text("footprint-so-pin\n")
    (tmp_path / "racentre.toml").write_text(
        f'[hsm]\ntoken = "footprint"\nmodule = "{softtoken_module}"\npin_file = "user.pin"\n'
        '[softtoken]\ndir = "softtoken"\nauto_init = true\nso_pin_file = "so.pin"\n'
        f'[database]\nurl = "{migrated(f"sqlite:///{tmp_path}/db.sqlite")}"\n'
        '[audit]\ncheckpoint_interval = 0\ncheckpoint_rows = 0\n[tsa]\npolicy = "1.2.3.4.1"\n')
    out = json.loads(_child(_WORKER, str(tmp_path / "racentre.toml"), ",".join(HEAVY), cwd=tmp_path))
    assert all(status < 500 for status in out["statuses"]), out
    assert out["loaded"] == [], out
    # the control: the same check sees them once the lazily imported document modules are loaded
    code = _WORKER.replace("heavy = ", "import seal.verify\nheavy = ")
    loaded = json.loads(_child(code, str(tmp_path / "racentre.toml"), ",".join(HEAVY), cwd=tmp_path))["loaded"]
    assert {"pyhanko", "seal.pdf", "seal.verify"} <= set(loaded)
