"""The RA workflow on SQLite and PostgreSQL against a small in-memory CA: vetting records its checks,
four-eyes approval, issuance inside the approving transaction (atomic, idempotent, one issuance under
concurrent approvals), rejection, revocation, renewal and re-key through the same gate."""
from __future__ import annotations

import threading

import pytest
from asn1crypto import x509 as asn1_x509
from sqlalchemy import func, select

from ca_bridge.api import CABackend, RevocationReason
from audit.trail import events_for
from pkicore.oids import OID
from ra.errors import ConflictError, CsrError, DutiesNotSeparated, IssuanceFailed, NotFound, ValidationError
from ra.models import Approval, CertRequest, RaCertificate
from ra.services import build_ra_service
from ra.workflow import Actor, Policy
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key, spki_der, tongsuo_spki, tongsuo_sm2_csr, tongsuo_sm2_key
from tests.unit.ra.fake_ca import FakeCA

APPLICANT = Actor("applicant-1", "applicant")
OPERATOR = Actor("operator-1", "ra_operator")
OFFICER_A = Actor("officer-a", "ra_officer")
OFFICER_B = Actor("officer-b", "ra_officer")
OFFICER_C = Actor("officer-c", "ra_officer")
ADMIN = Actor("admin-1", "ra_admin")


@pytest.fixture
def ca():
    return FakeCA()


@pytest.fixture
def ra(db, ca):
    return build_ra_service(db, ca)


@pytest.fixture
def unit(ra):
    return ra.add_unit(ADMIN, name=f"测试局-{helpers.tag()}", uscc=helpers.uscc(), legal_representative="王五")[0]


@pytest.fixture
def person(ra, unit):
    return ra.add_civil_servant(ADMIN, name="张三", id_number=helpers.id_number(), unit_id=unit["id"],
                                department="办公室", position="科员", contact="0571-12345678")[0]


def submit_dual(ra, person, subject=None):
    sign_key, enc_key = tongsuo_sm2_key(), tongsuo_sm2_key()
    req = ra.submit(APPLICANT, type="civil-servant-dual", subject_id=person["id"],
                    sign_csr=tongsuo_sm2_csr(sign_key, subject), enc_public_key=tongsuo_spki(enc_key))
    return req, sign_key, enc_key


def issued_dual(ra, person):
    req, sign_key, _ = submit_dual(ra, person)
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    ra.approve(OFFICER_A, req["id"])
    return ra.approve(OFFICER_B, req["id"]), sign_key


def test_fake_ca_is_a_ca_backend(ca):
    assert isinstance(ca, CABackend)


def test_dual_certificate_flow(ra, ca, db, unit, person):
    req, sign_key, enc_key = submit_dual(ra, person, {"country_name": "CN", "common_name": "张三"})
    assert req["state"] == "submitted" and req["approvals_required"] == 2
    vetted = ra.vet(OPERATOR, req["id"], documents_checked=True, note="身份证原件已核验")
    assert vetted["state"] == "vetted" and vetted["vetted_by"] == OPERATOR.name
    assert {name for name, c in vetted["checks"].items() if c["ok"]} == {"documents", "identity", "csr", "subject", "key"}
    first = ra.approve(OFFICER_A, req["id"])
    assert first["state"] == "vetted" and [a["officer"] for a in first["approvals"]] == [OFFICER_A.name]
    assert ca.calls == []
    assert ra.approve(OFFICER_A, req["id"])["approvals"] == first["approvals"]    # a retry adds nothing
    done = ra.approve(OFFICER_B, req["id"])
    assert done["state"] == "issued" and ca.issuance_count == 2
    assert sorted((c["usage"], c["profile"]) for c in done["certificates"]) == [
        ("enc", "civil-servant-enc"), ("sign", "civil-servant-sign")]
    sign_call, enc_call = (call for kind, call in ca.calls if kind == "issue")
    assert sign_call.request_id == f"ra-{req['id']}-sign" and enc_call.request_id == f"ra-{req['id']}-enc"
    expected_subject = (("country_name", "CN"), ("organization_name", unit["name"]),
                        ("organizational_unit_name", "办公室"), ("common_name", "张三"))
    assert sign_call.subject == expected_subject == enc_call.subject
    assert sign_call.identity == ((OID.ID_CARD_NUMBER, person["id_number"]),)
    assert sign_call.public_key_info == tongsuo_spki(sign_key) and enc_call.public_key_info == tongsuo_spki(enc_key)
    assert all(s is not None for s in ca.sessions)                  # the CA was handed our transaction
    cert = asn1_x509.Certificate.load(ra.certificate(req["id"], "sign"))
    assert cert.serial_number == int(done["certificates"][0]["serial"], 16)
    with db() as session:
        actions = [e.action for e in events_for(session, "ra_request", req["id"])]
    assert actions == ["ra.request.submit", "ra.request.vet", "ra.request.approve", "ra.request.approve",
                       "ra.certificate.issue", "ra.certificate.issue"]
    assert ra.approve(OFFICER_B, req["id"])["state"] == "issued" and ca.issuance_count == 2
    with pytest.raises(ConflictError, match="only vetted"):
        ra.approve(OFFICER_C, req["id"])


