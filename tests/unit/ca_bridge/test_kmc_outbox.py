"""The CA's outbox of GM/T 0014 RevokeKeyReq notifications (``ca_bridge.kmc_link``): the row commits or
rolls back with the revocation, delivery is tried at once, a KMC that cannot be reached leaves the row
pending with exponential back-off, ``retry_due`` and ``racentre ca kmc-retry`` deliver it later, and a
final refusal ends it. Real CA and KMC over the software token, the in-process transport (wrapped to
fail on purpose), SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import secrets
import socket
import time
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from sqlalchemy import delete, func, select, update

from ca_bridge.api import EscrowedKeyRequest, RevocationReason
from ca_bridge.cli import ca_group
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.kmc_link import ATTEMPT_TTL, CLAIM, backoff
from ca_bridge.models import EscrowAttempt, KmcNotification
from gmt0014.client import HttpTransport, InProcessTransport
from gmt0014.errors import KmcUnreachable, ProtocolError
from gmt0014.messages import CARequest
from kms.endpoint import Gmt0014Endpoint
from kms.models import EscrowedKey
from audit.trail import AuditEvent
from store.db import as_utc, transaction, utcnow
from pkicore.errors import ErrorCode
from tests.threads import run_threads
from tests.unit.ca_bridge.helpers import request, sm2_spki
from tests.unit.kms.helpers import make_escrow, wipe

UNREACHABLE = "the key-management centre is unreachable; try again later"
NO_ANSWER = "the key-management centre did not answer; try again later"


class FlakyTransport:
    """The in-process transport with the failures of a real link: ``down`` (nothing reaches the KMC),
    ``lose_answers`` (the KMC does the work, the answer is lost on the way back) and ``lose_requests``
    (the request was sent but never processed, and no answer came: to the CA, as ambiguous as a lost
    answer), each raising what ``HttpTransport`` raises."""

    def __init__(self, real):
        self.real = real
        self.down = False
        self.lose_answers = False
        self.lose_requests = False
        self.sent = 0
        self.items: list = []            # (item kind, userCertNo) of every request that reached the KMC
        self.during_send = None          # called while a request is on the wire (another worker's sweep)

    def send(self, der: bytes) -> bytes:
        if self.down:
            raise KmcUnreachable(UNREACHABLE, 9, code=ErrorCode.UPSTREAM_UNAVAILABLE)
        if self.during_send is not None:
            self.during_send()
        if self.lose_requests:
            raise ProtocolError(NO_ANSWER, 9, code=ErrorCode.UPSTREAM_UNAVAILABLE)
        self.sent += 1
        for item in CARequest.load(der)["ks_request"]["request_list"]:
            inner = item.chosen
            number = inner["app_user_info"]["user_cert_no"] if item.name == "apply_key_req" else inner["user_cert_no"]
            self.items.append((item.name, number.native))
        answer = self.real.send(der)
        if self.lose_answers:
            raise ProtocolError(NO_ANSWER, 9, code=ErrorCode.UPSTREAM_UNAVAILABLE)
        return answer


@pytest.fixture(scope="module")
def authority(softtoken_km, db) -> EmbeddedCA:
    tag = f"o{secrets.token_hex(4)}-"
    ca = EmbeddedCA(softtoken_km, db, "http://outbox.test", name_prefix=tag)
    ca.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    return ca


@pytest.fixture
def site(authority, softtoken_km, db):
    """The CA with a fresh KMC attached through a FlakyTransport, and an empty outbox."""
    wipe(db)
    with transaction(db) as session:
        session.execute(delete(KmcNotification))
        session.execute(delete(EscrowAttempt))
    escrow = make_escrow(softtoken_km, db)
    service = Gmt0014Endpoint(escrow, [authority.directory.get(f"{authority.name_prefix}issuing-sm2").certificate])
    link = FlakyTransport(InProcessTransport(service))
    authority.attach_kmc(link, escrow.certificate)
    yield SimpleNamespace(ca=authority, kmc=authority.kmc, link=link, escrow=escrow, db=db, service=service)
    authority.kmc = None


def _issue_escrowed(ca: EmbeddedCA):
    """An encryption certificate whose key the KMC generated (GM/T 0034): (CA name, serial)."""
    rid = f"outbox-{secrets.token_hex(6)}"
    key = ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", sm2_spki()))
    issued = ca.issue(request("civil-servant-enc", key.public_key_info, request_id=rid))
    assert issued.serial == key.serial
    return issued.ca, issued.serial


def _row(db, serial: int) -> KmcNotification | None:
    with db() as session:
        return session.scalar(select(KmcNotification).where(KmcNotification.serial == format(serial, "x")))


def _archived(db, serial: int) -> str | None:
    with db() as session:
        return session.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == str(serial)))


def _actions(db, ca: str, serial: int) -> list[str]:
    with db() as session:
        return list(session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.like("ca.kmc.notify.%"), AuditEvent.target_id == f"{ca}/{serial:x}")
            .order_by(AuditEvent.id)))


def _make_due(db, serial: int) -> None:
    """Move the row's next attempt into the past (what waiting out the back-off would do)."""
    with transaction(db) as session:
        session.execute(update(KmcNotification).where(KmcNotification.serial == format(serial, "x"))
                        .values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))


