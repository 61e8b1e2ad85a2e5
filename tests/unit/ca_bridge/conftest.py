"""One CA hierarchy (SM2 + ECDSA) per database backend for the ca_bridge tests; names and HSM labels carry
a random tag because the software token is shared by the whole test session."""
from __future__ import annotations

import secrets

import pytest

from ca_bridge.embedded import EmbeddedCA

PUBLIC_URL = "http://ca.test:8600"


@pytest.fixture(scope="package")
def ca(softtoken_km, db) -> EmbeddedCA:
    tag = f"t{secrets.token_hex(4)}-"
    authority = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag)
    authority.init_hierarchy(kinds=("sm2", "ecdsa"), label_prefix=tag)
    authority.test_tag = tag
    return authority