def test_separation_of_duties(ra, person):
    req, _, _ = submit_dual(ra, person)
    with pytest.raises(DutiesNotSeparated, match="submitter"):
        ra.vet(APPLICANT, req["id"], documents_checked=True)
    with pytest.raises(ConflictError, match="only vetted"):
        ra.approve(OFFICER_A, req["id"])
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    with pytest.raises(DutiesNotSeparated, match="submitted"):
        ra.approve(APPLICANT, req["id"])
    with pytest.raises(DutiesNotSeparated, match="vetted"):
        ra.approve(OPERATOR, req["id"])
    ra.approve(OFFICER_A, req["id"])
    assert ra.get_request(req["id"])["state"] == "vetted"
    with pytest.raises(ConflictError, match="only submitted"):
        ra.vet(OPERATOR, req["id"], documents_checked=True)


def test_server_request_needs_one_officer(ra, ca, unit):
    host, alt, ip = helpers.host(), helpers.host(), helpers.ipv4()
    server, created = ra.add_server(ADMIN, host_name=host.upper(), unit_id=unit["id"], dns_names=[alt, host],
                                    ip_addresses=[ip])
    assert created and server["dns_names"] == [host, alt] and server["ip_addresses"] == [ip]
    key = ec_key()
    req = ra.submit(Actor("client-1", "api_client"), type="server", subject_id=server["id"],
                    sign_csr=cryptography_csr(key, host, unit["name"]))
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    done = ra.approve(OFFICER_A, req["id"])
    assert done["state"] == "issued" and [c["profile"] for c in done["certificates"]] == ["server"]
    [(_, call)] = ca.calls
    assert call.dns_names == (host, alt) and call.ip_addresses == (ip,) and call.identity == ()
    assert call.subject[-1] == ("common_name", host) and call.public_key_info == spki_der(key)


def test_unit_request_carries_the_credit_code(ra, ca, unit):
    key = ec_key()
    req = ra.submit(APPLICANT, type="unit", subject_id=unit["id"], sign_csr=cryptography_csr(key, unit["name"]))
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    ra.approve(OFFICER_A, req["id"])
    done = ra.approve(OFFICER_C, req["id"])
    assert done["state"] == "issued"
    [(_, call)] = ca.calls
    assert call.profile == "unit" and call.identity == ((OID.UNIFIED_SOCIAL_CREDIT_CODE, unit["uscc"]),)
    assert call.subject == (("country_name", "CN"), ("organization_name", unit["name"]), ("common_name", unit["name"]))


def test_wrong_subject_refused_at_submission_and_unticked_documents_change_nothing(ra, db, person):
    """Issue 17: a CSR whose subject contradicts the registry is refused when it is submitted (nothing
    stored), not at vetting; vetting without the documents statement is refused and leaves the request
    submitted (no final rejection for the operator's slip); with it, the request is vetted."""
    with db() as session:
        before = session.scalar(select(func.count()).select_from(CertRequest))
    with pytest.raises(ValidationError, match="李四"):
        submit_dual(ra, person, {"common_name": "李四"})
    with db() as session:
        after = session.scalar(select(func.count()).select_from(CertRequest))
    assert after == before
    req, _, _ = submit_dual(ra, person)
    with pytest.raises(ValidationError, match="documents"):
        ra.vet(OPERATOR, req["id"], documents_checked=False)
    unchanged = ra.get_request(req["id"])
    assert unchanged["state"] == "submitted" and unchanged["checks"] == {} and unchanged["vetted_by"] is None
    vetted = ra.vet(OPERATOR, req["id"], documents_checked=True)
    assert vetted["state"] == "vetted" and vetted["checks"]["csr"]["ok"] and vetted["checks"]["documents"]["ok"]


