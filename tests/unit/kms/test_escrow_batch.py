"""KeyEscrow.escrow_new_keys (bulk issuance): one transaction for several certificates, each key with its
own row, MAC and audit row; the subscriber opens every envelope with independent code; all or nothing."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import func, select

from kms.errors import EscrowConflict
from kms.escrow import EscrowRequest
from kms.identity import subject_name
from kms.models import EscrowedKey
from pkicore.envelope import Party, verify_signed_and_enveloped
from tests.unit.kms.helpers import audit, escrow_one
from tests.unit.kms.subscriber import mul, public_point
from tests.unit.kms.test_escrow import open_enveloped_key


def _requests(spki, serials, ca_id="ca-test"):
    now = dt.datetime.now(dt.timezone.utc)
    ca = subject_name((("common_name", "Test CA"),))
    return [EscrowRequest(ca_id=ca_id, ca_name="CN=Test CA", user_cert_no=serial, subscriber_public_key_info=spki,
                          not_before=now, not_after=now + dt.timedelta(days=365), recipient=Party(ca, serial),
                          user_name=f"user {serial}") for serial in serials]


def _rows(escrow) -> int:
    with escrow.db() as s:
        return s.scalar(select(func.count()).select_from(EscrowedKey))


def test_batch_escrows_each_key_like_one_at_a_time(escrow, subscriber):
    d_sub, spki_sub = subscriber
    serials = [secrets.randbits(63) for _ in range(5)]
    deliveries = escrow.escrow_new_keys(_requests(spki_sub, serials), actor="ca:test")
    assert [d.user_cert_no for d in deliveries] == serials
    assert len({d.public_key_info for d in deliveries}) == 5 and len({d.key_id for d in deliveries}) == 5
    for delivery in deliveries:
        d = open_enveloped_key(d_sub, delivery.enveloped_key)
        assert mul(d) == public_point(delivery.public_key_info)
        check = verify_signed_and_enveloped(delivery.signed_and_enveloped, escrow.public_key_info,
                                            escrow.certificate)
        assert check.ok, check.reasons
        assert escrow.find("ca-test", delivery.user_cert_no) == delivery.key_id
        with escrow.db() as s:
            row = s.get(EscrowedKey, delivery.key_id)
            escrow.check_record(row)
            assert row.user_name == f"user {delivery.user_cert_no}" and bytes(row.public_key_info) == \
                delivery.public_key_info
        assert audit(escrow, "kms_key", delivery.key_id) == ["kms.key.escrowed"]


def test_batch_is_all_or_nothing(escrow, subscriber):
    spki = subscriber[1]
    taken = escrow_one(escrow, spki)
    before_rows, before_audit = _rows(escrow), audit(escrow)
    fresh = [secrets.randbits(63) for _ in range(3)]
    with pytest.raises(EscrowConflict, match=str(taken.user_cert_no)):
        escrow.escrow_new_keys(_requests(spki, fresh[:2] + [taken.user_cert_no] + fresh[2:]))
    with pytest.raises(EscrowConflict, match="twice"):
        escrow.escrow_new_keys(_requests(spki, fresh + [fresh[0]]))
    assert _rows(escrow) == before_rows and audit(escrow) == before_audit
    # the same serial under another CA is a different certificate
    assert len(escrow.escrow_new_keys(_requests(spki, [taken.user_cert_no], ca_id="ca-other"))) == 1
    assert escrow.escrow_new_keys([]) == []
