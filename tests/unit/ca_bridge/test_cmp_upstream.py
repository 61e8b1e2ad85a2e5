"""``CmpCA`` (an upstream CA over CMP) against our own CMP server in-process: an RA whose protection key
is in the HSM and whose certificate carries id-kp-cmcRA; issuance with certConf, replays of the same
request id answered from the durable outbox, a lost answer or a lost request recovered under the same
transactionID without a second certificate, a refusal recorded with the CA's reason, a malformed answer,
revocation by rr, and a queued rr written once however many times and nodes queue it."""
from __future__ import annotations

import secrets
import threading
import time

import pytest
from asn1crypto import x509
from sqlalchemy import func, select, text

from ca_bridge.api import IssueRequest, RevocationReason
from ca_bridge.cmp.models import CmpOutbox, CmpTransaction
from ca_bridge.cmp.upstream import CmpCA, UpstreamRefused, UpstreamUnavailable, signature_credentials
from ca_bridge.models import IssuedCert
from store.db import make_engine, make_session_factory, transaction
from tests.cmp_support import ra_node_server, EcKey, cmp_server
from tests.pgschema import url_of
from tests.unit.ca_bridge.helpers import SUBJECT_SERVER


@pytest.fixture(scope="module")
def upstream(ca):
    """Our CA node's CMP server, and an RA identity for this test module (HSM key, cmp-ra profile)."""
    server = ra_node_server(ca, f"{ca.test_tag}ra-node-{secrets.token_hex(3)}")
    return server


class Line:
    """The wire between the RA node and the CA node, with faults on demand."""

    def __init__(self, server):
        self.server, self.sent, self.fault = server, 0, None

    def __call__(self, der, profile=None):
        self.sent += 1
        if self.fault == "down":
            raise UpstreamUnavailable("the upstream CA cannot be reached (test)")
        status, answer = self.server.handle(der, profile)
        if self.fault == "lose-answer":
            self.fault = None
            raise UpstreamUnavailable("connection reset after the request was delivered (test)")
        if self.fault == "garbage":
            return b"\x30\x03\x02\x01" + secrets.token_bytes(4)
        return answer


def _cmp_ca(upstream):
    line = Line(upstream)
    return CmpCA(upstream.ca.db, line, upstream.credentials, upstream.anchors, name="upstream"), line


def _request(**kw):
    base = dict(request_id=f"ra-{secrets.token_hex(6)}-sign", profile="server", subject=SUBJECT_SERVER,
                public_key_info=EcKey().spki, dns_names=("app.zj.gov.cn",))
    base.update(kw)
    return IssueRequest(**base)


def _certificates_for(ca, tid_hex):
    with ca.db() as s:
        return s.scalar(select(func.count()).select_from(IssuedCert).where(IssuedCert.request_id == f"cmp-{tid_hex}"))


def _outbox(ca, request_id):
    with ca.db() as s:
        return s.get(CmpOutbox, request_id)


def test_issue_through_cmp_confirms_and_answers_replays_from_the_outbox(upstream):
    cmp_ca, line = _cmp_ca(upstream)
    request = _request()
    issued = cmp_ca.issue(request)
    assert x509.Certificate.load(issued.certificate).public_key.dump() == request.public_key_info
    row = _outbox(upstream.ca, request.request_id)
    assert row.state == "issued" and row.serial == format(issued.serial, "x")
    assert line.sent == 2                                        # cr, certConf
    assert cmp_ca.issue(request).certificate == issued.certificate and line.sent == 2   # no network
    assert _certificates_for(upstream.ca, row.transaction_id) == 1
    with upstream.ca.db() as s:
        assert s.get(CmpTransaction, row.transaction_id).state == "confirmed"


def test_a_lost_answer_is_collected_by_polling_the_same_transaction(upstream):
    cmp_ca, line = _cmp_ca(upstream)
    request = _request()
    line.fault = "lose-answer"
    with pytest.raises(UpstreamUnavailable):
        cmp_ca.issue(request)
    row = _outbox(upstream.ca, request.request_id)
    assert row.state == "sent" and _certificates_for(upstream.ca, row.transaction_id) == 1
    issued = cmp_ca.issue(request)                               # the retry polls: the same certificate
    assert _certificates_for(upstream.ca, row.transaction_id) == 1
    assert format(issued.serial, "x") == _outbox(upstream.ca, request.request_id).serial


def test_a_request_that_never_arrived_is_sent_again_under_its_transaction(upstream):
    cmp_ca, line = _cmp_ca(upstream)
    request = _request()
    line.fault = "down"
    with pytest.raises(UpstreamUnavailable):
        cmp_ca.issue(request)
    tid = _outbox(upstream.ca, request.request_id).transaction_id
    line.fault = None
    broken = f"broken-{secrets.token_hex(4)}"          # a queue row nobody can carry on must not stop the sweep
    with upstream.ca.db() as s, s.begin():
        s.add(CmpOutbox(request_id=broken, transaction_id=secrets.token_hex(16), state="sent",
                        request={"profile": "server"}, attempts=1, chain=[], status="good"))
    swept = cmp_ca.retry_pending()
    assert swept[request.request_id] == "issued" and swept[broken] == "error"
    with upstream.ca.db() as s, s.begin():
        s.delete(s.get(CmpOutbox, broken))
    row = _outbox(upstream.ca, request.request_id)
    assert row.transaction_id == tid and row.state == "issued" and _certificates_for(upstream.ca, tid) == 1


