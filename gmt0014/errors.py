"""Errors of the GM/T 0014 CA <-> KMC protocol, seen by either end."""
from __future__ import annotations

from pkicore.errors import ErrorCode, PkiError


class ProtocolError(PkiError):
    """A GM/T 0014 message was malformed, unsigned, from an unknown CA or replayed, or the KMC could not
    be reached or did not answer (``code`` UPSTREAM_UNAVAILABLE)."""

    code = ErrorCode.BAD_REQUEST

    def __init__(self, public_message: str, err_no: int, *, code: ErrorCode | None = None):
        super().__init__(public_message, code=code)
        self.err_no = err_no


class KmcRefused(ProtocolError):
    """The KMC answered, verifiably, with a Failure for the item: it did nothing for it."""


class KmcUnreachable(ProtocolError):
    """The request never reached the KMC whole (no connection, or the connection failed while it was
    being sent): the KMC cannot have acted on it. Unlike a lost answer, nothing needs undoing."""
