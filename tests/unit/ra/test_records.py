"""``ra.records`` (one SELECT per table for any number of requests) gives exactly the record the ORM path
gives (``RaService._request_dict``), for every request type and state, on SQLite and PostgreSQL."""
from __future__ import annotations

from ra import records
from ra.models import CertRequest
from ra.workflow import Actor
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key
from tests.unit.ra.test_workflow import (ADMIN, APPLICANT, OFFICER_A, OFFICER_B, OPERATOR, ca, issued_dual,  # noqa: F401
                                         person, ra, submit_dual, unit)


def test_core_records_equal_the_orm_records(ra, db, unit, person):
    issued, _ = issued_dual(ra, person)                                      # two certificates, two approvals
    revocation = ra.submit(APPLICANT, type="civil-servant-dual", kind="revocation", target_request_id=issued["id"],
                           revocation_reason="key_compromise")
    ra.vet(OPERATOR, revocation["id"], documents_checked=True)
    ra.approve(OFFICER_A, revocation["id"])
    ra.approve(OFFICER_B, revocation["id"])                                  # revoked: certificates revoked
    pending, _, _ = submit_dual(ra, person)                                  # submitted only
    unit_req = ra.submit(APPLICANT, type="unit", subject_id=unit["id"],
                         sign_csr=cryptography_csr(ec_key(), unit["name"]))
    ra.vet(OPERATOR, unit_req["id"], documents_checked=True)
    ra.approve(OFFICER_A, unit_req["id"])                                    # vetted, one of two approvals
    host = helpers.host()
    server = ra.add_server(ADMIN, host_name=host, unit_id=unit["id"], ip_addresses=[helpers.ipv4()])[0]
    rejected = ra.submit(Actor("client-9", "api_client"), type="server", subject_id=server["id"],
                         sign_csr=cryptography_csr(ec_key(), host))
    ra.reject(OFFICER_A, rejected["id"], "材料不全")
    ids = [issued["id"], revocation["id"], pending["id"], unit_req["id"], rejected["id"]]
    with db() as session:
        orm = {i: ra._request_dict(session, session.get(CertRequest, i)) for i in ids}
        core = records.request_records(session, ids + [10 ** 12], ra.policy)
    assert set(core) == set(ids)
    for i in ids:
        assert core[i] == orm[i], i
    assert {c["status"] for c in core[issued["id"]]["certificates"]} == {"revoked"}
    assert core[unit_req["id"]]["identity"][0][1] == unit["uscc"] and core[rejected["id"]]["state"] == "rejected"
    assert [r["id"] for r in ra.list_requests(unit_id=unit["id"])] == sorted(ids)
