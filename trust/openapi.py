"""The OpenAPI 3.1 fragment of the trust services (/api/v1/trust; hand-written data in the style of
ra/openapi.py; a test keeps it in step with the blueprint's URL rules and the views' accepted fields)."""
from __future__ import annotations

import copy

from pkicore.openapi import PROBLEM_SCHEMA, fragment, problems

_S = "#/components/schemas/"
_STR = {"type": "string"}
_B64 = {"type": "string", "contentEncoding": "base64"}
_NB64 = {"type": ["string", "null"], "contentEncoding": "base64"}
_BOOL = {"type": "boolean", "default": False}
_INT = {"type": "integer"}
_NINT = {"type": ["integer", "null"]}
_CERT = {"type": "string", "description": "X.509 certificate: PEM, or base64 DER"}
TAG = "Trust"

APP = ("application",)
ADMIN = ("ra_admin",)
KEY_READERS = ("application", "ra_admin", "auditor")
VERIFIERS = ("application", "api_client", "ra_officer", "ra_admin", "auditor")


def _ref(name: str) -> dict:
    return {"$ref": _S + name}


def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    """RFC 9457 problem answers (racentre.web), as every other route documents them."""
    return problems(401, 403, *codes)


def _op(summary: str, roles: tuple[str, ...], ok: dict, *, body: dict | None = None, params=(), errors=(400,),
        status: str = "200") -> dict:
    op = {"summary": summary, "tags": [TAG], "x-roles": list(roles), "security": [{"bearer": []}] if roles else [],
          "responses": {status: ok, **(_errors(*errors) if roles else {})}}
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
        op["responses"].update(_errors(*errors, 413))
    if params:
        op["parameters"] = list(params)
    return op


def _obj(required: list[str], **props) -> dict:
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}


def _path(name: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "integer", "minimum": 1}}


