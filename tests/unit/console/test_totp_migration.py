"""The Alembic revision that seals officers' TOTP keys: plain base32 secrets written before it are sealed
under the HSM keys (the plain column is gone, the officer logs in with the same authenticator), an
upgrade without a key manager refuses rather than drop secrets, and the downgrade opens them again;
on SQLite and PostgreSQL."""
from __future__ import annotations

import importlib.util
import time

import pytest
import sqlalchemy
from sqlalchemy import text

from store.db import make_session_factory, transaction
from racentre import accounts, passwords, totp
from racentre.migrate import MIGRATIONS, downgrade, upgrade
from tests.pgschema import empty_engine
from tests.unit.console.site import PASSWORD, cheap_password_hashing

_spec = importlib.util.spec_from_file_location(
    "totp_rev", MIGRATIONS / "versions" / "5c0e7a9d2b41_officer_totp_keys_sealed_under_hsm_keys.py")
REVISION = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(REVISION)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    with empty_engine(request.param, tmp_path, "legacy") as eng:
        yield eng


def _columns(engine) -> set[str]:
    return {c["name"] for c in sqlalchemy.inspect(engine).get_columns("officer_account")}


def test_plain_totp_secrets_are_sealed_by_the_upgrade(engine, softtoken_km):
    upgrade(engine, REVISION.down_revision)
    secrets_by_name = {"wang": totp.new_secret(), "li": totp.new_secret()}
    with cheap_password_hashing():                           # tests/unit/console/site.py
        password_hash = passwords.hash_password(PASSWORD)
    with engine.begin() as conn:
        for name, secret in secrets_by_name.items():
            conn.execute(text("insert into officer_account (name, display_name, roles, password_hash, totp_secret, "
                              "disabled, failed_count, created_at, created_by) values (:n, :n, 'ra_officer', :h, :s, "
                              ":f, 0, current_timestamp, 'old')"),
                         {"n": name, "h": password_hash, "s": secret, "f": False})
        conn.execute(text("insert into officer_account (name, display_name, roles, cert_fingerprint, disabled, "
                          "failed_count, created_at, created_by) values ('zhao', 'zhao', 'auditor', :fp, :f, 0, "
                          "current_timestamp, 'old')"), {"fp": "ab" * 32, "f": False})
    with pytest.raises(RuntimeError, match="2 officer account"):
        upgrade(engine)                                      # no key manager: refused, nothing changed
    assert "totp_secret" in _columns(engine)

    upgrade(engine, key_manager=lambda: softtoken_km)
    assert "totp_secret" not in _columns(engine) and "totp_secret_sealed" in _columns(engine)
    with engine.connect() as conn:
        stored = dict(conn.execute(text("select name, totp_secret_sealed from officer_account")).all())
    assert stored["zhao"] is None
    box = accounts.totp_box(softtoken_km)
    for name, secret in secrets_by_name.items():
        sealed = bytes(stored[name])
        assert secret.encode() not in sealed and totp.secret_bytes(secret) not in sealed
        assert box.open(sealed, accounts.totp_context(name)) == totp.secret_bytes(secret)
    db = make_session_factory(engine)
    principal = accounts.password_login(db, "wang", PASSWORD, totp.totp(totp.secret_bytes(secrets_by_name["wang"])),
                                        box=box)
    assert principal.name == "wang"

    downgrade(engine, REVISION.down_revision, key_manager=softtoken_km)
    with engine.connect() as conn:
        plain = dict(conn.execute(text("select name, totp_secret from officer_account")).all())
    assert plain == {**secrets_by_name, "zhao": None}
    upgrade(engine, key_manager=softtoken_km)


def test_a_sealed_key_swapped_between_accounts_fails_the_login(engine, softtoken_km):
    upgrade(engine, key_manager=softtoken_km)
    db = make_session_factory(engine)
    box = accounts.totp_box(softtoken_km)
    with transaction(db) as session, cheap_password_hashing():
        _, wang = accounts.add_account(session, name="wang", roles=["ra_officer"], actor="t", box=box,
                                       password=PASSWORD)
        accounts.add_account(session, name="li", roles=["ra_officer"], actor="t", box=box, password=PASSWORD)
    with engine.begin() as conn:                             # an insider copies wang's sealed key to li
        conn.execute(text("update officer_account set totp_secret_sealed = "
                          "(select totp_secret_sealed from officer_account where name = 'wang') where name = 'li'"))
    code = totp.totp(totp.secret_bytes(wang), time.time())
    with pytest.raises(accounts.LoginFailed):
        accounts.password_login(db, "li", PASSWORD, code, box=box)
    with engine.connect() as conn:
        why = conn.execute(text("select detail from audit_event where action = 'console.login_failed' "
                                "and target_id = 'li'")).scalar()
    assert "integrity" in str(why)                           # JSON text on SQLite, a dict on PostgreSQL
    assert accounts.password_login(db, "wang", PASSWORD, code, box=box).name == "wang"
