"""Errors of the trust services; all derive from PkiError (the web layer maps codes to HTTP status)."""
from __future__ import annotations

from pkicore.errors import ErrorCode, PkiError


class TrustError(PkiError):
    """A request refused (bad input, a key the caller may not use); the message is safe to show."""

    code = ErrorCode.BAD_REQUEST


class TrustNotFound(TrustError):
    code = ErrorCode.NOT_FOUND


class TrustForbidden(TrustError):
    code = ErrorCode.FORBIDDEN


class TrustConflict(TrustError):
    code = ErrorCode.CONFLICT


class TrustUnavailable(TrustError):
    """Something the operation needs is not there yet (no CA hierarchy, no TSA unit of the key's family)."""

    code = ErrorCode.CONFIGURATION