def test_revocation_delivers_at_once_when_the_kmc_is_up(site):
    name, serial = _issue_escrowed(site.ca)
    site.ca.revoke(name, serial, RevocationReason.key_compromise)
    row = _row(site.db, serial)
    assert row.done_at is not None and row.outcome == "delivered" and row.attempts == 1
    assert row.next_attempt_at is None and row.last_error is None and row.kind == "revoke-key"
    assert _archived(site.db, serial) == "revoked"
    assert _actions(site.db, name, serial) == ["ca.kmc.notify.queue", "ca.kmc.notify.done"]
    with site.db() as session:
        queued = session.scalar(select(AuditEvent).where(AuditEvent.action == "ca.kmc.notify.queue",
                                                         AuditEvent.target_id == f"{name}/{serial:x}"))
        assert queued.actor == f"ca:{name}" and queued.role == "ca" and queued.detail["why"] == "certificate revoked"
    assert site.kmc.pending() == []


def test_unreachable_kmc_leaves_a_pending_row_that_a_later_sweep_delivers(site):
    name, serial = _issue_escrowed(site.ca)
    site.link.down = True
    before = utcnow()
    status = site.ca.revoke(name, serial, RevocationReason.key_compromise)
    assert status.status == "revoked"                       # the revocation stands
    row = _row(site.db, serial)
    assert row.done_at is None and row.attempts == 1 and row.last_error == UNREACHABLE
    assert before + backoff(1) <= as_utc(row.next_attempt_at) <= utcnow() + backoff(1)
    assert _archived(site.db, serial) == "active"           # the KMC was not told
    assert _actions(site.db, name, serial) == ["ca.kmc.notify.queue"]
    [pending] = site.kmc.pending()
    assert (pending.ca, pending.serial, pending.attempts, pending.last_error) == (name, serial, 1, UNREACHABLE)

    site.link.down = False
    assert site.kmc.retry_due() == (0, 0)                   # not due yet: nothing sent
    assert _archived(site.db, serial) == "active"
    assert site.kmc.retry_due(now=utcnow() + backoff(1) + dt.timedelta(seconds=1)) == (1, 0)
    row = _row(site.db, serial)
    assert row.done_at is not None and row.outcome == "delivered" and row.attempts == 2 and row.next_attempt_at is None
    assert _archived(site.db, serial) == "revoked"
    assert _actions(site.db, name, serial) == ["ca.kmc.notify.queue", "ca.kmc.notify.done"]
    assert site.kmc.pending() == []
    assert site.kmc.retry_due(now=utcnow() + dt.timedelta(days=1)) == (0, 0)     # done rows are never sent again


