"""KMC fixtures: a KeyEscrow over the shared software token (random labels) and the db fixture."""
from __future__ import annotations

import pytest

from kms.recovery import ApprovalBook
from tests.unit.kms.helpers import make_escrow, wipe
from tests.unit.kms.subscriber import openssl_sm2_key


@pytest.fixture
def escrow(softtoken_km, db):
    wipe(db)
    return make_escrow(softtoken_km, db)


@pytest.fixture
def book(escrow):
    return ApprovalBook(escrow.db, escrow.config)


@pytest.fixture(scope="session")
def subscriber(tmp_path_factory):
    """(d, SPKI) of the subscriber's signing key, made by OpenSSL."""
    return openssl_sm2_key(tmp_path_factory.mktemp("sub") / "sign.pem")
