"""One-time CMP secrets bound to an RA request (RFC 9483 §4.1.5): a server request submitted for enrolment
over CMP (no CSR) is vetted and approved as any request; an officer then issues a secret *for that
request*; the subscriber's ir, MAC-protected with it, gets the request's vetted subject and names, and the
certificate is recorded on the request (issued) in the CA's transaction. Once only: the request never gets
a second certificate, a secret is refused for a request not yet approved, another subject is refused."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import x509
from sqlalchemy import select

from ca_bridge.cmp import asn1
from ca_bridge.cmp.client import MacCredentials, build_message, cert_req_msg
from ca_bridge.cmp.models import CmpSecret
from ra.errors import ConflictError, ValidationError
from ra.services import RaService
from ra.workflow import record_cmp_enrolment
from tests.cmp_support import EcKey, cmp_server
from tests.unit.ca_bridge.test_cmp_awaiting import APPROVER, SUBMITTER, VETTER
from tests.unit.ca_bridge.test_cmp_server import _ask, _error_bits
from tests.unit.ra.helpers import uscc


@pytest.fixture(scope="module")
def site(ca):
    server = cmp_server(ca, enrolled=record_cmp_enrolment)
    ra = RaService(ca.db, ca)
    ra.cmp_secrets = server.issue_secret
    return server, ra


def _approved_request(ra, approve=True) -> tuple[int, str]:
    unit, _ = ra.add_unit(SUBMITTER, name=f"杭州市测试局{secrets.token_hex(2)}", uscc=uscc(), legal_representative="张三")
    host = f"enrol-{secrets.token_hex(4)}.zj.gov.cn"
    server, _ = ra.add_server(SUBMITTER, host_name=host, unit_id=unit["id"])
    req = ra.submit(SUBMITTER, type="server", subject_id=server["id"], enrol_by_cmp=True)
    assert ra.vet(VETTER, req["id"], documents_checked=True)["state"] == "vetted"
    if approve:
        done = ra.approve(APPROVER, req["id"])
        assert done["state"] == "approved" and done["certificates"] == []      # awaiting the subscriber
    return req["id"], host


def _creds(ra, rid) -> MacCredentials:
    out = ra.issue_cmp_secret(APPROVER, rid)
    return MacCredentials(out["reference"].encode(), out["secret"].encode())


def _ir(key, creds, subject):
    msg = cert_req_msg(public_key_info=key.spki, sign_pop=key.sign, pop_algorithm=key.algorithm, subject=subject)
    return build_message("ir", asn1.CertReqMessages([msg]), creds)


def test_a_secret_bound_to_an_approved_request_enrols_it_once(site):
    server, ra = site
    rid, host = _approved_request(ra)
    creds = _creds(ra, rid)
    with server.db() as s:
        assert s.get(CmpSecret, creds.reference.decode()).ra_request_id == rid
    vetted = tuple(tuple(p) for p in ra.get_request(rid)["subject"])
    key = EcKey()
    cert, _ = _enrol_as(server, key, creds, vetted)
    done = ra.get_request(rid)
    assert done["state"] == "issued" and done["certificates"][0]["serial"] == format(cert.serial_number, "x")
    assert cert.public_key.dump() == key.spki and ra.certificate(rid, "sign") == cert.dump()
    assert cert.subject.native["common_name"] == host and cert.subject_alt_name_value.native == [host]
    # a second secret for the request: refused (it is issued); the used one cannot enrol again
    with pytest.raises(ConflictError):
        ra.issue_cmp_secret(APPROVER, rid)
    bits, text = _error_bits(_ask(server, _ir(EcKey(), creds, vetted), creds.secret))
    assert "not_authorized" in bits and "used already" in text


def _enrol_as(server, key, creds, subject):
    from ca_bridge.cmp.server import cert_hash
    request = _ir(key, creds, subject)
    answer = _ask(server, request, creds.secret)
    response = answer["body"].chosen["response"][0]
    assert response["status"]["status"].native == 0, response["status"].native
    cert = x509.Certificate.load(response["certified_key_pair"]["cert_or_enc_cert"].chosen.untag().dump())
    conf = build_message("cert_conf", asn1.CertConfirmContent([{"cert_hash": cert_hash(cert.dump()), "cert_req_id": 0}]),
                         creds, transaction_id=request["header"]["transaction_id"].native,
                         recip_nonce=answer["header"]["sender_nonce"].native)
    assert _ask(server, conf, creds.secret)["body"].name == "pkiconf"
    return cert, answer


def test_no_secret_before_the_request_is_approved_and_a_new_secret_voids_the_old(site):
    server, ra = site
    rid, _ = _approved_request(ra, approve=False)
    with pytest.raises(ConflictError, match="vetted"):
        ra.issue_cmp_secret(APPROVER, rid)
    assert ra.approve(APPROVER, rid)["state"] == "approved"
    first, second = _creds(ra, rid), _creds(ra, rid)
    vetted = tuple(tuple(p) for p in ra.get_request(rid)["subject"])
    bits, text = _error_bits(_ask(server, _ir(EcKey(), first, vetted), first.secret))
    assert "not_authorized" in bits and "expired" in text
    _enrol_as(server, EcKey(), second, vetted)
    assert ra.get_request(rid)["state"] == "issued"


def test_another_subject_is_refused_and_the_request_stays_approved(site):
    server, ra = site
    rid, _ = _approved_request(ra)
    creds = _creds(ra, rid)
    bits, text = _error_bits(_ask(server, _ir(EcKey(), creds, {"country_name": "CN", "common_name": "evil.example"}),
                                  creds.secret))
    assert "bad_cert_template" in bits and "vetted" in text
    assert ra.get_request(rid)["state"] == "approved"


def test_a_request_rejected_meanwhile_gets_no_certificate(site):
    """The RA refuses the record (the request is no longer awaiting enrolment): the CA's issuance rolls back
    with it and the ir is answered with a rejection."""
    server, ra = site
    rid, _ = _approved_request(ra)
    creds = _creds(ra, rid)
    from ra.models import CertRequest
    with server.db.begin() as s:
        s.get(CertRequest, rid).state = "rejected"
    vetted = tuple(tuple(p) for p in ra.get_request(rid)["subject"])
    answer = _ask(server, _ir(EcKey(), creds, vetted), creds.secret)
    response = answer["body"].chosen["response"][0]
    assert response["status"]["status"].native == 2 and "not an approved request" in str(response["status"].native)
    from ca_bridge.models import IssuedCert
    with server.db() as s:
        assert s.scalar(select(IssuedCert).where(IssuedCert.request_id == f"ra-{rid}-sign")) is None


def test_enrolment_by_cmp_is_for_new_server_and_unit_requests_without_csr(site):
    _, ra = site
    unit, _ = ra.add_unit(SUBMITTER, name=f"杭州市测试局{secrets.token_hex(2)}", uscc=uscc(), legal_representative="张三")
    server, _ = ra.add_server(SUBMITTER, host_name=f"x-{secrets.token_hex(4)}.zj.gov.cn", unit_id=unit["id"])
    with pytest.raises(ValidationError, match="no CSR"):
        ra.submit(SUBMITTER, type="server", subject_id=server["id"], enrol_by_cmp=True, sign_csr=b"0")
    assert ra.submit(SUBMITTER, type="unit", subject_id=unit["id"], enrol_by_cmp=True)["state"] == "submitted"
