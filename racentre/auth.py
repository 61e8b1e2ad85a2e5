"""API authentication and role checks for every blueprint (one place; each endpoint declares roles).

API tokens are 256-bit random strings shown once; only SHA-256(token) is stored (a memory-hard KDF
buys nothing for uniformly random 256-bit secrets). ``Authorization: Bearer <token>``.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from flask import current_app, g, request
from sqlalchemy import Boolean, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from pkicore.db import Base, as_utc, utcnow
from pkicore.errors import ErrorCode, PkiError

ROLES = ("applicant", "ra_operator", "ra_officer", "ra_admin", "auditor", "api_client", "key_recovery_officer")


class AuthError(PkiError):
    code = ErrorCode.UNAUTHORIZED


class Forbidden(PkiError):
    code = ErrorCode.FORBIDDEN


class ApiToken(Base):
    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)       # the principal's name
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[str] = mapped_column(String(256))                   # comma-separated
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]

    def role_for(self, allowed: tuple[str, ...]) -> str:
        return next((r for r in allowed if r in self.roles), sorted(self.roles)[0] if self.roles else "")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, roles: list[str] | tuple[str, ...],
                 expires_at: dt.datetime | None = None) -> str:
    """Create an API token; returns the clear token (shown once, never stored)."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise PkiError(f"unknown roles: {', '.join(sorted(unknown)) or '(none given)'}", code=ErrorCode.BAD_REQUEST)
    token = "rac_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_hash(token), roles=",".join(sorted(set(roles))),
                         expires_at=expires_at))
    return token


def authenticate(session: Session, token: str) -> Principal:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or not hmac.compare_digest(row.token_hash, _hash(token)):
        raise AuthError("invalid API token")
    if row.disabled:
        raise AuthError("API token disabled")
    if row.expires_at is not None and as_utc(row.expires_at) <= utcnow():
        raise AuthError("API token expired")
    return Principal(row.name, frozenset(row.roles.split(",")))


def current_principal() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token")
    with current_app.extensions["racentre.db"]() as session:
        return authenticate(session, token.strip())


def require_roles(*roles: str):
    """Decorator: the endpoint is open only to principals holding one of ``roles``."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            principal = current_principal()
            if not principal.roles & set(roles):
                raise Forbidden(f"this action needs one of the roles: {', '.join(roles)}")
            g.principal = principal
            g.role = principal.role_for(roles)
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorator
