"""Errors of the key-management centre (GM/T 0034 escrow, GM/T 0014 CA<->KMC protocol)."""
from __future__ import annotations

from pkicore.errors import ErrorCode, PkiError


class EscrowError(PkiError):
    """Root of every KMC error."""

    code = ErrorCode.BAD_REQUEST


class EscrowNotFound(EscrowError):
    code = ErrorCode.NOT_FOUND


class EscrowConflict(EscrowError):
    code = ErrorCode.CONFLICT


class TamperDetected(EscrowError):
    """An archive record, envelope or message failed its integrity check; it is never used."""

    code = ErrorCode.INTERNAL


class ApprovalError(EscrowError):
    """A recovery, destruction or export was not (or not sufficiently) approved."""

    code = ErrorCode.FORBIDDEN


class ProtocolError(EscrowError):
    """A GM/T 0014 message was malformed, unsigned, from an unknown CA or replayed."""

    def __init__(self, public_message: str, err_no: int, *, code: ErrorCode | None = None):
        super().__init__(public_message, code=code)
        self.err_no = err_no


class KmcRefused(ProtocolError):
    """The KMC answered, verifiably, with a Failure for the item: it did nothing for it."""


class KmcUnreachable(ProtocolError):
    """The request never reached the KMC whole (no connection, or the connection failed while it was
    being sent): the KMC cannot have acted on it. Unlike a lost answer, nothing needs undoing."""
