"""Archive life cycle: KEK rotation in batches while escrow continues, destruction after retention with
approval, and disaster-recovery export/import (wrapped end to end, signed, tamper-evident)."""
from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from kms.errors import EscrowConflict, TamperDetected
from kms.models import EscrowedKey
from kms.recovery import authorise_subscriber_restore
from store.db import Base, make_engine, make_session_factory
from pkicore.envelope import Party, parse_sm2_enveloped_key
from tests.unit.kms.helpers import OFFICERS, audit, escrow_one, make_escrow
from tests.unit.kms.subscriber import mul, public_point, sm2_decrypt, sm4_ecb_decrypt


def _approved(book, purpose, key_id=None):
    rid = book.request(purpose=purpose, requested_by="ra-admin", reason="ticket 1", key_id=key_id)
    book.approve(rid, OFFICERS[0])
    book.approve(rid, OFFICERS[1])
    return book.authorise(rid, actor="ra-admin")


def _restore_opens(escrow, key_id, subscriber, expected_spki):
    d_sub, spki_sub = subscriber
    auth = authorise_subscriber_restore(key_id, spki_sub, "ca-test")
    delivery = escrow.recover(auth, recipient=Party.from_certificate(escrow.certificate), actor="test")
    env = parse_sm2_enveloped_key(delivery.enveloped_key)
    d = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, env.sym_encrypted_key), env.encrypted_private_key), "big")
    assert mul(d) == public_point(expected_spki)


def test_kek_rotation_in_batches_without_downtime(escrow, subscriber, softtoken_km):
    before = [escrow_one(escrow, subscriber[1]) for _ in range(5)]
    assert escrow.rotate_kek(actor="admin") == 2
    during = escrow_one(escrow, subscriber[1])            # escrow keeps working mid-rotation
    assert escrow.rewrap_batch(actor="admin", limit=2) == 2
    _restore_opens(escrow, before[4].key_id, subscriber, before[4].public_key_info)   # old-KEK row still usable
    assert escrow.rewrap_batch(actor="admin", limit=2) == 2
    status = {k["version"]: k for k in escrow.kek_status()}
    assert status[1]["state"] == "retiring" and status[1]["rows"] == 1     # old KEK kept until all rows moved
    assert escrow.rewrap_batch(actor="admin", limit=2) == 1
    assert escrow.rewrap_batch(actor="admin") == 0
    status = {k["version"]: k for k in escrow.kek_status()}
    assert status[1]["state"] == "retired" and status[2]["rows"] == 6
    assert f"{escrow.config.key_prefix}-kek-v1" not in {k.label for k in softtoken_km.list_keys()}
    for d in before + [during]:
        _restore_opens(escrow, d.key_id, subscriber, d.public_key_info)
    assert audit(escrow, "kms_kek").count("kms.kek.rewrapped") == 3 and "kms.kek.retired" in audit(escrow)


def test_destruction_needs_approval_and_retention(escrow, book, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    escrow.revoke("ca-test", delivery.user_cert_no, actor="ca")
    auth = _approved(book, "destroy", delivery.key_id)
    with pytest.raises(EscrowConflict, match="retention"):
        escrow.destroy(auth, actor="ra-admin")
    auth = _approved(book, "destroy", delivery.key_id)
    later = dt.datetime.now(dt.timezone.utc) + escrow.config.retention + dt.timedelta(days=400)
    escrow.destroy(auth, actor="ra-admin", now=later)
    with escrow.db() as s:
        row = s.get(EscrowedKey, delivery.key_id)
        assert row.status == "destroyed" and row.wrapped_private_key == b""
        escrow.check_record(row)
    assert audit(escrow, "kms_key", delivery.key_id)[-1] == "kms.key.destroyed"


def test_export_and_import_for_disaster_recovery(escrow, book, subscriber, softtoken_km, tmp_path):
    deliveries = [escrow_one(escrow, subscriber[1]) for _ in range(3)]
    escrow.revoke("ca-test", deliveries[0].user_cert_no, actor="ca")
    # the DR site: another KMC with its own database, KEK and DR key
    engine = make_engine(f"sqlite:///{tmp_path / 'dr.db'}")
    Base.metadata.create_all(engine)
    dr_site = make_escrow(softtoken_km, make_session_factory(engine))
    assert dr_site.config.key_prefix != escrow.config.key_prefix
    blob = escrow.export_archive(_approved(book, "export"), dr_site.dr_public_key_info(), actor="ra-admin")
    doc = json.loads(base64.b64decode(json.loads(blob)["payload"]))
    assert len(doc["records"]) == 3
    # nothing in clear: every record is 32 bytes of SM4-ECB under a transport key wrapped to the DR key
    assert all(len(base64.b64decode(r["wrapped"])) == 32 for r in doc["records"])
    assert dr_site.import_archive(blob, escrow.certificate, actor="dr-admin") == 3
    for d in deliveries[1:]:
        key_id = dr_site.find("ca-test", d.user_cert_no)
        _restore_opens(dr_site, key_id, subscriber, d.public_key_info)
    assert dr_site.describe(dr_site.find("ca-test", deliveries[0].user_cert_no))["status"] == "revoked"
    assert {k["version"]: k["rows"] for k in dr_site.kek_status()} == {1: 3}
    engine.dispose()


def test_tampered_export_refused(escrow, book, subscriber):
    escrow_one(escrow, subscriber[1])
    blob = escrow.export_archive(_approved(book, "export"), escrow.dr_public_key_info(), actor="ra-admin")
    outer = json.loads(blob)
    payload = bytearray(base64.b64decode(outer["payload"]))
    payload[10] ^= 1
    outer["payload"] = base64.b64encode(bytes(payload)).decode()
    with pytest.raises(TamperDetected):
        escrow.import_archive(json.dumps(outer).encode(), escrow.certificate, actor="dr-admin")


def test_export_needs_export_authorisation(escrow, book, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    auth = authorise_subscriber_restore(delivery.key_id, subscriber[1], "ca-test")
    with pytest.raises(Exception, match="ExportAuthorisation"):
        escrow.export_archive(auth, escrow.dr_public_key_info(), actor="x")


def test_tampered_wrapped_key_never_used(escrow, subscriber):
    delivery = escrow_one(escrow, subscriber[1])
    with escrow.db() as s, s.begin():
        row = s.get(EscrowedKey, delivery.key_id)
        row.wrapped_private_key = bytes(32)
    with pytest.raises(TamperDetected):
        _restore_opens(escrow, delivery.key_id, subscriber, delivery.public_key_info)
