"""Bulk approval (POST /api/v1/ra/requests/approve, ``ra.bulk``) through the whole service app on a real
Services container (migrated database, software token, embedded CA with its in-process KMC), on SQLite
and PostgreSQL: per-request outcomes in one call, the same certificates and audit trail as the
one-request path (Bouncy Castle verifies them), idempotent retries, dual pairs with KMC keys, revocation
requests, a CA refusal that fails only its request, a database conflict that writes nothing at all, and
concurrent overlapping batches that issue each request once."""
from __future__ import annotations

import base64
import threading

import pytest
from asn1crypto import pem, x509
from sqlalchemy import func, select, text

from ca_bridge.api import IssueRequest
from ca_bridge.models import IssuedCert
from kms.models import EscrowedKey
from audit.trail import AuditEvent
from store.db import transaction
from racentre.audit import verify
from ra.models import Approval, RaCertificate
from tests.e2e.apiclient import api_client, site_on
from tests.e2e.test_dual_certificates import _one_approval_from_issuance
from tests.interop.bouncycastle import assert_bc_ok, bc_available, bc_verify_many
from tests.unit.ca_bridge.helpers import extensions, sm2_spki
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key

ROLES = {"applicant": ["applicant"], "operator": ["ra_operator"], "officer_a": ["ra_officer"],
         "officer_b": ["ra_officer"], "auditor": ["auditor"]}


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def services(request, tmp_path_factory, softtoken_config):
    with site_on(request.param, tmp_path_factory.mktemp("bulk"), "bulk", softtoken_config) as services:
        yield services


@pytest.fixture(scope="module")
def client(services):
    return api_client(services, ROLES)


@pytest.fixture(scope="module")
def unit(client):
    resp = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"批量审批测试局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    assert resp.status_code == 201, resp.json
    return resp.json


def _server_request(client, unit, *, vet: bool = True) -> int:
    host = helpers.host()
    server = client("POST", "/api/v1/ra/servers", "operator",
                    json={"host_name": host, "unit_id": unit["id"], "dns_names": [f"www.{host}"],
                          "ip_addresses": [helpers.ipv4()]})
    assert server.status_code == 201, server.json
    csr = base64.b64encode(tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host})).decode()
    rid = client("POST", "/api/v1/ra/requests", "applicant",
                 json={"type": "server", "subject_id": server.json["id"], "csr": csr}).json["id"]
    if vet:
        assert client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator",
                      json={"documents_checked": True}).json["state"] == "vetted"
    return rid