def test_return_for_correction_and_resubmit(ra, ca, person):
    """退回补正: an officer sends a vetted request back with a reason (not final); approvals and vetting are
    void; the submitter resubmits with a new CSR (subject checked again); the gate runs again and issues."""
    req, _, _ = submit_dual(ra, person)
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    ra.approve(OFFICER_A, req["id"])
    with pytest.raises(ValidationError, match="reason"):
        ra.return_for_correction(OFFICER_B, req["id"], "  ")
    returned = ra.return_for_correction(OFFICER_B, req["id"], "请补充单位介绍信")
    assert returned["state"] == "returned" and returned["reject_reason"] == "请补充单位介绍信"
    with pytest.raises(ConflictError):
        ra.approve(OFFICER_C, req["id"])                             # returned: nothing to approve
    with pytest.raises(DutiesNotSeparated):
        ra.resubmit(OFFICER_C, req["id"])                            # not the submitter, not an operator
    with pytest.raises(ValidationError, match="李四"):                # a corrected CSR is checked again
        ra.resubmit(APPLICANT, req["id"], sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": "李四"}))
    assert ra.get_request(req["id"])["state"] == "returned"
    again = ra.resubmit(APPLICANT, req["id"], sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key()))
    assert again["state"] == "submitted" and again["approvals"] == [] and again["vetted_by"] is None
    assert again["reject_reason"] is None
    with pytest.raises(ConflictError):
        ra.resubmit(APPLICANT, req["id"])                            # only returned requests
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    ra.approve(OFFICER_A, req["id"])
    assert ra.approve(OFFICER_B, req["id"])["state"] == "issued"
    with ra.db() as session:
        actions = [e.action for e in events_for(session, "ra_request", req["id"])]
    assert "ra.request.return" in actions and "ra.request.resubmit" in actions


def test_two_officers_can_revoke_the_submitter_counts(ra, ca, person):
    """Issue 17: with two officers, an officer's revocation request does not stall at 1 of 2: the submitting
    officer is its first approver, the other officer's approval carries it out; the submitter cannot
    approve twice, and an applicant's revocation request still needs two officers."""
    issued, _ = issued_dual(ra, person)
    revocation = ra.submit(OFFICER_A, type="civil-servant-dual", kind="revocation", target_request_id=issued["id"],
                           revocation_reason="affiliation_changed")
    assert [a["officer"] for a in revocation["approvals"]] == [OFFICER_A.name]
    ra.vet(OPERATOR, revocation["id"], documents_checked=True)
    assert ra.approve(OFFICER_A, revocation["id"])["state"] == "vetted"        # unchanged: already counted
    done = ra.approve(OFFICER_B, revocation["id"])
    assert done["state"] == "revoked"
    assert {c["status"] for c in ra.get_request(issued["id"])["certificates"]} == {"revoked"}


def test_emergency_revocation_is_immediate_and_audited(ra, ca, db, person):
    """Key compromise: one officer revokes at once with a justification (keyCompromise); the revocation is
    a request of its own, naming the officer, and the audit trail holds the justification. Without a
    justification, or for a request with nothing in force, it is refused and nothing is written."""
    issued, _ = issued_dual(ra, person)
    with pytest.raises(ValidationError, match="reason"):
        ra.emergency_revoke(OFFICER_A, issued["id"], "")
    assert {c["status"] for c in ra.get_request(issued["id"])["certificates"]} == {"good"}
    done = ra.emergency_revoke(OFFICER_A, issued["id"], "USB key 遗失，持有人电话报告")
    assert done["state"] == "revoked" and done["kind"] == "revocation" and done["revocation_reason"] == "key_compromise"
    assert done["submitted_by"] == OFFICER_A.name and done["checks"]["emergency"]["detail"].startswith("USB key")
    assert {c["status"] for c in ra.get_request(issued["id"])["certificates"]} == {"revoked"}
    with db() as session:
        events = [e for e in events_for(session, "ra_request", done["id"]) if e.action == "ra.request.emergency_revoke"]
    assert len(events) == 1 and events[0].actor == OFFICER_A.name
    with pytest.raises(ConflictError):
        ra.emergency_revoke(OFFICER_B, issued["id"], "again")


