""""Approve selected" on the console's request queue (POST /console/requests/approve, RaService.approve_many):
checkboxes only where this officer may approve, the ticked requests issued in one call, a summary with
each failure's reason; a missing CSRF token, a non-officer, a non-integer id, more than 500 ids and an
empty selection are refused and change nothing. Checked in the database, on SQLite and PostgreSQL."""
from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import func, select

from audit.trail import AuditEvent
from ra.models import Approval, CertRequest, RaCertificate
from ra.services import build_ra_service
from ra.workflow import Actor
from tests.unit.console.site import logged_in as _client, app_for, csrf_of, login, officer, vetted_unit_request
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key

QUEUE = "/console/requests?state=vetted"
ACTION = "/console/requests/approve"


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


@pytest.fixture(scope="module")
def ra(services):
    return build_ra_service(services.db, services.ca)


@pytest.fixture(scope="module")
def unit(ra):
    created, _ = ra.add_unit(Actor("operator-bulk", "ra_operator"), name=f"批量批准测试局{helpers.tag()}",
                             uscc=helpers.uscc(), legal_representative="王五")
    return created


def _server_request(ra, unit, *, submitted_by: str | None = None) -> int:
    """A vetted server request (one approval issues it)."""
    operator = Actor(f"operator-{secrets.token_hex(3)}", "ra_operator")
    host = helpers.host()
    server, _ = ra.add_server(operator, host_name=host, unit_id=unit["id"], dns_names=[f"www.{host}"])
    applicant = Actor(submitted_by or f"applicant-{secrets.token_hex(3)}", "applicant")
    req = ra.submit(applicant, type="server", subject_id=server["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host}))
    ra.vet(operator, req["id"], documents_checked=True)
    return req["id"]


def _state(services, rid):
    with services.db() as session:
        return session.scalar(select(CertRequest.state).where(CertRequest.id == rid))


def _approvals(services, rid):
    with services.db() as session:
        return list(session.scalars(select(Approval.officer).where(Approval.request_id == rid)))


def _certificates(services, rid):
    with services.db() as session:
        return list(session.execute(select(RaCertificate.usage, RaCertificate.ca, RaCertificate.serial)
                                    .where(RaCertificate.request_id == rid)))


def test_approve_selected_issues_and_lists_the_failures(app, services, ra, unit):
    client, name = _client(app, services, ["ra_officer"])
    servers = [_server_request(ra, unit) for _ in range(3)]
    own = _server_request(ra, unit, submitted_by=name)              # four-eyes: not theirs to approve
    two_eyes = vetted_unit_request(services, ra)                    # a unit needs two officers
    queue = client.get(QUEUE).get_data(as_text=True)
    for rid in servers + [two_eyes]:
        assert f'name="request_id" value="{rid}"' in queue
    assert f'id="request-{own}"' in queue and f'value="{own}"' not in queue     # listed, no checkbox
    assert 'id="select-all"' in queue and 'id="approve-selected"' in queue and "批准所选" in queue

    selected = servers + [two_eyes, own]                            # `own` as from a stale or crafted form
    resp = client.post(ACTION, data={"csrf_token": csrf_of(queue), "request_id": [str(i) for i in selected]})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200, page[:500]

    for rid in servers:
        assert _state(services, rid) == "issued" and _approvals(services, rid) == [name]
        certs = _certificates(services, rid)
        assert [c.usage for c in certs] == ["sign"]
        assert f"{certs[0].ca}/{certs[0].serial}" in page
    assert _state(services, two_eyes) == "vetted" and _approvals(services, two_eyes) == [name]
    assert _certificates(services, two_eyes) == []
    assert _state(services, own) == "vetted" and _approvals(services, own) == [] and _certificates(services, own) == []
    with services.db() as session:
        audited = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "ra.request.approve", AuditEvent.actor == name,
            AuditEvent.target_id.in_([str(i) for i in servers + [two_eyes]])))
    assert audited == 4

    assert re.search(r'id="count-issued">[^<]*: <b>3</b>', page)
    assert re.search(r'id="count-approved">[^<]*: <b>1</b>', page)
    assert re.search(r'id="count-failed">[^<]*: <b>1</b>', page)
    failures = page[page.index('id="approve-failures"'):page.index("</table>", page.index('id="approve-failures"'))]
    assert f'id="failed-{own}"' in failures and "提交人不能批准自己提交的申请" in failures      # the service's words in Chinese
    assert all(f'id="failed-{rid}"' not in failures for rid in servers + [two_eyes])

    again = client.post(ACTION, data={"csrf_token": csrf_of(queue), "request_id": [str(servers[0])]})
    assert again.status_code == 200 and re.search(r'id="count-unchanged">[^<]*: <b>1</b>', again.get_data(as_text=True))
    assert len(_certificates(services, servers[0])) == 1                 # a repeated post never issues twice


