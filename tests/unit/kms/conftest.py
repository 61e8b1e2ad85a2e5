"""KMC fixtures: a KeyEscrow over the shared software token (random labels) and the db fixture."""
from __future__ import annotations

import dataclasses

import pytest

from kms.recovery import ApprovalBook
from tests.unit.kms.helpers import make_escrow, wipe
from tests.unit.kms.subscriber import openssl_sm2_certificate, openssl_sm2_key


@pytest.fixture
def escrow(softtoken_km, db):
    wipe(db)
    return make_escrow(softtoken_km, db)


@pytest.fixture(scope="session")
def court(tmp_path_factory):
    """A recovery recipient (a court's SM2 key and self-signed certificate, made by OpenSSL): (d, DER,
    path). Not issued by a CA of ours, so it is on the recipient list of ``book`` ([kmc] recipient_files)."""
    folder = tmp_path_factory.mktemp("court")
    d, _ = openssl_sm2_key(folder / "court.pem")
    cert = openssl_sm2_certificate(folder / "court.pem", folder / "court.der", "Municipal Court")
    return d, cert, str(folder / "court.der")


def with_recipients(config, *paths):
    return dataclasses.replace(config, recipient_files=tuple(paths))


@pytest.fixture
def book(escrow, court):
    return ApprovalBook(escrow.db, with_recipients(escrow.config, court[2]))


@pytest.fixture(scope="session")
def subscriber(tmp_path_factory):
    """(d, SPKI) of the subscriber's signing key, made by OpenSSL."""
    return openssl_sm2_key(tmp_path_factory.mktemp("sub") / "sign.pem")