def test_key_reuse_across_subjects_is_refused(ra, unit, person):
    _, sign_key = issued_dual(ra, person)
    other = ra.add_civil_servant(ADMIN, name="李四", id_number=helpers.id_number(), unit_id=unit["id"])[0]
    req = ra.submit(APPLICANT, type="civil-servant-dual", subject_id=other["id"],
                    sign_csr=tongsuo_sm2_csr(sign_key), enc_public_key=tongsuo_spki(tongsuo_sm2_key()))
    result = ra.vet(OPERATOR, req["id"], documents_checked=True)
    assert result["state"] == "rejected" and "another subject" in result["checks"]["key"]["detail"]


def test_submission_errors(ra, unit, person):
    key = tongsuo_sm2_key()
    with pytest.raises(ValidationError, match="encryption key"):
        ra.submit(APPLICANT, type="civil-servant-dual", subject_id=person["id"], sign_csr=tongsuo_sm2_csr(key))
    with pytest.raises(ValidationError, match="differ"):
        ra.submit(APPLICANT, type="civil-servant-dual", subject_id=person["id"], sign_csr=tongsuo_sm2_csr(key),
                  enc_public_key=tongsuo_spki(key))
    with pytest.raises(ValidationError, match="same type"):
        ra.submit(APPLICANT, type="civil-servant-dual", subject_id=person["id"], sign_csr=tongsuo_sm2_csr(key),
                  enc_public_key=spki_der(ec_key()))
    with pytest.raises(CsrError):
        ra.submit(APPLICANT, type="unit", subject_id=unit["id"], sign_csr=b"\x30\x03\x02\x01\x00")
    with pytest.raises(ValidationError, match="request type"):
        ra.submit(APPLICANT, type="robot", subject_id=unit["id"], sign_csr=b"x")
    with pytest.raises(NotFound):
        ra.submit(APPLICANT, type="server", subject_id=10**9, sign_csr=b"x")
    with pytest.raises(ValidationError, match="only civil-servant"):
        ra.submit(APPLICANT, type="unit", subject_id=unit["id"], sign_csr=cryptography_csr(ec_key(), "x"),
                  enc_public_key=spki_der(ec_key()))


def test_ca_failure_rolls_everything_back_and_retry_issues_once(ra, ca, db, person):
    req, _, _ = submit_dual(ra, person)
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    ra.approve(OFFICER_A, req["id"])
    ca.fail_next_issue(after=1)                       # the signing cert is made, the encryption one fails
    with pytest.raises(IssuanceFailed, match="nothing was recorded"):
        ra.approve(OFFICER_B, req["id"])
    after = ra.get_request(req["id"])
    assert after["state"] == "vetted" and after["certificates"] == [] and len(after["approvals"]) == 1
    with db() as session:
        assert session.scalar(select(func.count()).select_from(RaCertificate)
                              .where(RaCertificate.request_id == req["id"])) == 0
        assert [e.action for e in events_for(session, "ra_request", req["id"])][-1] == "ra.request.approve"
        assert len([e for e in events_for(session, "ra_request", req["id"]) if e.actor == OFFICER_B.name]) == 0
    done = ra.approve(OFFICER_B, req["id"])           # the retry: the CA returns the first signing cert
    assert done["state"] == "issued" and ca.issuance_count == 2
    sign_calls = [c for k, c in ca.calls if k == "issue" and c.request_id.endswith("-sign")]
    assert len(sign_calls) == 2
    assert int(done["certificates"][0]["serial"], 16) == ca.issued[f"ra-{req['id']}-sign"].serial


