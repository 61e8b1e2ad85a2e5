"""The RA REST API through Flask's test client: the whole flow, roles, stable JSON errors for bad input
(never a 500), 413 for oversized bodies, and an OpenAPI document that lists every route."""
from __future__ import annotations

import base64
import pytest
from asn1crypto import pem

from access.auth import create_token
from store.db import transaction
from ra.openapi import openapi_document
from ra.services import build_ra_service
from ra.views import EXTENSION, RA_MAX_BODY, bp
from racentre.config import Config
from racentre.web import create_app
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key, tongsuo_spki, tongsuo_sm2_csr, tongsuo_sm2_key
from tests.unit.ra.fake_ca import FakeCA

ROLES = {"applicant": ["applicant"], "operator": ["ra_operator"], "officer_a": ["ra_officer"],
         "officer_b": ["ra_officer"], "auditor": ["auditor"], "admin": ["ra_admin"], "client": ["api_client"],
         "other_applicant": ["applicant"]}


@pytest.fixture
def ca():
    return FakeCA()


@pytest.fixture
def app(db, ca):
    app = create_app(Config(), None, db, services={"ra": build_ra_service(db, ca)}, blueprints=[bp])
    assert EXTENSION == "racentre.ra"
    return app


@pytest.fixture
def client(app, db):
    tag = helpers.tag()
    tokens = {}
    with transaction(db) as session:
        for who, roles in ROLES.items():
            tokens[who] = create_token(session, f"{who}-{tag}", roles)
    test_client = app.test_client()

    def call(method, path, who=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if who:
            headers["Authorization"] = f"Bearer {tokens[who]}"
        return test_client.open(path, method=method, headers=headers, **kwargs)

    return call


def _unit(client):
    resp = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"杭州市测试局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    assert resp.status_code == 201, resp.json
    return resp.json


def test_dual_flow_over_http(client, ca):
    unit = _unit(client)
    resp = client("POST", "/api/v1/ra/civil-servants", "operator",
                  json={"name": "张三", "id_number": helpers.id_number(), "unit_id": unit["id"], "department": "办公室"})
    assert resp.status_code == 201
    person = resp.json
    sign_key = tongsuo_sm2_key()
    body = {"type": "civil-servant-dual", "subject_id": person["id"],
            "csr": pem.armor("CERTIFICATE REQUEST", tongsuo_sm2_csr(sign_key)).decode(),
            "enc_public_key": base64.b64encode(tongsuo_spki(tongsuo_sm2_key())).decode()}
    resp = client("POST", "/api/v1/ra/requests", "applicant", json=body)
    assert resp.status_code == 201, resp.json
    rid = resp.json["id"]
    assert resp.json["subject"][-1] == ["common_name", "张三"]
    assert client("POST", f"/api/v1/ra/requests/{rid}/vet", "applicant", json={"documents_checked": True}).status_code == 403
    resp = client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator", json={"documents_checked": True, "note": "ok"})
    assert resp.status_code == 200 and resp.json["state"] == "vetted"
    assert client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_a").json["state"] == "vetted"
    resp = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b", json={})
    assert resp.status_code == 200 and resp.json["state"] == "issued" and ca.issuance_count == 2
    cert = client("GET", f"/api/v1/ra/requests/{rid}/certificates/sign", "applicant")
    assert cert.status_code == 200 and cert.data.startswith(b"-----BEGIN CERTIFICATE-----")
    der = client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc", "applicant",
                 headers={"Accept": "application/pkix-cert"})
    assert der.status_code == 200 and der.data[:1] == b"\x30"
    assert client("GET", f"/api/v1/ra/requests/{rid}", "other_applicant").status_code == 404
    assert client("GET", f"/api/v1/ra/requests/{rid}", "applicant").json["state"] == "issued"
    listed = client("GET", f"/api/v1/ra/requests?state=issued&type=civil-servant-dual&unit_id={unit['id']}", "officer_a")
    assert [r["id"] for r in listed.json["items"]] == [rid]
    audit = client("GET", f"/api/v1/audit?target=ra_request:{rid}", "auditor")
    assert audit.status_code == 200
    assert [e["action"] for e in audit.json["items"]][:2] == ["ra.request.submit", "ra.request.vet"]
    assert client("GET", f"/api/v1/audit?target=ra_request:{rid}", "officer_a").status_code == 403
    # revocation through the same gate
    resp = client("POST", f"/api/v1/ra/requests/{rid}/revoke", "applicant", json={"reason": "key_compromise"})
    assert resp.status_code == 201 and resp.json["kind"] == "revocation"
    rev = resp.json["id"]
    client("POST", f"/api/v1/ra/requests/{rev}/vet", "operator", json={"documents_checked": True})
    client("POST", f"/api/v1/ra/requests/{rev}/approve", "officer_a")
    assert client("POST", f"/api/v1/ra/requests/{rev}/approve", "officer_b").json["state"] == "revoked"
    assert client("POST", f"/api/v1/ra/requests/{rid}/revoke", "other_applicant").status_code == 404


