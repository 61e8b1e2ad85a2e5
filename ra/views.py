"""REST view of the RA (``/api/v1/ra/...``) and the audit read endpoint (``/api/v1/audit``); documented in
``ra.openapi`` (served whole by racentre.openapi at ``/api/v1/openapi.json``). JSON in, JSON out; every
endpoint declares its roles.

Input is checked field by field: unknown fields, wrong types and bad encodings are 400 with a stable
code; bodies larger than ``RA_MAX_BODY`` are 413. The service is ``app.extensions["racentre.ra"]``.
"""
from __future__ import annotations

from asn1crypto import pem
from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from access.auth import require_roles
from pkicore import inputs
from ra.errors import NotFound, ValidationError
from ra.services import RaService
from ra.workflow import Actor

bp = Blueprint("ra", __name__, url_prefix="/api/v1")

EXTENSION = "racentre.ra"
RA_MAX_BODY = 256 * 1024
STAFF = ("ra_operator", "ra_officer", "ra_admin", "auditor")


@bp.before_request
def _limit_body():
    # Flask 3.1: a per-request limit below the app's MAX_CONTENT_LENGTH (a CSR is a few kB).
    request.max_content_length = min(RA_MAX_BODY, current_app.config.get("MAX_CONTENT_LENGTH") or RA_MAX_BODY)
    if (request.content_length or 0) > request.max_content_length:   # known, chunked too (racentre.web.BodyLimit)
        raise RequestEntityTooLarge(f"RA request bodies are limited to {request.max_content_length} bytes")


def _service() -> RaService:
    return current_app.extensions[EXTENSION]


def _actor() -> Actor:
    return Actor(g.principal.name, g.role)


def _is_staff() -> bool:
    return bool(g.principal.roles & set(STAFF))


# ------------------------------------------------------------------------------------------ input checks

_FIELDS = {"str": lambda: inputs.Str(64 * 1024), "int": inputs.Id, "bool": inputs.Bool,
           "list[str]": lambda: inputs.List(inputs.Str(1024), max_items=100),
           "list[int]": lambda: inputs.List(inputs.Id(), max_items=500),
           "str?": lambda: inputs.Str(64 * 1024).or_null(), "int?": lambda: inputs.Id().or_null(),
           "bool?": lambda: inputs.Bool().or_null()}


def schema(fields: dict[str, str], required: tuple[str, ...] = ()) -> inputs.Schema:
    """The pkicore.inputs schema of a body given as ``name -> type name`` (ids bounded to the id columns)."""
    return inputs.Schema({name: inputs.required(_FIELDS[kind]()) if name in required else _FIELDS[kind]()
                          for name, kind in fields.items()})


def _body(fields: dict[str, str], required: tuple[str, ...] = ()) -> dict:
    """The JSON object body, checked against ``fields`` (name -> type name); unknown fields are refused."""
    if request.content_length == 0 or not request.get_data(cache=True):
        data = {}
    else:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise ValidationError("the body must be a JSON object (Content-Type: application/json)")
    return schema(fields, required).parse(data)


def _query(name: str, kind: str = "str"):
    value = request.args.get(name)
    if value is None:
        return None
    if kind == "int":
        if not value.isascii() or not value.isdigit() or len(value) > 18:
            raise ValidationError(f"query parameter {name} must be a non-negative integer")
        return int(value)
    return value


def _check_query(allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(request.args) - set(allowed))
    if unknown:
        raise ValidationError(f"unknown query parameters: {', '.join(unknown)}")


# --------------------------------------------------------------------------------------------- subjects

_SUBJECT_FIELDS = {
    "units": ({"name": "str", "uscc": "str", "legal_representative": "str"},
              ("name", "uscc", "legal_representative"), "add_unit", "unit"),
    "civil-servants": ({"name": "str", "id_number": "str", "unit_id": "int", "department": "str?",
                        "position": "str?", "contact": "str?"}, ("name", "id_number", "unit_id"),
                       "add_civil_servant", "civil-servant"),
    "servers": ({"host_name": "str", "unit_id": "int", "dns_names": "list[str]", "ip_addresses": "list[str]"},
                ("host_name", "unit_id"), "add_server", "server"),
}


