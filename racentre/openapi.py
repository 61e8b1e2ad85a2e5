"""The service's one OpenAPI 3.1 document, assembled from each package's fragment (``<package>/openapi.py``),
served at ``/api/v1/openapi.json``, and the interactive API reference page at ``/api/v1/docs`` (a static
page and script of ours: no CDN, nothing fetched from elsewhere at run time).

``openapi_document(app)`` documents exactly the routes of ``app``: each fragment's paths are kept when
the app serves them, and every operation's ``x-roles`` / ``security`` are taken from the route's own
declaration (access.auth), so the document cannot drift from the code; a test fails when a route of
the app's url_map is not in it.
"""
from __future__ import annotations

import copy
import re

from flask import Blueprint, current_app, jsonify, send_from_directory

from ca_bridge.openapi import openapi_fragment as ca_fragment
from hsm.openapi import openapi_fragment as hsm_fragment
from kms.openapi import openapi_fragment as kms_fragment
from pkicore.openapi import PROBLEM_SCHEMA, SECURITY_SCHEMES, op
from ra.openapi import openapi_fragment as ra_fragment
from access.auth import endpoint_roles
from racentre.console.openapi import openapi_fragment as console_fragment
from racentre.console.openapi_desk import openapi_fragment as console_desk_fragment
from seal.openapi import openapi_fragment as seal_fragment
from timestamp.openapi import openapi_fragment as tsa_fragment
from timestamp.schemas import VERIFY_BODY, VERIFY_FORM
from trust.openapi import openapi_fragment as trust_fragment

bp = Blueprint("docs", __name__, url_prefix="/api/v1", static_folder="static/docs", static_url_path="/docs/static")

TAG = "Docs"
UNDOCUMENTED = frozenset({"static", "docs.static"})      # static files of Flask and of this page
VERSION = "1.0.0"
DESCRIPTION = """\
The RA centre's HTTP interface: registration (RA), the CA (certificates, CRLs, OCSP), the time-stamp
authority, the key-management centre, electronic seals, the HSM's health, and the officers' console.

* **Authentication**: REST calls carry `Authorization: Bearer <token>` (`racentre ra token create NAME
  --role ROLE`, shown once); console pages use the session cookie of a console login. Each operation
  lists the roles it admits (`x-roles`). CA certificates, CRLs, OCSP, the TSA and the GM/T 0014
  endpoint are public by design.
* **Errors** are RFC 9457 problem details (`application/problem+json`): `type`, `title`, `status`,
  `detail` and the stable `code`. Bad input is 400 with the field and the reason; bodies over the
  route's limit are 413; a database outage is 503 with `Retry-After`. Binary protocols (OCSP, TSA,
  GM/T 0014) answer protocol errors in their own signed formats.
"""


def _fragments() -> list[dict]:
    return [hsm_fragment(), ca_fragment(), ra_fragment(), tsa_fragment(VERIFY_BODY, VERIFY_FORM), kms_fragment(),
            seal_fragment(), trust_fragment(), console_fragment(), console_desk_fragment(),
            _docs_fragment()]


def _docs_fragment() -> dict:
    return {"paths": {
        "/api/v1/openapi.json": {"get": op("this document (OpenAPI 3.1)", TAG, roles=None, errors=(),
                                           ok={"description": "the document", "content": {"application/json": {
                                               "schema": {"type": "object"}}}})},
        "/api/v1/docs": {"get": op("the interactive API reference page", TAG, roles=None, errors=(),
                                   ok={"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}})},
    }, "schemas": {}, "tags": [{"name": TAG, "description": "this document and its reference page"}]}


_CONVERTER = re.compile(r"<(?:[a-zA-Z_]+(?:\([^)]*\))?:)?([a-zA-Z_]+)>")


def rule_path(rule: str) -> str:
    """A werkzeug rule as an OpenAPI path template: ``/seals/<int:seal_id>`` -> ``/seals/{seal_id}``."""
    return _CONVERTER.sub(r"{\1}", rule)


def routes(app) -> list[tuple[str, str, str]]:
    """(OpenAPI path, method, endpoint) of every route of ``app`` that is documented (not static files)."""
    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED or rule.endpoint.endswith(".static") and rule.endpoint != "console.static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((rule_path(rule.rule), method.lower(), rule.endpoint))
    return out


def openapi_document(app=None) -> dict:
    """The whole document; with ``app``, only what it serves, with roles read from its routes."""
    paths: dict = {}
    schemas: dict = {"Problem": copy.deepcopy(PROBLEM_SCHEMA)}
    tags: list = []
    for part in _fragments():
        for path, ops in part["paths"].items():
            paths.setdefault(path, {}).update(copy.deepcopy(ops))
        schemas.update(copy.deepcopy(part["schemas"]))
        tags.extend(part["tags"])
    if app is not None:
        paths = _served(app, paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": "RA 中心数字认证系统 — RA centre API", "version": VERSION, "description": DESCRIPTION},
        "tags": tags,
        "components": {"securitySchemes": copy.deepcopy(SECURITY_SCHEMES), "schemas": schemas},
        "paths": paths,
    }


def _served(app, paths: dict) -> dict:
    """Keep the operations ``app`` serves; set each one's roles and security from its route."""
    adapter = app.url_map.bind("localhost")
    kept: dict = {}
    for path, ops in paths.items():
        concrete = re.sub(r"\{([a-zA-Z_]+)\}", lambda m: _SAMPLE.get(m.group(1), "1"), path)
        for method, operation in ops.items():
            try:
                endpoint, _ = adapter.match(concrete, method=method.upper())
            except Exception:  # noqa: BLE001 - not served by this app (e.g. a stand-alone KMC): left out
                continue
            roles = endpoint_roles(app, endpoint)
            if roles is None:
                operation["security"] = []
                operation.pop("x-roles", None)
            else:
                operation["x-roles"] = list(roles)
                console = endpoint.startswith("console.")
                operation["security"] = [{"console": []}] if console else [{"bearer": []}]
            operation["operationId"] = f"{endpoint}.{method}" if _count(app, endpoint) > 1 else endpoint
            operation["x-endpoint"] = endpoint
            kept.setdefault(path, {})[method] = operation
    return kept


# sample values that route each documented path template to its rule
_SAMPLE = {"collection": "units", "usage": "sign", "action": "suspend", "ca": "x", "ca_name": "x", "serial": "1f",
           "name": "x", "unit": "x", "encoded": "AAAA", "principal": "x", "filename": "console.css", "fmt": "pem"}


def _count(app, endpoint: str) -> int:
    return sum(len(r.methods - {"HEAD", "OPTIONS"}) for r in app.url_map.iter_rules(endpoint))


@bp.get("/openapi.json")
def openapi():
    doc = current_app.extensions.get("racentre.openapi")
    if doc is None:
        doc = current_app.extensions["racentre.openapi"] = openapi_document(current_app)
    return jsonify(doc)


@bp.get("/docs")
def reference():
    response = send_from_directory(bp.static_folder, "index.html", mimetype="text/html")
    response.headers["Content-Security-Policy"] = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                                   "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                                   "frame-ancestors 'none'; form-action 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def init_app(app) -> None:
    app.register_blueprint(bp)
