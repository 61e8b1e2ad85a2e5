"""API authentication and role checks for every blueprint (one place; each endpoint declares roles).

Every endpoint either carries ``require_roles(...)`` or is public by design: decorated ``public(reason)``
or named in ``PUBLIC_ENDPOINTS`` with its reason (a test walks the app's url_map and fails on any other).
Principals come from a bearer token, or from the sources an app registers with ``add_principal_source``:
a client certificate passed by a trusted proxy for the API, the console session for the console.

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
from typing import Callable, Mapping

from flask import current_app, g, request
from sqlalchemy import Boolean, DateTime, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from audit import trail as audit
from store import generation
from store.db import Base, as_utc, reading, utcnow
from pkicore.errors import ErrorCode, PkiError

# application: an e-government application using the trust services (trust/) with its own HSM keys
ROLES = ("applicant", "ra_operator", "ra_officer", "ra_admin", "auditor", "api_client", "key_recovery_officer",
         "application")


# the db_generation row every change of the api_token table bumps in its transaction (access.tokens)
TOKEN_GENERATION = "api_token"


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
    # the officer (person) this token acts for; None: the token's own name is the person. A console
    # account is always its own officer, so a token for officer "wang" and wang's console account are
    # one person to four-eyes rules and separation of duties.
    officer: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)

    @property
    def person(self) -> str:
        return self.officer or self.name


@dataclass(frozen=True)
class Principal:
    """Who acts: ``name`` is the officer (the person: approvals, separation of duties and the audit trail
    count persons), ``credential`` the API token or console account used, ``via`` how it was presented."""

    name: str
    roles: frozenset[str]
    via: str = "token"             # token | certificate | password (console login method)
    credential: str = ""

    def role_for(self, allowed: tuple[str, ...]) -> str:
        return next((r for r in allowed if r in self.roles), sorted(self.roles)[0] if self.roles else "")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, roles: list[str] | tuple[str, ...],
                 expires_at: dt.datetime | None = None, officer: str | None = None) -> str:
    """Create an API token; returns the clear token (shown once, never stored). ``officer``: the person
    it acts for (e.g. the officer's console account name), so one person holding a token and a console
    account is still one approver."""
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise PkiError(f"unknown roles: {', '.join(sorted(unknown)) or '(none given)'}", code=ErrorCode.BAD_REQUEST)
    if officer is not None and (not officer or len(officer) > 128 or not officer.isprintable()
                                or officer != officer.strip()):
        raise PkiError("an officer name is 1..128 printable characters", code=ErrorCode.BAD_REQUEST)
    token = "rac_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=_hash(token), roles=",".join(sorted(set(roles))),
                         expires_at=expires_at, officer=officer if officer != name else None))
    generation.bump(session, TOKEN_GENERATION)
    return token


def token_list(session: Session) -> list[dict]:
    """Every API token's principal, roles and state (never the token itself, which is not stored)."""
    now = utcnow()
    out = []
    for row in session.scalars(select(ApiToken).order_by(ApiToken.name)):
        expires = as_utc(row.expires_at) if row.expires_at is not None else None
        state = "disabled" if row.disabled else "expired" if expires is not None and expires <= now else "active"
        out.append({"name": row.name, "officer": row.person, "roles": row.roles.split(","), "state": state,
                    "created_at": as_utc(row.created_at).isoformat() if row.created_at else None,
                    "expires_at": expires.isoformat() if expires else None})
    return out


def _token_row(session: Session, name: str) -> ApiToken:
    row = session.scalar(select(ApiToken).where(ApiToken.name == name).with_for_update())
    if row is None:
        raise PkiError(f"no API token named {name!r}", code=ErrorCode.NOT_FOUND)
    return row


def token_set_disabled(session: Session, name: str, disabled: bool, *, actor: str) -> None:
    """Disable (or enable again) the API token of principal ``name``; audited."""
    row = _token_row(session, name)
    row.disabled = disabled
    generation.bump(session, TOKEN_GENERATION)
    audit.record(session, actor=actor, role="ra_admin", action="auth.token." + ("disable" if disabled else "enable"),
                 target_type="api_token", target_id=name)


def token_set_expiry(session: Session, name: str, expires_at: dt.datetime | None, *, actor: str) -> None:
    """Let the token of ``name`` expire at ``expires_at`` (now: at once; None: never); audited."""
    row = _token_row(session, name)
    row.expires_at = expires_at
    generation.bump(session, TOKEN_GENERATION)
    audit.record(session, actor=actor, role="ra_admin", action="auth.token.expire", target_type="api_token",
                 target_id=name, expires_at=expires_at.isoformat() if expires_at else None)


def authenticate(session: Session, token: str) -> Principal:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash(token)))
    if row is None or not hmac.compare_digest(row.token_hash, _hash(token)):
        raise AuthError("invalid API token")
    if row.disabled:
        raise AuthError("API token disabled")
    if row.expires_at is not None and as_utc(row.expires_at) <= utcnow():
        raise AuthError("API token expired")
    return Principal(row.person, frozenset(row.roles.split(",")), credential=row.name)


