"""Junk to the GM/T 0014 endpoint cannot flood the audit trail (issue 15: 1,000 junk requests wrote 1,000
rows in 19.5 s): refusals before authentication are counted per source and reason and written as one row
per window; a trusted CA's fresh signed request refused as a whole is still audited on its own."""
from __future__ import annotations

import secrets
import time

from flask import Flask
from sqlalchemy import select

from gmt0014 import messages as m
from gmt0014.client import InProcessTransport, KmcClient
from kms.identity import self_signed_certificate
from kms.endpoint import Gmt0014Endpoint
from kms.views import bp
from audit.trail import AuditEvent, RefusalTally
from racentre.audit import verify


def _action() -> str:
    """An audit action of this test's own: other KMC endpoints of the session write their refusal windows
    into the same trail on their timers (and earlier tests' rows are there too), so a test counts only
    the rows of the tallies it made itself."""
    return f"kms.request.refused.test-{secrets.token_hex(6)}"


def _still_clock(service: Gmt0014Endpoint) -> Gmt0014Endpoint:
    """The service's refusal counts on a clock that stays inside one window (the test says when it ends)."""
    service.refusals = RefusalTally(service.escrow.db, action=_action(), target_type="kms",
                                    clock=lambda: 1_000_010.0)
    return service


def _rows(escrow, action: str, *sources: str) -> list[AuditEvent]:
    """This test's refusal rows: those of ``action`` naming only ``sources`` (prefixes; "*" is the capped
    remainder)."""
    with escrow.db() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.id > escrow.test_audit_mark,
                                                  AuditEvent.action == action).order_by(AuditEvent.id))
        return [r for r in rows if all(any(x["source"].startswith(p) for p in sources) or x["source"] == "*"
                                       for x in r.detail["refusals"])]


def test_a_thousand_junk_requests_write_one_row(escrow):
    service = _still_clock(Gmt0014Endpoint(escrow, []))
    started = time.perf_counter()
    for i in range(1000):
        answer = service.handle(b"\x30\x03\x02\x01" + bytes([i % 256]), source=f"10.0.0.{i % 3}")
        assert m.KMRespond.load(answer)               # each still gets its signed ErrorPkgRespond
    elapsed = time.perf_counter() - started
    assert _rows(escrow, service.refusals.action, "10.0.0.") == []
    assert service.refusals.flush() == 1 and service.refusals.flush() == 0
    [row] = _rows(escrow, service.refusals.action, "10.0.0.")
    assert row.detail["total"] == 1000 and row.actor == "anonymous"
    assert {(r["source"], r["count"]) for r in row.detail["refusals"]} == {("10.0.0.0", 334), ("10.0.0.1", 333),
                                                                          ("10.0.0.2", 333)}
    assert all(r["reason"].startswith(f"{int(m.ErrNo.BAD_REQUEST)} ") for r in row.detail["refusals"])
    print(f"1,000 junk requests refused in {elapsed:.2f} s, 1 audit row")


def test_one_row_per_window_and_the_timer_writes_it(escrow):
    now = [1_000_000.0]
    action = _action()
    tally = RefusalTally(escrow.db, action=action, target_type="kms", window=60,
                         clock=lambda: now[0])
    for _ in range(5):
        tally.count("198.51.100.7", "bad signature")
    now[0] += 61                                     # a later window: the first is written at once
    tally.count("198.51.100.7", "bad signature")
    rows = _rows(escrow, action, "198.51.100.7", "203.0.113.1")
    assert [r.detail["total"] for r in rows] == [5]
    assert rows[0].detail["window_end"] == "1970-01-12T13:47:00.000000Z"
    real = RefusalTally(escrow.db, action=action, target_type="kms", window=0.5)
    real.count("203.0.113.1", "junk")
    deadline = time.monotonic() + 5
    while len(_rows(escrow, action, "198.51.100.7", "203.0.113.1")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [r.detail["total"] for r in _rows(escrow, action, "198.51.100.7", "203.0.113.1")] == [5, 1]     # written by the window's timer
    tally.flush()


def test_many_sources_are_capped(escrow):
    action = _action()
    # a clock that stays inside one window: the real one could cross a minute boundary mid-count
    tally = RefusalTally(escrow.db, action=action, target_type="kms", max_keys=10, clock=lambda: 1_000_020.0)
    for i in range(500):
        tally.count(f"192.0.2.{i}", "junk")
    tally.flush()
    [row] = _rows(escrow, action, "192.0.2.")
    assert len(row.detail["refusals"]) == 11 and row.detail["total"] == 500
    assert {"source": "*", "reason": "junk", "count": 490} in row.detail["refusals"]


def test_junk_over_http_is_counted_by_client_address(escrow):
    service = _still_clock(Gmt0014Endpoint(escrow, []))
    app = Flask("kmc-flood")
    app.extensions["racentre.kms"] = type("KmsParts", (), {"service": service})()
    app.register_blueprint(bp)
    client = app.test_client()
    for _ in range(200):
        resp = client.post("/kmc/v1/request", data=b"junk", content_type=m.CONTENT_TYPE,
                           environ_base={"REMOTE_ADDR": "192.0.2.55"})
        assert resp.status_code == 200
    assert _rows(escrow, service.refusals.action, "192.0.2.55") == []
    service.refusals.flush()
    [row] = _rows(escrow, service.refusals.action, "192.0.2.55")
    assert row.detail["refusals"] == [{"source": "192.0.2.55", "reason": f"{int(m.ErrNo.BAD_REQUEST)} malformed "
                                       "CARequest", "count": 200}]
    assert verify(escrow.db, None).rows >= 1


def test_a_trusted_cas_requests_are_not_counted_but_their_replays_are(escrow, softtoken_km, subscriber):
    label = f"ca-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(label, "sm2")
    cert = self_signed_certificate(softtoken_km, label, (("country_name", "CN"), ("common_name", "Flood CA")))
    service = _still_clock(Gmt0014Endpoint(escrow, [cert]))
    client = KmcClient(InProcessTransport(service), ca_certificate=cert,
                       sign=lambda data: softtoken_km.sign(label, data), kmc_certificate=escrow.certificate)
    der = client.build_request([m.RevokeKey(secrets.randbits(60))], task_no=99)
    [first] = client.parse_response(service.handle(der), 99)
    assert first.err_no == m.ErrNo.NOT_FOUND                 # an item's verdict, for an authenticated request
    assert service.refusals.flush() == 0                     # nothing counted as unauthenticated
    for _ in range(3):
        [again] = client.parse_response(service.handle(der, source="198.51.100.9"), 99)
        assert again.err_no == m.ErrNo.REPLAY                # anyone can replay a captured request: counted
    assert service.refusals.flush() == 1
    [row] = _rows(escrow, service.refusals.action, "198.51.100.9")
    assert row.detail["refusals"] == [{"source": "198.51.100.9", "count": 3,
                                       "reason": f"{int(m.ErrNo.REPLAY)} replayed request (taskNo already seen)"}]
