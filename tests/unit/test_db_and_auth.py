"""The shared persistence plumbing on SQLite and PostgreSQL: audit rows commit and roll back with the
change, API tokens are stored hashed and checked for expiry."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import select

from access.auth import ApiToken, AuthError, authenticate, create_token
from audit.trail import events_for, record
from store.db import transaction, utcnow


def test_audit_row_rolls_back_with_a_failed_change(db):
    target = secrets.token_hex(6)
    with pytest.raises(RuntimeError):
        with transaction(db) as session:
            record(session, actor="officer-1", role="ra_officer", action="request.approve",
                   target_type="request", target_id=target)
            raise RuntimeError("the change failed after the audit row was added")
    with db() as session:
        assert events_for(session, "request", target) == []
    with transaction(db) as session:
        record(session, actor="officer-1", role="ra_officer", action="request.approve",
               target_type="request", target_id=target, note="四眼原则")
    with db() as session:
        [event] = events_for(session, "request", target)
        assert event.detail == {"note": "四眼原则"} and event.actor == "officer-1"


def test_tokens_are_hashed_and_expire(db):
    name = f"client-{secrets.token_hex(4)}"
    with transaction(db) as session:
        token = create_token(session, name, ["ra_officer"])
        expired = create_token(session, name + "-old", ["api_client"], expires_at=utcnow() - dt.timedelta(seconds=1))
    with db() as session:
        stored = session.scalar(select(ApiToken).where(ApiToken.name == name))
        assert token not in stored.token_hash and len(stored.token_hash) == 64
        principal = authenticate(session, token)
        assert principal.name == name and principal.roles == {"ra_officer"}
        with pytest.raises(AuthError, match="expired"):
            authenticate(session, expired)
        with pytest.raises(AuthError, match="invalid"):
            authenticate(session, token + "x")
