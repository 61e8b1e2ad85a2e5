"""A REST client for e2e tests: the whole service app over a Services container, with one API token per
named principal (``roles``: who -> roles) and calls as ``call(method, path, who, json=...)``."""
from __future__ import annotations

import contextlib
import dataclasses
import secrets

from access.auth import create_token
from hsm import init_token
from store.db import transaction
from pkicore.secret import Secret
from racentre.app import build_app
from racentre.config import Config, DatabaseConfig, ServiceConfig
from racentre.services import Services
from tests.pgschema import database_url
from tests.unit.ra import helpers
from timestamp.config import TsaConfig


def site_services(url: str, hsm_config) -> Services:
    """A site of its own: a fresh database and a fresh token (the CA refuses to reuse key labels)."""
    hsm_config = dataclasses.replace(hsm_config, token=f"e2e-{secrets.token_hex(4)}")
    init_token(hsm_config, Secret(secrets.token_hex(8)), hsm_config.pin)
    config = Config(hsm=hsm_config, database=DatabaseConfig(url=url), service=ServiceConfig(public_url="http://e2e.test"),
                    tsa=TsaConfig(require_sync=False))      # this box's kernel clock is unsynchronised
    services = Services(config)
    services.site.init(kinds=("sm2",))
    return services


@contextlib.contextmanager
def site_on(kind: str, directory, name: str, hsm_config):
    """``site_services`` on a migrated SQLite file in ``directory`` or a fresh PostgreSQL schema; closed
    (and the schema dropped) on exit."""
    with database_url(kind, directory, name) as url:
        services = site_services(url, hsm_config)
        try:
            yield services
        finally:
            services.close()


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
    call.app = app
    return call
