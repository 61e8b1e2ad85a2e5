"""One whole site per database (fresh token, migrated database, SM2 hierarchy, the full app of
racentre.web.build_app) with an API token per role and a console session, for the hostile-input and fuzz
tests of every route. The site's token directory is the session's (tests/conftest.py); nothing here
changes os.environ."""
from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest

from store.db import transaction
from access.auth import ROLES, create_token
from racentre.setup_cli import setup_site
from tests.pgschema import database_url
from tests.unit.console.site import app_for, make_services, officer, session_cookie


@pytest.fixture(params=["sqlite", "postgresql"], scope="package")
def services(request, tmp_path_factory, softtoken_config):
    with database_url(request.param, tmp_path_factory.mktemp("web"), "web") as url:
        services = make_services(url, softtoken_config)
        setup_site(services)            # as `racentre setup`: TSA units, KMC, seal maker, audit and TOTP keys
        yield services


@dataclass
class Site:
    app: object
    services: object
    tokens: dict            # role -> bearer token; "all" -> every role
    console: tuple          # (session cookie, CSRF token) of an officer holding every console role

    def auth(self, role: str = "all") -> dict:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def client(self):
        return self.app.test_client()


@pytest.fixture(scope="package")
def site(services) -> Site:
    app = app_for(services)
    tag = secrets.token_hex(3)
    tokens = {}
    with transaction(services.db) as session:
        for role in ROLES:
            tokens[role] = create_token(session, f"web-{role}-{tag}", [role])
        tokens["all"] = create_token(session, f"web-all-{tag}", list(ROLES))
    name, _ = officer(services, ["ra_operator", "ra_officer", "ra_admin", "auditor", "key_recovery_officer"],
                      password=True)
    return Site(app, services, tokens, session_cookie(services, name))
