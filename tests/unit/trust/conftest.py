"""Fixtures for the trust tests: one set-up site per database kind (module scope) and its REST client."""
from __future__ import annotations

import pytest

from tests.pgschema import database_url
from tests.e2e.apiclient import api_client as client_for
from tests.unit.trust.site import make_site

ROLES = {"admin": ["ra_admin"], "app1": ["application"], "app2": ["application"], "auditor": ["auditor"],
         "officer": ["ra_officer"]}


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def services(request, tmp_path_factory, softtoken_config):
    with database_url(request.param, tmp_path_factory.mktemp("trust"), "trust") as url:
        services = make_site(url, softtoken_config)
        yield services
        services.close()


@pytest.fixture(scope="module")
def client(services):
    return client_for(services, ROLES)


@pytest.fixture(scope="module")
def keys(client):
    """app1: SM2 (server profile) and ECDSA signing keys; app2: an SM2 signing key (unit profile, USCC) and an
    SM2 encryption key."""
    def create(**body):
        resp = client("POST", "/api/v1/trust/keys", "admin", json=body)
        assert resp.status_code == 201, resp.json
        return resp.json
    a1 = client.names["app1"]
    a2 = client.names["app2"]
    return {"sm2": create(application=a1, common_name="app1.gov.test", dns_names=["app1.gov.test"]),
            "ecdsa": create(application=a1, key_algorithm="ec-p256", common_name="app1.gov.test",
                            dns_names=["app1.gov.test"]),
            "unit": create(application=a2, profile="unit", common_name="杭州市财政局", organization="杭州市财政局",
                           uscc="91330100MA27XL0E2K"),
            "enc": create(application=a2, purpose="encrypt", common_name="app2.gov.test")}
