"""Officers approving the same GM/T 0034 dual-certificate request at the same moment (issue 14), through
the whole service app on SQLite and PostgreSQL: never a 500, one certificate pair, one KMC key in use.

The race is made certain, not left to luck: each approval call is held after it decided (outside its
transaction) whether it must reserve a KMC key, until the other call has decided too; then both
transactions run and the database orders them."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from ca_bridge.models import EscrowReservation, IssuedCert
from ra import bulk
from tests.e2e.apiclient import api_client, site_on
from tests.e2e.test_dual_certificates import _one_approval_from_issuance
from tests.unit.kms.subscriber import openssl_sm2_key
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import openssl_csr

ROLES = {"applicant": ["applicant"], "operator": ["ra_operator"], "officer_a": ["ra_officer"],
         "officer_b": ["ra_officer"], "officer_c": ["ra_officer"]}


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def services(request, tmp_path_factory, softtoken_config):
    with site_on(request.param, tmp_path_factory.mktemp("dualrace"), "dualrace", softtoken_config) as services:
        yield services


@pytest.fixture(scope="module")
def client(services):
    return api_client(services, ROLES)


@pytest.fixture
def in_step(monkeypatch):
    """Hold every approval call after its KMC pre-step (``bulk.escrow_needs``) until ``parties`` calls
    have passed it."""
    real = bulk.escrow_needs
    holder = {"left": 0}
    lock = threading.Lock()

    def gated(*args, **kwargs):
        needs = real(*args, **kwargs)
        with lock:                        # only the first ``parties`` calls after arming wait (set-up calls
            wait = holder["left"] > 0     # and a retry's second pre-step pass straight on)
            holder["left"] -= wait
        if wait:
            holder["barrier"].wait(20)
        return needs

    monkeypatch.setattr(bulk, "escrow_needs", gated)

    def arm(parties: int):
        holder["barrier"], holder["left"] = threading.Barrier(parties), parties
    return arm


def _vetted_dual_request(client, tmp_path) -> int:
    unit = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"并发审批局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    person = client("POST", "/api/v1/ra/civil-servants", "operator",
                    json={"name": "张三", "id_number": helpers.id_number(), "unit_id": unit.json["id"]})
    openssl_sm2_key(tmp_path / "sign.key")
    csr = openssl_csr(tmp_path, "sign", "/CN=张三", sm2=True, key=tmp_path / "sign.key")
    rid = client("POST", "/api/v1/ra/requests", "applicant",
                 json={"type": "civil-servant-dual", "subject_id": person.json["id"], "csr": csr.decode()}).json["id"]
    assert client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator",
                  json={"documents_checked": True}).json["state"] == "vetted"
    return rid


def _at_once(client, calls) -> list:
    """Run ``(path, who, json)`` calls on threads at once; their responses in order."""
    answers: list = [None] * len(calls)

    def run(i, path, who, body):
        answers[i] = client("POST", path, who, **({"json": body} if body is not None else {}))

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return answers


def _issued_pairs(services, rid: int) -> tuple[int, int]:
    """(CA certificates issued for the request, KMC reservations made for it)."""
    with services.db() as session:
        return (session.scalar(select(func.count()).select_from(IssuedCert).where(
                    IssuedCert.request_id.in_([f"ra-{rid}-sign", f"ra-{rid}-enc"]))),
                session.scalar(select(func.count()).select_from(EscrowReservation).where(
                    EscrowReservation.request_id == f"ra-{rid}-enc")))


def test_the_two_approvals_of_a_fresh_request_at_once_issue_one_pair(client, services, tmp_path, in_step):
    """Neither call expected to be the final one (0 of 2 approvals), so neither reserved a KMC key; the one
    the database orders second is the final approval and must still issue (it reserves, then retries)."""
    rid = _vetted_dual_request(client, tmp_path)
    in_step(2)
    answers = _at_once(client, [(f"/api/v1/ra/requests/{rid}/approve", "officer_a", None),
                                (f"/api/v1/ra/requests/{rid}/approve", "officer_b", None)])
    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    assert sorted(a.json["state"] for a in answers) == ["issued", "vetted"]
    done = client("GET", f"/api/v1/ra/requests/{rid}", "officer_a").json
    assert done["state"] == "issued" and sorted(c["usage"] for c in done["certificates"]) == ["enc", "sign"]
    assert _issued_pairs(services, rid) == (2, 1)


def test_two_final_approvals_at_once_issue_one_pair_and_the_other_is_409(client, services, tmp_path, in_step):
    (tmp_path / "r").mkdir()
    rid = _one_approval_from_issuance(client, tmp_path / "r", "并发终审局", "李四")
    in_step(2)
    answers = _at_once(client, [(f"/api/v1/ra/requests/{rid}/approve", "officer_b", None),
                                (f"/api/v1/ra/requests/{rid}/approve", "officer_c", None)])
    assert sorted(a.status_code for a in answers) == [200, 409], [a.json for a in answers]
    winner = next(a for a in answers if a.status_code == 200)
    loser = next(a for a in answers if a.status_code == 409)
    assert winner.json["state"] == "issued" and loser.json["error"]["code"] == "conflict"
    assert _issued_pairs(services, rid) == (2, 1)


def test_the_same_officer_twice_at_once_is_one_pair_and_unchanged(client, services, tmp_path, in_step):
    (tmp_path / "r").mkdir()
    rid = _one_approval_from_issuance(client, tmp_path / "r", "重复提交局", "王五")
    in_step(2)
    answers = _at_once(client, [(f"/api/v1/ra/requests/{rid}/approve", "officer_b", None),
                                (f"/api/v1/ra/requests/{rid}/approve", "officer_b", None)])
    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    assert [a.json["state"] for a in answers] == ["issued", "issued"]
    assert _issued_pairs(services, rid) == (2, 1)


def test_bulk_first_approvals_at_once_issue_one_pair(client, services, tmp_path, in_step):
    rid = _vetted_dual_request(client, tmp_path)
    in_step(2)
    answers = _at_once(client, [("/api/v1/ra/requests/approve", "officer_a", {"request_ids": [rid]}),
                                ("/api/v1/ra/requests/approve", "officer_b", {"request_ids": [rid]})])
    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    assert sorted(a.json["items"][0]["result"] for a in answers) == ["approved", "issued"]
    assert _issued_pairs(services, rid) == (2, 1)