def test_a_refusal_marks_the_request_failed_with_the_reason(upstream):
    cmp_ca, line = _cmp_ca(upstream)
    request = _request(profile="no-such-profile")
    with pytest.raises(UpstreamRefused, match="unknown certificate profile"):
        cmp_ca.issue(request)
    row = _outbox(upstream.ca, request.request_id)
    assert row.state == "failed" and "no-such-profile" in row.reason
    sent = line.sent
    with pytest.raises(UpstreamRefused):
        cmp_ca.issue(request)
    assert line.sent == sent


def test_a_malformed_answer_leaves_the_request_to_retry(upstream):
    cmp_ca, line = _cmp_ca(upstream)
    request = _request()
    line.fault = "garbage"
    with pytest.raises(UpstreamUnavailable, match="answer was refused"):
        cmp_ca.issue(request)
    assert _outbox(upstream.ca, request.request_id).state == "sent"
    line.fault = None
    assert cmp_ca.issue(request).serial


def test_revocation_goes_out_as_rr(upstream):
    cmp_ca, _ = _cmp_ca(upstream)
    issued = cmp_ca.issue(_request())
    status = cmp_ca.revoke("upstream", issued.serial, RevocationReason.key_compromise)
    assert status.status == "revoked"
    issuer = upstream.ca.issuing_ca_for(x509.Certificate.load(issued.certificate).public_key.dump()).name
    assert upstream.ca.status(issuer, issued.serial).status == "revoked"
    assert cmp_ca.status("upstream", issued.serial).status == "revoked"



def _rr_rows(ca, request_id):
    with ca.db() as s:
        return s.scalar(select(func.count()).select_from(CmpOutbox).where(CmpOutbox.request_id == f"rr-{request_id}"))


def test_a_revocation_queued_twice_in_one_transaction_is_one_row(upstream):
    cmp_ca, line = _cmp_ca(upstream)
    request = _request()
    issued = cmp_ca.issue(request)
    sent = line.sent
    with transaction(upstream.ca.db) as session:
        first = cmp_ca.queue_revocation("upstream", issued.serial, RevocationReason.key_compromise, session)
        second = cmp_ca.queue_revocation("upstream", issued.serial, RevocationReason.superseded, session)
    assert first == second == f"rr-{request.request_id}" and _rr_rows(upstream.ca, request.request_id) == 1
    row = _outbox(upstream.ca, first)
    assert row.kind == "rr" and row.state == "new" and row.request["reason"] == "key_compromise"
    assert line.sent == sent                                     # nothing over the network in the transaction


def _lock_waiter(engine) -> bool:
    """Whether a session of ``engine``'s database waits on a lock (PostgreSQL; SQLite: the writer lock, not
    visible: the thread's being alive says it)."""
    if engine.dialect.name != "postgresql":
        return True
    with engine.connect() as conn:
        return bool(conn.execute(text("select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                                      "and query like '%cmp_outbox%'")).scalar())


def test_two_nodes_queueing_the_same_revocation_at_once_write_one_row(upstream):
    """Two nodes (two engines on the one database) queue the rr of one certificate in their own uncommitted
    transactions: the second waits for the first's commit (PostgreSQL: on the primary key, as neither sees
    the other's row before; SQLite: on the writer lock), then finds the row, and both have its id."""
    cmp_ca, _ = _cmp_ca(upstream)
    request = _request()
    issued = cmp_ca.issue(request)
    engine = upstream.ca.db.kw["bind"]
    other = make_engine(url_of(engine) if engine.dialect.name == "postgresql"
                        else engine.url.render_as_string(hide_password=False))
    try:
        second_node = CmpCA(make_session_factory(other), Line(upstream), upstream.credentials, upstream.anchors,
                            name="upstream")
        queued: list[str] = []
        failures: list[BaseException] = []

        def queue():                    # the other node's RA, while the first node's transaction is open
            try:
                with transaction(second_node.db) as session:
                    queued.append(second_node.queue_revocation("upstream", issued.serial,
                                                               RevocationReason.superseded, session))
            except BaseException as exc:  # noqa: BLE001 - asserted below
                failures.append(exc)

        with transaction(upstream.ca.db) as session:
            first = cmp_ca.queue_revocation("upstream", issued.serial, RevocationReason.key_compromise, session)
            node = threading.Thread(target=queue)
            node.start()
            deadline = time.monotonic() + 20
            while not _lock_waiter(engine) and node.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            assert node.is_alive() and not failures, "the second node did not wait for the first's commit"
        node.join(20)
        assert not node.is_alive() and not failures, failures
    finally:
        other.dispose()
    assert queued == [first] == [f"rr-{request.request_id}"]
    assert _rr_rows(upstream.ca, request.request_id) == 1
    assert _outbox(upstream.ca, first).request["reason"] == "key_compromise"     # the first node's row
