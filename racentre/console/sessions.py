"""Console sessions: random 256-bit cookie tokens, stored hashed, with idle and absolute timeouts
(OWASP Session Management) and a per-session CSRF token. Cookies follow RFC 6265 with the
``__Host-`` prefix when Secure (RFC 6265bis §4.1.3.2): HttpOnly, SameSite=Strict, Path=/.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from access.auth import Principal
from audit.trail import record
from store.db import as_utc, transaction, utcnow
from racentre.console.models import ConsoleSession

SECURE_COOKIE = "__Host-racentre_session"
PLAIN_COOKIE = "racentre_session"
TOUCH_EVERY = dt.timedelta(seconds=10)      # last_seen_at is written at most this often


@dataclass(frozen=True)
class SessionInfo:
    id: int
    account: str
    via: str
    csrf: str
    created_at: dt.datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(db: sessionmaker[Session], principal: Principal, remote: str) -> str:
    """A new session for a logged-in principal; returns the clear cookie token."""
    token = secrets.token_urlsafe(32)
    with transaction(db) as session:
        session.add(ConsoleSession(token_hash=_hash(token), account=principal.name, via=principal.via,
                                   csrf=secrets.token_urlsafe(32), remote=remote[:64]))
    return token


def load(db: sessionmaker[Session], token: str | None, *, idle: dt.timedelta, absolute: dt.timedelta,
         now: dt.datetime | None = None) -> SessionInfo | None:
    """The live session for ``token``, or None (unknown, ended, idle too long, too old: ended now)."""
    if not token or len(token) > 128:
        return None
    now = now or utcnow()
    with db() as session:
        row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _hash(token)))
        if row is None or row.ended_at is not None or not hmac.compare_digest(row.token_hash, _hash(token)):
            return None
        created, seen = as_utc(row.created_at), as_utc(row.last_seen_at)
        reason = "absolute" if now - created > absolute else "idle" if now - seen > idle else None
        info = SessionInfo(row.id, row.account, row.via, row.csrf, created)
    if reason is not None:
        end(db, info.id, reason)
        return None
    if now - seen > TOUCH_EVERY:
        with transaction(db) as session:
            session.get(ConsoleSession, info.id).last_seen_at = now
    return info


def end(db: sessionmaker[Session], session_id: int, reason: str) -> None:
    with transaction(db) as session:
        row = session.get(ConsoleSession, session_id, with_for_update=True)
        if row is not None and row.ended_at is None:
            row.ended_at, row.end_reason = utcnow(), reason
            record(session, actor=row.account, role="officer", action=f"console.session.{reason}",
                   target_type="console_session", target_id=row.id)


def csrf_ok(expected: str, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(expected.encode(), presented.encode())
