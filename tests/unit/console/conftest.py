"""One site (fresh token, migrated database, SM2 CA hierarchy, full app) per database backend for the
console tests."""
from __future__ import annotations

import pytest

from tests.pgschema import POSTGRES_URL, postgres_unreachable, schema_engine
from tests.unit.console.site import make_services, url_with_schema


@pytest.fixture(params=["sqlite", "postgresql"], scope="package")
def services(request, tmp_path_factory, softtoken_config):
    if request.param == "sqlite":
        yield make_services(f"sqlite:///{tmp_path_factory.mktemp('console') / 'racentre.db'}", softtoken_config)
        return
    why = postgres_unreachable()
    if why:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({why})")
    with schema_engine("console") as engine:
        yield make_services(url_with_schema(POSTGRES_URL, engine), softtoken_config)