@pytest.mark.parametrize("same_officer", [False, True])
def test_concurrent_approvals_issue_once(db, ca, same_officer):
    ra = build_ra_service(db, ca, {"approvals": {"server": 1}})
    unit = ra.add_unit(ADMIN, name=f"并发局-{helpers.tag()}", uscc=helpers.uscc(), legal_representative="赵六")[0]
    host = helpers.host()
    server = ra.add_server(ADMIN, host_name=host, unit_id=unit["id"])[0]
    req = ra.submit(APPLICANT, type="server", subject_id=server["id"], sign_csr=cryptography_csr(ec_key(), host))
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    officers = [OFFICER_A, OFFICER_A] if same_officer else [OFFICER_A, OFFICER_B]
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run(officer):
        barrier.wait()
        try:
            results.append(ra.approve(officer, req["id"]))
        except ConflictError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(o,)) for o in officers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert ca.issuance_count == 1
    assert len(results) + len(errors) == 2 and len(results) >= 1
    if same_officer:
        assert not errors
    final = ra.get_request(req["id"])
    assert final["state"] == "issued" and len(final["certificates"]) == 1 and len(final["approvals"]) == 1
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Approval).where(Approval.request_id == req["id"])) == 1


def test_reject(ra, person):
    req, _, _ = submit_dual(ra, person)
    with pytest.raises(ValidationError, match="reason"):
        ra.reject(OFFICER_A, req["id"], "  ")
    done = ra.reject(OFFICER_A, req["id"], "照片与本人不符")
    assert done["state"] == "rejected" and done["reject_reason"] == "照片与本人不符"
    with pytest.raises(ConflictError):
        ra.reject(OFFICER_A, req["id"], "again")
    with pytest.raises(ConflictError):
        ra.vet(OPERATOR, req["id"], documents_checked=True)


def test_revocation_through_the_same_gate(ra, ca, person):
    issued, _ = issued_dual(ra, person)
    revocation = ra.submit(APPLICANT, type="civil-servant-dual", kind="revocation",
                           target_request_id=issued["id"], revocation_reason="key_compromise")
    vetted = ra.vet(OPERATOR, revocation["id"], documents_checked=True)
    assert vetted["checks"]["target"]["ok"]
    ra.approve(OFFICER_A, revocation["id"])
    assert not [c for k, c in ca.calls if k == "revoke"]
    done = ra.approve(OFFICER_B, revocation["id"])
    assert done["state"] == "revoked"
    revoked = [c for k, c in ca.calls if k == "revoke"]
    assert sorted(serial for _, serial, _ in revoked) == sorted(int(c["serial"], 16) for c in issued["certificates"])
    assert all(reason is RevocationReason.key_compromise for _, _, reason in revoked)
    assert {c["status"] for c in ra.get_request(issued["id"])["certificates"]} == {"revoked"}
    again = ra.submit(APPLICANT, type="civil-servant-dual", kind="revocation", target_request_id=issued["id"])
    result = ra.vet(OPERATOR, again["id"], documents_checked=True)
    assert result["state"] == "rejected" and "no certificate in force" in result["checks"]["target"]["detail"]


def test_revocation_failure_rolls_back(ra, ca, person):
    issued, _ = issued_dual(ra, person)
    revocation = ra.submit(APPLICANT, type="civil-servant-dual", kind="revocation", target_request_id=issued["id"])
    ra.vet(OPERATOR, revocation["id"], documents_checked=True)
    ra.approve(OFFICER_A, revocation["id"])
    ca.fail_revoke = True
    with pytest.raises(IssuanceFailed):
        ra.approve(OFFICER_B, revocation["id"])
    assert {c["status"] for c in ra.get_request(issued["id"])["certificates"]} == {"good"}
    assert ra.get_request(revocation["id"])["state"] == "vetted"


