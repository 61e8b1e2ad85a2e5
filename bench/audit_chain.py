"""Cost of chaining one audit row (audit.trail: canonical JSON of the row, SM3 body digest, SM3 link),
in microseconds per row, beside one bare SM3 of the same body bytes (hashlib through OpenSSL) measured
in the same run. One figure per line. (Was a timed unit test; timings belong here, not in the suite.)

    .venv/bin/python bench/audit_chain.py [--rows 20000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from audit.trail import body_digest, link_hash  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    n = parser.parse_args().rows
    detail = {"serial": "7f3a9c", "profile": "civil-servant-sign", "subject": "CN=张三,OU=某局,O=某市,C=CN"}
    at = dt.datetime.now(dt.timezone.utc)
    start = time.perf_counter()
    prev = "00" * 32
    for i in range(n):
        prev = link_hash("node/1/ab/0", i + 1, prev, body_digest(at, "ca", "system", "cert.issue", "certificate",
                                                                 "ca/7f3a9c", detail))
    chained = (time.perf_counter() - start) / n
    body = json.dumps(detail, ensure_ascii=False, sort_keys=True).encode()
    start = time.perf_counter()
    for _ in range(n):
        hashlib.new("sm3", body).digest()
    bare = (time.perf_counter() - start) / n
    print(f"audit chaining: {chained * 1e6:.1f} us per row  # reference: one bare SM3 of the detail {bare * 1e6:.2f} us")


if __name__ == "__main__":
    main()