def _subject_collection(collection: str):
    try:
        return _SUBJECT_FIELDS[collection]
    except KeyError:
        raise NotFound(f"no subject collection {collection!r}") from None


@bp.post("/ra/<any(units, 'civil-servants', servers):collection>")
@require_roles("ra_operator", "ra_admin")
def create_subject(collection):
    fields, required, method, _kind = _subject_collection(collection)
    data = _body(fields, required)
    result, created = getattr(_service(), method)(_actor(), **data)
    return jsonify(result), 201 if created else 200


@bp.get("/ra/<any(units, 'civil-servants', servers):collection>")
@require_roles(*STAFF)
def list_subjects(collection):
    kind = _subject_collection(collection)[3]
    _check_query(("unit_id", "limit", "after_id"))
    return jsonify(items=_service().list_subjects(kind, unit_id=_query("unit_id", "int"),
                                                  limit=_query("limit", "int"), after_id=_query("after_id", "int")))


@bp.get("/ra/<any(units, 'civil-servants', servers):collection>/<int:subject_id>")
@require_roles(*STAFF)
def get_subject(collection, subject_id):
    return jsonify(_service().get_subject(_subject_collection(collection)[3], subject_id))


# --------------------------------------------------------------------------------------------- requests

_SUBMIT_FIELDS = {"type": "str", "kind": "str", "subject_id": "int?", "csr": "str?", "enc_csr": "str?",
                  "enc_public_key": "str?", "target_request_id": "int?", "revocation_reason": "str?",
                  "enrol_by_cmp": "bool?", "status_reason": "str?"}


@bp.post("/ra/requests")
@require_roles("applicant", "api_client", "ra_operator")
def submit_request():
    data = _body(_SUBMIT_FIELDS, ("type",))
    data["sign_csr"] = data.pop("csr", None)
    return jsonify(_service().submit(_actor(), **data)), 201


@bp.get("/ra/requests")
@require_roles(*STAFF)
def list_requests():
    _check_query(("state", "type", "unit_id", "limit", "after_id"))
    items = _service().list_requests(state=_query("state"), type=_query("type"), unit_id=_query("unit_id", "int"),
                                     limit=_query("limit", "int"), after_id=_query("after_id", "int"))
    return jsonify(items=items)


def _visible_request(request_id: int) -> dict:
    result = _service().get_request(request_id)
    if not _is_staff() and result["submitted_by"] != g.principal.name:
        raise NotFound(f"request {request_id} not found")      # applicants see only their own requests
    return result


@bp.get("/ra/requests/<int:request_id>")
@require_roles("applicant", "api_client", *STAFF)
def get_request(request_id):
    return jsonify(_visible_request(request_id))


@bp.get("/ra/requests/<int:request_id>/certificates/<any(sign, enc):usage>")
@require_roles("applicant", "api_client", *STAFF)
def get_certificate(request_id, usage):
    _visible_request(request_id)
    der = _service().certificate(request_id, usage)
    if "application/pkix-cert" in request.headers.get("Accept", ""):
        return Response(der, mimetype="application/pkix-cert")
    return Response(pem.armor("CERTIFICATE", der), mimetype="application/x-pem-file")


@bp.get("/ra/requests/<int:request_id>/certificates/enc/envelope")
@require_roles("applicant", "api_client", *STAFF)
def get_key_envelope(request_id):
    """GM/T 0010 SignedAndEnvelopedData (default), or ``?format=sm2-enveloped-key`` for the GB/T 35276
    SM2EnvelopedKey that USB-key middleware imports."""
    _check_query(("format",))
    fmt = request.args.get("format", "signed-and-enveloped")
    if fmt not in ("signed-and-enveloped", "sm2-enveloped-key"):
        raise ValidationError("format must be signed-and-enveloped or sm2-enveloped-key")
    _visible_request(request_id)
    return Response(_service().key_envelope(request_id, fmt), mimetype="application/octet-stream")


