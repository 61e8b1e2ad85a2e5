"""Builders for the OpenAPI 3.1 fragments each package keeps beside its views (``<package>/openapi.py``);
racentre.openapi assembles them into the one document. Errors are RFC 9457 problem details.

Pure data helpers: nothing here knows Flask or imports above pkicore.
"""
from __future__ import annotations

from typing import Iterable

from pkicore import inputs

S = "#/components/schemas/"
PROBLEM_TYPE = "application/problem+json"

# the components every fragment may refer to (racentre.openapi puts them in the document)
PROBLEM_SCHEMA = {
    "type": "object", "required": ["type", "title", "status", "code"],
    "description": "RFC 9457 problem details; `code` is the stable error code (pkicore.errors.ErrorCode); "
                   "`error` repeats code and detail for clients written before problem details",
    "properties": {
        "type": {"type": "string", "format": "uri-reference", "examples": ["urn:racentre:problem:bad_request"]},
        "title": {"type": "string", "examples": ["Bad Request"]},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string", "examples": ["key_id must be in the range 0..9223372036854775807"]},
        "code": {"type": "string", "examples": ["bad_request"]},
        "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
    },
    "examples": [{"type": "urn:racentre:problem:bad_request", "title": "Bad Request", "status": 400,
                  "detail": "key_id must be an integer", "code": "bad_request",
                  "error": {"code": "bad_request", "message": "key_id must be an integer"}}],
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer",
               "description": "an API token (`racentre ra token create NAME --role ROLE`), shown once"},
    "console": {"type": "apiKey", "in": "cookie", "name": "racentre_session",
                "description": "a console session (login with password and TOTP, or a client certificate); "
                               "state-changing forms also carry its csrf_token"},
}

ERROR_TEXT = {400: "bad input: the detail names the field and why", 401: "no or bad credentials",
              403: "the caller's role or separation of duties refuses this", 404: "not found",
              405: "method not allowed (Allow names the methods)", 409: "state conflict",
              413: "body too large", 415: "wrong content type",
              503: "a dependency is unavailable (database: Retry-After; HSM; configuration)"}


def ref(name: str) -> dict:
    return {"$ref": S + name}


def json_content(schema: dict, example=None, mimetype: str = "application/json") -> dict:
    content = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {mimetype: content}


def binary_content(*mimetypes: str) -> dict:
    return {m: {"schema": {"type": "string", "format": "binary"}} for m in mimetypes}


def text_content(mimetype: str, example: str | None = None) -> dict:
    content = {"schema": {"type": "string"}}
    if example is not None:
        content["example"] = example
    return {mimetype: content}


def problems(*codes: int) -> dict:
    return {str(c): {"description": ERROR_TEXT[c], "content": {PROBLEM_TYPE: {"schema": ref("Problem")}}}
            for c in sorted(set(codes))}


def path_param(name: str, schema: dict | None = None, description: str = "", example=None) -> dict:
    param = {"name": name, "in": "path", "required": True,
             "schema": schema or {"type": "integer", "minimum": 0, "maximum": inputs.MAX_ID}}
    if description:
        param["description"] = description
    if example is not None:
        param["example"] = example
    return param


def query_param(name: str, schema: dict, description: str = "", required: bool = False) -> dict:
    param = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        param["description"] = description
    return param


def op(summary: str, tag: str, *, roles: Iterable[str] | None = (), ok: dict | None = None, status: str = "200",
       body: dict | inputs.Schema | None = None, body_content: dict | None = None, body_required: bool = True,
       example=None, params: Iterable[dict] = (), query: inputs.Schema | None = None, errors: Iterable[int] = (400,),
       console: bool = False, description: str = "") -> dict:
    """One operation. ``roles``: None for public; else the roles it admits (bearer token, or a console
    session when ``console``). ``body``: a JSON body (an inputs.Schema or a JSON Schema); ``body_content``:
    another media type. ``ok``: the success response (default: a JSON object)."""
    operation: dict = {"summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    codes = set(errors)
    if roles is None:
        operation["security"] = []
    else:
        roles = list(roles)
        operation["x-roles"] = roles
        operation["security"] = [{"console": []}] if console else [{"bearer": []}]
        codes |= {401, 403}
    parameters = list(params) + (query.query_parameters() if query is not None else [])
    if parameters:
        operation["parameters"] = parameters
    if body is not None or body_content is not None:
        if body_content is None:
            schema = body.json_schema() if isinstance(body, inputs.Schema) else body
            if example is None and isinstance(body, inputs.Schema) and body.example:
                example = body.example
            body_content = json_content(schema, example)
        operation["requestBody"] = {"required": body_required, "content": body_content}
        codes |= {413}
    success = ok or {"description": "done", "content": json_content({"type": "object"})}
    operation["responses"] = {status: success, **problems(*codes)}
    return operation


def fragment(paths: dict, schemas: dict | None = None, tags: Iterable[tuple[str, str]] = ()) -> dict:
    """A package's share of the document."""
    return {"paths": paths, "schemas": dict(schemas or {}),
            "tags": [{"name": name, "description": text} for name, text in tags]}
