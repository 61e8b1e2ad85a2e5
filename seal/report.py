"""Verification results for sealed documents (one frozen verdict per seal, with the reasons), rendered as
JSON or text; the shape follows pyHanko's validation status objects: facts plus one verdict."""
from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SealVerdict:
    """One seal (OFD signature or PDF signature field) in a document."""

    index: int
    ok: bool
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    kind: str = ""                    # "ofd-ses" | "pdf-cms"
    name: str | None = None           # signature ID / field name
    seal_name: str | None = None
    es_id: str | None = None
    signer: str | None = None
    signing_time: str | None = None
    timestamp_time: str | None = None
    details: dict = field(default_factory=dict, compare=False, hash=False)

    def as_dict(self) -> dict:
        return {"index": self.index, "ok": self.ok, "verdict": "valid" if self.ok else "invalid",
                "reasons": list(self.reasons), "warnings": list(self.warnings), "kind": self.kind,
                "name": self.name, "seal_name": self.seal_name, "es_id": self.es_id, "signer": self.signer,
                "signing_time": self.signing_time, "timestamp_time": self.timestamp_time, "details": self.details}


@dataclass(frozen=True)
class DocumentReport:
    """Every seal of one document, and the document-level verdict (valid only if every seal is and
    nothing was changed outside them)."""

    document_type: str                # "ofd" | "pdf"
    ok: bool
    seals: tuple[SealVerdict, ...] = ()
    reasons: tuple[str, ...] = ()     # document-level problems (unreadable, unsealed, changed after sealing)
    sha256: str | None = None

    def as_dict(self) -> dict:
        return {"document_type": self.document_type, "ok": self.ok, "verdict": "valid" if self.ok else "invalid",
                "reasons": list(self.reasons), "sha256": self.sha256, "seals": [s.as_dict() for s in self.seals]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2, default=str)

    def to_text(self) -> str:
        lines = [f"{self.document_type.upper()} document: {'VALID' if self.ok else 'INVALID'}"
                 + (f" (sha256 {self.sha256})" if self.sha256 else "")]
        lines += [f"  ! {r}" for r in self.reasons]
        for s in self.seals:
            lines.append(f"  seal #{s.index} {s.name or ''}: {'valid' if s.ok else 'INVALID'}"
                         f" — {s.seal_name or '?'} signed by {s.signer or '?'} at {s.signing_time or '?'}"
                         + (f", timestamp {s.timestamp_time}" if s.timestamp_time else ""))
            lines += [f"      ! {r}" for r in s.reasons]
            lines += [f"      ~ {w}" for w in s.warnings]
        return "\n".join(lines)


def combine(document_type: str, seals: list[SealVerdict], reasons: list[str], sha256: str | None) -> DocumentReport:
    if not seals and not reasons:
        reasons = ["the document carries no seal"]
    return DocumentReport(document_type, not reasons and all(s.ok for s in seals), tuple(seals), tuple(reasons),
                          sha256)
