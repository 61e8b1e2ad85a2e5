"""Errors of the registration authority: PkiError subclasses by meaning; racentre.web maps
their codes to HTTP."""
from __future__ import annotations

from pkicore.errors import ErrorCode, PkiError


class RaError(PkiError):
    """Root of every error the RA raises on purpose."""

    code = ErrorCode.BAD_REQUEST


class ValidationError(RaError):
    """Input that breaks a rule (identity numbers, host names, request fields)."""

    code = ErrorCode.BAD_REQUEST


class CsrError(ValidationError):
    """A PKCS#10 request we refuse; ``code`` says why (encoding, signature, algorithm, weak key)."""

    code = ErrorCode.BAD_ENCODING


class ConflictError(RaError):
    """The change contradicts stored state (duplicate identity, request in the wrong state)."""

    code = ErrorCode.CONFLICT


class NotFound(RaError):
    code = ErrorCode.NOT_FOUND


class DutiesNotSeparated(RaError):
    """Separation of duties refuses this actor (four-eyes, self-approval). (Who may act at all is
    ``access.auth``: ``AuthError``, ``Forbidden``.)"""

    code = ErrorCode.FORBIDDEN


class IssuanceFailed(RaError):
    """The CA refused or failed; the whole approval rolled back."""

    code = ErrorCode.INTERNAL


class KmcKeyNotReserved(IssuanceFailed):
    """A dual request reached its approval threshold in a transaction for which no KMC encryption key was
    reserved beforehand: another officer's approval committed between this call's KMC pre-step and its
    transaction, making this one the final approval. The transaction rolls back; the RA service reserves
    the key and approves again (``RaService.approve``)."""
