"""What a serving worker loads (issue 14: the service's RSS is bounded): the schema is checked without
Alembic (racentre.schema reads the revision graph itself and agrees with Alembic), and neither Alembic
nor openpyxl (XLSX rosters only) is imported by the service app's modules."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from racentre import migrate, schema

ROOT = Path(__file__).resolve().parents[2]


def test_schema_head_agrees_with_alembic():
    assert schema.head() == migrate.alembic_head()
    assert all(schema.known(rev) for rev in schema.revisions())
    assert not schema.known("0123456789ab")


def test_serving_modules_do_not_load_alembic_or_openpyxl():
    code = ("import sys, racentre.serve, racentre.web, racentre.console.jobs; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'openpyxl'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