def test_renewal_keeps_the_key_and_rekey_replaces_it(ra, ca, person):
    issued, sign_key = issued_dual(ra, person)
    bad = ra.submit(APPLICANT, type="civil-servant-dual", kind="renewal", target_request_id=issued["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key()))
    assert "keep the signing key" in ra.vet(OPERATOR, bad["id"], documents_checked=True)["checks"]["key"]["detail"]
    renewal = ra.submit(APPLICANT, type="civil-servant-dual", kind="renewal", target_request_id=issued["id"],
                        sign_csr=tongsuo_sm2_csr(sign_key))
    assert ra.vet(OPERATOR, renewal["id"], documents_checked=True)["state"] == "vetted"
    ra.approve(OFFICER_A, renewal["id"])
    renewed = ra.approve(OFFICER_B, renewal["id"])
    assert renewed["state"] == "issued" and len(renewed["certificates"]) == 2
    stale = ra.submit(APPLICANT, type="civil-servant-dual", kind="rekey", target_request_id=renewal["id"],
                      sign_csr=tongsuo_sm2_csr(sign_key), enc_public_key=tongsuo_spki(tongsuo_sm2_key()))
    assert ra.vet(OPERATOR, stale["id"], documents_checked=True)["state"] == "rejected"
    rekey = ra.submit(APPLICANT, type="civil-servant-dual", kind="rekey", target_request_id=renewal["id"],
                      sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key()), enc_public_key=tongsuo_spki(tongsuo_sm2_key()))
    ra.vet(OPERATOR, rekey["id"], documents_checked=True)
    ra.approve(OFFICER_A, rekey["id"])
    done = ra.approve(OFFICER_C, rekey["id"])
    assert done["state"] == "issued"
    old = ra.get_request(renewal["id"])["certificates"]
    assert {(c["status"], c["revocation_reason"]) for c in old} == {("revoked", "superseded")}


def test_subject_registration_conflicts(ra, unit):
    number = helpers.id_number()
    first, created = ra.add_civil_servant(ADMIN, name="张三", id_number=number, unit_id=unit["id"])
    again, created_again = ra.add_civil_servant(ADMIN, name="张三", id_number=number.lower(), unit_id=unit["id"])
    assert created and not created_again and again["id"] == first["id"]
    with pytest.raises(ConflictError, match="different name"):
        ra.add_civil_servant(ADMIN, name="张叁", id_number=number, unit_id=unit["id"])
    other_unit = ra.add_unit(ADMIN, name=f"另一局-{helpers.tag()}", uscc=helpers.uscc(), legal_representative="钱七")[0]
    with pytest.raises(ConflictError, match="unit"):
        ra.add_civil_servant(ADMIN, name="张三", id_number=number, unit_id=other_unit["id"])
    assert ra.add_unit(ADMIN, name=unit["name"], uscc=unit["uscc"], legal_representative="王五")[1] is False
    with pytest.raises(ConflictError, match="different name"):
        ra.add_unit(ADMIN, name="冒名单位", uscc=unit["uscc"], legal_representative="王五")
    host, ip = helpers.host(), helpers.ipv4()
    server, _ = ra.add_server(ADMIN, host_name=host, unit_id=unit["id"], ip_addresses=[ip])
    assert ra.add_server(ADMIN, host_name=host, unit_id=unit["id"], ip_addresses=[ip]) == (server, False)
    with pytest.raises(ConflictError, match="already registered"):
        ra.add_server(ADMIN, host_name=host, unit_id=other_unit["id"])
    with pytest.raises(ConflictError, match="already belongs"):
        ra.add_server(ADMIN, host_name=helpers.host(), unit_id=other_unit["id"], ip_addresses=[ip])
    with pytest.raises(ValidationError, match="check character"):
        ra.add_civil_servant(ADMIN, name="错号", id_number=number[:17] + ("0" if number[17] != "0" else "1"),
                             unit_id=unit["id"])


def test_listing_and_policy(ra, unit, person):
    req, _, _ = submit_dual(ra, person)
    listed = ra.list_requests(state="submitted", type="civil-servant-dual", unit_id=unit["id"])
    assert [r["id"] for r in listed] == [req["id"]]
    assert ra.list_subjects("civil-servant", unit_id=unit["id"])[0]["id"] == person["id"]
    with pytest.raises(ValidationError):
        ra.list_requests(state="bogus")
    assert Policy.from_mapping({"approvals": {"server": 2}}).approvals["server"] == 2
    with pytest.raises(ValidationError):
        Policy.from_mapping({"approvals": {"server": 0}})
    with pytest.raises(ValidationError):
        Policy.from_mapping({"colour": "red"})


def test_suspend_and_resume_through_the_revocation_gate(ra, ca, person):
    """冻结/解冻 (issue 17): RFC 5280 certificateHold and its release (removeFromCRL) of a request's
    certificates, four-eyes like revocation; a held pair can be revoked for good (the hold made permanent) or
    re-issued (补发), not renewed; the KMC key pre-step never runs for them."""
    issued, _ = issued_dual(ra, person)
    with pytest.raises(ConflictError, match="no certificate on hold"):
        ra.submit(APPLICANT, type="civil-servant-dual", kind="resume", target_request_id=issued["id"])
    with pytest.raises(ValidationError, match="only revocation requests"):
        ra.submit(APPLICANT, type="civil-servant-dual", kind="suspend", target_request_id=issued["id"],
                  revocation_reason="key_compromise")
    hold = ra.submit(OFFICER_A, type="civil-servant-dual", kind="suspend", target_request_id=issued["id"])
    assert hold["revocation_reason"] == "certificate_hold" and [a["officer"] for a in hold["approvals"]] == ["officer-a"]
    assert ra.vet(OPERATOR, hold["id"], documents_checked=True)["checks"]["target"]["ok"]
    with pytest.raises(ValidationError, match="not returned"):
        ra.return_for_correction(OFFICER_B, hold["id"], "no")
    done = ra.approve(OFFICER_B, hold["id"])
    assert done["state"] == "suspended"
    assert {(c["status"], c["revocation_reason"]) for c in ra.get_request(issued["id"])["certificates"]} == {
        ("hold", "certificate_hold")}
    assert all(ca.revoked[int(c["serial"], 16)].reason is RevocationReason.certificate_hold
               for c in issued["certificates"])
    renewal = ra.submit(APPLICANT, type="civil-servant-dual", kind="renewal", target_request_id=issued["id"],
                        sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key()))
    assert "no certificate in force" in ra.vet(OPERATOR, renewal["id"], documents_checked=True)["checks"]["target"]["detail"]
    release = ra.submit(APPLICANT, type="civil-servant-dual", kind="resume", target_request_id=issued["id"])
    assert release["approvals"] == [] and release["revocation_reason"] == "remove_from_crl"
    ra.vet(OPERATOR, release["id"], documents_checked=True)
    ra.approve(OFFICER_A, release["id"])
    outcome = ra.approve_many(OFFICER_B, [release["id"]])
    assert [o["result"] for o in outcome] == ["resumed"]
    assert {(c["status"], c["revocation_reason"]) for c in ra.get_request(issued["id"])["certificates"]} == {
        ("good", None)}
    assert all(int(c["serial"], 16) not in ca.revoked for c in issued["certificates"])
    # held again, then revoked for good: the revocation takes the held certificates
    again = ra.submit(OFFICER_A, type="civil-servant-dual", kind="suspend", target_request_id=issued["id"])
    ra.vet(OPERATOR, again["id"], documents_checked=True)
    ra.approve(OFFICER_B, again["id"])
    revocation = ra.submit(OFFICER_A, type="civil-servant-dual", kind="revocation", target_request_id=issued["id"],
                           revocation_reason="key_compromise")
    ra.vet(OPERATOR, revocation["id"], documents_checked=True)
    assert ra.approve(OFFICER_C, revocation["id"])["state"] == "revoked"
    assert {(c["status"], c["revocation_reason"]) for c in ra.get_request(issued["id"])["certificates"]} == {
        ("revoked", "key_compromise")}


