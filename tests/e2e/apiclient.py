"""A REST client for e2e tests: the whole service app over a Services container, with one API token per
named principal (``roles``: who -> roles) and calls as ``call(method, path, who, json=...)``."""
from __future__ import annotations

from access.auth import create_token
from pkicore.db import transaction
from racentre.app import build_app
from tests.unit.ra import helpers


def api_client(services, roles: dict[str, list[str]]):
    app = build_app(services)
    tag = helpers.tag()
    tokens = {}
    with transaction(services.db) as session:
        for who, granted in roles.items():
            tokens[who] = create_token(session, f"{who}-{tag}", granted)
    http = app.test_client()

    def call(method, path, who=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if who:
            headers["Authorization"] = f"Bearer {tokens[who]}"
        return http.open(path, method=method, headers=headers, **kwargs)

    call.names = {who: f"{who}-{tag}" for who in roles}     # the principal each token belongs to
    return call
