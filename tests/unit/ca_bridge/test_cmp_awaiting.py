"""The RA with an upstream CA over CMP (``[ca] backend = "cmp"``): an approval whose upstream is down, slow
or loses its answer leaves the request ``awaiting_ca`` (等待上级CA) -- committed with the queued CA request
and its transactionID -- and the sweep (``RaService.collect_awaiting``) carries it on until it is issued,
or failed with the CA's reason; never a second certificate. Also: the client's recipNonce check (RFC 4210
§5.1.1) and the choice of p10cr (the subscriber's CSR, its POP passed through) or cr (raVerified). A re-key's
old certificate is revoked at the upstream by an rr queued with the completion and sent after its commit.

The upstream is our own CMP server in-process, over the same database as the RA (SQLite and PostgreSQL)."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from ca_bridge.api import IssueRequest
from ca_bridge.cmp import asn1
from ca_bridge.cmp.client import CmpClientError, MacCredentials, build_message, check_answer
from ca_bridge.cmp.models import CmpOutbox, CmpTransaction
from ca_bridge.cmp.upstream import CmpCA, UpstreamUnavailable, UpstreamWaiting, signature_credentials
from ca_bridge.models import IssuedCert
from audit.trail import AuditEvent
from ra.services import RaService
from ra.workflow import Actor, Policy
from tests.cmp_support import ra_node_server, cmp_server
from tests.unit.ra.helpers import uscc

SUBMITTER, VETTER, APPROVER = (Actor(n, "ra_officer") for n in ("officer-a", "officer-b", "officer-c"))


@pytest.fixture(scope="module")
def upstream(ca):
    """Our CA's CMP server, and an RA identity (HSM key, cmp-ra certificate) to protect with."""
    server = ra_node_server(ca, f"{ca.test_tag}ra-await-{secrets.token_hex(3)}")
    return server


class Line:
    """The wire to the upstream, with faults on demand."""

    def __init__(self, server):
        self.server, self.sent, self.fault, self.bodies = server, 0, None, []

    def __call__(self, der, profile=None):
        self.sent += 1
        self.bodies.append(asn1.PKIMessage.load(der)["body"].name)
        if self.fault == "down":
            raise UpstreamUnavailable("the upstream CA cannot be reached (test)")
        if self.fault == "bug":
            raise RuntimeError("an unexpected failure on the way (test)")
        status, answer = self.server.handle(der, profile)
        if self.fault == "lose-answer":
            self.fault = None
            raise UpstreamUnavailable("connection reset after the request was delivered (test)")
        return answer


def _ra(upstream, policy=None, **kw):
    line = Line(upstream)
    cmp_ca = CmpCA(upstream.ca.db, line, upstream.credentials, upstream.anchors, name="upstream", **kw)
    return RaService(upstream.ca.db, cmp_ca, policy or Policy()), line


def _key_and_csr(host: str, organization: str | None = None, san: bool = False):
    key = ec.generate_private_key(ec.SECP256R1())
    names = [cx509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if organization:
        names.append(cx509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    names.append(cx509.NameAttribute(NameOID.COMMON_NAME, host))
    builder = cx509.CertificateSigningRequestBuilder().subject_name(cx509.Name(names))
    if san:
        builder = builder.add_extension(cx509.SubjectAlternativeName([cx509.DNSName(host)]), critical=False)
    return key, builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def _vetted_server_request(ra, *, full_subject=False) -> tuple[int, bytes]:
    unit_name = f"杭州市测试局{secrets.token_hex(2)}"
    unit, _ = ra.add_unit(SUBMITTER, name=unit_name, uscc=uscc(), legal_representative="张三")
    host = f"app-{secrets.token_hex(4)}.zj.gov.cn"
    server, _ = ra.add_server(SUBMITTER, host_name=host, unit_id=unit["id"])
    _, csr = _key_and_csr(host, unit_name if full_subject else None, san=full_subject)
    req = ra.submit(SUBMITTER, type="server", subject_id=server["id"], sign_csr=csr)
    ra.vet(VETTER, req["id"], documents_checked=True)
    return req["id"], csr


def _outbox(ca, request_id):
    with ca.db() as s:
        return s.get(CmpOutbox, request_id)


def _certificates_for(ca, tid_hex):
    with ca.db() as s:
        return s.scalar(select(func.count()).select_from(IssuedCert).where(IssuedCert.request_id == f"cmp-{tid_hex}"))


def _actions(ca, rid):
    with ca.db() as s:
        return list(s.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "ra_request",
                                                              AuditEvent.target_id == str(rid)).order_by(AuditEvent.id)))


