"""Errors of the seal package (GB/T 38540 seals, OFD and PDF sealing); all derive from PkiError."""
from __future__ import annotations

from pkicore.errors import ErrorCode, PkiError


class SealError(PkiError):
    """A seal operation refused (bad input, seal not usable); the message is safe to show."""

    code = ErrorCode.BAD_REQUEST


class SealNotFound(SealError):
    code = ErrorCode.NOT_FOUND


class SealForbidden(SealError):
    code = ErrorCode.FORBIDDEN


class SealConflict(SealError):
    code = ErrorCode.CONFLICT


class BadDocument(SealError):
    """A PDF or OFD package that cannot be read safely (malformed, zip bomb, unsafe names)."""

    code = ErrorCode.BAD_ENCODING


class BadPicture(SealError):
    """A seal picture refused (type, size, dimensions)."""

    code = ErrorCode.BAD_REQUEST
