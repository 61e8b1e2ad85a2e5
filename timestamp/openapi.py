"""The TSA's share of the OpenAPI 3.1 document (timestamp.views): RFC 3161 §3.4 time-stamping over HTTP,
token verification, certificates and the clock's health."""
from __future__ import annotations

from pkicore.inputs import Schema
from pkicore.openapi import binary_content, fragment, json_content, op, path_param, text_content

TAG = "TSA"
UNIT = path_param("unit", {"type": "string", "maxLength": 64}, "a TSA unit (one per key family)", "default")
REPLY = {"description": "a DER TimeStampResp (RFC 3161 §2.4.2); refusals are rejections with HTTP 200",
         "content": binary_content("application/timestamp-reply")}
QUERY = binary_content("application/timestamp-query", "application/timestamp-request")
REPORT = {"type": "object", "properties": {
    "ok": {"type": "boolean"}, "reasons": {"type": "array", "items": {"type": "string"}},
    "warnings": {"type": "array", "items": {"type": "string"}}, "status": {"type": ["string", "null"]},
    "gen_time": {"type": ["string", "null"], "format": "date-time"}, "serial": {"type": ["string", "null"]},
    "policy": {"type": ["string", "null"]}, "digest_algorithm": {"type": ["string", "null"]},
    "nonce": {"type": ["integer", "null"]}, "algorithm": {"type": ["string", "null"]},
    "tsa": {"type": ["string", "null"]}, "chain": {"type": "array", "items": {"type": "string"}}}}
PEM_CHAIN = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"


def openapi_fragment(verify_body: Schema, verify_form: Schema) -> dict:
    form = verify_form.json_schema()
    form["properties"].update({k: {"type": "string", "format": "binary"} for k in ("token", "data", "crl", "ca")})
    form["required"] = ["token"]
    form["additionalProperties"] = False
    stamp = op("time-stamp a digest (RFC 3161 §2.4.1 TimeStampReq, DER)", TAG, roles=None, ok=REPLY,
               body_content=QUERY, errors=(413, 415))
    return fragment({
        "/tsa": {"post": stamp},
        "/tsa/{unit}": {"post": {**stamp, "summary": "time-stamp with one TSA unit", "parameters": [UNIT],
                                 "responses": {**stamp["responses"], "404": {"description": "no such unit"}}}},
        "/tsa/verify": {"post": op(
            "verify a token (or a TimeStampResp) against data or a digest, trust anchors and CRLs", TAG,
            roles=None, errors=(400, 413), ok={"description": "the verdict; a malformed token is ok: false",
                                               "content": json_content(REPORT)},
            body_content={"application/json": {"schema": verify_body.json_schema(), "example": verify_body.example},
                          "multipart/form-data": {"schema": form}})},
        "/tsa/certificate": {"get": op("the default unit's TSA certificate and its CAs, PEM", TAG, roles=None,
                                       errors=(404,), ok={"description": "the chain", "content": text_content(
                                           "application/pem-certificate-chain", PEM_CHAIN)})},
        "/tsa/{unit}/certificate": {"get": op("a unit's TSA certificate and its CAs, PEM", TAG, roles=None,
                                              params=(UNIT,), errors=(404,), ok={"description": "the chain",
                                              "content": text_content("application/pem-certificate-chain", PEM_CHAIN)})},
        "/tsa/health": {"get": op("the clock's state (synchronised, estimated error) and the units", TAG,
                                  roles=None, errors=(503,), ok={"description": "health", "content": json_content(
                                      {"type": "object"}, {"status": "ok", "clock": {"synchronised": True},
                                                           "units": {"default": {"algorithm": "sm2-sm3"}}})})},
    }, tags=[(TAG, "the time-stamp authority, RFC 3161 / GM/T 0033 (public)")])
