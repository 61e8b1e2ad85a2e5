"""Flask application factory and the one table that maps PkiError classes to HTTP status codes."""
from __future__ import annotations

import logging

from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from hsm import KeyManager
from hsm import views as hsm_views
from pkicore.errors import ErrorCode, PkiError
from racentre.config import Config

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024

STATUS = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.TOO_LARGE: 413, ErrorCode.BAD_ENCODING: 400, ErrorCode.BAD_SIGNATURE: 400,
    ErrorCode.UNSUPPORTED_ALGORITHM: 400, ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403, ErrorCode.HSM_KEY_NOT_FOUND: 404,
    ErrorCode.HSM_MECHANISM_UNSUPPORTED: 400, ErrorCode.HSM_KEY_NOT_PERMITTED: 403,
    ErrorCode.HSM_UNAVAILABLE: 503, ErrorCode.HSM_PIN_INCORRECT: 503, ErrorCode.HSM_PIN_LOCKED: 503,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503, ErrorCode.UPSTREAM_UNTRUSTED: 503,
    ErrorCode.CONFIGURATION: 503,        # a setting this operation needs is missing (e.g. [service] public_url)
    ErrorCode.TIME_UNAVAILABLE: 503,     # the TSA's clock is not synchronised ([tsa] require_sync)
}
RETRY_AFTER = {ErrorCode.TIME_UNAVAILABLE: 30}     # seconds (RFC 9110 §10.2.3)


def _pki_error(exc: PkiError):
    status = STATUS.get(exc.code, 500)
    if status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
    body = jsonify(error={"code": exc.code.value, "message": exc.public_message})
    if exc.code in RETRY_AFTER:
        return body, status, {"Retry-After": str(RETRY_AFTER[exc.code])}
    return body, status


def _http_error(exc: HTTPException):
    """Werkzeug's errors as our JSON body, keeping the headers they carry (``Allow`` on a 405, RFC 9110
    §15.5.6; ``Retry-After``)."""
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")]
    return jsonify(error={"code": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code, headers


DB_RETRY_AFTER = 5       # seconds a client should wait when the database is unreachable
# what SQLAlchemy raises when the database cannot be reached or answer in time (not constraint errors)
DATABASE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def _database_unavailable(exc: sa_exc.SQLAlchemyError):
    """The database is down, unreachable or busy past its timeout: 503 with Retry-After (RFC 9110 §15.6.4),
    never a 500; the driver's message goes to the log only (it may name hosts)."""
    log.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
    return (jsonify(error={"code": "database_unavailable",
                           "message": "the database is unavailable; try again later"}), 503,
            {"Retry-After": str(DB_RETRY_AFTER)})


class BoundedIntConverter(IntegerConverter):
    """``<int:id>`` limited to the signed 64-bit range every column we key by holds (SQLite INTEGER,
    PostgreSQL BIGINT): a larger id is simply not found (404), never an overflow in the driver (500)."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's parameter name
        kwargs.setdefault("max", 2 ** 63 - 1)
        super().__init__(map, *args, **kwargs)


MAX_JSON_DEPTH = 32


def json_depth_exceeded(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON nests deeper than ``limit`` (arrays and objects, outside strings). A linear scan that
    stops at the limit, so a hostile body of nested brackets never reaches the recursive parser."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON with a nesting limit on input: deeper bodies are a ValueError, which Flask turns into
    400 (``get_json``) or None (``get_json(silent=True)``) — never a RecursionError and a 500."""

    def loads(self, s, **kwargs):
        if json_depth_exceeded(s):
            raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return super().loads(s, **kwargs)


def create_app(config: Config, key_manager: KeyManager, db: sessionmaker | None = None, *,
               services: dict | None = None, blueprints=None) -> Flask:
    """Build the app around services created by the caller (so tests pass real, small ones).

    ``app.extensions``: ``racentre.config``, ``racentre.key_manager``, ``racentre.db`` (a session
    factory) and one entry per package service in ``services`` (e.g. ``racentre.ca``).
    """
    app = Flask("racentre")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.url_map.converters["int"] = BoundedIntConverter      # before any blueprint adds its rules
    app.json = BoundedJSONProvider(app)
    app.extensions["racentre.config"] = config
    app.extensions["racentre.key_manager"] = key_manager
    app.extensions["racentre.db"] = db
    for name, service in (services or {}).items():
        app.extensions[f"racentre.{name}"] = service
    app.register_error_handler(PkiError, _pki_error)
    app.register_error_handler(HTTPException, _http_error)
    for db_error in DATABASE_ERRORS:
        app.register_error_handler(db_error, _database_unavailable)
    for bp in (blueprints if blueprints is not None else [hsm_views.bp]):
        app.register_blueprint(bp)
    return app