def _unit_request(client) -> int:
    unit = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"单位证书局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "赵六"})
    csr = base64.b64encode(tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": unit.json["name"]})).decode()
    rid = client("POST", "/api/v1/ra/requests", "applicant",
                 json={"type": "unit", "subject_id": unit.json["id"], "csr": csr}).json["id"]
    client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator", json={"documents_checked": True})
    return rid


def _bulk(client, ids, who="officer_a"):
    return client("POST", "/api/v1/ra/requests/approve", who, json={"request_ids": ids})


def _counts(services) -> tuple[int, int, int, int]:
    with services.db() as session:
        return (session.scalar(select(func.count()).select_from(IssuedCert)),
                session.scalar(select(func.count()).select_from(RaCertificate)),
                session.scalar(select(func.count()).select_from(Approval)),
                session.scalar(select(func.count()).select_from(AuditEvent)))


def test_one_call_many_outcomes_same_certificates_as_one_by_one(client, services, unit, tmp_path):
    servers = [_server_request(client, unit) for _ in range(5)]
    unit_request = _unit_request(client)                 # needs two officers: this call only approves
    not_vetted = _server_request(client, unit, vet=False)
    missing = 10 ** 12
    ids = servers + [unit_request, not_vetted, missing]
    resp = _bulk(client, ids)
    assert resp.status_code == 200, resp.json
    items = resp.json["items"]
    assert [i["id"] for i in items] == ids                # in the order asked
    for item in items[:5]:
        assert item["result"] == "issued" and item["state"] == "issued", item
        assert [c["usage"] for c in item["certificates"]] == ["sign"] and "error" not in item
    assert items[5] == {"id": unit_request, "result": "approved", "state": "vetted"}
    assert items[6]["result"] == "failed" and items[6]["error"]["code"] == "conflict" \
        and "submitted" in items[6]["error"]["message"]
    assert items[7] == {"id": missing, "result": "failed", "state": None,
                        "error": {"code": "not_found", "message": f"request {missing} not found"}}

    # what a one-request approval records, request by request
    for rid, item in zip(servers, items):
        request = client("GET", f"/api/v1/ra/requests/{rid}", "officer_a").json
        assert request["state"] == "issued" and [a["officer"] for a in request["approvals"]] == [
            client.names["officer_a"]]
        assert request["certificates"][0]["serial"] == item["certificates"][0]["serial"]
        actions = [e["action"] for e in client("GET", f"/api/v1/audit?target=ra_request:{rid}", "auditor").json["items"]]
        assert actions[-2:] == ["ra.request.approve", "ra.certificate.issue"]
    unit_state = client("GET", f"/api/v1/ra/requests/{unit_request}", "officer_a").json
    assert unit_state["state"] == "vetted" and len(unit_state["approvals"]) == 1
    second = _bulk(client, [unit_request], "officer_b").json["items"][0]
    assert second["result"] == "issued" and second["certificates"][0]["profile"] == "unit"

    # one-by-one issuance of a like request: the certificates differ only in what is per certificate
    single = _server_request(client, unit)
    assert client("POST", f"/api/v1/ra/requests/{single}/approve", "officer_a").json["state"] == "issued"
    load = lambda rid: x509.Certificate.load(pem.unarmor(  # noqa: E731
        client("GET", f"/api/v1/ra/requests/{rid}/certificates/sign", "applicant").data)[2])
    bulk_cert, single_cert = load(servers[0]), load(single)
    assert {k: v[0] for k, v in extensions(bulk_cert).items()} == {k: v[0] for k, v in extensions(single_cert).items()}
    assert bulk_cert.issuer == single_cert.issuer and bulk_cert.subject.native["country_name"] == "CN"
    assert bulk_cert["signature_algorithm"].dump() == single_cert["signature_algorithm"].dump()
    assert set(bulk_cert.valid_domains) >= {bulk_cert.subject.native["common_name"]}
    trail = verify(services.db, None)
    assert trail.ok, trail.problems

    if not bc_available():
        pytest.fail("Bouncy Castle is not installed (scripts/setup.sh installs libbcpkix-java)")
    issuing = services.ca.directory.get("issuing-sm2")
    (tmp_path / "issuing.der").write_bytes(issuing.certificate)
    checks = []
    for rid in servers + [unit_request]:
        path = tmp_path / f"{rid}.der"
        path.write_bytes(load(rid).dump())
        checks.append(["cert", path, tmp_path / "issuing.der"])
    for result in bc_verify_many(checks):
        assert_bc_ok(result)


def test_retry_is_unchanged_and_issues_nothing(client, services, unit):
    ids = [_server_request(client, unit) for _ in range(3)]
    first = _bulk(client, ids).json["items"]
    before = _counts(services)
    again = _bulk(client, ids)
    assert again.status_code == 200
    for a, b in zip(first, again.json["items"]):
        assert b["result"] == "unchanged" and b["state"] == "issued"
        assert [c["serial"] for c in b["certificates"]] == [c["serial"] for c in a["certificates"]]
    assert _counts(services) == before                   # not even an audit row


def test_dual_pairs_take_kmc_keys_and_revocation_requests_are_carried_out(client, services, tmp_path):
    for i in range(2):
        (tmp_path / str(i)).mkdir()
    rids = [_one_approval_from_issuance(client, tmp_path / str(i), "批量双证局", name)
            for i, name in enumerate(("张三", "李四"))]
    items = _bulk(client, rids, "officer_b").json["items"]
    for item in items:
        assert item["result"] == "issued", item
        assert sorted(c["usage"] for c in item["certificates"]) == ["enc", "sign"]
        envelope = client("GET", f"/api/v1/ra/requests/{item['id']}/certificates/enc/envelope", "applicant")
        assert envelope.status_code == 200 and len(envelope.data) > 200
    revocation = client("POST", f"/api/v1/ra/requests/{rids[0]}/revoke", "applicant",
                        json={"reason": "key_compromise"}).json["id"]
    client("POST", f"/api/v1/ra/requests/{revocation}/vet", "operator", json={"documents_checked": True})
    assert _bulk(client, [revocation], "officer_a").json["items"][0]["result"] == "approved"
    done = _bulk(client, [revocation], "officer_b").json["items"][0]
    assert done["result"] == "revoked" and done["state"] == "revoked", done
    target = client("GET", f"/api/v1/ra/requests/{rids[0]}", "officer_a").json
    assert {c["status"] for c in target["certificates"]} == {"revoked"}
    enc_serials = {i["id"]: str(int(c["serial"], 16)) for i in items for c in i["certificates"] if c["usage"] == "enc"}
    with services.db() as session:            # the KMC was told after the revocation committed
        assert session.scalar(select(EscrowedKey.status).where(
            EscrowedKey.user_cert_no == enc_serials[rids[0]])) == "revoked"
        assert session.scalar(select(EscrowedKey.status).where(
            EscrowedKey.user_cert_no == enc_serials[rids[1]])) == "active"


def test_a_ca_refusal_fails_only_its_request(client, services, unit):
    ids = [_server_request(client, unit) for _ in range(3)]
    # the CA already issued "ra-<id>-sign" of the middle request for another key: it refuses to reuse it
    services.ca.issue(IssueRequest(request_id=f"ra-{ids[1]}-sign", profile="server",
                                   subject=(("country_name", "CN"), ("common_name", "other.example.cn")),
                                   public_key_info=sm2_spki(), dns_names=("other.example.cn",)))
    items = _bulk(client, ids).json["items"]
    assert [i["result"] for i in items] == ["issued", "failed", "issued"]
    assert items[1]["error"]["code"] == "conflict" and items[1]["state"] == "vetted"
    refused = client("GET", f"/api/v1/ra/requests/{ids[1]}", "officer_a").json
    assert refused["state"] == "vetted" and refused["approvals"] == [] and refused["certificates"] == []


def test_a_database_conflict_writes_nothing_at_all(client, services, unit):
    ids = [_server_request(client, unit) for _ in range(3)]
    # an RA certificate row already claims the last request's CA request id (unique): the INSERT fails
    with transaction(services.db) as session:
        session.execute(text(
            "INSERT INTO ra_certificate (request_id, ca_request_id, usage, profile, ca, serial, public_key_info, "
            "certificate, not_before, not_after, status) VALUES (:r, :c, 'sign', 'server', 'x', 'ff', :b, :b, "
            ":t, :t, 'good')"), {"r": ids[0], "c": f"ra-{ids[2]}-sign", "b": b"\x30\x00",
                                 "t": services.ca.directory.get("issuing-sm2").not_after})
    before = _counts(services)
    resp = _bulk(client, ids)
    assert resp.status_code == 409 and resp.json["error"]["code"] == "conflict", resp.json
    assert _counts(services) == before                   # no CA row, approval, RA row or audit row
    for rid in ids:
        assert client("GET", f"/api/v1/ra/requests/{rid}", "officer_a").json["state"] == "vetted"


def test_concurrent_overlapping_batches_issue_each_request_once(client, services, unit):
    ids = [_server_request(client, unit) for _ in range(24)]
    results: dict[str, list] = {}

    def run(who, batch):
        results[who] = _bulk(client, batch, who).json["items"]

    threads = [threading.Thread(target=run, args=("officer_a", ids)),
               threading.Thread(target=run, args=("officer_b", list(reversed(ids))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_id = {rid: [] for rid in ids}
    for items in results.values():
        for item in items:
            by_id[item["id"]].append(item["result"])
    for rid, outcomes in by_id.items():
        assert sorted(outcomes) == ["failed", "issued"], (rid, outcomes)   # the loser finds it issued
    with services.db() as session:
        issued = session.scalar(select(func.count()).select_from(IssuedCert)
                                .where(IssuedCert.request_id.in_([f"ra-{rid}-sign" for rid in ids])))
    assert issued == len(ids)


@pytest.mark.parametrize("body, message", [
    ({}, "missing fields: request_ids"),
    ({"request_ids": []}, "non-empty"),
    ({"request_ids": "1,2"}, "request_ids must be an array"),
    ({"request_ids": [1, True]}, "request_ids[1] must be an integer"),
    ({"request_ids": [1, 1]}, "twice"),
    ({"request_ids": list(range(1, 502))}, "request_ids must hold 0..500 items"),
    ({"request_ids": [1], "force": True}, "unknown fields: force"),
])
def test_bad_bodies_are_400(client, body, message):
    resp = client("POST", "/api/v1/ra/requests/approve", "officer_a", json=body)
    assert resp.status_code == 400 and message in resp.json["error"]["message"], resp.json


def test_only_officers_may_approve_in_bulk(client, unit):
    rid = _server_request(client, unit)
    assert client("POST", "/api/v1/ra/requests/approve", "operator", json={"request_ids": [rid]}).status_code == 403
    assert client("POST", "/api/v1/ra/requests/approve", json={"request_ids": [rid]}).status_code == 401
    assert client("GET", f"/api/v1/ra/requests/{rid}", "officer_a").json["state"] == "vetted"
