"""The OpenAPI 3.1 document of the RA REST API (hand-written data; a test keeps it in step with the
blueprint's URL rules)."""
from __future__ import annotations

import copy

from ca_bridge.api import RevocationReason

from pkicore.inputs import MAX_ID
from pkicore.openapi import PROBLEM_SCHEMA, PROBLEM_TYPE, ref
from ra.bulk import RESULTS
from ra.models import MAX_STATUS_REASON, RequestKind, RequestState, RequestType

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string", "description": "stable error code (pkicore.errors.ErrorCode)"},
                   "message": {"type": "string"}}}}}

_S = "#/components/schemas/"
TAG = "RA"
_EXAMPLES = {
    "UnitCreate": {"name": "杭州市数据资源局", "uscc": "11330100MB1234567X", "legal_representative": "王五"},
    "CivilServantCreate": {"name": "陈晓明", "id_number": "330106199001011234", "unit_id": 3, "department": "办公室"},
    "ServerCreate": {"host_name": "oa.hz.gov.cn", "unit_id": 3, "dns_names": ["oa.hz.gov.cn"]},
    "RequestSubmit": {"type": "civil-servant-dual", "kind": "new", "subject_id": 17,
                      "csr": "-----BEGIN CERTIFICATE REQUEST-----\nMIIB...\n-----END CERTIFICATE REQUEST-----\n"},
    "Vet": {"documents_checked": True, "note": "身份证原件已核验"},
    "Reject": {"reason": "申请表单位公章缺失"},
    "Revoke": {"reason": "key_compromise"},
    "Empty": {},
    "BulkApprove": {"request_ids": [101, 102, 103]},
}
# further examples of a schema (JSON Schema ``examples``, OpenAPI 3.1 §4.8.24): 冻结 and 解冻 with the officer's reason
_SCHEMA_EXAMPLES = {
    "RequestSubmit": [
        {"type": "civil-servant-dual", "kind": "suspend", "target_request_id": 101,
         "status_reason": "本人电话挂失：USB Key 遗失，待找回后解冻"},
        {"type": "civil-servant-dual", "kind": "resume", "target_request_id": 101,
         "status_reason": "USB Key 已找回，本人持身份证到窗口申请解冻"},
    ],
}


def _ref(name: str) -> dict:
    return {"$ref": _S + name}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "bad input (unknown field, bad type, bad encoding, refused key)", 401: "no or bad token",
            403: "role or separation of duties refuses this actor", 404: "not found", 409: "state conflict",
            413: "body too large", 500: "the CA failed; nothing was recorded"}
    return {str(c): {"description": text[c], "content": {PROBLEM_TYPE: {"schema": ref("Problem")}}}
            for c in (401, 403, *codes)}


def _op(summary: str, roles: tuple[str, ...], ok: dict, *, body: dict | None = None, params=(), errors=(400,),
        status: str = "200") -> dict:
    op = {"summary": summary, "tags": [TAG], "x-roles": list(roles), "security": [{"bearer": []}] if roles else [],
          "responses": {status: ok, **(_errors(*errors) if roles else {})}}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
        name = body.get("$ref", "").rsplit("/", 1)[-1]
        if name in _EXAMPLES:
            op["requestBody"]["content"]["application/json"]["example"] = _EXAMPLES[name]
        op["responses"].update(_errors(*errors, 413))
    if params:
        op["parameters"] = list(params)
    return op


def _path_param(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_ID},
            "example": 101}


