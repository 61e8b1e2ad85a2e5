"""Verification reports for sealed documents and bare seals: per seal an ETSI EN 319 102-1 indication
(TOTAL_PASSED / TOTAL_FAILED / INDETERMINATE) with its sub-indication and the reasons in words, and,
separately, whether the cryptographic signatures themselves verified — "intact, but the chain is unknown"
is INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND, never valid. Rendered as JSON, English text and Chinese
(the console) from the same facts; the shape follows pyHanko's validation status objects (frozen facts
plus one verdict)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from pkicore.validation import Finding, Indication, SubIndication, failed, indeterminate, worst

VERDICT_WORDS = {Indication.TOTAL_PASSED: "valid", Indication.TOTAL_FAILED: "invalid",
                 Indication.INDETERMINATE: "indeterminate"}
VERDICT_ZH = {Indication.TOTAL_PASSED: "有效", Indication.TOTAL_FAILED: "无效",
              Indication.INDETERMINATE: "无法确定"}
SUB_INDICATION_ZH = {
    SubIndication.FORMAT_FAILURE: "格式错误", SubIndication.HASH_FAILURE: "文档或数据已被改动",
    SubIndication.SIG_CRYPTO_FAILURE: "签名值验证失败", SubIndication.REVOKED: "证书已吊销",
    SubIndication.EXPIRED: "证书或印章在签署时已过期", SubIndication.NOT_YET_VALID: "证书或印章在签署时尚未生效",
    SubIndication.SIG_CONSTRAINTS_FAILURE: "不符合签章约束", SubIndication.CHAIN_CONSTRAINTS_FAILURE: "证书链不符合约束",
    SubIndication.CERTIFICATE_CHAIN_GENERAL_FAILURE: "证书链验证失败",
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE: "算法不被接受", SubIndication.SIGNED_DATA_NOT_FOUND: "找不到被签数据",
    SubIndication.NO_SIGNING_CERTIFICATE_FOUND: "找不到签名证书",
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: "证书不能链接到受信任的根证书",
    SubIndication.REVOKED_NO_POE: "证书已吊销，且无时间戳证明签署早于吊销",
    SubIndication.REVOKED_CA_NO_POE: "上级CA证书已吊销，且无时间戳证明签署早于吊销",
    SubIndication.OUT_OF_BOUNDS_NO_POE: "证书或印章已过期，且无时间戳证明签署时仍有效",
    SubIndication.OUT_OF_BOUNDS_NOT_REVOKED: "证书已过期（未吊销）", SubIndication.TRY_LATER: "暂时无法确定证书状态",
}


@dataclass(frozen=True)
class SealVerdict:
    """One seal or signature (OFD Signature, PDF signature field, bare .esl seal)."""

    index: int
    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    kind: str = ""                    # "ofd-seal" | "ofd-sign" | "pdf-cms" | "esl"
    name: str | None = None           # signature ID / field name
    signature_intact: bool | None = None   # the cryptographic signatures (document + seal maker) verified
    seal_name: str | None = None
    es_id: str | None = None
    signer: str | None = None
    signing_time: str | None = None   # as the signer claims it
    timestamp_time: str | None = None  # as a timestamp proves it
    validation_time: str | None = None
    time_proven: bool = False
    details: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def indication(self) -> Indication:
        return worst(self.findings)[0]

    @property
    def sub_indication(self) -> SubIndication | None:
        return worst(self.findings)[1]

    @property
    def ok(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings)

    def as_dict(self) -> dict:
        sub = self.sub_indication
        return {"index": self.index, "indication": self.indication.value, "sub_indication": sub.value if sub else None,
                "signature_intact": self.signature_intact, "ok": self.ok,
                "verdict": VERDICT_WORDS[self.indication], "verdict_zh": VERDICT_ZH[self.indication],
                "sub_indication_zh": SUB_INDICATION_ZH.get(sub) if sub else None,
                "reasons": list(self.reasons), "findings": [f.as_dict() for f in self.findings],
                "warnings": list(self.warnings), "kind": self.kind, "name": self.name, "seal_name": self.seal_name,
                "es_id": self.es_id, "signer": self.signer, "signing_time": self.signing_time,
                "timestamp_time": self.timestamp_time, "validation_time": self.validation_time,
                "time_proven": self.time_proven, "details": self.details}

    def headline(self) -> str:
        sub = self.sub_indication
        return self.indication.value + (f" / {sub.value}" if sub else "")


@dataclass(frozen=True)
class DocumentReport:
    """Every seal of one document and the document's verdict: TOTAL_PASSED only if every seal passed and
    nothing is wrong at the document level."""

    document_type: str                # "ofd" | "pdf" | "esl" | "unknown"
    seals: tuple[SealVerdict, ...] = ()
    findings: tuple[Finding, ...] = ()     # document-level problems (unreadable, unsealed)
    warnings: tuple[str, ...] = ()
    sha256: str | None = None

    @property
    def indication(self) -> Indication:
        return worst([*self.findings, *(Finding(s.indication, s.sub_indication, s.reasons[0] if s.reasons else "")
                                        for s in self.seals if not s.ok)])[0]

    @property
    def sub_indication(self) -> SubIndication | None:
        return worst([*self.findings, *(Finding(s.indication, s.sub_indication, "") for s in self.seals
                                        if not s.ok)])[1]

    @property
    def ok(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings)

    def as_dict(self) -> dict:
        sub = self.sub_indication
        return {"document_type": self.document_type, "indication": self.indication.value,
                "sub_indication": sub.value if sub else None, "ok": self.ok,
                "verdict": VERDICT_WORDS[self.indication], "verdict_zh": VERDICT_ZH[self.indication],
                "reasons": list(self.reasons), "findings": [f.as_dict() for f in self.findings],
                "warnings": list(self.warnings), "sha256": self.sha256, "seals": [s.as_dict() for s in self.seals]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2, default=str)

    def to_text(self) -> str:
        sub = self.sub_indication
        lines = [f"{self.document_type.upper()} document: {self.indication.value}" + (f" / {sub.value}" if sub else "")
                 + (f" (sha256 {self.sha256})" if self.sha256 else "")]
        lines += [f"  ! {r}" for r in self.reasons]
        lines += [f"  ~ {w}" for w in self.warnings]
        for s in self.seals:
            intact = {True: "intact", False: "BROKEN", None: "not checked"}[s.signature_intact]
            if s.kind == "esl":
                lines.append(f"  seal {s.es_id or '?'}: {s.headline()} (maker's signature {intact})"
                             f" — {s.seal_name or '?'} made by {s.signer or '?'}, checked at {s.validation_time}")
            else:
                lines.append(f"  seal #{s.index} {s.name or ''}: {s.headline()} (signature {intact})"
                             f" — {s.seal_name or '?'} signed by {s.signer or '?'} at {s.signing_time or '?'}"
                             + (f", timestamp {s.timestamp_time}" if s.timestamp_time else ", no timestamp"))
            lines += [f"      ! {r}" for r in s.reasons]
            lines += [f"      ~ {w}" for w in s.warnings]
        return "\n".join(lines)


def combine(document_type: str, seals: list[SealVerdict], findings: list[Finding], sha256: str | None,
            warnings: list[str] = ()) -> DocumentReport:
    if not seals and not findings:
        findings = [indeterminate(SubIndication.SIGNED_DATA_NOT_FOUND, "the document carries no seal or signature")]
    return DocumentReport(document_type, tuple(seals), tuple(findings), tuple(warnings), sha256)


def unreadable(document_type: str, message: str, sha256: str | None) -> DocumentReport:
    """The report on a document that cannot be read at all (TOTAL_FAILED / FORMAT_FAILURE)."""
    return combine(document_type, [], [failed(SubIndication.FORMAT_FAILURE, message)], sha256)
