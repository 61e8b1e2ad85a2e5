"""Checks of the demo team's day in the console (``racentre.demo.walk``, run by ``racentre demo``): each step's
OUTCOME in the site's database and in the files the browser downloaded, and each screenshot a 1366×768 PNG
named after its step and officer. Used by tests/e2e/test_cli_and_demo.py on the demo it runs."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
from pathlib import Path

from PIL import Image
from asn1crypto import x509

from tests.e2e.demo_checks import _open, _private_d
from tests.unit.kms.subscriber import mul, public_point

# (step, officer) in order: the day README "Demo" describes
STEPS = (("submit-unit", "zhao"), ("submit-civil-servant", "zhao"), ("submit-servers", "zhao"), ("vet", "qian"),
         ("approve-first", "sun"), ("approve-bulk", "sun"), ("approve-second", "wang"),
         ("suspend-request", "sun"), ("suspend-approve", "wang"), ("resume-request", "sun"), ("resume-approve", "wang"),
         ("renew-request", "zhao"), ("renew-approve", "sun"), ("revoke-request", "sun"), ("revoke-approve", "wang"),
         ("recovery-request", "zhou"), ("recovery-approve", "zheng"), ("recovery-approve", "feng"),
         ("recovery-execute", "chen"), ("seal", "zhao"), ("verify", "qian"), ("audit-filter", "wu"),
         ("audit-export", "wu"))


def _rows(conn, sql: str, *args) -> list[tuple]:
    return conn.execute(sql, args).fetchall()


def check_console_day(out: Path, db_path: Path) -> None:
    shots = out / "screenshots"
    expected = [f"{n:02d}-{step}-by-{who}.png" for n, (step, who) in enumerate(STEPS, 1)]
    assert sorted(p.name for p in shots.glob("*.png")) == expected
    digests = set()
    for name in expected:
        with Image.open(shots / name) as image:
            assert image.format == "PNG" and image.size == (1366, 768), (name, image.size)
        digests.add(hashlib.sha256((shots / name).read_bytes()).hexdigest())
    assert len(digests) == len(expected)            # every step shows its own page
    index = (shots / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{name}"' in index for name in expected)
    assert all(who in index for who in ("赵敏", "钱进", "孙立", "王磊", "周强", "吴芳", "郑伟", "冯静", "陈晨"))
    day = json.loads((out / "console-day" / "day.json").read_text(encoding="utf-8"))
    assert [s["file"] for s in day["shots"]] == expected
    r = day["requests"]

    with sqlite3.connect(db_path) as conn:
        def request(key):
            return dict(zip(("type", "kind", "state", "submitted_by", "vetted_by", "target"), _rows(
                conn, "SELECT type, kind, state, submitted_by, vetted_by, target_request_id FROM ra_request "
                      "WHERE id = ?", r[key])[0]))

        def approvers(key):
            return sorted(o for (o,) in _rows(conn, "SELECT officer FROM ra_approval WHERE request_id = ?", r[key]))

        def statuses(key):
            return sorted(s for (s,) in _rows(conn, "SELECT status FROM ra_certificate WHERE request_id = ?", r[key]))

        def by(actor, action, target_id):
            return _rows(conn, "SELECT count(*) FROM audit_event WHERE actor = ? AND action = ? AND target_id = ?",
                         actor, action, str(target_id))[0][0]

        # 受理 by zhao, 审核 by qian, 批准: the civil servant and the unit by sun and wang (four-eyes), the
        # servers by sun alone in one bulk approval
        for key, rtype in (("unit", "unit"), ("person", "civil-servant-dual"), ("server1", "server"),
                           ("server2", "server"), ("server3", "server")):
            req = request(key)
            assert (req["type"], req["kind"], req["submitted_by"], req["vetted_by"]) == (rtype, "new", "zhao", "qian")
            assert by("zhao", "ra.request.submit", r[key]) == 1 and by("qian", "ra.request.vet", r[key]) == 1
        assert approvers("person") == approvers("unit") == ["sun", "wang"]
        assert all(approvers(k) == ["sun"] and request(k)["state"] == "issued" for k in ("server2", "server3"))
        assert request("person")["state"] == "issued" and statuses("person") == ["good", "good"]
        # 冻结 then 解冻 of the civil servant's certificates: asked by sun, vetted by qian, approved by wang
        for key, state, action in (("suspend", "suspended", "ra.certificate.hold"),
                                   ("resume", "resumed", "ra.certificate.release")):
            req = request(key)
            assert (req["kind"], req["state"], req["target"], req["submitted_by"], req["vetted_by"]) == \
                (key, state, r["person"], "sun", "qian")
            assert approvers(key) == ["sun", "wang"] and by("wang", action, r[key]) >= 1
        # 换发 of server 1: a renewal request, issued; the replaced certificate superseded
        renewal = request("renewal")
        assert (renewal["kind"], renewal["target"], renewal["state"], renewal["submitted_by"]) == \
            ("renewal", r["server1"], "issued", "zhao")
        assert statuses("renewal") == ["good"]
        assert _rows(conn, "SELECT status, revocation_reason FROM ra_certificate WHERE request_id = ?",
                     r["server1"]) == [("revoked", "superseded")]
        # 吊销 of the unit's certificate: asked by sun (key compromise), approved by wang
        revocation = request("revocation")
        assert (revocation["kind"], revocation["target"], revocation["state"]) == ("revocation", r["unit"], "revoked")
        assert _rows(conn, "SELECT status, revocation_reason FROM ra_certificate WHERE request_id = ?",
                     r["unit"]) == [("revoked", "key_compromise")]
        serial = day["certificates"]["unit"].split("/")[1].lower()       # the CA's own record says so too
        assert _rows(conn, "SELECT status, reason FROM ca_issued_cert WHERE serial = ?", serial) == \
            [("revoked", "key_compromise")]
        # 密钥恢复: opened by zhou, approved by zheng and feng, executed (used) by chen
        rid = day["recovery"]
        assert _rows(conn, "SELECT purpose, requested_by, state FROM kms_approval_request WHERE id = ?", rid) == \
            [("recover", "zhou", "used")]
        assert sorted(o for (o,) in _rows(conn, "SELECT officer FROM kms_approval WHERE request_id = ?", rid)) == \
            ["feng", "zheng"]
        assert _rows(conn, "SELECT actor FROM audit_event WHERE action = 'kms.key.recovered' AND "
                           "json_extract(detail, '$.request_id') = ?", rid) == [("chen",)]
        enc = x509.Certificate.load(_rows(conn, "SELECT certificate FROM ra_certificate WHERE request_id = ? AND "
                                                "usage = 'enc'", r["person"])[0][0])
        # 签章 by zhao with the demo's seal (authorised to zhao by zhou in the console)
        sealed = (out / "console-day" / day["downloads"]["sealed PDF"]).read_bytes()
        assert sealed.startswith(b"%PDF") and by("zhou", "seal.authorise", _seal_of(conn, sealed)) == 1
        assert _rows(conn, "SELECT signer FROM seal_signing_record WHERE sealed_sha256 = ?",
                     hashlib.sha256(sealed).hexdigest()) == [("zhao",)]
        # 审计: wu's filtered CSV export, and its own audit row
        started = _rows(conn, "SELECT id FROM audit_event WHERE action = 'ra.request.submit' AND target_id = ?",
                        str(r["unit"]))[0][0]
        exports = _rows(conn, "SELECT detail FROM audit_event WHERE actor = 'wu' AND action = 'audit.export' "
                              "AND id > ?", started)
        assert len(exports) == 1 and json.loads(exports[0][0])["filter_action"] == "ra.request"
        # each officer logged in once with password + one-time code, and logged out at the end of the day
        first = _rows(conn, "SELECT max(id) FROM audit_event WHERE actor = 'zhao' AND action = 'console.login' "
                            "AND id < ?", started)[0][0]
        team = ("zhao", "qian", "sun", "wang", "zhou", "wu", "zheng", "feng", "chen")
        for name in team:
            assert _rows(conn, "SELECT count(*) FROM audit_event WHERE actor = ? AND action = 'console.login' "
                               "AND id >= ?", name, first)[0][0] == 1, name
            assert _rows(conn, "SELECT count(*) FROM console_session WHERE account = ? AND ended_at IS NULL",
                         name)[0][0] == 0, name
    # the envelope chen downloaded opens with the court's key to the civil servant's encryption key
    envelope = (out / "console-day" / day["downloads"]["recovered key envelope"]).read_bytes()
    assert mul(_open(_private_d(out / "recovery-recipient-key.pem"), envelope)) == public_point(enc.public_key.dump())
    exported = list(csv.reader(io.StringIO((out / "console-day" / day["downloads"]["audit export (CSV)"])
                                           .read_bytes().decode("utf-8-sig"))))
    assert exported[0] == ["编号", "时间", "操作人", "角色", "操作", "对象类型", "对象", "详情"]
    actions = [row[4] for row in exported[1:]]
    assert actions and all(a.startswith("ra.request") for a in actions) and "ra.request.vet" in actions
    assert {row[2] for row in exported[1:]} >= {"zhao", "qian", "sun", "wang"}


def _seal_of(conn, sealed: bytes) -> int:
    return _rows(conn, "SELECT seal_id FROM seal_signing_record WHERE sealed_sha256 = ?",
                 hashlib.sha256(sealed).hexdigest())[0][0]
