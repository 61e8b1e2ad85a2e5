"""The OpenAPI share of the console's counter pages (racentre.console.pages_desk): 受理, the person and unit
registries, roster import and sealing with a preview. Same conventions as racentre.console.openapi."""
from __future__ import annotations

from pkicore.openapi import fragment, op, path_param, query_param
from racentre.console.openapi import HTML, ID, SEE_OTHER, TAG, _form, _page


def openapi_fragment() -> dict:
    text = {"type": "string", "maxLength": 128}
    pem = {"type": "string", "maxLength": 65536, "description": "PKCS#10 (PEM)"}
    binary = {"type": "string", "format": "binary"}
    page = query_param("page", {"type": "integer", "minimum": 1, "maximum": 10000})
    intake_form = _form(["type", "documents"], multipart=True,
                        type={"enum": ["civil-servant-dual", "unit", "server"]},
                        documents={"type": "array", "items": {"enum": ["id_card", "unit_letter", "business_licence",
                                                                        "agent_id_card", "authorisation", "domain_proof"]}},
                        unit_mode={"enum": ["existing", "new"]}, unit_id=ID, unit_name=text,
                        uscc={"type": "string", "maxLength": 18}, legal_representative=text, name=text,
                        id_number={"type": "string", "maxLength": 18}, department=text, position=text,
                        mobile={"type": "string", "maxLength": 20}, email=text,
                        host_name={"type": "string", "maxLength": 253}, dns_names={"type": "string", "maxLength": 4000},
                        ip_addresses={"type": "string", "maxLength": 2000}, sign_csr=pem, sign_csr_file=binary,
                        enc_source={"enum": ["kmc", "csr"]}, enc_csr=pem, enc_csr_file=binary)
    seal_form = _form(["seal_id"], multipart=True, document=binary,
                      document_b64={"type": "string", "description": "the document of the preview step (base64)"},
                      filename=text, seal_id=ID, page={"type": "integer", "minimum": -10000, "maximum": 10000},
                      x_mm={"type": "integer", "minimum": 0, "maximum": 2000},
                      y_mm={"type": "integer", "minimum": 0, "maximum": 2000},
                      anchor={"type": "string", "maxLength": 100}, action={"enum": ["preview", "seal"]})
    return fragment({
        "/console/intake": {
            "get": _page("受理: the request entry form (?type=civil-servant-dual | unit | server)", errors=(),
                         params=(query_param("type", {"enum": ["civil-servant-dual", "unit", "server"]}),
                                 query_param("person_id", ID), query_param("unit_id", ID))),
            "post": op("submit a request at the counter: subject, documents checklist and CSR checked, registered and "
                       "submitted in one transaction; the form comes back filled in with the errors (400/409)", TAG,
                       roles=(), console=True, ok=SEE_OTHER, status="303", body_content=intake_form,
                       errors=(400, 409))},
        "/console/people": {"get": _page("人员: civil servants by name, 身份证号, department or unit", errors=(400,), params=(
            query_param("q", {"type": "string", "maxLength": 64}), query_param("unit_id", ID), page))},
        "/console/people/{person_id}": {"get": _page("one person: facts, requests and certificates",
                                                     params=(path_param("person_id", ID, example=7),))},
        "/console/units": {"get": _page("单位: units by name or 统一社会信用代码", errors=(400,), params=(
            query_param("q", {"type": "string", "maxLength": 128}), page))},
        "/console/units/{unit_id}": {"get": _page("one unit: people, servers, requests and certificates",
                                                  params=(path_param("unit_id", ID, example=3),))},
        "/console/roster": {
            "get": _page("批量导入: the roster upload form", errors=()),
            "post": op("check or import a roster (XLSX/CSV, Chinese headers): one outcome per row; written only when "
                       "every row passes (one transaction)", TAG, roles=(), console=True, ok=HTML,
                       body_content=_form(["roster"], multipart=True, roster=binary, unit_id=ID,
                                          mode={"enum": ["check", "import"]}), errors=(400,))},
        "/console/seals/sign": {
            "get": _page("签章: the sealing form (document, seal, page and position or anchor text)", errors=()),
            "post": op("preview where the seal goes (action=preview: the page sketched with the seal picture) or seal "
                       "the document and download it (action=seal)", TAG, roles=(), console=True, body_content=seal_form,
                       errors=(400, 404, 409, 413), ok={"description": "the preview page (HTML) or the sealed document",
                                                        "content": {"text/html": {"schema": {"type": "string"}},
                                                                    "application/pdf": {"schema": binary},
                                                                    "application/ofd": {"schema": binary}}})},
        "/console/seals/{seal_id}/picture": {"get": op(
            "the seal's picture (印模)", TAG, roles=(), console=True, errors=(404,),
            params=(path_param("seal_id", ID, example=3),),
            ok={"description": "the picture", "content": {"image/png": {"schema": binary}, "image/jpeg": {"schema": binary}}})},
    })
