"""The verification entry point: one report for a PDF or OFD (told apart by content, not by name) or a
bare seal (.esl, GB/T 38540 SESeal / GM/T 0031 v1), every signature judged by the same policy
(seal.validation)."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import struct
import zlib

from pyhanko.pdf_utils.misc import PdfError

from seal import ofd, pdf
from seal.report import DocumentReport, SealVerdict, combine, unreadable
from seal.validation import SealPolicy, evaluate_seal

log = logging.getLogger(__name__)


def document_type(data: bytes) -> str | None:
    if data.startswith(b"PK\x03\x04"):
        return "ofd"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    if data[:1] == b"\x30":
        return "esl"
    return None


# what parsers of hostile documents raise past their own error types (pyHanko asserts, zlib, struct, ...)
MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, AssertionError, RecursionError,
             OverflowError, NotImplementedError, EOFError, zlib.error, struct.error, PdfError)


def verify_document(data: bytes, policy: SealPolicy = SealPolicy(), *, at: dt.datetime | None = None) -> DocumentReport:
    """One report for the document; a document malformed anywhere inside is a TOTAL_FAILED report that
    says it is unreadable (GB/T 38540 §8: a seal that cannot be read does not verify), never an exception."""
    kind = document_type(data)
    try:
        return _verify(kind, data, policy, at)
    except MALFORMED as exc:
        log.info("unreadable %s document: %s", kind, exc.__class__.__name__, exc_info=exc)
        return unreadable(kind or "unknown", f"the {kind} document is malformed ({exc.__class__.__name__})",
                          hashlib.sha256(data).hexdigest())


def _verify(kind: str | None, data: bytes, policy: SealPolicy, at: dt.datetime | None) -> DocumentReport:
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