def test_upstream_down_at_approval_leaves_the_request_awaiting_ca_and_the_sweep_issues_it(upstream):
    ra, line = _ra(upstream)
    rid, _ = _vetted_server_request(ra)
    line.fault = "down"
    done = ra.approve(APPROVER, rid)                          # no 503, no second approval needed
    assert done["state"] == "awaiting_ca" and done["certificates"] == []
    row = _outbox(upstream.ca, f"ra-{rid}-sign")
    assert row.state == "sent" and len(row.transaction_id) == 32 and row.claimed_until is None
    assert ra.collect_awaiting() .get(rid) == "awaiting_ca"   # still down: stays, nothing lost
    line.fault = None
    assert ra.collect_awaiting()[rid] == "issued"
    issued = ra.get_request(rid)
    assert issued["state"] == "issued" and [c["ca"] for c in issued["certificates"]] == ["upstream"]
    assert _outbox(upstream.ca, f"ra-{rid}-sign").transaction_id == row.transaction_id
    assert _certificates_for(upstream.ca, row.transaction_id) == 1
    assert ra.collect_awaiting([rid]) == {} and ra.approve(APPROVER, rid)["state"] == "issued"   # nothing twice
    assert _actions(upstream.ca, rid)[-3:] == ["ra.request.approve", "ra.request.awaiting_ca", "ra.certificate.issue"]


def test_a_lost_answer_is_polled_by_the_sweep_never_a_second_certificate(upstream):
    ra, line = _ra(upstream)
    rid, _ = _vetted_server_request(ra)
    line.fault = "lose-answer"
    assert ra.approve(APPROVER, rid)["state"] == "awaiting_ca"
    tid = _outbox(upstream.ca, f"ra-{rid}-sign").transaction_id
    assert _certificates_for(upstream.ca, tid) == 1            # the CA issued; the RA did not hear it
    with upstream.ca.db() as s:
        assert s.get(CmpTransaction, tid).state == "issued"    # not confirmed yet
    assert ra.collect_awaiting()[rid] == "issued"
    assert line.bodies[-2:] == ["poll_req", "cert_conf"]       # polled the same transaction, confirmed
    assert _certificates_for(upstream.ca, tid) == 1
    serial = ra.get_request(rid)["certificates"][0]["serial"]
    with upstream.ca.db() as s:
        tx = s.get(CmpTransaction, tid)
        assert tx.state == "confirmed" and tx.serial == serial


def test_a_refusal_fails_the_request_with_the_cas_reason(upstream):
    policy = Policy.from_mapping({"profiles": {"server": {"sign": "no-such-profile"}}})
    ra, line = _ra(upstream, policy)
    rid, _ = _vetted_server_request(ra)
    done = ra.approve(APPROVER, rid)
    assert done["state"] == "failed"
    assert "unknown certificate profile" in done["reject_reason"] and done["rejected_by"] == "upstream-ca"
    assert "ra.request.ca_refused" in _actions(upstream.ca, rid)
    sent = line.sent
    assert ra.collect_awaiting() .get(rid) is None and line.sent == sent      # final: never asked again


def test_an_unexpected_failure_after_the_commit_leaves_the_request_awaiting_ca(upstream):
    ra, line = _ra(upstream)
    rid, _ = _vetted_server_request(ra)
    line.fault = "bug"
    assert ra.approve(APPROVER, rid)["state"] == "awaiting_ca"           # the approval stands, no 500
    line.fault = None
    assert ra.collect_awaiting([rid]) == {rid: "issued"}


def test_the_serving_loop_sweeps_on_its_timer(upstream):
    """``RaService.start_collect_sweep`` (what ``racentre serve`` starts with [ca] backend = "cmp")."""
    import time
    ra, line = _ra(upstream)
    rid, _ = _vetted_server_request(ra)
    line.fault = "down"
    assert ra.approve(APPROVER, rid)["state"] == "awaiting_ca"
    line.fault = None
    stop = ra.start_collect_sweep(0.2)
    try:
        deadline = time.monotonic() + 30
        while ra.get_request(rid)["state"] == "awaiting_ca":
            assert time.monotonic() < deadline, "the timer never collected the request"
            time.sleep(0.1)
    finally:
        stop.set()
    assert ra.get_request(rid)["state"] == "issued"
    assert RaService(upstream.ca.db, upstream.ca).start_collect_sweep(0.2) is None     # an embedded CA: no timer


