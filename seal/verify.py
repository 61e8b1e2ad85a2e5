"""The verification service: one report per document (PDF or OFD by content, not by name) with one
frozen verdict per seal and its reasons, as JSON or text; bare seals (.esl) too."""
from __future__ import annotations

import datetime as dt
import hashlib
from typing import Iterable

from seal import ofd, pdf, ses
from seal.report import DocumentReport, combine


def document_type(data: bytes) -> str | None:
    if data.startswith(b"PK\x03\x04"):
        return "ofd"
    if b"%PDF-" in data[:1024]:
        return "pdf"
    return None


def verify_document(data: bytes, *, trust: Iterable[bytes] = (), tsa_trust: Iterable[bytes] = (),
                    at: dt.datetime | None = None) -> DocumentReport:
    kind = document_type(data)
    if kind == "ofd":
        return ofd.verify_ofd(data, at=at)
    if kind == "pdf":
        return pdf.verify_pdf(data, trust=trust, tsa_trust=tsa_trust, at=at)
    return combine("unknown", [], ["neither a PDF nor an OFD package"], hashlib.sha256(data).hexdigest())


def verify_seal_file(data: bytes, *, at: dt.datetime | None = None) -> ses.SealCheck:
    return ses.verify_seal(data, at=at)
