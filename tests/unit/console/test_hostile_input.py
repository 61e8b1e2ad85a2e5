"""Issue 15, the web layer's share: on every route of the full app (racentre.app.build_app), on SQLite and
PostgreSQL — ids at or past 2^63 are not found (404) instead of overflowing the driver (500); JSON
nested past the limit is a 400 on every JSON endpoint; a 405 names what is allowed (Allow); with the
database unreachable every database-backed call answers 503 with Retry-After while the TSA, which needs
no database, keeps answering."""
from __future__ import annotations

import pytest
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from werkzeug.routing import IntegerConverter

from access.auth import ROLES, create_token
from store.db import transaction
from racentre.web import MAX_JSON_DEPTH, json_depth_exceeded
from tests.unit.console.site import app_for, officer, session_cookie

DEEP = "[" * 100_000 + "]" * 100_000
VALUES = {"collection": "units", "usage": "sign", "action": "suspend", "ca": "nosuch-ca", "ca_name": "nosuch-ca",
          "serial": "1f", "name": "nosuch", "unit": "nosuch", "encoded": "AAAA", "principal": "nobody",
          "filename": "console.css", "fmt": "pem"}


@pytest.fixture(scope="module")
def hostile(services):
    app = app_for(services)
    with transaction(services.db) as session:
        token = create_token(session, f"hostile-{id(app)}", list(ROLES))
    return app, {"Authorization": f"Bearer {token}", "X-RACentre-API": "1"}


def _int_rules(app):
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)]
        if ints:
            yield rule, ints


def test_huge_ids_are_not_found(hostile):
    app, auth = hostile
    client = app.test_client()
    rules = list(_int_rules(app))
    assert len(rules) >= 10                     # the seal, KMC, console, RA and job routes
    adapter = app.url_map.bind("localhost")
    tried = 0
    for rule, ints in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for big in (2 ** 63, 2 ** 64, 10 ** 30):
                values = {arg: 424242 if arg in ints else VALUES.get(arg, "x") for arg in rule.arguments}
                path = adapter.build(rule.endpoint, values).replace("424242", str(big))
                r = client.open(path, method=method, headers=auth)
                assert r.status_code == 404, (rule.rule, method, big, r.status_code)
                tried += 1
    # the largest id that fits still routes (and is then simply unknown, or refused by role)
    r = client.get(f"/seal/seals/{2 ** 63 - 1}", headers=auth)
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    assert tried >= 30


def test_deeply_nested_json_is_a_400_everywhere(hostile):
    app, auth = hostile
    client = app.test_client()
    adapter = app.url_map.bind("localhost")
    seen = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("console.") or not (rule.methods & {"POST", "PUT", "PATCH"}):
            continue
        values = {arg: VALUES.get(arg, 1) for arg in rule.arguments}
        try:
            path = adapter.build(rule.endpoint, values)
        except Exception:  # noqa: BLE001 - a converter that refuses "1": skip that route
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            r = client.open(path, method=method, headers=auth, data=DEEP, content_type="application/json")
            assert r.status_code < 500, (rule.rule, method, r.status_code, r.data[:200])
            seen += 1
    assert seen >= 20
    r = client.post("/api/v1/ra/requests", headers=auth, data=DEEP, content_type="application/json")
    assert r.status_code == 400


