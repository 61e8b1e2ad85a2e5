"""The CA's share of the OpenAPI 3.1 document (ca_bridge.views): CA certificates, CRLs (RFC 5280 §5,
RFC 2585 media types), the OCSP responder (RFC 6960 Appendix A, RFC 5019) and the certificate look-up."""
from __future__ import annotations

from pkicore.inputs import MAX_SERIAL_OCTETS
from pkicore.openapi import binary_content, fragment, json_content, op, path_param, query_param, text_content

CA, OCSP, CMP = "CA", "OCSP", "CMP"
NAME = path_param("name", {"type": "string", "maxLength": 64}, "the CA's name (GET /ca lists them)", "sm2-issuing")
SERIAL = {"type": "string", "pattern": "^(0x)?[0-9a-fA-F:]{1,%d}$" % (3 * MAX_SERIAL_OCTETS + 2),
          "description": "hexadecimal, as printed on certificates (RFC 5280 §4.1.2.2: at most 20 octets)"}
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n"

CA_LIST = {"type": "object", "properties": {"authorities": {"type": "array", "items": {
    "type": "object", "properties": {"name": {"type": "string"}, "algorithm": {"type": "string"},
                                     "parent": {"type": ["string", "null"]}, "ocsp": {"type": "boolean"}}}}}}
CERTIFICATE = {"type": "object", "properties": {
    "ca": {"type": "string"}, "serial": {"type": "string"}, "request_id": {"type": ["string", "null"]},
    "profile": {"type": "string"}, "subject": {"type": "string"},
    "not_before": {"type": "string", "format": "date-time"}, "not_after": {"type": "string", "format": "date-time"},
    "status": {"enum": ["good", "revoked"]}, "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    "reason": {"type": ["string", "null"]}, "certificate": {"type": "string", "description": "PEM"}}}
OCSP_BODY = {"description": "a DER OCSPResponse (RFC 6960 §4.2.1); protocol errors are OCSPResponses too "
                            "(malformedRequest, unauthorized, ...) with HTTP 200",
             "content": binary_content("application/ocsp-response")}


def _der(kind: str, mimetype: str) -> dict:
    return {"description": kind, "content": binary_content(mimetype)}


def openapi_fragment() -> dict:
    ocsp_post = op("OCSP (RFC 6960 §4.1, Appendix A.1): POST the DER OCSPRequest", OCSP, roles=None,
                   ok=OCSP_BODY, body_content=binary_content("application/ocsp-request"), errors=(404, 413, 415))
    cmp_post = op("a CMP request (ir, cr, p10cr, kur, rr, certConf, pollReq, genm): a DER PKIMessage, protected "
                  "by MAC (a one-time secret) or by the sender's signature", CMP, roles=None,
                  body_content=binary_content("application/pkixcmp"), errors=(400, 413, 415),
                  ok={"description": "the DER PKIMessage answer; CMP errors are PKIMessages with PKIStatusInfo "
                                     "and PKIFailureInfo (a malformed body: 400 with an error message)",
                      "content": binary_content("application/pkixcmp")})
    return fragment({
        "/ca": {"get": op("the CAs this service runs", CA, roles=None, errors=(), ok={
            "description": "the directory", "content": json_content(CA_LIST, {"authorities": [
                {"name": "sm2-root", "algorithm": "sm2-sm3", "parent": None, "ocsp": False},
                {"name": "sm2-issuing", "algorithm": "sm2-sm3", "parent": "sm2-root", "ocsp": True}]})})},
        "/ca/{name}/cert": {"get": op(
            "a CA certificate, DER (RFC 5280 §4.2.2.1 caIssuers); ?format=pem for PEM", CA, roles=None,
            params=(NAME, query_param("format", {"enum": ["der", "pem"]})), errors=(404,),
            ok={"description": "the certificate", "content": {**binary_content("application/pkix-cert"),
                                                              **text_content("application/x-pem-file", PEM_CERT)}})},
        "/ca/{name}/cert.pem": {"get": op("a CA certificate, PEM", CA, roles=None, params=(NAME,), errors=(404,),
                                          ok={"description": "the certificate",
                                              "content": text_content("application/x-pem-file", PEM_CERT)})},
        "/ca/{name}/chain.pem": {"get": op("a CA certificate up to its root, PEM", CA, roles=None, params=(NAME,),
                                           errors=(404,), ok={"description": "the chain", "content":
                                                              text_content("application/x-pem-file", PEM_CERT)})},
        "/ca/{name}/crl": {"get": op("the current full CRL, DER (RFC 5280 §5)", CA, roles=None, params=(NAME,),
                                     errors=(404,), ok=_der("the CRL", "application/pkix-crl"))},
        "/ca/{name}/delta-crl": {"get": op("the current delta CRL (RFC 5280 §5.2.4)", CA, roles=None,
                                           params=(NAME,), errors=(404,), ok=_der("the delta CRL", "application/pkix-crl"))},
        "/ocsp": {"post": ocsp_post},
        "/ocsp/{name}": {"post": {**ocsp_post, "parameters": [NAME]}},
        "/ocsp/{name}/{encoded}": {"get": op(
            "OCSP for caching proxies (RFC 5019 §5, RFC 6960 A.1): the base64 DER OCSPRequest in the path",
            OCSP, roles=None, errors=(404, 413), ok=OCSP_BODY,
            params=(NAME, path_param("encoded", {"type": "string", "maxLength": 87400},
                                     "URL-encoded base64 of the DER OCSPRequest", "MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ"))
        )},
        "/api/v1/certificates/{ca}/{serial}": {"get": op(
            "one certificate the CA issued, with its status", CA, roles=("api_client", "ra_officer", "auditor"),
            params=(path_param("ca", {"type": "string", "maxLength": 64}, example="sm2-issuing"),
                    path_param("serial", SERIAL, example="5f3a09c1")), errors=(400, 404),
            ok={"description": "the certificate", "content": json_content(CERTIFICATE)})},
        "/.well-known/cmp": {"post": cmp_post},
        "/.well-known/cmp/p/{profile}": {"post": {**cmp_post, "parameters": [path_param(
            "profile", {"type": "string", "maxLength": 64}, "the certificate profile (RFC 9483 §6.1)", "server")]}},
    }, tags=[(CA, "CA certificates and CRLs (public)"), (OCSP, "the OCSP responder (public)"),
             (CMP, "CMP (RFC 4210/9480, Lightweight CMP RFC 9483, HTTP transport RFC 6712)")])