def test_english_labels_and_an_unknown_id(app, services, ra, unit):
    client, _ = _client(app, services, ["ra_officer"])
    rid = _server_request(ra, unit)
    queue = client.get(QUEUE + "&lang=en").get_data(as_text=True)
    assert "Approve selected" in queue and "Select all on this page" in queue
    resp = client.post(ACTION, data={"csrf_token": csrf_of(queue), "request_id": [str(rid), "987654321"]})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Approval results" in page
    assert 'id="failed-987654321"' in page and "request 987654321 not found" in page
    assert _state(services, rid) == "issued"


def test_refused_without_the_csrf_token(app, services, ra, unit):
    client, _ = _client(app, services, ["ra_officer"])
    rid = _server_request(ra, unit)
    client.get(QUEUE)
    assert client.post(ACTION, data={"request_id": [str(rid)]}).status_code == 403
    assert client.post(ACTION, data={"csrf_token": "x" * 43, "request_id": [str(rid)]}).status_code == 403
    assert _state(services, rid) == "vetted" and _approvals(services, rid) == []


@pytest.mark.parametrize("roles", [["ra_operator"], ["ra_admin"], ["auditor"]])
def test_refused_to_a_non_officer(app, services, ra, unit, roles):
    client, _ = _client(app, services, roles)
    rid = _server_request(ra, unit)
    queue = client.get(QUEUE).get_data(as_text=True)
    assert f'id="request-{rid}"' in queue and 'name="request_id"' not in queue and 'id="approve-selected"' not in queue
    resp = client.post(ACTION, data={"csrf_token": csrf_of(queue), "request_id": [str(rid)]})
    assert resp.status_code == 403
    assert _state(services, rid) == "vetted" and _approvals(services, rid) == []


@pytest.mark.parametrize("bad", ["abc", "-1", "1.5", "", "1" * 13])
def test_a_non_integer_id_is_a_400(app, services, ra, unit, bad):
    client, _ = _client(app, services, ["ra_officer"])
    rid = _server_request(ra, unit)
    token = csrf_of(client.get(QUEUE).get_data(as_text=True))
    resp = client.post(ACTION, data={"csrf_token": token, "request_id": [str(rid), bad]})
    assert resp.status_code == 400 and "申请编号须为数字" in resp.get_data(as_text=True)
    assert _state(services, rid) == "vetted" and _approvals(services, rid) == []


def test_more_than_500_is_a_clear_error(app, services, ra, unit):
    client, _ = _client(app, services, ["ra_officer"])
    rid = _server_request(ra, unit)
    token = csrf_of(client.get(QUEUE).get_data(as_text=True))
    ids = [str(rid)] + [str(10 ** 9 + i) for i in range(500)]
    resp = client.post(ACTION, data={"csrf_token": token, "request_id": ids})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and 'id="message">一次最多处理 500 个申请' in page
    assert _state(services, rid) == "vetted" and _approvals(services, rid) == []
    exactly = client.post(ACTION, data={"csrf_token": token, "request_id": ids[:500]})
    assert exactly.status_code == 200 and _state(services, rid) == "issued"


def test_nothing_selected(app, services):
    client, name = _client(app, services, ["ra_officer"])
    token = csrf_of(client.get(QUEUE).get_data(as_text=True))
    with services.db() as session:
        before = session.scalar(select(func.count()).select_from(Approval))
    resp = client.post(ACTION, data={"csrf_token": token})
    assert resp.status_code == 400 and "未选择任何申请" in resp.get_data(as_text=True)
    en = client.post(ACTION + "?lang=en", data={"csrf_token": token})
    assert en.status_code == 400 and "No request was selected" in en.get_data(as_text=True)
    with services.db() as session:
        assert session.scalar(select(func.count()).select_from(Approval)) == before
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.actor == name,
                                                                                 AuditEvent.action.like("ra.%"))) == 0