_SCHEMAS = {
    "TrustKeyCreate": _obj(
        ["application", "common_name"], application={"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$",
                                                     "description": "the application's API principal"},
        purpose={"enum": ["sign", "encrypt"], "default": "sign"},
        key_algorithm={"enum": ["sm2", "ec-p256", "ec-p384", "rsa-2048", "rsa-3072"], "default": "sm2"},
        profile={"enum": ["server", "unit", "app-encryption"], "description": "default server (sign), "
                 "app-encryption (encrypt)"},
        common_name=_STR, organization={"type": ["string", "null"]},
        dns_names={"type": "array", "items": _STR, "description": "server profile: at least one"},
        uscc={"type": ["string", "null"], "description": "统一社会信用代码 (unit profile: required)"}),
    "TrustKey": {"type": "object", "properties": {
        "id": _INT, "application": _STR, "label": _STR, "purpose": _STR, "key_algorithm": _STR, "profile": _STR,
        "ca": _STR, "serial": _STR, "not_after": {"type": "string", "format": "date-time"},
        "disabled": {"type": "boolean"}, "signature_algorithm": {"type": ["string", "null"]}}},
    "SignRequest": _obj(
        ["data"], data=_B64, form={"enum": ["raw", "cms"], "default": "cms"}, key_id=_NINT,
        detached=_BOOL, gm={**_BOOL, "description": "GM/T 0010 content types (1.2.156.10197.6.1.4.2.2/.1)"},
        user_id={"type": ["string", "null"], "description": "raw SM2: user ID (default 1234567812345678)"},
        user_id_hex={"type": ["string", "null"]}, signing_time=_BOOL,
        timestamp={**_BOOL, "description": "embed an RFC 3161 signatureTimeStampToken from our TSA"},
        evidence={**_BOOL, "description": "keep a signed, timestamped evidence record; its id is returned"}),
    "SignResult": {"type": "object", "properties": {
        "form": _STR, "key_id": _INT, "algorithm": _STR, "serial": _STR, "signature": _B64, "certificate": _B64,
        "evidence_id": _STR}},
    "VerifyRequest": _obj(
        ["signature"], signature=_B64, data={**_NB64, "description": "raw: the data; cms: detached content"},
        certificate={**_CERT, "description": "raw: the signer certificate"},
        form={"enum": ["raw", "cms"], "default": "cms"}, user_id={"type": ["string", "null"]},
        user_id_hex={"type": ["string", "null"]}, algorithm={"type": ["string", "null"]}, evidence=_BOOL),
    "CertificateVerdict": {"type": "object", "properties": {
        "code": {"enum": [1, -1, -2, -3, -4, -5, -6], "description": "GM/T 0020 SOF_ValidateCert"},
        "meaning": _STR, "indication": {"enum": ["TOTAL_PASSED", "TOTAL_FAILED", "INDETERMINATE"]},
        "sub_indication": {"type": ["string", "null"]}, "reason": _STR, "details": {"type": "object"}}},
    "VerifyReport": {"type": "object", "properties": {
        "kind": _STR, "valid": {"type": "boolean"}, "indication": _STR, "sub_indication": {"type": ["string", "null"]},
        "reason": _STR, "certificate_code": _INT, "detached": {"type": ["boolean", "null"]},
        "content_sha256": {"type": ["string", "null"]}, "signers": {"type": "array", "items": {"type": "object"}},
        "findings": {"type": "array"}, "evidence_id": _STR}},
    "CertificateRequest": _obj(["certificate"], certificate=_CERT,
                               at={"type": ["string", "null"], "format": "date-time"}),
    "CertificateInfo": {"type": "object", "properties": {
        "serial": _STR, "subject": _STR, "subject_fields": {"type": "object"}, "issuer": _STR,
        "not_before": _STR, "not_after": _STR, "key_algorithm": _STR, "key_usage": {"type": ["array", "null"]},
        "identity": {"type": "object", "description": "GM/T 0015 extensions: id_card_number, "
                     "unified_social_credit_code, ..."}, "sha256": _STR}},
    "EncryptRequest": _obj(["data", "recipients"], data=_B64,
                           recipients={"type": "array", "items": _CERT, "minItems": 1, "maxItems": 50}),
    "DecryptRequest": _obj(["envelope"], envelope=_B64, key_id=_NINT),
    "Challenge": {"type": "object", "properties": {
        "challenge_id": _STR, "challenge": _STR, "to_sign": {"type": "string", "description": "sign these ASCII bytes"},
        "encoding": _STR, "expires_at": _STR, "ttl": _INT, "application": _STR}},
    "LoginRequest": _obj(["challenge_id", "signature"], challenge_id=_STR, signature=_B64, certificate=_CERT,
                         form={"enum": ["raw", "cms"], "default": "raw"}, evidence=_BOOL),
    "LoginResult": {"type": "object", "properties": {
        "authenticated": {"type": "boolean"},
        "refusal": {"enum": [None, "unknown_challenge", "other_application", "replay", "expired", "signature",
                             "certificate"]},
        "reason": _STR, "challenge_id": _STR, "identity": {"type": ["object", "null"], "properties": {
            "name": _STR, "id_number": {"type": ["string", "null"], "description": "masked 身份证号"},
            "unit": {"type": ["string", "null"]}, "serial": _STR}},
        "verification": {"type": ["object", "null"]}, "evidence_id": _STR}},
}

