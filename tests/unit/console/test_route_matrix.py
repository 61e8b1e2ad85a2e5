"""Every route of the full app (racentre.app.build_app), every role: a role the endpoint declares gets
past authorisation (neither 401 nor 403), every other role gets 403, nobody at all gets 401. REST
endpoints take bearer tokens, console pages the console session; each refuses the other's credential.
Public endpoints are the ones declared public, with a reason."""
from __future__ import annotations

import pytest

from access.auth import PUBLIC_ENDPOINTS, ROLES, create_token, endpoint_roles
from store.db import transaction
from tests.unit.console.site import app_for, officer, session_cookie

VALUES = {"collection": "units", "usage": "sign", "action": "suspend", "ca": "nosuch-ca", "ca_name": "nosuch-ca",
          "serial": "1f", "name": "nosuch", "unit": "nosuch", "encoded": "AAAA", "principal": "nobody",
          "filename": "console.css", "fmt": "pem"}


def _routes(app):
    adapter = app.url_map.bind("localhost")
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        values = {arg: VALUES.get(arg, 999999) for arg in rule.arguments}
        path = adapter.build(rule.endpoint, values, force_external=False)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


@pytest.fixture(scope="module")
def matrix(services):
    app = app_for(services)
    tokens, officers = {}, {}
    with transaction(services.db) as session:
        for role in ROLES:
            tokens[role] = create_token(session, f"matrix-{role}-{id(app)}", [role])
    for role in ROLES:
        officers[role] = officer(services, [role])[0]
    return app, tokens, officers


def test_every_endpoint_declares_its_roles(matrix):
    app = matrix[0]
    undeclared = []
    for endpoint in app.view_functions:
        try:
            endpoint_roles(app, endpoint)
        except LookupError:
            undeclared.append(endpoint)
    assert undeclared == []
    assert set(PUBLIC_ENDPOINTS) <= set(app.view_functions), "a public endpoint that no longer exists"
    assert endpoint_roles(app, "hsm.info") == ("ra_admin", "auditor")


def _call(client, method, path, *, token=None, cookie=None, csrf=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client._cookies.clear()
    if cookie:
        client.set_cookie("racentre_session", cookie)
    data = {"csrf_token": csrf} if csrf and method != "GET" else None
    return client.open(path, method=method, headers=headers, data=data)


def test_route_role_matrix(matrix, services):
    app, tokens, officers = matrix
    client = app.test_client()
    checked = 0
    for endpoint, method, path in _routes(app):
        roles = endpoint_roles(app, endpoint)
        if roles is None:
            continue
        console = endpoint.startswith("console.")
        anonymous = _call(client, method, path)
        assert anonymous.status_code == 401, (endpoint, method, path, anonymous.status_code)
        for role in ROLES:
            if console:
                cookie, csrf = session_cookie(services, officers[role])
                resp = _call(client, method, path, cookie=cookie, csrf=csrf)
                wrong = _call(client, method, path, token=tokens[role])       # a bearer token is no session
                assert wrong.status_code == 401, (endpoint, role, "token on console")
            else:
                resp = _call(client, method, path, token=tokens[role])
                cookie, csrf = session_cookie(services, officers[role])
                wrong = _call(client, method, path, cookie=cookie, csrf=csrf)   # a console session is no token
                assert wrong.status_code == 401, (endpoint, role, "session on REST")
            if role in roles:
                assert resp.status_code not in (401, 403), (endpoint, method, path, role, resp.status_code,
                                                             resp.get_data(as_text=True)[:300])
            else:
                assert resp.status_code == 403, (endpoint, method, path, role, resp.status_code)
            checked += 1
    assert checked > 60 * len(ROLES)


def test_public_endpoints_need_no_credentials(matrix):
    app = matrix[0]
    client = app.test_client()
    for endpoint, method, path in _routes(app):
        if endpoint_roles(app, endpoint) is None and method == "GET":
            assert client.get(path).status_code not in (401, 403), endpoint