def test_json_depth_scan():
    assert not json_depth_exceeded("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH)
    assert json_depth_exceeded("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))
    assert not json_depth_exceeded('{"a": "' + "[" * 1000 + '"}')            # brackets inside a string
    assert not json_depth_exceeded('{"a": "\\"' + "{" * 1000 + '"}')         # after an escaped quote
    assert json_depth_exceeded(b"[" * 10_000_000)                            # stops at the limit


def test_method_not_allowed_names_the_allowed(hostile):
    app, auth = hostile
    r = app.test_client().delete("/api/v1/ra/requests", headers=auth)
    assert r.status_code == 405 and set(r.headers["Allow"].split(", ")) >= {"GET", "POST"}
    assert r.json["error"]["code"] == "method_not_allowed"


def test_database_outage_is_a_503_and_the_tsa_keeps_answering(hostile, services):
    app, auth = hostile
    client = app.test_client()
    engine = services.engine
    assert client.get("/api/v1/ra/requests", headers=auth).status_code == 200
    cookie, _ = session_cookie(services, officer(services, ["ra_officer"], password=True)[0])

    def refuse(dialect, conn_rec, cargs, cparams):
        raise dialect.loaded_dbapi.OperationalError("connection refused (test: database down)")

    event.listen(engine, "do_connect", refuse)
    engine.dispose()
    try:
        for path in ("/api/v1/ra/requests", "/seal/seals"):
            r = client.get(path, headers=auth)
            assert r.status_code == 503 and r.headers["Retry-After"] == "5", (path, r.status_code)
            assert r.json["error"]["code"] == "database_unavailable"
            assert b"connection refused" not in r.data           # the driver's words stay in the log
        client.set_cookie("racentre_session", cookie)
        page = client.get("/console/requests")
        assert page.status_code == 503 and "数据库暂时不可用" in page.get_data(as_text=True)
        client.delete_cookie("racentre_session")
        from asn1crypto import tsp
        query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x01" * 32}, "cert_req": True}).dump()
        stamp = client.post("/tsa", data=query, content_type="application/timestamp-query")
        assert stamp.status_code == 200 and stamp.mimetype == "application/timestamp-reply"
    finally:
        event.remove(engine, "do_connect", refuse)
        engine.dispose()
    assert client.get("/api/v1/ra/requests", headers=auth).status_code == 200
    with pytest.raises(sa_exc.OperationalError):
        event.listen(engine, "do_connect", refuse)
        engine.dispose()
        try:
            with engine.connect():
                pass
        finally:
            event.remove(engine, "do_connect", refuse)
            engine.dispose()


def test_four_eyes_counts_persons_not_credentials(hostile, services):
    """Issue 15: an officer's API token (linked to them with --officer) and their console account are one
    person: approving a two-officer request through both leaves it at 1/2; a second person completes it."""
    import re

    from audit import trail as audit
    from access.auth import authenticate
    from tests.unit.console.site import vetted_unit_request
    app, _ = hostile
    rid = vetted_unit_request(services)
    wang, _ = officer(services, ["ra_officer"], password=True)
    with transaction(services.db) as session:
        token = create_token(session, f"{wang}-api", ["ra_officer"], officer=wang)
    with services.db() as session:
        principal = authenticate(session, token)
    assert (principal.name, principal.credential) == (wang, f"{wang}-api")
    client = app.test_client()
    api = {"Authorization": f"Bearer {token}", "X-RACentre-API": "1"}
    first = client.post(f"/api/v1/ra/requests/{rid}/approve", headers=api, json={})
    assert first.status_code == 200 and first.json["state"] == "vetted" and len(first.json["approvals"]) == 1, first.json
    cookie, csrf = session_cookie(services, wang)
    client.set_cookie("racentre_session", cookie)
    page = client.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert f"/console/requests/{rid}/approve" not in page          # the console knows wang approved already
    again = client.post(f"/console/requests/{rid}/approve", data={"csrf_token": csrf})
    assert again.status_code in (303, 403, 409), again.status_code     # "unchanged": nothing happens
    client.delete_cookie("racentre_session")
    still = client.get(f"/api/v1/ra/requests/{rid}", headers=api).json
    assert still["state"] == "vetted" and len(still["approvals"]) == 1, still
    li, _ = officer(services, ["ra_officer"], password=True)
    cookie, csrf = session_cookie(services, li)
    client.set_cookie("racentre_session", cookie)
    done = client.post(f"/console/requests/{rid}/approve", data={"csrf_token": csrf})
    assert done.status_code == 303
    with services.db() as session:
        approvers = [e.actor for e in audit.events_for(session, "ra_request", str(rid))
                     if e.action == "ra.request.approve"]
    assert approvers == [wang, li], approvers
    assert re.match(r"^[\w-]+$", wang)
