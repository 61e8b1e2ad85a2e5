"""The KMC's share of the OpenAPI 3.1 document (kms.views): the GM/T 0014 endpoint, M-of-N key recovery
requests and approvals (GM/T 0014 §7, the centre's four-eyes rule), KEK rotation and disaster-recovery
export/import."""
from __future__ import annotations

from gmt0014.messages import CONTENT_TYPE
from kms.schemas import EXPORT, IMPORT, OPEN_REQUEST, REWRAP_QUERY
from pkicore.openapi import binary_content, fragment, json_content, op, path_param, ref, text_content

TAG = "KMC"
OFFICER, ADMIN, AUDITOR = "key_recovery_officer", "ra_admin", "auditor"
RID = path_param("rid", description="the approval request", example=12)

APPROVAL = {"type": "object", "properties": {
    "id": {"type": "integer"}, "purpose": {"enum": ["recover", "destroy", "export"]},
    "key_id": {"type": ["integer", "null"]},
    "state": {"type": "string", "description": "pending, approved, used, expired, refused"},
    "requested_by": {"type": "string"}, "reason": {"type": "string"}, "required": {"type": "integer"},
    "approvals": {"type": "array", "items": {"type": "string"}}, "expires_at": {"type": "string", "format": "date-time"},
    "recipient": {"type": ["object", "null"], "description": "subject, issuer, serial, SHA-256 fingerprint, "
                                                              "validity, why the recipient is accepted"}}}
APPROVAL_EXAMPLE = {"id": 12, "purpose": "recover", "key_id": 7, "state": "pending", "requested_by": "zhao",
                    "reason": "（2026）浙01刑初12号 判决书", "required": 2, "approvals": [],
                    "expires_at": "2026-12-08T10:00:00+00:00", "recipient": {
                        "subject": "C=CN, O=杭州市公安局, CN=司法取证工作站", "issuer": "C=CN, O=RA Centre, CN=RA Centre SM2 Issuing CA",
                        "serial": "5f3a09c1", "fingerprint_sha256": "9f86d081...", "accepted": "issued by ..."}}
DELIVERY = {"type": "object", "properties": {
    "key_id": {"type": "integer"}, "user_cert_no": {"type": "string"},
    "public_key_info": {"type": "string", "contentEncoding": "base64"},
    "enveloped_key": {"type": "string", "contentEncoding": "base64", "description": "GB/T 35276 SM2EnvelopedKey"},
    "signed_and_enveloped": {"type": "string", "contentEncoding": "base64",
                             "description": "GM/T 0010 SignedAndEnvelopedData"}}}


def _approval(description: str = "the request") -> dict:
    return {"description": description, "content": json_content(ref("KmcApprovalRequest"), APPROVAL_EXAMPLE)}


def openapi_fragment() -> dict:
    return fragment({
        "/kmc/v1/request": {"post": op(
            "GM/T 0014 (ApplyKeyReq, RestoreKeyReq, RevokeKeyReq): a signed DER CARequest in, a signed DER "
            "KMRespond out; refusals are KMRespond errors", TAG, roles=None, errors=(400, 413),
            body_content=binary_content(CONTENT_TYPE),
            ok={"description": "the signed KMRespond", "content": binary_content(CONTENT_TYPE)})},
        "/kmc/v1/certificate": {"get": op("the KMC's signing certificate, PEM", TAG, roles=None, errors=(503,),
                                          ok={"description": "the certificate", "content": text_content(
                                              "application/x-pem-file", "-----BEGIN CERTIFICATE-----\n...")})},
        "/kmc/v1/approval-requests": {"post": op(
            "open a recovery, destruction or export request (M-of-N key-recovery officers approve it)", TAG,
            roles=(ADMIN, OFFICER), status="201", body=OPEN_REQUEST, errors=(400, 404),
            ok=_approval("the new request"))},
        "/kmc/v1/approval-requests/{rid}": {"get": op("one request, with its approvals and recipient", TAG,
                                                      roles=(ADMIN, OFFICER, AUDITOR), params=(RID,), errors=(404,),
                                                      ok=_approval())},
        "/kmc/v1/approval-requests/{rid}/approve": {"post": op(
            "approve as a key-recovery officer (not the requester; each officer once)", TAG, roles=(OFFICER,),
            params=(RID,), errors=(404, 409), ok=_approval())},
        "/kmc/v1/approval-requests/{rid}/recover": {"post": op(
            "carry out an approved recovery: the key enveloped to the request's recipient certificate", TAG,
            roles=(ADMIN, OFFICER), params=(RID,), errors=(400, 404, 409),
            ok={"description": "the delivery", "content": json_content(DELIVERY)})},
        "/kmc/v1/approval-requests/{rid}/destroy": {"post": op(
            "carry out an approved destruction of an archived key", TAG, roles=(ADMIN, OFFICER), params=(RID,),
            errors=(400, 404, 409), ok=_approval())},
        "/kmc/v1/approval-requests/{rid}/export": {"post": op(
            "carry out an approved archive export to a disaster-recovery KMC's key (HSM to HSM, signed)", TAG,
            roles=(ADMIN, OFFICER), params=(RID,), body=EXPORT, errors=(400, 404, 409),
            example={"dr_public_key_info": "MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE..."},
            ok={"description": "the signed export", "content": json_content(
                {"type": "object", "properties": {"payload": {"type": "string"}, "signature": {"type": "string"}}})})},
        "/kmc/v1/dr-key": {"get": op("this KMC's disaster-recovery public key (exports to it)", TAG, roles=(ADMIN,),
                                     errors=(), ok={"description": "the key", "content": json_content(
                                         {"type": "object", "properties": {"public_key_info": {"type": "string"}}},
                                         {"public_key_info": "MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAE..."})})},
        "/kmc/v1/import": {"post": op(
            "import another KMC's export made to our DR key (its signature checked first)", TAG, roles=(ADMIN,),
            body=IMPORT, errors=(400, 409), example={"export": "eyJwYXlsb2FkIjog...", "exporter_certificate": "MIIB..."},
            ok={"description": "how many keys", "content": json_content(
                {"type": "object", "properties": {"imported": {"type": "integer"}}}, {"imported": 120})})},
        "/kmc/v1/kek": {"get": op("the key-encryption keys and how many archived keys each wraps", TAG,
                                  roles=(ADMIN, AUDITOR), errors=(), ok={"description": "the KEKs", "content": json_content(
                                      {"type": "object"}, {"keks": [{"version": 1, "label": "kmc-kek-1",
                                                                     "state": "active", "rows": 1200}]})})},
        "/kmc/v1/kek/rotate": {"post": op("make a new KEK the active one (old keys are rewrapped in batches)", TAG,
                                          roles=(ADMIN,), errors=(409,), ok={"description": "the new version",
                                          "content": json_content({"type": "object"}, {"active_version": 2})})},
        "/kmc/v1/kek/rewrap": {"post": op("rewrap one batch of archived keys under the active KEK", TAG,
                                          roles=(ADMIN,), query=REWRAP_QUERY, errors=(400,),
                                          ok={"description": "how many moved", "content": json_content(
                                              {"type": "object"}, {"moved": 500})})},
    }, {"KmcApprovalRequest": APPROVAL},
        tags=[(TAG, "the key-management centre: escrow (GM/T 0014), M-of-N recovery, KEKs, disaster recovery")])