def test_a_request_held_by_another_worker_is_left_alone(upstream):
    ra, line = _ra(upstream)
    rid, _ = _vetted_server_request(ra)
    line.fault = "down"
    assert ra.approve(APPROVER, rid)["state"] == "awaiting_ca"
    line.fault = None
    other = CmpCA(upstream.ca.db, Line(upstream), upstream.credentials, upstream.anchors, lease=60)
    other._claim(f"ra-{rid}-sign")                             # a worker elsewhere is carrying it on
    sent = line.sent
    with pytest.raises(UpstreamWaiting, match="another worker"):
        ra.ca.collect(f"ra-{rid}-sign")
    assert ra.collect_awaiting()[rid] == "awaiting_ca" and line.sent == sent
    other._mark(f"ra-{rid}-sign", claimed_until=None)          # its lease ended
    assert ra.collect_awaiting()[rid] == "issued"


def test_bulk_approval_with_the_upstream_down_queues_every_request(upstream):
    ra, line = _ra(upstream)
    ids = [_vetted_server_request(ra)[0] for _ in range(3)]
    line.fault = "down"
    outcomes = ra.approve_many(APPROVER, ids)
    assert [o["result"] for o in outcomes] == ["awaiting_ca"] * 3
    assert line.sent == 1                                      # the sweep stops at the first unreachable CA
    line.fault = None
    assert ra.collect_awaiting(ids) == {i: "issued" for i in ids}


# ------------------------------------------------------------------------------------- p10cr or cr

def test_a_csr_asking_for_exactly_the_vetted_certificate_goes_out_as_p10cr(upstream):
    ra, line = _ra(upstream)
    rid, csr = _vetted_server_request(ra, full_subject=True)
    assert ra.approve(APPROVER, rid)["state"] == "issued"
    row = _outbox(upstream.ca, f"ra-{rid}-sign")
    assert row.kind == "p10cr" and line.bodies[-2:] == ["p10cr", "cert_conf"]
    with upstream.ca.db() as s:
        tx = s.get(CmpTransaction, row.transaction_id)
        assert tx.kind == "p10cr" and tx.state == "confirmed" and tx.cert_req_id == -1
    cert = x509.Certificate.load(ra.certificate(rid, "sign"))
    assert cert.public_key.dump() == x509.Certificate.load(row.certificate).public_key.dump()


def test_a_csr_with_less_than_the_vetted_subject_goes_out_as_cr_with_raverified(upstream):
    ra, line = _ra(upstream)
    rid, _ = _vetted_server_request(ra)                        # the CSR names C and CN only
    assert ra.approve(APPROVER, rid)["state"] == "issued"
    assert _outbox(upstream.ca, f"ra-{rid}-sign").kind == "cr" and line.bodies[-2:] == ["cr", "cert_conf"]
    subject = x509.Certificate.load(ra.certificate(rid, "sign")).subject.native
    assert subject["organization_name"].startswith("杭州市测试局")     # the vetted subject, not the CSR's


def test_a_tampered_csr_is_refused_by_the_upstream_as_bad_pop(upstream):
    """The subscriber's own POP goes through: the upstream checks it (a CSR whose signature was broken
    after submission is refused there, and the request fails with that reason)."""
    ra, _ = _ra(upstream)
    rid, csr = _vetted_server_request(ra, full_subject=True)
    from ra.models import CertRequest
    with upstream.ca.db.begin() as s:
        req = s.get(CertRequest, rid)
        req.sign_csr = csr[:-4] + bytes(b ^ 0x55 for b in csr[-4:])        # the signature's last bytes
    done = ra.approve(APPROVER, rid)
    assert done["state"] == "failed" and "proof of possession" in done["reject_reason"]


# ------------------------------------------------------------------------------------- recipNonce

def _mac_answer(request: asn1.PKIMessage, credentials: MacCredentials, *, recip_nonce: bytes) -> bytes:
    body = asn1.ErrorMsgContent({"pki_status_info": {"status": 2}})
    return build_message("error", body, credentials, transaction_id=request["header"]["transaction_id"].native,
                         recip_nonce=recip_nonce).dump()


