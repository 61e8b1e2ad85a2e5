"""The console's share of the OpenAPI 3.1 document (racentre.console): HTML pages and the forms they post
(a console session cookie; state-changing forms carry the session's csrf_token). Their roles are filled
in from the routes by racentre.openapi."""
from __future__ import annotations

from pkicore.inputs import MAX_ID
from pkicore.openapi import fragment, json_content, op, path_param, query_param
from ra.models import MAX_STATUS_REASON

TAG = "Console"
HTML = {"description": "the page (HTML)", "content": {"text/html": {"schema": {"type": "string"}}}}
SEE_OTHER = {"description": "done: redirect (303) to the page that shows the result",
             "headers": {"Location": {"schema": {"type": "string"}}}}
CSRF = {"type": "string", "description": "the session's CSRF token (a hidden field of every console form)"}
ID = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
CA_NAME = path_param("ca_name", {"type": "string", "maxLength": 64}, example="sm2-issuing")
SERIAL = path_param("serial", {"type": "string", "maxLength": 64}, "hex, as printed on certificates", "5f3a09c1")
REASONS = ["unspecified", "key_compromise", "ca_compromise", "affiliation_changed", "superseded",
           "cessation_of_operation", "certificate_hold", "privilege_withdrawn"]


def _form(required: list[str] | None = None, multipart: bool = False, **props) -> dict:
    schema = {"type": "object", "properties": {"csrf_token": CSRF, **props}, "required": ["csrf_token", *(required or [])]}
    return {"multipart/form-data" if multipart else "application/x-www-form-urlencoded": {"schema": schema}}


STATUS_REASON = {"type": "string", "maxLength": MAX_STATUS_REASON,
                 "description": "the officer's reason in their own words: shown on the request, audited"}
_HOLD_FORM = _form(status_reason=STATUS_REASON)
_HOLD_FORM["application/x-www-form-urlencoded"]["example"] = {"csrf_token": "…",
                                                              "status_reason": "本人电话挂失：USB Key 遗失"}


def _page(summary: str, *, params=(), errors=(404,)) -> dict:
    return op(summary, TAG, roles=(), console=True, ok=HTML, params=params, errors=errors)


def _post(summary: str, form: dict, *, params=(), errors=(400, 404, 409)) -> dict:
    return op(summary, TAG, roles=(), console=True, ok=SEE_OTHER, status="303", body_content=form, params=params,
              errors=errors)


