"""``CmpCA`` (an upstream CA over CMP) against our own CMP server in-process: an RA whose protection key
is in the HSM and whose certificate carries id-kp-cmcRA; issuance with certConf, replays of the same
request id answered from the durable outbox, a lost answer or a lost request recovered under the same
transactionID without a second certificate, a refusal recorded with the CA's reason, a malformed answer,
and revocation by rr."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import x509
from sqlalchemy import func, select

from ca_bridge.api import IssueRequest, RevocationReason
from ca_bridge.cmp.models import CmpOutbox, CmpTransaction
from ca_bridge.cmp.upstream import CmpCA, UpstreamRefused, UpstreamUnavailable, signature_credentials
from ca_bridge.models import IssuedCert
from tests.cmp_support import ra_node_server, EcKey, cmp_server
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