def test_suspend_and_resume_carry_the_officers_reason(ra, ca, db, person):
    """冻结/解冻 with the officer's own words (``status_reason``): kept on the request, in the submit audit row
    and in the certificates' hold/release rows; length-limited, no control characters, refused on a kind
    that is not a status change; an emergency revocation keeps its justification as the reason."""
    issued, _ = issued_dual(ra, person)
    words = "本人电话挂失：USB Key 遗失"
    hold = ra.submit(OFFICER_A, type="civil-servant-dual", kind="suspend", target_request_id=issued["id"],
                     status_reason=f"  {words}\n（王科长批示）  ")
    assert hold["status_reason"] == f"{words}\n（王科长批示）"
    assert ra.get_request(hold["id"])["status_reason"] == hold["status_reason"]
    assert hold["id"] in [r["id"] for r in ra.list_requests(state="submitted")
                          if r["status_reason"] == hold["status_reason"]]
    ra.vet(OPERATOR, hold["id"], documents_checked=True)
    assert ra.approve(OFFICER_B, hold["id"])["state"] == "suspended"
    with db() as session:
        rows = {e.action: e.detail for e in events_for(session, "ra_request", hold["id"])}
    assert rows["ra.request.submit"]["status_reason"] == hold["status_reason"]
    assert rows["ra.certificate.hold"]["status_reason"] == hold["status_reason"]
    for bad, match in (("字" * 501, "longer than 500"), ("a\x00b", "control characters"), (42, "must be text")):
        with pytest.raises(ValidationError, match=match):
            ra.submit(OFFICER_A, type="civil-servant-dual", kind="resume", target_request_id=issued["id"],
                      status_reason=bad)
    release = ra.submit(APPLICANT, type="civil-servant-dual", kind="resume", target_request_id=issued["id"],
                        status_reason="字" * 500)
    assert len(release["status_reason"]) == 500
    quiet = ra.submit(APPLICANT, type="civil-servant-dual", kind="resume", target_request_id=issued["id"],
                      status_reason="   ")
    assert quiet["status_reason"] is None
    with pytest.raises(ValidationError, match="only suspension, release and revocation"):
        ra.submit(APPLICANT, type="civil-servant-dual", kind="renewal", target_request_id=issued["id"],
                  sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key()), status_reason="换发")
    ra.vet(OPERATOR, release["id"], documents_checked=True)
    ra.approve(OFFICER_A, release["id"])
    assert ra.approve(OFFICER_B, release["id"])["state"] == "resumed"
    with db() as session:
        released = [e.detail for e in events_for(session, "ra_request", release["id"])
                    if e.action == "ra.certificate.release"]
    assert len(released) == 2 and all(d["status_reason"] == "字" * 500 for d in released)
    gone = ra.emergency_revoke(OFFICER_C, issued["id"], "私钥疑似泄露，紧急吊销")
    assert gone["status_reason"] == "私钥疑似泄露，紧急吊销"


