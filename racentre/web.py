"""Flask application factory and the one table that maps PkiError classes to HTTP status codes."""
from __future__ import annotations

import importlib
import logging

from flask import Flask, jsonify
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException

from hsm import KeyManager
from hsm.views import bp as hsm_bp
from pkicore.errors import ErrorCode, PkiError
from racentre.config import Config
from racentre.provision import wire_site
from racentre.services import Services

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024

STATUS = {
    ErrorCode.BAD_REQUEST: 400, ErrorCode.BAD_ENCODING: 400, ErrorCode.BAD_SIGNATURE: 400,
    ErrorCode.UNSUPPORTED_ALGORITHM: 400, ErrorCode.NOT_FOUND: 404, ErrorCode.CONFLICT: 409,
    ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403, ErrorCode.HSM_KEY_NOT_FOUND: 404,
    ErrorCode.HSM_MECHANISM_UNSUPPORTED: 400, ErrorCode.HSM_KEY_NOT_PERMITTED: 403,
    ErrorCode.HSM_UNAVAILABLE: 503, ErrorCode.HSM_PIN_INCORRECT: 503, ErrorCode.HSM_PIN_LOCKED: 503,
    ErrorCode.UPSTREAM_UNAVAILABLE: 503, ErrorCode.UPSTREAM_UNTRUSTED: 503,
    ErrorCode.CONFIGURATION: 503,        # a setting this operation needs is missing (e.g. [service] public_url)
}


def _pki_error(exc: PkiError):
    status = STATUS.get(exc.code, 500)
    if status >= 500:
        log.error("request failed: %s", exc, exc_info=exc)
    return jsonify(error={"code": exc.code.value, "message": exc.public_message}), status


def _http_error(exc: HTTPException):
    return jsonify(error={"code": exc.name.lower().replace(" ", "_"), "message": exc.description}), exc.code


def create_app(config: Config, key_manager: KeyManager, db: sessionmaker | None = None, *,
               services: dict | None = None, blueprints=None) -> Flask:
    """Build the app around services created by the caller (so tests pass real, small ones).

    ``app.extensions``: ``racentre.config``, ``racentre.key_manager``, ``racentre.db`` (a session
    factory) and one entry per package service in ``services`` (e.g. ``racentre.ca``).
    """
    app = Flask("racentre")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.extensions["racentre.config"] = config
    app.extensions["racentre.key_manager"] = key_manager
    app.extensions["racentre.db"] = db
    for name, service in (services or {}).items():
        app.extensions[f"racentre.{name}"] = service
    app.register_error_handler(PkiError, _pki_error)
    app.register_error_handler(HTTPException, _http_error)
    for bp in (blueprints if blueprints is not None else [hsm_bp]):
        app.register_blueprint(bp)
    return app


# Packages whose ``views.init_app(app, services)`` wires their blueprint and service into the app.
DEFAULT_PACKAGES = ("hsm", "ca_bridge", "ra", "timestamp", "kms", "seal", "racentre.console")


def build_app(services: Services, packages: tuple[str, ...] = DEFAULT_PACKAGES) -> Flask:
    """The full service app: every package's blueprint over one service container."""
    app = create_app(services.config, services.key_manager, services.db, blueprints=[],
                     services={"ca": services.ca} if "ca_bridge" in packages else None)
    for name in packages:
        importlib.import_module(f"{name}.views").init_app(app, services)
    wire_site(app, services)
    return app