def test_an_answer_whose_recipnonce_is_not_our_sendernonce_is_refused():
    """RFC 4210 §5.1.1: recipNonce of an answer = the senderNonce of the request. A correctly protected
    answer with another recipNonce (a replayed or misrouted answer) is refused; the same with ours passes."""
    credentials = MacCredentials(b"ref", b"shared-secret")
    request = build_message("genm", asn1.InfoTypeAndValues([]), credentials)
    ours = request["header"]["sender_nonce"].native
    assert check_answer(_mac_answer(request, credentials, recip_nonce=ours), request, secret=b"shared-secret")
    with pytest.raises(CmpClientError, match="recipNonce"):
        check_answer(_mac_answer(request, credentials, recip_nonce=secrets.token_bytes(16)), request,
                     secret=b"shared-secret")


def test_cmpca_refuses_a_wrong_recipnonce_and_keeps_the_request(upstream):
    credentials = MacCredentials(b"ref", b"shared-secret")

    def replaying_upstream(der, profile=None):
        request = asn1.PKIMessage.load(der)
        return _mac_answer(request, credentials, recip_nonce=secrets.token_bytes(16))

    cmp_ca = CmpCA(upstream.ca.db, replaying_upstream, credentials, upstream.anchors)
    request = IssueRequest(request_id=f"ra-nonce-{secrets.token_hex(4)}-sign", profile="server",
                           subject=(("country_name", "CN"), ("common_name", "x.zj.gov.cn")),
                           public_key_info=ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
                               serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(UpstreamUnavailable, match="recipNonce is not our senderNonce"):
        cmp_ca.issue(request)
    assert _outbox(upstream.ca, request.request_id).state == "sent"


def test_an_old_queue_file_is_adopted_once_keeping_its_transaction_ids(ca, tmp_path):
    """A queue an earlier version kept beside a SQLite database (``<db>-cmp-outbox``) is copied into the
    site database: a request already sent keeps its transactionID (never a second one), once."""
    from store.db import Base, make_engine, make_session_factory
    from ca_bridge.cmp.upstream import adopt_outbox
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db-cmp-outbox'}")
    Base.metadata.create_all(engine, tables=[CmpOutbox.__table__])
    old = make_session_factory(engine)
    rid, tid = f"ra-old-{secrets.token_hex(4)}-sign", secrets.token_hex(16)
    with old.begin() as s:
        s.add(CmpOutbox(request_id=rid, transaction_id=tid, state="sent", request={"profile": "server"}, attempts=1,
                        chain=[], status="good"))
    assert adopt_outbox(old, ca.db) == 1 and adopt_outbox(old, ca.db) == 0
    row = _outbox(ca, rid)
    assert row.transaction_id == tid and row.state == "sent" and row.attempts == 1
    engine.dispose()


def test_a_rekey_through_the_upstream_revokes_the_old_certificate_after_the_commit(upstream):
    """A re-key's old certificate is revoked (superseded) at the upstream CA by an rr queued with the
    re-key's completion and sent after its commit: on one database in one process the completion does not
    wait on its own lock, and the rr goes once."""
    import time
    ra, line = _ra(upstream)
    rid, csr = _vetted_server_request(ra)
    old = ra.approve(APPROVER, rid)
    assert old["state"] == "issued"
    host = x509.Certificate.load(ra.certificate(rid, "sign")).subject.native["common_name"]
    _, new_csr = _key_and_csr(host)
    rekey = ra.submit(SUBMITTER, type="server", kind="rekey", target_request_id=rid, sign_csr=new_csr)
    ra.vet(VETTER, rekey["id"], documents_checked=True)
    started = time.monotonic()
    done = ra.approve(APPROVER, rekey["id"])
    elapsed = time.monotonic() - started
    assert done["state"] == "issued", done
    assert elapsed < 20, f"the re-key took {elapsed:.1f} s (a wait on the database lock?)"
    old_cert = ra.get_request(rid)["certificates"][0]
    assert (old_cert["status"], old_cert["revocation_reason"]) == ("revoked", "superseded")
    with upstream.ca.db() as s:
        assert s.scalar(select(IssuedCert.status).where(IssuedCert.serial == old_cert["serial"])) == "revoked"
        assert s.get(CmpOutbox, f"rr-ra-{rid}-sign").state == "done"
    assert line.bodies.count("rr") == 1
    ra.collect_awaiting()
    assert line.bodies.count("rr") == 1