def test_reissue_supersedes_held_certificates_and_renewal_follows_the_policy(db, ca, person):
    """补发 after loss: a new key, the old certificates (on hold too) revoked as superseded at issuance; a
    renewal supersedes the renewed certificates unless ``renewal_supersedes = false``."""
    keeping = build_ra_service(db, ca, Policy(renewal_supersedes=False))
    issued, sign_key = issued_dual(keeping, person)
    renewal = keeping.submit(APPLICANT, type="civil-servant-dual", kind="renewal", target_request_id=issued["id"],
                             sign_csr=tongsuo_sm2_csr(sign_key))
    keeping.vet(OPERATOR, renewal["id"], documents_checked=True)
    keeping.approve(OFFICER_A, renewal["id"])
    assert keeping.approve(OFFICER_B, renewal["id"])["state"] == "issued"
    assert {c["status"] for c in keeping.get_request(issued["id"])["certificates"]} == {"good"}
    ra = build_ra_service(db, ca)
    hold = ra.submit(OFFICER_A, type="civil-servant-dual", kind="suspend", target_request_id=renewal["id"])
    ra.vet(OPERATOR, hold["id"], documents_checked=True)
    ra.approve(OFFICER_B, hold["id"])
    reissue = ra.submit(APPLICANT, type="civil-servant-dual", kind="reissue", target_request_id=renewal["id"],
                        sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key()), enc_public_key=tongsuo_spki(tongsuo_sm2_key()))
    vetted = ra.vet(OPERATOR, reissue["id"], documents_checked=True)
    assert vetted["state"] == "vetted" and "certificates in force" in vetted["checks"]["target"]["detail"]
    ra.approve(OFFICER_A, reissue["id"])
    outcome = ra.approve_many(OFFICER_B, [reissue["id"]])
    assert [o["result"] for o in outcome] == ["issued"]
    assert {(c["status"], c["revocation_reason"]) for c in ra.get_request(renewal["id"])["certificates"]} == {
        ("revoked", "superseded")}
    assert {c["status"] for c in ra.get_request(reissue["id"])["certificates"]} == {"good"}
