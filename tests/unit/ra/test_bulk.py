"""Bulk approval (``RaService.approve_many``, ``ra.bulk``) on SQLite and PostgreSQL against the small
in-memory CA, which has no ``issue_groups`` of its own: the generic path of ``ca_bridge.api.issue_groups``
(one ``issue`` per request, a savepoint per group). The same rules as one approval at a time:
separation of duties, four-eyes, idempotent retries, the same requests to the CA and the same audit
trail; a CA failure writes nothing."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from audit.trail import AuditEvent, events_for
from ra.errors import IssuanceFailed, ValidationError
from ra.models import Approval, RaCertificate
from ra.workflow import Actor
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key
from tests.unit.ra.test_workflow import (ADMIN, APPLICANT, OFFICER_A, OFFICER_B, OPERATOR, ca, person, ra,  # noqa: F401
                                         submit_dual, unit)


def _server(ra, unit, vet=True) -> int:
    host = helpers.host()
    server = ra.add_server(ADMIN, host_name=host, unit_id=unit["id"], dns_names=[f"api.{host}"])[0]
    req = ra.submit(APPLICANT, type="server", subject_id=server["id"], sign_csr=cryptography_csr(ec_key(), host))
    if vet:
        ra.vet(OPERATOR, req["id"], documents_checked=True)
    return req["id"]


def _dual(ra, person) -> int:
    req, _, _ = submit_dual(ra, person)
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    return req["id"]


def test_bulk_asks_the_ca_what_one_by_one_asks(ra, ca, db, unit, person):
    servers = [_server(ra, unit) for _ in range(3)]
    dual = _dual(ra, person)
    items = ra.approve_many(OFFICER_A, servers + [dual])
    assert [i["result"] for i in items] == ["issued"] * 3 + ["approved"]
    assert [c.request_id for k, c in ca.calls if k == "issue"] == [f"ra-{rid}-sign" for rid in servers]
    assert all(s is not None for s in ca.sessions)                  # the CA was handed our transaction
    done = ra.approve_many(OFFICER_B, [dual])[0]
    assert done["result"] == "issued" and sorted(c["usage"] for c in done["certificates"]) == ["enc", "sign"]
    sign_call, enc_call = (c for k, c in ca.calls if k == "issue" and c.request_id.startswith(f"ra-{dual}-"))
    assert sign_call.subject[-2:] == (("organizational_unit_name", "办公室"), ("common_name", "张三"))
    assert sign_call.identity == enc_call.identity and sign_call.identity[0][1] == person["id_number"]
    server_call = next(c for k, c in ca.calls if k == "issue" and c.request_id == f"ra-{servers[0]}-sign")
    assert server_call.dns_names[1].startswith("api.") and server_call.subject[-1][1] == server_call.dns_names[0]
    # the same stored result as one approval at a time
    request = ra.get_request(dual)
    assert request["state"] == "issued" and [a["officer"] for a in request["approvals"]] == [OFFICER_A.name,
                                                                                               OFFICER_B.name]
    assert {c["serial"] for c in request["certificates"]} == {c["serial"] for c in done["certificates"]}
    with db() as session:
        actions = [e.action for e in events_for(session, "ra_request", dual)]
    assert actions == ["ra.request.submit", "ra.request.vet", "ra.request.approve", "ra.request.approve",
                       "ra.certificate.issue", "ra.certificate.issue"]


def test_separation_of_duties_and_states_per_request(ra, ca, unit, person):
    host = helpers.host()
    submitted_by_officer = ra.submit(Actor(OFFICER_A.name, "applicant"), type="server",
                                     subject_id=ra.add_server(ADMIN, host_name=host, unit_id=unit["id"])[0]["id"],
                                     sign_csr=cryptography_csr(ec_key(), host))["id"]
    vetted_by_officer = _dual(ra, person)
    not_vetted = _server(ra, unit, vet=False)
    good = _server(ra, unit)
    items = ra.approve_many(OFFICER_A, [submitted_by_officer, not_vetted, good])
    assert [i["result"] for i in items] == ["failed", "failed", "issued"]
    assert items[0]["error"]["code"] == "conflict"     # not vetted (a vetter can't be the submitter)
    assert items[1]["error"] == {"code": "conflict", "message": f"request {not_vetted} is submitted, only vetted "
                                                                "requests can be approved"}
    vetter = Actor(OPERATOR.name, "ra_officer")
    refused = ra.approve_many(vetter, [vetted_by_officer])[0]
    assert refused["result"] == "failed" and refused["error"]["code"] == "forbidden" and "vetted" in \
        refused["error"]["message"]
    ra.vet(OPERATOR, submitted_by_officer, documents_checked=True)
    own = ra.approve_many(OFFICER_A, [submitted_by_officer])[0]
    assert own["error"] == {"code": "forbidden", "message": "an officer cannot approve a request they submitted"}
    assert ra.get_request(submitted_by_officer)["approvals"] == []


def test_a_ca_failure_writes_nothing_and_the_retry_issues_once(ra, ca, db, unit):
    ids = [_server(ra, unit) for _ in range(3)]
    with db() as session:
        audit_before = session.scalar(select(func.count()).select_from(AuditEvent))
    ca.fail_next_issue(after=1)                  # the first certificate is made, the second call fails
    with pytest.raises(IssuanceFailed, match="nothing was recorded"):
        ra.approve_many(OFFICER_A, ids)
    with db() as session:
        assert session.scalar(select(func.count()).select_from(Approval).where(Approval.request_id.in_(ids))) == 0
        assert session.scalar(select(func.count()).select_from(RaCertificate)
                              .where(RaCertificate.request_id.in_(ids))) == 0
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == audit_before
    items = ra.approve_many(OFFICER_A, ids)
    assert [i["result"] for i in items] == ["issued"] * 3 and ca.issuance_count == 3   # the first one replayed
    assert ra.approve_many(OFFICER_A, ids)[0]["result"] == "unchanged" and ca.issuance_count == 3


@pytest.mark.parametrize("ids, message", [([], "non-empty"), ("12", "non-empty"), ([1, 1], "twice"),
                                          (list(range(1, 502)), "at most 500"), ([1, "2"], "integer")])
def test_bad_id_lists(ra, ids, message):
    with pytest.raises(ValidationError, match=message):
        ra.approve_many(OFFICER_A, ids)