def test_suspend_with_a_reason_over_http(client, ca):
    """冻结 over REST with the officer's reason (``status_reason``): on the request, too long is a 400."""
    unit = _unit(client)
    body = {"type": "unit", "subject_id": unit["id"],
            "csr": pem.armor("CERTIFICATE REQUEST", tongsuo_sm2_csr(tongsuo_sm2_key(),
                                                                    {"common_name": unit["name"]})).decode()}
    rid = client("POST", "/api/v1/ra/requests", "applicant", json=body).json["id"]
    client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator", json={"documents_checked": True})
    client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_a")
    assert client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b").json["state"] == "issued"
    suspend = {"type": "unit", "kind": "suspend", "target_request_id": rid}
    too_long = client("POST", "/api/v1/ra/requests", "operator", json={**suspend, "status_reason": "长" * 501})
    assert too_long.status_code == 400 and "500" in too_long.json["detail"]
    resp = client("POST", "/api/v1/ra/requests", "operator", json={**suspend, "status_reason": "单位公章遗失，暂停使用"})
    assert resp.status_code == 201 and resp.json["status_reason"] == "单位公章遗失，暂停使用"
    assert client("GET", f"/api/v1/ra/requests/{resp.json['id']}", "officer_a").json["status_reason"] == "单位公章遗失，暂停使用"


def test_server_flow_and_reject(client, ca):
    unit = _unit(client)
    host = helpers.host()
    server = client("POST", "/api/v1/ra/servers", "admin",
                    json={"host_name": host, "unit_id": unit["id"], "ip_addresses": [helpers.ipv4()]}).json
    csr = base64.b64encode(cryptography_csr(ec_key(), host)).decode()
    rid = client("POST", "/api/v1/ra/requests", "client", json={"type": "server", "subject_id": server["id"],
                                                               "csr": csr}).json["id"]
    resp = client("POST", f"/api/v1/ra/requests/{rid}/reject", "officer_a", json={"reason": "主机不属于该单位"})
    assert resp.status_code == 200 and resp.json["state"] == "rejected"
    resp = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert resp.status_code == 409 and resp.json["error"]["code"] == "conflict"
    assert client("GET", f"/api/v1/ra/servers/{server['id']}", "auditor").json["host_name"] == host
    assert client("GET", f"/api/v1/ra/servers?unit_id={unit['id']}", "auditor").json["items"][0]["id"] == server["id"]
    assert client("GET", "/api/v1/ra/units/999999999", "auditor").status_code == 404


BAD_BODIES = [
    ({"type": "unit", "subject_id": 1, "csr": "x", "colour": "red"}, 400, "unknown fields: colour"),
    ({"type": 5}, 400, "type must be a string"),
    ({"type": "unit", "subject_id": "1"}, 400, "subject_id must be an integer"),
    ({"type": "unit", "subject_id": True}, 400, "subject_id must be an integer"),
    ({"type": "unit", "subject_id": 2 ** 63}, 400, "subject_id must be in the range 0..9223372036854775807"),
    ({}, 400, "missing fields: type"),
    ({"type": "unit", "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----"}, 400, ""),
    ({"type": "unit", "csr": base64.b64encode(b"\x30\x82\xff\xff" + b"\x00" * 10).decode()}, 400, "PKCS#10"),
    ({"type": "unit", "csr": "%%%%"}, 400, "neither PEM"),
    ({"type": "server", "kind": "revocation", "target_request_id": 10**12}, 404, "not found"),
    ({"type": "server", "kind": "sideways"}, 400, "kind"),
    (["not", "an", "object"], 400, "JSON object"),
]


