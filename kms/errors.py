"""Errors of the key-management centre (GM/T 0034 escrow, recovery); the GM/T 0014 protocol's own are
in ``gmt0014.errors``."""
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