SOURCES_KEY = "racentre.auth.sources"
API = ""                           # add_principal_source key for every blueprint without sources of its own

# Endpoints open to everyone by design, and why. Anything else must declare roles.
PUBLIC_ENDPOINTS: Mapping[str, str] = {
    "static": "static files",
    "docs.openapi": "the OpenAPI document: API description, no data",
    "docs.reference": "the interactive API reference page (static), no data",
    "ca.list_cas": "CA directory: public certificates",
    "ca.ca_certificate": "CA certificates are public (RFC 5280 4.2.2.1 AIA caIssuers)",
    "ca.ca_chain": "CA certificates are public",
    "ca.crl": "CRLs are public (RFC 5280 5, CRL distribution point)",
    "ca.delta_crl": "delta CRLs are public (RFC 5280 5.2.4)",
    "ca.ocsp_post": "OCSP responder (RFC 6960), answers are signed",
    "ca.ocsp_get": "OCSP responder (RFC 6960 A.1)",
    "hsm.health": "liveness probe for load balancers, no key operation",
    "kms.gmt0014_request": "GM/T 0014 endpoint: each request is signed by a trusted CA and checked",
    "kms.certificate": "the KMC's certificate is public",
    "timestamp.stamp": "RFC 3161 time-stamping is public by design",
    "timestamp.verify": "verification of a token anyone holds",
    "timestamp.certificate": "TSA certificates are public",
    "timestamp.health": "liveness probe, clock status",
}


def public(reason: str):
    """Decorator: the endpoint is open to everyone (the reason is kept for the route/role test)."""
    def decorator(view):
        view.public_reason = reason
        return view
    return decorator


def endpoint_roles(app, endpoint: str) -> tuple[str, ...] | None:
    """The roles an endpoint admits; None for a public one; LookupError for an undeclared one."""
    view = app.view_functions[endpoint]
    if hasattr(view, "required_roles"):
        return tuple(view.required_roles)
    if hasattr(view, "public_reason") or endpoint in PUBLIC_ENDPOINTS or endpoint.endswith(".static"):
        return None
    raise LookupError(f"endpoint {endpoint} declares no roles")


def add_principal_source(app, source: Callable[[], "Principal | None"], blueprint: str = API) -> None:
    """Register ``source()`` -> Principal or None. ``blueprint``: only that blueprint's endpoints use it
    (and no bearer tokens); API: tried after the bearer token for every other endpoint."""
    app.extensions.setdefault(SOURCES_KEY, {}).setdefault(blueprint, []).append(source)


def _from_sources(sources) -> Principal | None:
    for source in sources:
        principal = source()
        if principal is not None:
            return principal
    return None


def current_principal() -> Principal:
    sources = current_app.extensions.get(SOURCES_KEY, {})
    if request.blueprint and request.blueprint in sources:
        principal = _from_sources(sources[request.blueprint])
        if principal is None:
            raise AuthError("not logged in")
        return principal
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        principal = _from_sources(sources.get(API, ()))
        if principal is not None:
            return principal
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing bearer token")
    with reading(current_app.extensions["racentre.db"]) as session:
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