@pytest.mark.parametrize("body, status, message", BAD_BODIES)
def test_bad_submissions_are_clear_400s(client, body, status, message):
    unit = _unit(client)
    if isinstance(body, dict) and type(body.get("subject_id")) is int and body["subject_id"] == 1:
        body["subject_id"] = unit["id"]
    if isinstance(body, dict) and "csr" in body and "subject_id" not in body:
        body["subject_id"] = unit["id"]
    resp = client("POST", "/api/v1/ra/requests", "applicant", json=body)
    assert resp.status_code == status, resp.json
    assert resp.mimetype == "application/problem+json" and resp.json["status"] == status
    assert message in resp.json["detail"] and resp.json["detail"] == resp.json["error"]["message"]


def test_malformed_requests_never_500(client):
    cases = [
        ("POST", "/api/v1/ra/requests", {"data": b"{not json", "content_type": "application/json"}),
        ("POST", "/api/v1/ra/requests", {"data": b"\xff\xfe", "content_type": "application/json"}),
        ("POST", "/api/v1/ra/requests", {"data": b"type=unit", "content_type": "application/x-www-form-urlencoded"}),
        ("POST", "/api/v1/ra/units", {"json": {"name": "x", "uscc": "123", "legal_representative": "y"}}),
        ("POST", "/api/v1/ra/units", {"json": {"name": "", "uscc": helpers.uscc(), "legal_representative": "y"}}),
        ("POST", "/api/v1/ra/civil-servants", {"json": {"name": "x", "id_number": "1", "unit_id": 1}}),
        ("POST", "/api/v1/ra/servers", {"json": {"host_name": "*.x.cn", "unit_id": 1}}),
        ("POST", "/api/v1/ra/servers", {"json": {"host_name": "a.x.cn", "unit_id": 1, "ip_addresses": [1]}}),
        ("GET", "/api/v1/ra/requests?limit=0", {}),
        ("GET", "/api/v1/ra/requests?limit=abc", {}),
        ("GET", "/api/v1/ra/requests?state=bogus", {}),
        ("GET", "/api/v1/ra/requests?colour=red", {}),
        ("GET", "/api/v1/ra/requests/abc", {}),
        ("GET", "/api/v1/ra/requests/99999999999999999999999", {}),
        ("POST", "/api/v1/ra/requests/1/vet", {"json": {"documents_checked": "yes"}}),
        ("POST", "/api/v1/ra/requests/1/reject", {"json": {"reason": ["x"]}}),
        ("POST", "/api/v1/ra/requests/1/approve", {"json": {"force": True}}),
        ("GET", "/api/v1/audit", {}),
        ("GET", "/api/v1/audit?target=x", {}),
    ]
    for method, path, kwargs in cases:
        for who in ("admin", "operator", "officer_a", "auditor"):
            resp = client(method, path, who, **kwargs)
            assert resp.status_code < 500, (method, path, who, resp.status_code, resp.data)
            assert resp.is_json and "error" in resp.json or resp.status_code == 200, (path, resp.data)


def test_authentication_and_roles(client):
    assert client("GET", "/api/v1/ra/requests").status_code == 401
    assert client("GET", "/api/v1/ra/requests", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client("GET", "/api/v1/ra/requests", "applicant").status_code == 403
    resp = client("POST", "/api/v1/ra/units", "applicant", json={})
    assert resp.status_code == 403 and resp.json["error"]["code"] == "forbidden"


def test_oversized_body_is_413(client):
    resp = client("POST", "/api/v1/ra/requests", "applicant",
                  data=b'{"type": "unit", "csr": "' + b"A" * (RA_MAX_BODY + 10) + b'"}',
                  content_type="application/json")
    assert resp.status_code == 413 and resp.json["error"]["code"]


def test_openapi_lists_every_route(app):
    """Every documented operation resolves to an RA view with the same roles, and every RA rule and
    method is documented."""
    doc = openapi_document()
    assert doc["openapi"].startswith("3.1")
    adapter = app.url_map.bind("localhost")
    documented = set()
    for path, ops in doc["paths"].items():
        concrete = path.replace("{request_id}", "1").replace("{subject_id}", "1").replace("{usage}", "sign")
        for method, op in ops.items():
            endpoint, _ = adapter.match(concrete, method=method.upper())
            assert endpoint.startswith("ra."), (path, endpoint)
            documented.add((endpoint, method))
            roles = set(getattr(app.view_functions[endpoint], "required_roles", ()))
            assert set(op["x-roles"]) == roles, (path, method)
            for code in op["responses"]:
                assert code.isdigit()
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if "$ref" in ref:
                assert ref["$ref"].rsplit("/", 1)[1] in doc["components"]["schemas"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("ra."):
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (rule.endpoint, method.lower()) in documented, (rule.rule, method)
    for collection in ("units", "civil-servants", "servers"):
        assert f"/api/v1/ra/{collection}" in doc["paths"] and f"/api/v1/ra/{collection}/{{subject_id}}" in doc["paths"]


def test_openapi_bodies_match_the_views():
    from ra import views
    schemas = openapi_document()["components"]["schemas"]
    assert set(schemas["RequestSubmit"]["properties"]) == set(views._SUBMIT_FIELDS)
    for collection, schema in (("units", "UnitCreate"), ("civil-servants", "CivilServantCreate"),
                               ("servers", "ServerCreate")):
        fields, required, _, _ = views._SUBJECT_FIELDS[collection]
        assert set(schemas[schema]["properties"]) == set(fields) and set(schemas[schema]["required"]) == set(required)


def test_cmp_enrolment_secret_over_rest(app, client):
    """A server request submitted for enrolment over CMP (no CSR), vetted and approved, gets its one-time
    secret from an officer over REST (RFC 9483 §4.1.5), bound to the request's vetted subject and names."""
    unit = _unit(client)
    host = f"cmp-{helpers.tag()}.zj.gov.cn"
    server = client("POST", "/api/v1/ra/servers", "operator",
                    json={"host_name": host, "unit_id": unit["id"], "dns_names": [host]}).json
    resp = client("POST", "/api/v1/ra/requests", "client",
                  json={"type": "server", "subject_id": server["id"], "enrol_by_cmp": True})
    assert resp.status_code == 201, resp.json
    rid = resp.json["id"]
    assert client("POST", f"/api/v1/ra/requests/{rid}/cmp-secret", "officer_a").status_code == 409  # not approved
    vetted = client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator", json={"documents_checked": True})
    assert vetted.json.get("state") == "vetted", vetted.json
    approved = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_a", json={}).json
    assert approved["state"] == "approved" and approved["certificates"] == []
    refused = client("POST", f"/api/v1/ra/requests/{rid}/cmp-secret", "officer_a", json={})
    assert refused.status_code == 409 and "CMP" in refused.json["detail"]           # this node's CA serves no CMP
    issued = []
    app.extensions["racentre.ra"].cmp_secrets = lambda actor, **fields: (issued.append((actor, fields)) or
                                                                         ("ref-1", "s3cret"))
    assert client("POST", f"/api/v1/ra/requests/{rid}/cmp-secret", "operator", json={}).status_code == 403
    resp = client("POST", f"/api/v1/ra/requests/{rid}/cmp-secret", "officer_a", json={})
    assert resp.status_code == 201 and resp.json == {"request_id": rid, "reference": "ref-1", "secret": "s3cret"}
    [(actor, fields)] = issued
    assert actor.startswith("officer_a-") and fields["ra_request_id"] == rid and host in str(fields)
