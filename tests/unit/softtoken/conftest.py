"""Fixtures for the soft token tests: the library is built if missing; every test gets a fresh
token directory (low PBKDF2 cost) and the library is re-initialised on it."""

from __future__ import annotations

import os

import pkcs11
import pytest

from softtoken_helpers import LIB_PATH, build_library, init_token, write_conf

SO_PIN = "12345678"
USER_PIN = "1234"


@pytest.fixture(scope="session")
def lib_path():
    build_library()   # make is incremental: cheap when up to date
    assert LIB_PATH.exists()
    return LIB_PATH


@pytest.fixture
def token_dir(tmp_path, lib_path):
    d = tmp_path / "softtoken"
    write_conf(d)
    old = os.environ.get("RACENTRE_SOFTTOKEN_DIR")
    os.environ["RACENTRE_SOFTTOKEN_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("RACENTRE_SOFTTOKEN_DIR", None)
    else:
        os.environ["RACENTRE_SOFTTOKEN_DIR"] = old
    if os.environ.get("RACENTRE_SOFTTOKEN_DIR") is not None:
        # the module is one per process (python-pkcs11 loads a path once): leave it on the directory the
        # rest of the suite set up, not on this test's, whatever order the tests run in
        pkcs11.lib(str(lib_path)).reinitialize()


@pytest.fixture
def p11(token_dir, lib_path):
    """The module, re-initialised so it reads this test's token directory."""
    lib = pkcs11.lib(str(lib_path))
    lib.reinitialize()
    yield lib
    lib.reinitialize()      # closes sessions of this test


@pytest.fixture
def token(p11):
    return init_token(p11, 0, SO_PIN, USER_PIN, "test")


@pytest.fixture
def session(token):
    with token.open(rw=True, user_pin=USER_PIN) as s:
        yield s
