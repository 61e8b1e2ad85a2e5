"""The seal service's share of the OpenAPI 3.1 document (seal.views): GB/T 38540 seals, sealing PDF/OFD
documents and verification."""
from __future__ import annotations

from pkicore.openapi import binary_content, fragment, json_content, op, path_param, ref, text_content
from seal.schemas import AUTHORISE_BODY, LIST_QUERY, MAKE_FORM, SIGN_QUERY, STATUS_BODY, VERIFY_QUERY

TAG = "Seal"
ADMIN = ("ra_admin",)
READERS = ("ra_admin", "auditor", "ra_officer", "ra_operator", "api_client")
SEALERS = ("api_client", "ra_operator", "ra_officer", "ra_admin")
SEAL_ID = path_param("seal_id", example=3)
SEAL = {"type": "object", "properties": {
    "id": {"type": "integer"}, "es_id": {"type": "string"}, "unit": {"type": "string"}, "name": {"type": "string"},
    "seal_type": {"type": "string"}, "status": {"enum": ["active", "suspended", "revoked", "expired"]},
    "valid_start": {"type": "string", "format": "date-time"}, "valid_end": {"type": "string", "format": "date-time"},
    "width_mm": {"type": "integer"}, "height_mm": {"type": "integer"}, "picture_type": {"type": "string"},
    "users": {"type": "array", "items": {"type": "string"}}, "signers": {"type": "array", "items": {"type": "string"}}}}
SEAL_EXAMPLE = {"id": 3, "es_id": "RACENTRE3301000000003", "unit": "杭州市数据资源局", "name": "杭州市数据资源局电子公章",
                "seal_type": "official", "status": "active", "valid_start": "2026-01-01T00:00:00+00:00",
                "valid_end": "2027-01-01T00:00:00+00:00", "width_mm": 40, "height_mm": 40, "picture_type": "png",
                "users": ["app-oa"], "signers": ["C=CN, O=杭州市数据资源局, CN=杭州市数据资源局"]}
DOCUMENT = binary_content("application/pdf", "application/ofd", "application/octet-stream")


def _seal(description: str = "the seal") -> dict:
    return {"description": description, "content": json_content(ref("Seal"), SEAL_EXAMPLE)}


def openapi_fragment() -> dict:
    form = MAKE_FORM.json_schema()
    form["properties"]["picture"] = {"type": "string", "format": "binary", "description": "PNG, JPEG or GIF"}
    form["properties"]["certificate"] = {"type": "string", "format": "binary", "description": "PEM or DER"}
    form["required"] = [*form.get("required", []), "picture", "certificate"]
    return fragment({
        "/seal/seals": {
            "post": op("make a seal (GB/T 38540 SESeal) for a unit, signed by the centre's seal maker", TAG,
                       roles=ADMIN, status="201", body_content={"multipart/form-data": {"schema": form}},
                       errors=(400, 409), ok=_seal("the new seal")),
            "get": op("list seals", TAG, roles=READERS, query=LIST_QUERY, errors=(400,),
                      ok={"description": "the seals", "content": json_content(
                          {"type": "object", "properties": {"seals": {"type": "array", "items": ref("Seal")}}},
                          {"seals": [SEAL_EXAMPLE]})})},
        "/seal/seals/{seal_id}": {"get": op("one seal", TAG, roles=READERS, params=(SEAL_ID,), errors=(404,),
                                            ok=_seal())},
        "/seal/seals/{seal_id}/esl": {"get": op("the seal itself (DER SESeal, .esl)", TAG, roles=READERS,
                                                params=(SEAL_ID,), errors=(404,), ok={
                                                    "description": "the seal", "content": binary_content(
                                                        "application/octet-stream")})},
        "/seal/seals/{seal_id}/{action}": {"post": op(
            "suspend, resume or revoke a seal (audited; revocation is final)", TAG, roles=ADMIN, body=STATUS_BODY,
            body_required=False, errors=(400, 404, 409), ok=_seal(),
            params=(SEAL_ID, path_param("action", {"enum": ["suspend", "resume", "revoke"]}, example="suspend")))},
        "/seal/seals/{seal_id}/users": {"post": op("allow a principal to use the seal", TAG, roles=ADMIN,
                                                   params=(SEAL_ID,), body=AUTHORISE_BODY, errors=(400, 404, 409),
                                                   ok=_seal())},
        "/seal/seals/{seal_id}/users/{principal}": {"delete": op(
            "withdraw a principal's use of the seal", TAG, roles=ADMIN, errors=(404,), ok=_seal(),
            params=(SEAL_ID, path_param("principal", {"type": "string", "maxLength": 128}, example="app-oa")))},
        "/seal/seals/{seal_id}/sign": {"post": op(
            "seal a PDF (PAdES) or OFD document; the sealed document comes back", TAG, roles=SEALERS,
            params=(SEAL_ID,), query=SIGN_QUERY, body_content=DOCUMENT, errors=(400, 403, 404, 409),
            ok={"description": "the sealed document", "content": binary_content("application/pdf", "application/ofd")})},
        "/seal/seals/{seal_id}/records": {"get": op("the seal's signing records", TAG, roles=("ra_admin", "auditor"),
                                                    params=(SEAL_ID,), errors=(404,))},
        "/seal/verify": {"post": op(
            "verify every seal and signature in a PDF or OFD document (GB/T 38540 §8, PAdES)", TAG, roles=READERS,
            query=VERIFY_QUERY, body_content=DOCUMENT, errors=(400,),
            ok={"description": "the report (JSON; ?format=text for the human-readable form)",
                "content": {**json_content({"type": "object"}, {"ok": True, "indication": "TOTAL_PASSED",
                                                                "document_type": "pdf", "seals": []}),
                            **text_content("text/plain")}})},
    }, {"Seal": SEAL}, tags=[(TAG, "electronic seals (GB/T 38540): making, sealing PDF/OFD, verification")])
