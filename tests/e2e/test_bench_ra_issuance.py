"""bench/ra_issuance.py keeps working: a tiny run (20 final approvals one per call and 40 in bulk calls of
10, on SQLite through `racentre serve` with 2 workers, plus the in-process reference). A smoke test, not a timing test: no figure is judged."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ra_issuance_bench_runs_with_a_tiny_count(softtoken_module):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "ra_issuance.py"), "--count", "20", "--clients", "4",
                           "--bulk-count", "40", "--batch", "10", "--bulk-clients", "2",
                           "--databases", "sqlite", "--openssl-seconds", "0"],
                          capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = dict(re.findall(r"^(\w+) (\d+)", done.stdout, re.M))
    assert set(figures) >= {"ra_issue_per_s_sqlite_2workers", "ra_issue_cpu_us_per_cert_sqlite",
                            "ra_bulk_issue_per_s_sqlite_2workers_batch10", "ra_bulk_issue_cpu_us_per_cert_sqlite",
                            "ca_issue_per_s_inprocess_1thread"}, done.stdout
    assert int(figures["ra_issue_per_s_sqlite_2workers"]) > 0
    assert int(figures["ra_bulk_issue_per_s_sqlite_2workers_batch10"]) > 0
