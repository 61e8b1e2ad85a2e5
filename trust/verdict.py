"""GM/T 0020 SOF_ValidateCert result codes beside the ETSI EN 319 102-1 indication of a certificate or
signature check (REFERENCES §12), so that applications written against either vocabulary read one answer.

| code | GM/T 0020 meaning | from the ETSI sub-indication |
|---|---|---|
| 1 | valid | TOTAL_PASSED (and nothing else) |
| −1 | not trusted | NO_CERTIFICATE_CHAIN_FOUND, CERTIFICATE_CHAIN_GENERAL_FAILURE, CHAIN_CONSTRAINTS_FAILURE |
| −2 | outside the validity period | EXPIRED, OUT_OF_BOUNDS_NO_POE, OUT_OF_BOUNDS_NOT_REVOKED |
| −3 | revoked | REVOKED, REVOKED_NO_POE, REVOKED_CA_NO_POE (any reason but certificateHold) |
| −4 | frozen (suspended) | the same, with reason certificateHold (RFC 5280 §5.3.1) |
| −5 | not yet valid | NOT_YET_VALID |
| −6 | other error | anything else (FORMAT_FAILURE, TRY_LATER, SIG_CONSTRAINTS_FAILURE, ...) |

Code 1 is given only for TOTAL_PASSED: an answer that is not a pass is never reported as valid.
"""
from __future__ import annotations

from pkicore.validation import CertificateResult, Indication, SubIndication

VALID, UNTRUSTED, OUT_OF_VALIDITY, REVOKED, SUSPENDED, NOT_YET_VALID, OTHER = 1, -1, -2, -3, -4, -5, -6

MEANING = {VALID: "有效 (valid)", UNTRUSTED: "不被信任 (not trusted)", OUT_OF_VALIDITY: "超过有效期 (outside the validity period)",
           REVOKED: "已作废 (revoked)", SUSPENDED: "已冻结 (suspended)", NOT_YET_VALID: "尚未生效 (not yet valid)",
           OTHER: "其他错误 (other error)"}

_UNTRUSTED = {SubIndication.NO_CERTIFICATE_CHAIN_FOUND, SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE,
              SubIndication.CHAIN_CONSTRAINTS_FAILURE}
_EXPIRED = {SubIndication.EXPIRED, SubIndication.OUT_OF_BOUNDS_NO_POE, SubIndication.OUT_OF_BOUNDS_NOT_REVOKED}
_REVOKED = {SubIndication.REVOKED, SubIndication.REVOKED_NO_POE, SubIndication.REVOKED_CA_NO_POE}


def is_hold(reason: str | None) -> bool:
    """certificateHold, in asn1crypto's native ("certificate_hold") or human-friendly ("a certificate hold")
    spelling."""
    return reason is not None and "certificate hold" in reason.replace("_", " ").lower()


def sof_code(result: CertificateResult) -> int:
    """The SOF_ValidateCert code of a certificate result (module table)."""
    if result.indication == Indication.TOTAL_PASSED:
        return VALID
    sub = result.sub_indication
    if sub in _REVOKED:
        return SUSPENDED if is_hold(result.revocation_reason) else REVOKED
    if sub in _EXPIRED:
        return OUT_OF_VALIDITY
    if sub == SubIndication.NOT_YET_VALID:
        return NOT_YET_VALID
    if sub in _UNTRUSTED:
        return UNTRUSTED
    return OTHER


def reason_words(result: CertificateResult) -> str:
    """The reason in words: the deciding finding's message, else that the certificate passed."""
    if result.indication == Indication.TOTAL_PASSED:
        return "certificate valid: path to a trust anchor, not revoked, in its validity period, key usage allowed"
    sub = result.sub_indication
    for finding in result.findings:
        if finding.sub_indication == sub:
            return finding.message
    return result.findings[0].message if result.findings else "not valid"


def certificate_verdict(result: CertificateResult) -> dict:
    """The JSON answer of SOF_ValidateCert: code, its meaning, ETSI indication, sub-indication, reason,
    and the full result."""
    code = sof_code(result)
    return {"code": code, "meaning": MEANING[code], "indication": result.indication.value,
            "sub_indication": result.sub_indication.value if result.sub_indication else None,
            "reason": reason_words(result), "details": result.as_dict()}