def test_back_off_doubles_from_30_seconds_up_to_an_hour(site):
    assert [backoff(n).total_seconds() for n in range(1, 10)] == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert backoff(10_000) == dt.timedelta(hours=1)
    name, serial = _issue_escrowed(site.ca)
    site.link.down = True
    site.ca.revoke(name, serial, RevocationReason.superseded)
    now = utcnow()
    for attempts in range(2, 6):
        now = as_utc(_row(site.db, serial).next_attempt_at)
        assert site.kmc.retry_due(now=now) == (0, 1)
        row = _row(site.db, serial)
        assert row.attempts == attempts and as_utc(row.next_attempt_at) == now + backoff(attempts)
        assert site.kmc.retry_due(now=now + backoff(attempts) - dt.timedelta(seconds=1)) == (0, 0)


def test_a_rolled_back_revocation_queues_and_sends_nothing(site):
    name, serial = _issue_escrowed(site.ca)
    sent = site.link.sent
    with pytest.raises(RuntimeError):
        with transaction(site.db) as session:
            site.ca.revoke(name, serial, RevocationReason.key_compromise, session=session)
            raise RuntimeError("the caller's transaction fails after the revocation")
    assert _row(site.db, serial) is None
    assert site.link.sent == sent and _archived(site.db, serial) == "active"
    assert _actions(site.db, name, serial) == []
    assert site.ca.status(name, serial).status == "good"


def test_a_revocation_in_a_savepoint_is_sent_only_after_the_outer_commit(site):
    """Releasing a savepoint is not a commit: nothing is sent until the outer transaction commits; a
    revocation whose savepoint rolled back is never sent, even though the outer transaction commits."""
    (name, kept), (_, dropped) = _issue_escrowed(site.ca), _issue_escrowed(site.ca)
    sent = site.link.sent
    with transaction(site.db) as session:
        with session.begin_nested():
            site.ca.revoke(name, kept, RevocationReason.key_compromise, session=session)
        assert site.link.sent == sent                                   # nothing sent yet
        savepoint = session.begin_nested()
        site.ca.revoke(name, dropped, RevocationReason.key_compromise, session=session)
        savepoint.rollback()
    assert _archived(site.db, kept) == "revoked" and _row(site.db, kept).outcome == "delivered"
    assert _archived(site.db, dropped) == "active" and _row(site.db, dropped) is None
    assert site.ca.status(name, dropped).status == "good" and site.link.sent == sent + 1


def test_a_released_reservation_goes_through_the_outbox(site):
    rid = f"outbox-{secrets.token_hex(6)}"
    key = site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", sm2_spki()))
    site.link.down = True
    with transaction(site.db) as session:
        assert site.ca.release_escrowed_key(rid, session)
    row = _row(site.db, key.serial)
    assert row.done_at is None and row.attempts == 1
    site.link.down = False
    assert site.kmc.retry_due(now=utcnow() + backoff(1)) == (1, 0)
    assert _archived(site.db, key.serial) == "revoked"
    with site.db() as session:
        why = session.scalar(select(AuditEvent.detail).where(AuditEvent.action == "ca.kmc.notify.queue",
                                                             AuditEvent.target_id == f"{key.ca}/{key.serial:x}"))
    assert why["why"] == "reservation released"


def _escrow_rows(db) -> set[int]:
    with db() as session:
        return set(session.scalars(select(EscrowedKey.id)))


def _outbox_and_audit(db) -> tuple[int, int]:
    with db() as session:
        return (session.scalar(select(func.count()).select_from(KmcNotification)),
                session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("ca.%"))))


