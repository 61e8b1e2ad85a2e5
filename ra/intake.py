"""受理 (request entry at the counter): register the subject if it is new, record which identity documents
the operator received, and submit the request, in one unit of work, so a refused CSR or identity number
leaves nothing behind (no subject without its request, no request without its documents record).

The document checklist follows the usual practice of Chinese RAs for 公务员 / 单位 / 应用服务器 certificates
(the registration officer sees the applicant's identity documents before the request goes on):

* 公务员: 身份证 and 单位介绍信或授权书;
* 单位: 营业执照或统一社会信用代码证书, 经办人身份证 and 单位授权书;
* 应用服务器: 营业执照或统一社会信用代码证书, 单位授权书 and 域名或 IP 地址的使用证明.

The list received is written to the audit trail (``ra.request.documents``) in the submitting transaction.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from audit.trail import record

from ra import workflow
from ra.errors import ValidationError
from ra.models import RequestType
from ra.workflow import Actor, Policy

DOCUMENTS = ("id_card", "unit_letter", "business_licence", "agent_id_card", "authorisation", "domain_proof")
REQUIRED_DOCUMENTS: dict[str, tuple[str, ...]] = {
    RequestType.CIVIL_SERVANT_DUAL.value: ("id_card", "unit_letter"),
    RequestType.UNIT.value: ("business_licence", "agent_id_card", "authorisation"),
    RequestType.SERVER.value: ("business_licence", "authorisation", "domain_proof"),
}
DOCUMENTS_ACTION = "ra.request.documents"


def check_documents(rtype: str, documents) -> list[str]:
    """The documents received (known keys, in catalogue order); every one the type requires must be there."""
    if rtype not in REQUIRED_DOCUMENTS:
        raise ValidationError(f"request type must be one of {', '.join(REQUIRED_DOCUMENTS)}")
    given = set(documents or ())
    unknown = given - set(DOCUMENTS)
    if unknown:
        raise ValidationError(f"unknown documents: {', '.join(sorted(unknown))}")
    missing = [d for d in REQUIRED_DOCUMENTS[rtype] if d not in given]
    if missing:
        raise ValidationError(f"documents missing for a {rtype} request: {', '.join(missing)}")
    return [d for d in DOCUMENTS if d in given]


def intake(session: Session, actor: Actor, *, type: str, documents, unit_id: int | None = None,
           unit: dict | None = None, person: dict | None = None, server: dict | None = None,
           sign_csr=None, enc_csr=None, policy: Policy = Policy()):
    """Register what is new (``unit``: name, uscc, legal_representative; ``person``: name, id_number,
    department, position, contact; ``server``: host_name, dns_names, ip_addresses), then submit a new
    request of ``type`` for it (``workflow.submit``: CSR parsed, proof of possession and subject checked now)
    and record the documents. Returns the request row."""
    received = check_documents(type, documents)
    if unit is not None:
        unit_row, _ = workflow.add_unit(session, actor, policy=policy, **unit)
        unit_id = unit_row.id
    if unit_id is None:
        raise ValidationError("choose the unit or register a new one")
    if type == RequestType.CIVIL_SERVANT_DUAL.value:
        if not person:
            raise ValidationError("a civil-servant request needs the person")
        subject_id = workflow.add_civil_servant(session, actor, unit_id=unit_id, **person)[0].id
    elif type == RequestType.SERVER.value:
        if not server:
            raise ValidationError("a server request needs the server's host name")
        subject_id = workflow.add_server(session, actor, unit_id=unit_id, **server)[0].id
    else:
        subject_id = unit_id
    req = workflow.submit(session, actor, type=type, subject_id=subject_id, sign_csr=sign_csr,
                          enc_csr=enc_csr or None, policy=policy)
    record(session, actor=actor.name, role=actor.role, action=DOCUMENTS_ACTION, target_type=workflow.TARGET,
           target_id=req.id, documents=received)
    return req