def _query(name: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_PAGE = (_query("limit", {"type": "integer", "minimum": 1, "maximum": 500}), _query("after_id", {"type": "integer"}))
STAFF = ("ra_operator", "ra_officer", "ra_admin", "auditor")


def _list_of(name: str) -> dict:
    return {"description": "a page", **_json({"type": "object", "properties": {"items": {"type": "array",
                                                                                       "items": _ref(name)}}})}


def _subject_paths(collection: str, schema: str, create: str) -> dict:
    return {
        f"/api/v1/ra/{collection}": {
            "post": _op(f"register a {schema} (the same registration again returns the existing one, 200)",
                        ("ra_operator", "ra_admin"), {"description": "created", **_json(_ref(schema))},
                        body=_ref(create), errors=(400, 409), status="201"),
            "get": _op(f"list {collection}", STAFF, _list_of(schema),
                       params=(_query("unit_id", {"type": "integer"}), *_PAGE)),
        },
        f"/api/v1/ra/{collection}/{{subject_id}}": {
            "get": _op(f"one {schema}", STAFF, {"description": schema, **_json(_ref(schema))},
                       params=(_path_param("subject_id"),), errors=(404,)),
        },
    }


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_NSTR = {"type": ["string", "null"]}
_NINT = {"type": ["integer", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}

_SCHEMAS = {
    "Problem": PROBLEM_SCHEMA,
    "UnitCreate": _obj(["name", "uscc", "legal_representative"], name=_STR,
                       uscc={"type": "string", "description": "统一社会信用代码, GB 32100-2015"},
                       legal_representative=_STR),
    "Unit": {"type": "object", "properties": {"id": _INT, "kind": {"const": "unit"}, "name": _STR, "uscc": _STR,
                                              "legal_representative": _STR, "created_at": _TIME}},
    "CivilServantCreate": _obj(["name", "id_number", "unit_id"], name=_STR,
                               id_number={"type": "string", "description": "公民身份号码, GB 11643-1999"},
                               unit_id=_INT, department=_NSTR, position=_NSTR, contact=_NSTR),
    "CivilServant": {"type": "object", "properties": {
        "id": _INT, "kind": {"const": "civil-servant"}, "name": _STR, "id_number": _STR, "unit_id": _INT,
        "department": _NSTR, "position": _NSTR, "contact": _NSTR, "created_at": _TIME}},
    "ServerCreate": _obj(["host_name", "unit_id"], host_name=_STR, unit_id=_INT,
                         dns_names={"type": "array", "items": _STR}, ip_addresses={"type": "array", "items": _STR}),
    "Server": {"type": "object", "properties": {
        "id": _INT, "kind": {"const": "server"}, "host_name": _STR, "unit_id": _INT,
        "dns_names": {"type": "array", "items": _STR}, "ip_addresses": {"type": "array", "items": _STR},
        "created_at": _TIME}},
    "RequestSubmit": _obj(
        ["type"], type={"enum": [t.value for t in RequestType]},
        kind={"enum": [k.value for k in RequestKind], "default": "new"},
        subject_id={**_NINT, "description": "civil servant, unit or server id (new requests)"},
        csr={**_NSTR, "description": "PKCS#10 as PEM or base64 DER; SM2 signed with ID 1234567812345678"},
        enc_csr={**_NSTR, "description": "civil-servant-dual: the encryption key as a CSR"},
        enc_public_key={**_NSTR, "description": "civil-servant-dual: the encryption key as SPKI PEM/base64 DER"},
        target_request_id={**_NINT, "description": "renewal, rekey, revocation: the issued request"},
        revocation_reason={"enum": [r.value for r in RevocationReason] + [None]},
        enrol_by_cmp={"type": ["boolean", "null"], "description": "server or unit, new, no CSR: once approved, "
                      "the subscriber enrols over CMP with an officer's one-time secret (cmp-secret)"},
        status_reason={"type": ["string", "null"], "maxLength": MAX_STATUS_REASON,
                       "description": "suspend (冻结), resume (解冻), revocation: the officer's reason in their own "
                                      "words, shown on the request and in its audit rows"}),
    "Vet": _obj(["documents_checked"], documents_checked={"type": "boolean"}, note=_NSTR),
    "Reject": _obj(["reason"], reason=_STR),
    "Resubmit": _obj([], csr=_NSTR, enc_csr=_NSTR, enc_public_key=_NSTR),
    "EmergencyRevoke": _obj(["justification"], justification=_STR),
    "Revoke": _obj([], reason={"enum": [r.value for r in RevocationReason] + [None]}),
    "Empty": _obj([]),
    "BulkApprove": _obj(["request_ids"], request_ids={"type": "array", "minItems": 1, "maxItems": 500,
                                                      "uniqueItems": True, "items": {"type": "integer", "minimum": 0}}),
    "BulkOutcome": {"type": "object", "required": ["id", "result", "state"], "properties": {
        "id": _INT,
        "result": {"enum": list(RESULTS),
                   "description": "issued/revoked/suspended/resumed: this approval carried the request out; approved: "
                                  "recorded, below the threshold; awaiting_ca: at the threshold, queued for the upstream "
                                  "CA (CMP) which is down or still processing, collected by the sweep; unchanged: "
                                  "already approved by this officer; failed: refused, nothing of this request was "
                                  "written (or the upstream CA refused it: state failed, its reason in the error)"},
        "state": {"enum": [s.value for s in RequestState] + [None]},
        "certificates": {"type": "array", "items": {"type": "object"}},
        "error": _ERROR["properties"]["error"]}},
    "Request": {"type": "object", "properties": {
        "id": _INT, "type": {"enum": [t.value for t in RequestType]}, "kind": {"enum": [k.value for k in RequestKind]},
        "state": {"enum": [s.value for s in RequestState]}, "unit_id": _INT, "civil_servant_id": _NINT,
        "server_id": _NINT, "target_request_id": _NINT, "revocation_reason": _NSTR, "status_reason": _NSTR,
        "submitted_by": _STR,
        "submitted_at": _TIME, "vetted_by": _NSTR, "vetted_at": _TIME,
        "checks": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "ok": {"type": "boolean"}, "detail": _STR}}},
        "rejected_by": _NSTR, "reject_reason": _NSTR, "completed_at": _TIME,
        "approvals": {"type": "array", "items": {"type": "object", "properties": {"officer": _STR, "at": _TIME}}},
        "approvals_required": _INT,
        "certificates": {"type": "array", "items": _ref("Certificate")},
        "subject": {"type": "array", "items": {"type": "array", "items": _STR}},
        "identity": {"type": "array", "items": {"type": "array", "items": _STR}}}},
    "Certificate": {"type": "object", "properties": {
        "usage": {"enum": ["sign", "enc"]}, "profile": _STR, "ca": _STR, "serial": {"type": "string", "description": "hex"},
        "ca_request_id": _STR, "not_before": _TIME, "not_after": _TIME, "status": {"enum": ["good", "hold", "revoked"]},
        "revoked_at": _TIME, "revocation_reason": _NSTR,
        "key_escrowed": {"type": "boolean", "description": "the KMC generated the key (GM/T 0034)"}}},
    "AuditEvent": {"type": "object", "properties": {
        "id": _INT, "at": _TIME, "actor": _STR, "role": _STR, "action": _STR, "target_type": _STR,
        "target_id": _STR, "detail": {"type": "object"}}},
}
for _name, _more in _SCHEMA_EXAMPLES.items():
    _SCHEMAS[_name]["examples"] = [_EXAMPLES[_name], *_more]