def test_a_kmc_outage_writes_no_outbox_or_audit_row_however_often_it_is_retried(site):
    """ApplyKeyReqs that never reached the KMC: no key can exist, so nothing is owed to the KMC."""
    before, keys = _outbox_and_audit(site.db), _escrow_rows(site.db)
    site.link.down = True
    rid = f"outbox-{secrets.token_hex(6)}"
    for _ in range(3):
        with pytest.raises(KmcUnreachable) as info:
            site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", sm2_spki()))
        assert info.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
    assert _outbox_and_audit(site.db) == before and site.kmc.pending() == []
    with site.db() as session:
        assert session.scalar(select(func.count()).select_from(EscrowAttempt)) == 0
    site.link.down = False
    key = site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", sm2_spki()))
    assert len(_escrow_rows(site.db) - keys) == 1 and key.serial == site.link.items[-1][1]


def test_a_real_http_link_to_a_closed_port_is_unreachable_not_ambiguous(site):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                  # nothing listens here once the socket is closed
    transport = HttpTransport(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(KmcUnreachable):
        transport.send(b"\x30\x00")


def test_a_real_http_link_that_sent_the_request_but_got_no_answer_is_ambiguous(site):
    """Connected and sent, then silence (a KMC that hangs): the KMC may act on it, so it is not
    ``KmcUnreachable``."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        transport = HttpTransport(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=0.5)
        with pytest.raises(ProtocolError, match="did not answer") as info:
            transport.send(b"\x30\x00")
        assert not isinstance(info.value, KmcUnreachable)


def test_repeated_unanswered_apply_requests_reuse_one_serial_and_write_one_row(site):
    """The KMC got the requests but the CA never saw a usable answer: one attempt row (audited once), every
    retry sends the same userCertNo, and nothing goes to the outbox while the request may still be issued."""
    before = _outbox_and_audit(site.db)
    site.link.lose_requests = True
    rid = f"outbox-{secrets.token_hex(6)}"
    spki = sm2_spki()
    for _ in range(3):
        with pytest.raises(ProtocolError, match="did not answer"):
            site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", spki))
    with site.db() as session:
        [attempt] = session.scalars(select(EscrowAttempt).where(EscrowAttempt.request_id == rid)).all()
    assert attempt.failures == 3 and attempt.last_error == NO_ANSWER
    outbox, audit = _outbox_and_audit(site.db)
    assert outbox == before[0] and audit == before[1] + 1           # ca.escrow.unanswered, once
    # rejected: the one serial that may hold a key goes to the outbox, once; the KMC never made it
    site.link.lose_requests = False
    with transaction(site.db) as session:
        assert site.ca.release_escrowed_key(rid, session)
    row = _row(site.db, int(attempt.serial, 16))
    assert row.outcome == "refused" and "no archived key" in row.last_error
    assert _outbox_and_audit(site.db)[0] == before[0] + 1


def test_a_lost_apply_answer_is_taken_back_by_the_retry_not_orphaned(site):
    """The KMC archived a key but its answer was lost: the retry asks for the same serial, the KMC says that
    certificate has a key, and RestoreKeyReq hands it over; the certificate names that key, no orphan."""
    keys = _escrow_rows(site.db)
    rid = f"outbox-{secrets.token_hex(6)}"
    spki = sm2_spki()
    site.link.lose_answers = True
    with pytest.raises(ProtocolError, match="did not answer"):
        site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", spki))
    site.link.lose_answers = False
    with site.db() as session:
        [orphan] = session.scalars(select(EscrowedKey).where(EscrowedKey.id.notin_(keys))).all()
    key = site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", spki))
    assert key.serial == int(orphan.user_cert_no) and key.public_key_info == orphan.public_key_info
    assert [kind for kind, number in site.link.items[-3:]] == ["apply_key_req", "apply_key_req", "restore_key_req"]
    assert {number for _, number in site.link.items[-3:]} == {key.serial}
    issued = site.ca.issue(request("civil-servant-enc", key.public_key_info, request_id=rid))
    assert issued.serial == key.serial and _escrow_rows(site.db) - keys == {orphan.id}
    assert site.kmc.pending() == [] and _row(site.db, key.serial) is None
    with site.db() as session:
        assert session.scalar(select(func.count()).select_from(EscrowAttempt)
                              .where(EscrowAttempt.request_id == rid)) == 0


def test_two_retries_of_one_unanswered_attempt_at_once_share_its_key(site):
    keys = _escrow_rows(site.db)
    rid = f"outbox-{secrets.token_hex(6)}"
    spki = sm2_spki()
    site.link.lose_answers = True
    with pytest.raises(ProtocolError):
        site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", spki))
    site.link.lose_answers = False
    got = []
    errors = run_threads(lambda n: got.append(site.ca.prepare_escrowed_key(
        EscrowedKeyRequest(rid, "civil-servant-enc", spki))), 2)
    assert errors == [] and len(got) == 2 and got[0] == got[1]
    assert len(_escrow_rows(site.db) - keys) == 1 and site.kmc.pending() == [] and _row(site.db, got[0].serial) is None


def test_an_unanswered_attempt_not_retried_in_time_is_revoked(site):
    keys = _escrow_rows(site.db)
    rid = f"outbox-{secrets.token_hex(6)}"
    spki = sm2_spki()
    site.link.lose_answers = True
    with pytest.raises(ProtocolError):
        site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", spki))
    site.link.lose_answers = False
    [orphan] = _escrow_rows(site.db) - keys
    assert site.kmc.retry_due() == (0, 0)                              # not expired: kept for the retry
    assert site.kmc.retry_due(now=utcnow() + ATTEMPT_TTL) == (1, 0)
    with site.db() as session:
        assert session.get(EscrowedKey, orphan).status == "revoked"
    key = site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", spki))
    assert _escrow_rows(site.db) - keys - {orphan} and key.serial != site.link.items[-2][1]


def test_a_final_refusal_ends_the_notification(site):
    """An ApplyKeyReq that reached the KMC but was never processed (to the CA: no answer); the request is
    rejected, and the RevokeKeyReq for that serial is refused (no archived key), verifiably: the row is
    done with the KMC's reason instead of being retried for ever."""
    rid = f"outbox-{secrets.token_hex(6)}"
    site.link.lose_requests = True
    with pytest.raises(ProtocolError):
        site.ca.prepare_escrowed_key(EscrowedKeyRequest(rid, "civil-servant-enc", sm2_spki()))
    site.link.lose_requests, site.link.down = False, True
    with transaction(site.db) as session:
        assert site.ca.release_escrowed_key(rid, session)
    site.link.down = False
    [pending] = site.kmc.pending()
    assert site.kmc.retry_due(now=utcnow() + backoff(1)) == (1, 0)
    row = _row(site.db, pending.serial)
    assert row.done_at is not None and row.outcome == "refused" and "no archived key" in row.last_error
    assert _actions(site.db, pending.ca, pending.serial) == ["ca.kmc.notify.queue", "ca.kmc.notify.refused"]
    assert site.kmc.pending() == []


def test_a_transient_refusal_is_retried(site, authority):
    """A KMC that does not (yet) trust the CA answers a verified Failure too, but an operator can fix that:
    the row stays pending."""
    name, serial = _issue_escrowed(site.ca)
    site.link.real = InProcessTransport(Gmt0014Endpoint(site.escrow, [site.escrow.certificate]))   # trusts no CA of ours
    site.ca.revoke(name, serial, RevocationReason.key_compromise)
    row = _row(site.db, serial)
    assert row.done_at is None and row.attempts == 1 and row.last_error
    site.link.real = InProcessTransport(site.service)
    assert site.kmc.retry_due(now=utcnow() + backoff(1)) == (1, 0)
    assert _archived(site.db, serial) == "revoked"


def test_a_claimed_row_is_not_sent_by_a_second_sweep(site):
    name, serial = _issue_escrowed(site.ca)
    site.link.down = True
    site.ca.revoke(name, serial, RevocationReason.key_compromise)
    site.link.down = False
    now = utcnow() + backoff(1)
    seen = []
    site.link.during_send = lambda: seen.append(site.kmc.retry_due(now=now))     # another worker, meanwhile
    assert site.kmc.retry_due(now=now) == (1, 0)
    assert seen == [(0, 0)] and site.link.sent == 2      # the ApplyKeyReq and this RevokeKeyReq, once
    site.link.during_send = None
    # a sweep that died after claiming: the claim expires and another sweep delivers
    name, serial = _issue_escrowed(site.ca)
    site.link.down = True
    site.ca.revoke(name, serial, RevocationReason.key_compromise)
    with transaction(site.db) as session:
        session.execute(update(KmcNotification).where(KmcNotification.serial == format(serial, "x"))
                        .values(next_attempt_at=utcnow() + CLAIM))
    site.link.down = False
    assert site.kmc.retry_due(now=utcnow() + backoff(1)) == (0, 0)
    assert site.kmc.retry_due(now=utcnow() + CLAIM + dt.timedelta(seconds=1)) == (1, 0)


def test_the_same_key_is_queued_once(site):
    name, serial = _issue_escrowed(site.ca)
    info = site.ca.directory.get(name)
    site.link.down = True
    with transaction(site.db) as session:
        site.kmc.revoke_after_commit(session, info, serial)
        site.kmc.revoke_after_commit(session, info, serial)
    site.kmc.notify_revoked(info, serial)
    with site.db() as session:
        assert len(session.scalars(select(KmcNotification).where(
            KmcNotification.serial == format(serial, "x"))).all()) == 1
    assert _row(site.db, serial).attempts == 2           # the first after-commit attempt and notify_revoked's
    assert _actions(site.db, name, serial) == ["ca.kmc.notify.queue"]


def test_background_sweep_delivers_due_rows(site):
    name, serial = _issue_escrowed(site.ca)
    site.link.down = True
    site.ca.revoke(name, serial, RevocationReason.key_compromise)
    site.link.down = False
    _make_due(site.db, serial)
    stop = site.kmc.start_retry_sweep(0.05)
    try:
        deadline = time.monotonic() + 10
        while _row(site.db, serial).done_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert _row(site.db, serial).outcome == "delivered" and _archived(site.db, serial) == "revoked"


def test_cli_lists_and_retries_pending_notifications(site, softtoken_km):
    runner = CliRunner()
    obj = {"services": SimpleNamespace(key_manager=softtoken_km, db=site.db, ca=site.ca)}
    result = runner.invoke(ca_group, ["kmc-pending"], obj=obj)
    assert result.exit_code == 0 and "no pending KMC notifications" in result.output
    result = runner.invoke(ca_group, ["kmc-retry"], obj=obj)
    assert result.exit_code == 0 and "0 answered, 0 failed, 0 pending" in result.output, result.output

    name, serial = _issue_escrowed(site.ca)
    site.link.down = True
    site.ca.revoke(name, serial, RevocationReason.key_compromise)
    result = runner.invoke(ca_group, ["kmc-pending"], obj=obj)
    assert result.exit_code == 0, result.output
    [header, line] = result.output.strip().splitlines()
    assert header.startswith("ca/serial\tkind\tattempts")
    assert line.startswith(f"{name}/{serial:x}\trevoke-key\t1\t") and line.endswith(UNREACHABLE)
    _make_due(site.db, serial)
    result = runner.invoke(ca_group, ["kmc-retry"], obj=obj)          # still unreachable
    assert result.exit_code == 0 and "0 answered, 1 failed, 1 pending" in result.output, result.output
    site.link.down = False
    _make_due(site.db, serial)
    result = runner.invoke(ca_group, ["kmc-retry", "--limit", "10"], obj=obj)
    assert result.exit_code == 0 and "1 answered, 0 failed, 0 pending" in result.output, result.output
    assert _archived(site.db, serial) == "revoked"
    assert "no pending KMC notifications" in runner.invoke(ca_group, ["kmc-pending"], obj=obj).output