def openapi_fragment() -> dict:
    rid = path_param("rid", ID, example=101)
    seal_id = path_param("seal_id", ID, example=3)
    job_id = path_param("job_id", ID, example=9)
    text = {"type": "string", "maxLength": 256}
    login_form = {"application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["csrf_token", "name"], "properties": {
        "csrf_token": CSRF, "name": {"type": "string", "maxLength": 128}, "password": {"type": "string", "maxLength": 1024},
        "otp": {"type": "string", "pattern": "^[0-9]{6}$"}, "next": {"type": "string", "maxLength": 512}}}}}
    return fragment({
        "/console/": {"get": _page("the officer's home: queues and the site's health", errors=())},
        "/console/login": {
            "get": op("the login page", TAG, roles=None, ok=HTML, errors=()),
            "post": op("log in with name, password and TOTP (locked out after repeated failures)", TAG, roles=None,
                       ok=SEE_OTHER, status="303", body_content=login_form, errors=(400, 401, 403))},
        "/console/login/certificate": {"post": op(
            "log in with the client certificate a trusted TLS proxy passed on", TAG, roles=None, ok=SEE_OTHER,
            status="303", body_content=_form(), errors=(400, 401, 403))},
        "/console/logout": {"post": _post("log out", _form(), errors=(400,))},
        "/console/requests": {"get": _page("certificate requests, filtered and paged", errors=(400,), params=(
            query_param("state", {"type": "string", "maxLength": 32}), query_param("type", {"type": "string", "maxLength": 32}),
            query_param("unit_id", ID), query_param("after_id", ID)))},
        "/console/requests/{rid}": {"get": _page("one request: subject, checks, approvals, certificates", params=(rid,))},
        "/console/requests/{rid}/vet": {"post": _post("vet a request (受理审核): run and record the checks", _form(
            documents_checked={"enum": ["yes", "no"]}, note=text), params=(rid,))},
        "/console/requests/{rid}/approve": {"post": _post("approve a request (批准); at the threshold the CA issues",
                                                          _form(), params=(rid,))},
        "/console/requests/approve": {"post": _post("approve the selected requests (bulk; one outcome each)", _form(
            ["request_id"], request_id={"type": "array", "items": ID, "maxItems": 500}))},
        "/console/requests/{rid}/reject": {"post": _post("reject a request with a reason", _form(["reason"], reason=text),
                                                         params=(rid,))},
        "/console/certificates": {"get": _page("search certificates by name, 身份证号, unit, serial, host", errors=(400,),
                                               params=(query_param("q", {"type": "string", "maxLength": 200}),
                                                       query_param("status", {"type": "string", "maxLength": 16})))},
        "/console/certificates/{ca_name}/{serial}": {"get": _page("one certificate: subject, chain, status",
                                                                  params=(CA_NAME, SERIAL), errors=(400, 404))},
        "/console/certificates/{ca_name}/{serial}/request-revocation": {"post": _post(
            "open an RA revocation request for the certificate", _form(reason={"enum": REASONS},
                                                                        status_reason=STATUS_REASON),
            params=(CA_NAME, SERIAL))},
        "/console/certificates/{ca_name}/{serial}/revoke": {"post": _post(
            "revoke a certificate not issued through the RA (the centre's own)", _form(reason={"enum": REASONS}),
            params=(CA_NAME, SERIAL))},
        "/console/seals": {"get": _page("seals", errors=(400,), params=(query_param("status", {"type": "string", "maxLength": 16}),)),
                           "post": _post("make a seal", _form(
                               ["unit", "name", "type", "key_label", "picture", "certificate"], multipart=True,
                               unit={"type": "string", "maxLength": 128}, name={"type": "string", "maxLength": 128},
                               type={"type": "string", "maxLength": 32}, key_label={"type": "string", "maxLength": 128},
                               width_mm={"type": "integer", "minimum": 1, "maximum": 1000},
                               height_mm={"type": "integer", "minimum": 1, "maximum": 1000},
                               valid_days={"type": "integer", "minimum": 1, "maximum": 36500},
                               users={"type": "string", "maxLength": 4096},
                               picture={"type": "string", "format": "binary"},
                               certificate={"type": "string", "format": "binary"}))},
        "/console/seals/{seal_id}/users": {"post": _post("allow a principal to use a seal", _form(
            ["principal"], principal={"type": "string", "maxLength": 128}), params=(seal_id,))},
        "/console/seals/{seal_id}/{action}": {"post": _post("suspend or resume a seal", _form(reason=text), params=(
            seal_id, path_param("action", {"enum": ["suspend", "resume"]}, example="suspend")))},
        "/console/seals/verify": {
            "get": _page("the seal verification page", errors=()),
            "post": op("verify an uploaded sealed document", TAG, roles=(), console=True, ok=HTML,
                       body_content=_form(["document"], multipart=True, document={"type": "string", "format": "binary"}),
                       errors=(400,))},
        "/console/recovery": {"get": _page("key recovery requests awaiting approval; ?q= looks up a person, "
                                           "身份证号 or hex serial", errors=(),
                                           params=(query_param("q", {"type": "string", "maxLength": 200}),))},
        "/console/recovery/open": {"post": _post("open a recovery request for a certificate's escrowed key", _form(
            ["ca", "serial", "recipient_certificate", "reason"], ca={"type": "string", "maxLength": 64},
            serial={"type": "string", "maxLength": 64, "description": "hex, as printed on certificates"},
            recipient_certificate={"type": "string", "maxLength": 65536, "description": "PEM"}, reason=text))},
        "/console/statistics": {"get": _page("统计: issued, revoked and pending per unit for a period; ?format=csv "
                                             "exports it", errors=(400,), params=(
            query_param("from", {"type": "string", "format": "date"}), query_param("to", {"type": "string", "format": "date"}),
            query_param("format", {"enum": ["html", "csv"]})))},
        "/console/requests/{rid}/return": {"post": _post("退回补正: return a request to its submitter for correction",
                                                         _form(["reason"], reason=text), params=(rid,))},
        "/console/requests/{rid}/resubmit": {"post": _post("resubmit a returned request (optionally with a new CSR)",
                                                           _form(csr={"type": "string", "maxLength": 65536}),
                                                           params=(rid,))},
        "/console/certificates/{ca_name}/{serial}.{fmt}": {"get": op(
            "download a certificate: PEM, DER, or PEM with its chain", TAG, roles=(), console=True, errors=(400, 404),
            params=(CA_NAME, SERIAL, path_param("fmt", {"enum": ["pem", "der", "chain"]}, example="pem")),
            ok={"description": "the certificate", "content": {"application/x-pem-file": {"schema": {"type": "string"}},
                                                               "application/pkix-cert": {"schema": {
                                                                   "type": "string", "format": "binary"}}}})},
        "/console/certificates/{ca_name}/{serial}/emergency-revoke": {"post": _post(
            "emergency revocation for key compromise: one officer, a justification, audited",
            _form(["justification"], justification={"type": "string", "maxLength": 1024}), params=(CA_NAME, SERIAL))},
        "/": {"get": op("the front page: a redirect to the officers' console", TAG, roles=None, errors=(), status="302",
                        ok={"description": "redirect to /console/", "headers": {
                            "Location": {"schema": {"type": "string"}}}})},
        "/console/recovery/{rid}/approve": {"post": _post("approve a key recovery request", _form(),
                                                          params=(path_param("rid", ID, example=12),))},
        "/console/recovery/{rid}/recover": {"post": op(
            "execute an approved key recovery: the key enveloped to the request's recipient, downloaded once", TAG,
            roles=(), console=True, errors=(400, 403, 404, 409),
            body_content=_form(format={"enum": ["sm2-enveloped-key", "signed-and-enveloped"]}),
            params=(path_param("rid", ID, example=12),),
            ok={"description": "the enveloped key (DER)", "content": {"application/octet-stream": {"schema": {
                "type": "string", "format": "binary"}}}})},
        "/console/audit": {"get": _page("the audit trail, filtered; ?verify=1 checks the chain", errors=(400,), params=(
            query_param("actor", {"type": "string", "maxLength": 128}), query_param("action", {"type": "string", "maxLength": 64}),
            query_param("target", {"type": "string", "maxLength": 160}), query_param("before", ID),
            query_param("verify", {"enum": ["1"]})))},
        "/console/jobs": {"get": _page("background jobs (CRL, KEK rotation, roster import)", errors=())},
        "/console/jobs/{job_id}": {"get": _page("one job", params=(job_id,))},
        "/console/jobs/{job_id}.json": {"get": op("one job's state (polled by its page)", TAG, roles=(), console=True,
                                                  params=(job_id,), errors=(404,), ok={"description": "the job",
                                                  "content": json_content({"type": "object"})})},
        "/console/jobs/{job_id}/resume": {"post": _post("resume an interrupted job", _form(), params=(job_id,))},
        "/console/jobs/crl": {"post": _post("publish CRLs now", _form())},
        "/console/jobs/kek-rotation": {"post": _post("rotate the KMC's KEK and rewrap in the background", _form())},
        "/console/jobs/import": {"post": _post("import a roster of civil servants (CSV, Chinese headers)", _form(
            ["unit_id", "roster"], multipart=True, unit_id=ID, roster={"type": "string", "format": "binary"}))},
        "/console/certificates/{ca_name}/{serial}/{action}": {"post": _post(
            "冻结/解冻: open a suspension (certificateHold) or release (removeFromCRL) request for the certificate's RA "
            "request, four-eyes like revocation, with the officer's reason (status_reason, free text)", _HOLD_FORM, params=(
                CA_NAME, SERIAL, path_param("action", {"enum": ["suspend", "resume"]}, example="suspend")))},
        "/console/certificates/{ca_name}/{serial}/renew": {
            "get": _page("换发/补发: the renewal, re-key or re-issue form for a certificate", errors=(400, 404), params=(
                CA_NAME, SERIAL, query_param("kind", {"enum": ["renewal", "rekey", "reissue"]}))),
            "post": _post("open a renewal, re-key or re-issue request (vetted and approved like issuance)", _form(
                ["kind"], kind={"enum": ["renewal", "rekey", "reissue"]},
                csr={"type": "string", "maxLength": 20000, "description": "PEM; optional for a renewal"},
                enc_csr={"type": "string", "maxLength": 20000, "description": "PEM; a dual pair's encryption CSR"}),
                params=(CA_NAME, SERIAL))},
        "/console/certificates/{ca_name}/{serial}/envelope": {"get": op(
            "download the KMC's envelope of a dual-certificate subscriber's encryption key (p7: GM/T 0010 "
            "SignedAndEnvelopedData; sm2env: GB/T 35276 SM2EnvelopedKey), audited", TAG, roles=(), console=True,
            errors=(400, 404), params=(CA_NAME, SERIAL, query_param("format", {"enum": ["p7", "sm2env"]})),
            ok={"description": "the envelope (DER)", "content": {"application/octet-stream": {"schema": {
                "type": "string", "format": "binary"}}}})},
        "/console/expiring": {"get": _page("即将过期: certificates in force ending within N days (default [console] "
                                           "expiry_notice_days), per unit; ?format=csv exports them", errors=(400,),
                                           params=(query_param("days", {"type": "integer", "minimum": 1, "maximum": 3660}),
                                                   query_param("unit", {"type": "string", "maxLength": 128}),
                                                   query_param("format", {"enum": ["html", "csv"]})))},
        "/console/static/{filename}": {"get": op("the console's style sheets and scripts", TAG, roles=None, errors=(404,),
                                                 params=(path_param("filename", {"type": "string", "maxLength": 128},
                                                                    example="console.css"),),
                                                 ok={"description": "the file", "content": {"text/css": {}}})},
    }, tags=[(TAG, "the officers' web console (HTML pages and forms; session cookie and CSRF token)")])