_REQUEST = {"description": "the request", **_json(_ref("Request"))}
_RID = _path_param("request_id")

_PATHS = {
    **_subject_paths("units", "Unit", "UnitCreate"),
    **_subject_paths("civil-servants", "CivilServant", "CivilServantCreate"),
    **_subject_paths("servers", "Server", "ServerCreate"),
    "/api/v1/ra/requests": {
        "post": _op("submit a request (new, renewal, rekey, revocation)", ("applicant", "api_client", "ra_operator"),
                    {"description": "submitted", **_json(_ref("Request"))}, body=_ref("RequestSubmit"),
                    errors=(400, 404, 409), status="201"),
        "get": _op("list requests", STAFF, _list_of("Request"), params=(
            _query("state", {"enum": [s.value for s in RequestState]}),
            _query("type", {"enum": [t.value for t in RequestType]}), _query("unit_id", {"type": "integer"}), *_PAGE)),
    },
    "/api/v1/ra/requests/{request_id}": {
        "get": _op("one request (applicants: only their own)", ("applicant", "api_client", *STAFF), _REQUEST,
                   params=(_RID,), errors=(404,)),
    },
    "/api/v1/ra/requests/{request_id}/certificates/{usage}": {
        "get": _op("an issued certificate: PEM, or DER with Accept: application/pkix-cert",
                   ("applicant", "api_client", *STAFF),
                   {"description": "the certificate", "content": {"application/x-pem-file": {"schema": _STR},
                                                                  "application/pkix-cert": {"schema": _STR}}},
                   params=(_RID, {"name": "usage", "in": "path", "required": True,
                                  "schema": {"enum": ["sign", "enc"]}}), errors=(404,)),
    },
    "/api/v1/ra/requests/{request_id}/certificates/enc/envelope": {
        "get": _op("the KMC-generated encryption private key for the subscriber: GM/T 0010 SignedAndEnvelopedData "
                   "(DER), encrypted to the subscriber's signing key and signed by the KMC",
                   ("applicant", "api_client", *STAFF),
                   {"description": "the envelope", "content": {"application/octet-stream": {"schema": _STR}}},
                   params=(_RID, {"name": "format", "in": "query", "required": False,
                                  "schema": {"enum": ["signed-and-enveloped", "sm2-enveloped-key"]}}),
                   errors=(400, 404)),
    },
    "/api/v1/ra/requests/{request_id}/vet": {
        "post": _op("vet: run and record the checks (all pass: vetted; any fails: rejected); refused, nothing recorded, "
                    "without documents_checked", ("ra_operator",),
                    _REQUEST, body=_ref("Vet"), params=(_RID,), errors=(400, 404, 409)),
    },
    "/api/v1/ra/requests/{request_id}/approve": {
        "post": _op("approve; at the threshold the CA issues (or revokes) in the same transaction; with an "
                    "upstream CA (CMP) the request is queued with it and collected after the commit: state issued, "
                    "awaiting_ca (等待上级CA: down or slow, the sweep carries on) or failed (the CA's reason)",
                    ("ra_officer",), _REQUEST, body=_ref("Empty"), params=(_RID,), errors=(400, 404, 409, 500)),
    },
    "/api/v1/ra/requests/{request_id}/cmp-secret": {
        "post": _op("RFC 9483 §4.1.5: a one-time CMP secret bound to this approved request (submitted with "
                    "enrol_by_cmp): the subscriber's ir with PasswordBasedMac gets the vetted subject, once; a new "
                    "secret voids an unused one", ("ra_officer",),
                    {"description": "the reference (senderKID) and the secret, shown once", **_json(
                        {"type": "object", "required": ["request_id", "reference", "secret"],
                         "properties": {"request_id": _INT, "reference": _STR, "secret": _STR}})},
                    body=_ref("Empty"), params=(_RID,), errors=(400, 404, 409), status="201"),
    },
    "/api/v1/ra/requests/approve": {
        "post": _op("bulk approval: this officer approves each listed request (at most 500) in one transaction; "
                    "one outcome per request, in the order given", ("ra_officer",),
                    {"description": "the outcomes", **_json({"type": "object", "properties": {
                        "items": {"type": "array", "items": _ref("BulkOutcome")}}})},
                    body=_ref("BulkApprove"), errors=(400, 409, 500)),
    },
    "/api/v1/ra/requests/{request_id}/reject": {
        "post": _op("reject with a reason", ("ra_officer", "ra_operator"), _REQUEST, body=_ref("Reject"),
                    params=(_RID,), errors=(400, 404, 409)),
    },
    "/api/v1/ra/requests/{request_id}/return": {
        "post": _op("退回补正: return a submitted or vetted request for correction (state returned; not final)",
                    ("ra_officer", "ra_operator"), _REQUEST, body=_ref("Reject"), params=(_RID,),
                    errors=(400, 404, 409)),
    },
    "/api/v1/ra/requests/{request_id}/resubmit": {
        "post": _op("resubmit a returned request, optionally with new CSRs (back to submitted; vetting and "
                    "approvals start again)", ("applicant", "api_client", "ra_operator"), _REQUEST,
                    body=_ref("Resubmit"), params=(_RID,), errors=(400, 403, 404, 409)),
    },
    "/api/v1/ra/requests/{request_id}/emergency-revoke": {
        "post": _op("key compromise: this officer revokes the request's certificates at once (keyCompromise), "
                    "audited with the justification", ("ra_officer",),
                    {"description": "the emergency revocation request (state revoked)", **_json(_ref("Request"))},
                    body=_ref("EmergencyRevoke"), params=(_RID,), errors=(400, 404, 409), status="201"),
    },
    "/api/v1/ra/requests/{request_id}/revoke": {
        "post": _op("request revocation of an issued request's certificates (vetted and approved like any request)",
                    ("ra_officer", "applicant", "api_client"),
                    {"description": "the revocation request", **_json(_ref("Request"))}, body=_ref("Revoke"),
                    params=(_RID,), errors=(400, 404, 409), status="201"),
    },
    "/api/v1/audit": {
        "get": _op("audit events of one target", ("auditor", "ra_admin"), _list_of("AuditEvent"), params=(
            {"name": "target", "in": "query", "required": True, "schema": {"type": "string"},
             "description": "<target_type>:<id>, e.g. ra_request:42"},
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}))),
    },
}

_DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "RA centre — registration authority API", "version": "1.0.0",
             "description": "Subjects, certificate requests, vetting, four-eyes approval, issuance and revocation. "
                            "Errors are RFC 9457 problem details with a stable code."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}, "schemas": _SCHEMAS},
    "paths": _PATHS,
}


def openapi_document() -> dict:
    """The RA's part alone, as a document of its own (racentre.openapi serves the whole one)."""
    return copy.deepcopy(_DOCUMENT)


def openapi_fragment() -> dict:
    """The RA's share of the service's document (racentre.openapi assembles it)."""
    schemas = {k: v for k, v in copy.deepcopy(_SCHEMAS).items() if k != "Problem"}
    return {"paths": copy.deepcopy(_PATHS), "schemas": schemas,
            "tags": [{"name": TAG, "description": "registration: subjects, requests, vetting, four-eyes approval, "
                                                  "issuance, revocation; the audit read"}]}