_P = "/api/v1/trust"
_PATHS = {
    f"{_P}/keys": {
        "post": _op("create an application key in the HSM, certified by our CA", ADMIN,
                    {"description": "created", **_json(_ref("TrustKey"))}, body=_ref("TrustKeyCreate"),
                    status="201", errors=(400, 503)),
        "get": _op("application keys (an application sees its own)", KEY_READERS,
                   {"description": "keys", **_json({"type": "object", "properties": {
                       "keys": {"type": "array", "items": _ref("TrustKey")}}})}),
    },
    f"{_P}/keys/{{key_id}}": {"get": _op("one key", KEY_READERS, {"description": "key", **_json(_ref("TrustKey"))},
                                         params=(_path("key_id"),), errors=(404,))},
    f"{_P}/keys/{{key_id}}/certificate": {"get": _op(
        "the key's certificate and its issuing CA (PEM)", KEY_READERS,
        {"description": "PEM", "content": {"application/pem-certificate-chain": {"schema": _STR}}},
        params=(_path("key_id"),), errors=(404,))},
    **{f"{_P}/keys/{{key_id}}/{action}": {"post": _op(
        f"{action} a key (audited)", ADMIN, {"description": "key", **_json(_ref("TrustKey"))},
        params=(_path("key_id"),), errors=(404,))} for action in ("disable", "enable")},
    f"{_P}/sign": {"post": _op("SOF_SignData / SOF_SignMessage with the caller's own key", APP,
                               {"description": "signature", **_json(_ref("SignResult"))}, body=_ref("SignRequest"),
                               errors=(400, 403, 404, 409, 503))},
    f"{_P}/verify": {"post": _op("SOF_VerifySignedData / SOF_VerifySignedMessage with certificate validation",
                                 VERIFIERS, {"description": "report", **_json(_ref("VerifyReport"))},
                                 body=_ref("VerifyRequest"))},
    f"{_P}/certificates/validate": {"post": _op("SOF_ValidateCert", VERIFIERS, {
        "description": "verdict", **_json(_ref("CertificateVerdict"))}, body=_ref("CertificateRequest"))},
    f"{_P}/certificates/info": {"post": _op("SOF_GetCertInfo", VERIFIERS, {
        "description": "information", **_json(_ref("CertificateInfo"))}, body=_ref("CertificateRequest"))},
    f"{_P}/envelopes/encrypt": {"post": _op("SOF_EncryptData: GM/T 0010 EnvelopedData (SM2 + SM4-CBC)", APP, {
        "description": "envelope", **_json({"type": "object", "properties": {"envelope": _B64, "format": _STR}})},
        body=_ref("EncryptRequest"))},
    f"{_P}/envelopes/decrypt": {"post": _op("SOF_DecryptData with the caller's own encryption key", APP, {
        "description": "content", **_json({"type": "object", "properties": {"data": _B64}})},
        body=_ref("DecryptRequest"), errors=(400, 403, 404))},
    f"{_P}/login/challenges": {"post": _op("a one-time login challenge bound to the caller", APP, {
        "description": "challenge", **_json(_ref("Challenge"))}, status="201")},
    f"{_P}/login": {"post": _op("answer a challenge: signature + certificate -> identity or why not", APP, {
        "description": "decision (refusals too: authenticated false)", **_json(_ref("LoginResult"))},
        body=_ref("LoginRequest"))},
    f"{_P}/evidence/{{record_id}}": {"get": _op(
        "an evidence record: DER CMS SignedData over canonical JSON (?format=json: the record read)",
        ("application", "ra_admin", "auditor"), {"description": "record", "content": {
            "application/pkcs7-mime": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"type": "object"}}}},
        params=(_path("record_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}),), errors=(404,))},
    f"{_P}/openapi.json": {"get": _op("this document", (), {"description": "OpenAPI 3.1 fragment"})},
}

_DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "RA centre trust services (签名验签, 身份认证, 责任认定)", "version": "1"},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                   "schemas": {"Problem": PROBLEM_SCHEMA, **_SCHEMAS}},
    "paths": _PATHS,
}

# request schema -> the views.FIELDS entry it describes (kept equal by a test)
BODIES = {"TrustKeyCreate": "key", "SignRequest": "sign", "VerifyRequest": "verify", "CertificateRequest": "cert",
          "EncryptRequest": "encrypt", "DecryptRequest": "decrypt", "LoginRequest": "login"}


def openapi_document() -> dict:
    """The trust services alone (served at /api/v1/trust/openapi.json)."""
    return copy.deepcopy(_DOCUMENT)


def openapi_fragment() -> dict:
    """This package's share of the service's one document (racentre.openapi)."""
    return fragment(copy.deepcopy(_PATHS), copy.deepcopy(_SCHEMAS), tags=[(
        TAG, "trust services for applications (GM/T 0029/0020 SOF_*): signing, verification, certificate login, "
             "envelopes, evidence")])
