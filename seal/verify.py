"""The verification entry point: one report for a PDF or OFD (told apart by content, not by name) or a
bare seal (.esl, GB/T 38540 SESeal / GM/T 0031 v1), every signature judged by the same policy
(seal.validation)."""
from __future__ import annotations

import datetime as dt
import hashlib

from seal import ofd, pdf
from seal.report import DocumentReport, SealVerdict, combine, unreadable
from seal.validation import SealPolicy, evaluate_seal


def document_type(data: bytes) -> str | None:
    if data.startswith(b"PK\x03\x04"):
        return "ofd"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:1] == b"\x30":
        return "esl"
    return None


def verify_document(data: bytes, policy: SealPolicy = SealPolicy(), *, at: dt.datetime | None = None) -> DocumentReport:
    kind = document_type(data)
    if kind == "ofd":
        return ofd.verify_ofd(data, policy, at=at)
    if kind == "pdf":
        return pdf.verify_pdf(data, policy, at=at)
    if kind == "esl":
        return verify_seal_file(data, policy, at=at)
    return unreadable("unknown", "neither a PDF, an OFD package nor a seal (.esl)", hashlib.sha256(data).hexdigest())


def verify_seal_file(data: bytes, policy: SealPolicy = SealPolicy(), *, at: dt.datetime | None = None
                     ) -> DocumentReport:
    """A bare seal as of ``at`` (default now), as a report with one verdict (kind ``esl``)."""
    ev = evaluate_seal(data, policy, at=at)
    view = ev.check.view
    verdict = SealVerdict(
        0, ev.findings, ev.warnings, kind="esl", signature_intact=ev.intact,
        seal_name=view.name if view else None, es_id=view.es_id if view else None,
        signer=ev.check.maker_subject, validation_time=ev.validation_time.isoformat(), time_proven=True,
        details={"seal": ev.check.as_dict(), "bound_certificates": list(ev.bound),
                 "seal_maker_certificate": ev.maker.as_dict() if ev.maker else None})
    return combine("esl", [verdict], [], hashlib.sha256(data).hexdigest())