@bp.post("/ra/requests/<int:request_id>/vet")
@require_roles("ra_operator")
def vet_request(request_id):
    data = _body({"documents_checked": "bool", "note": "str?"}, ("documents_checked",))
    return jsonify(_service().vet(_actor(), request_id, **data))


@bp.post("/ra/requests/<int:request_id>/cmp-secret")
@require_roles("ra_officer")
def cmp_secret(request_id):
    """RFC 9483 §4.1.5: an officer's one-time MAC secret for an approved request submitted with
    ``enrol_by_cmp`` (the subscriber's ir gets the vetted subject, once); a new secret voids an unused one."""
    _body({})
    return jsonify(_service().issue_cmp_secret(_actor(), request_id)), 201


@bp.post("/ra/requests/<int:request_id>/approve")
@require_roles("ra_officer")
def approve_request(request_id):
    _body({})
    return jsonify(_service().approve(_actor(), request_id))


@bp.post("/ra/requests/approve")
@require_roles("ra_officer")
def approve_requests():
    """Bulk approval (``ra.bulk``): ``{"request_ids": [...]}``, at most 500; one outcome per request."""
    data = _body({"request_ids": "list[int]"}, ("request_ids",))
    return jsonify(items=_service().approve_many(_actor(), data["request_ids"]))


@bp.post("/ra/requests/<int:request_id>/reject")
@require_roles("ra_officer", "ra_operator")
def reject_request(request_id):
    data = _body({"reason": "str"}, ("reason",))
    return jsonify(_service().reject(_actor(), request_id, data["reason"]))


@bp.post("/ra/requests/<int:request_id>/return")
@require_roles("ra_officer", "ra_operator")
def return_request(request_id):
    """退回补正: back to the submitter for correction (``{"reason": ...}``), not a final rejection."""
    data = _body({"reason": "str"}, ("reason",))
    return jsonify(_service().return_for_correction(_actor(), request_id, data["reason"]))


@bp.post("/ra/requests/<int:request_id>/resubmit")
@require_roles("applicant", "api_client", "ra_operator")
def resubmit_request(request_id):
    """A returned request, corrected: optionally new ``csr`` / ``enc_csr`` / ``enc_public_key`` (PEM or base64 DER)."""
    data = _body({"csr": "str?", "enc_csr": "str?", "enc_public_key": "str?"})
    if not _is_staff():
        _visible_request(request_id)
    return jsonify(_service().resubmit(_actor(), request_id, sign_csr=data.get("csr"), enc_csr=data.get("enc_csr"),
                                       enc_public_key=data.get("enc_public_key")))


@bp.post("/ra/requests/<int:request_id>/emergency-revoke")
@require_roles("ra_officer")
def emergency_revoke(request_id):
    """Key compromise: this officer revokes request ``request_id``'s certificates at once (keyCompromise),
    ``{"justification": ...}`` required and audited (``ra.request.emergency_revoke``)."""
    data = _body({"justification": "str"}, ("justification",))
    return jsonify(_service().emergency_revoke(_actor(), request_id, data["justification"])), 201


@bp.post("/ra/requests/<int:request_id>/revoke")
@require_roles("ra_officer", "applicant", "api_client")
def request_revocation(request_id):
    """A revocation request for the certificates of request ``request_id``; it passes the same gate."""
    data = _body({"reason": "str?"})
    if not _is_staff():
        _visible_request(request_id)
    original = _service().get_request(request_id)
    result = _service().submit(_actor(), type=original["type"], kind="revocation", target_request_id=request_id,
                               revocation_reason=data.get("reason"))
    return jsonify(result), 201


# ------------------------------------------------------------------------------------------ audit, docs

@bp.get("/audit")
@require_roles("auditor", "ra_admin")
def audit_events():
    _check_query(("target", "limit"))
    target = _query("target")
    if not target or ":" not in target:
        raise ValidationError("query parameter target must be <type>:<id>, e.g. ra_request:42")
    target_type, _, target_id = target.partition(":")
    return jsonify(items=_service().audit_events(target_type, target_id, limit=_query("limit", "int")))


