"""One site (fresh token, migrated database, SM2 CA hierarchy, full app) per database backend for the
console tests."""
from __future__ import annotations

import pytest

from tests.pgschema import database_url
from tests.unit.console.site import make_services


@pytest.fixture(params=["sqlite", "postgresql"], scope="package")
def services(request, tmp_path_factory, softtoken_config):
    with database_url(request.param, tmp_path_factory.mktemp("console"), "console") as url:
        yield make_services(url, softtoken_config)
