"""Flask application factory and the one table that maps PkiError classes to HTTP status codes."""
from __future__ import annotations

import io
import json
import logging

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import IntegerConverter

from hsm import KeyManager
from hsm import views as hsm_views
from pkicore.errors import ErrorCode, PkiError
from pkicore.inputs import InputError
from racentre.config import Config

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024           # Flask's default per request; routes lower it, the seal routes raise it
MAX_ANY_BODY = 32 * 1024 * 1024       # no route takes more (seal documents): BodyLimit, before any route

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


PROBLEM_TYPE = "application/problem+json"
PROBLEM_BASE = "urn:racentre:problem:"      # + the stable error code (pkicore.errors.ErrorCode, or HTTP's)


def problem(status: int, code: str, detail: str, headers=None) -> Response:
    """An RFC 9457 problem details answer (application/problem+json): ``type`` (a URN naming the stable
    code), ``title`` (HTTP's phrase for the status), ``status``, ``detail`` (the public message), plus
    the extension members ``code`` and, for clients written before it, ``error: {code, message}``."""
    body = {"type": PROBLEM_BASE + code, "title": HTTP_STATUS_CODES.get(status, "Error"), "status": status,
            "detail": detail, "code": code, "error": {"code": code, "message": detail}}
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_TYPE)
    for key, value in headers or ():
        response.headers[key] = value
    return response


def _pki_error(exc: PkiError):
    status = STATUS.get(exc.code, 500)
    if status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
    retry = RETRY_AFTER.get(exc.code)
    return problem(status, exc.code.value, exc.public_message,
                   headers=(("Retry-After", str(retry)),) if retry is not None else None)


def _http_error(exc: HTTPException):
    """Werkzeug's errors as problem details, keeping the headers they carry (``Allow`` on a 405, RFC 9110
    §15.5.6; ``Retry-After``)."""
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")]
    return problem(exc.code or 500, (exc.name or "error").lower().replace(" ", "_"), exc.description or "", headers)


def _unexpected(exc: Exception):
    """Anything not raised on purpose: a 500 problem without the exception's words (they go to the log)."""
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    log.error("request failed unexpectedly", exc_info=exc)
    return problem(500, ErrorCode.INTERNAL.value, "internal error; the request was not carried out")


DB_RETRY_AFTER = 5       # seconds a client should wait when the database is unreachable
# what SQLAlchemy raises when the database cannot be reached or answer in time (not constraint errors)
DATABASE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)


def _database_unavailable(exc: sa_exc.SQLAlchemyError):
    """The database is down, unreachable or busy past its timeout: 503 with Retry-After (RFC 9110 §15.6.4),
    never a 500; the driver's message goes to the log only (it may name hosts)."""
    log.error("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
    return problem(503, "database_unavailable", "the database is unavailable; try again later",
                   [("Retry-After", str(DB_RETRY_AFTER))])


class BodyLimit:
    """The one place request bodies are bounded (RFC 9110 §15.5.14, 413 Content Too Large), in front of
    every route and on every server (waitress, the gunicorn workers, the test client): a declared
    Content-Length over ``limit`` is refused unread; a chunked body (no Content-Length; gunicorn passes
    it through de-chunked as it arrives) is counted as it is read, refused once past ``limit``, and
    otherwise handed on buffered with its Content-Length set, so every view and Flask's own
    ``max_content_length`` checks see one length. Routes lower the limit for themselves
    (``request.max_content_length``); none raises it past this one."""

    CHUNK = 64 * 1024

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app = wsgi_app
        self.limit = limit

    DRAIN = 1024 * 1024

    def _drain(self, stream) -> None:
        """Read (and drop) up to DRAIN more bytes of an oversized chunked body, so that a client that sent
        a little past the limit gets the 413 rather than a connection reset by unread data."""
        left = self.DRAIN
        while left > 0:
            part = stream.read(min(self.CHUNK, left))
            if not part:
                return
            left -= len(part)

    def _too_large(self, environ, start_response):
        response = problem(413, ErrorCode.TOO_LARGE.value, f"request bodies are limited to {self.limit} bytes",
                           [("Connection", "close")])
        return response(environ, start_response)

    def __call__(self, environ, start_response):
        # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length (werkzeug then ignores the length too)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        length = environ.get("CONTENT_LENGTH") or ""
        if not chunked and length:
            if not length.isdigit():
                return problem(400, ErrorCode.BAD_REQUEST.value, "Content-Length is not a number")(environ, start_response)
            if int(length) > self.limit:
                return self._too_large(environ, start_response)
            return self.wsgi_app(environ, start_response)
        if chunked or environ.get("wsgi.input_terminated"):
            stream, parts, total = environ["wsgi.input"], [], 0
            while True:
                part = stream.read(self.CHUNK)
                if not part:
                    break
                total += len(part)
                if total > self.limit:
                    self._drain(stream)
                    return self._too_large(environ, start_response)
                parts.append(part)
            body = b"".join(parts)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
        return self.wsgi_app(environ, start_response)


def _refuse_nul():
    """No NUL character in the path, the query or a form (PostgreSQL text cannot hold one: the driver's
    DataError would be a 500); a 400 naming where. JSON fields are checked by their schemas
    (pkicore.inputs)."""
    if "\x00" in request.path:
        raise InputError("the URL must not contain NUL characters")
    for where, values in (("query", request.args),
                          ("form", request.form if request.mimetype in FORM_TYPES else None)):
        if values is None:
            continue
        for key, value in values.items(multi=True):
            if "\x00" in key or "\x00" in value:
                raise InputError(f"the {where} must not contain NUL characters ({key[:64]!r})")


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _data_error(exc: sa_exc.DataError):
    """A value the database refuses for its column (out of range, NUL byte, invalid text): bad input
    that slipped past the route's checks — a 400, never a 500 (the transaction rolled back)."""
    log.warning("database refused a value: %s", exc.__class__.__name__, exc_info=exc)
    return problem(400, ErrorCode.BAD_REQUEST.value, "a value is out of range or not valid for its field")


class BoundedIntConverter(IntegerConverter):
    """``<int:id>`` limited to the signed 64-bit range every column we key by holds (SQLite INTEGER,
    PostgreSQL BIGINT): a larger id is simply not found (404), never an overflow in the driver (500)."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 - werkzeug's parameter name
        kwargs.setdefault("max", 2 ** 63 - 1)
        super().__init__(map, *args, **kwargs)


REFUSAL_KEY = "racentre.refusal"      # app.extensions: () -> why the node refuses every request, or None


def refusing(app) -> bool:
    """Whether ``app`` refuses requests now (``racentre.serve.watch_schema``: another schema): hot paths
    that read tables then leave the request to Flask, which gives the refusal."""
    why = app.extensions.get(REFUSAL_KEY)
    return why is not None and why() is not None


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
    app.wsgi_app = BodyLimit(app.wsgi_app, MAX_ANY_BODY)      # innermost: fast paths (racentre.fastpath) wrap it
    app.extensions["racentre.config"] = config
    app.extensions["racentre.key_manager"] = key_manager
    app.extensions["racentre.db"] = db
    for name, service in (services or {}).items():
        app.extensions[f"racentre.{name}"] = service
    app.register_error_handler(PkiError, _pki_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
    for db_error in DATABASE_ERRORS:
        app.register_error_handler(db_error, _database_unavailable)
    app.register_error_handler(sa_exc.DataError, _data_error)
    app.before_request(_refuse_nul)
    for bp in (blueprints if blueprints is not None else [hsm_views.bp]):
        app.register_blueprint(bp)
    return app
