"""Errors of the certificate authority: PkiError subclasses by meaning; racentre.web
maps their codes to HTTP (400/404/409), the public message never carries key material."""
from __future__ import annotations

from pkicore.errors import ErrorCode, PkiError


class CaError(PkiError):
    """Root of every error the CA raises on purpose."""

    code = ErrorCode.INTERNAL


class NoPublicUrl(CaError):
    """Issuance without ``[service] public_url``: the certificate's CRL distribution point and AIA
    (RFC 5280 §4.2.1.13, §4.2.2.1) would name whichever node issued it, not the site."""

    code = ErrorCode.CONFIGURATION


class IssuanceError(CaError):
    """A request the profile refuses (key algorithm, SAN, identity extensions, subject, validity)."""

    code = ErrorCode.BAD_REQUEST


class UnsupportedKey(IssuanceError):
    code = ErrorCode.UNSUPPORTED_ALGORITHM


class BadEncoding(IssuanceError):
    code = ErrorCode.BAD_ENCODING


class UnknownProfile(IssuanceError):
    code = ErrorCode.BAD_REQUEST


class ProfileError(CaError):
    """A profile file that is not well formed (a configuration error, found at load time)."""

    code = ErrorCode.CONFIGURATION


class UnknownCA(CaError):
    code = ErrorCode.NOT_FOUND


class CertificateNotFound(CaError):
    code = ErrorCode.NOT_FOUND


class RequestConflict(CaError):
    """The same request_id came back with different content (another key or profile)."""

    code = ErrorCode.CONFLICT


class RevocationConflict(CaError):
    """Revoking what is already revoked, or releasing what is not on hold."""

    code = ErrorCode.CONFLICT


class HierarchyExists(CaError):
    """``init_hierarchy`` would overwrite a CA or an HSM key: refused, nothing touched."""

    code = ErrorCode.CONFLICT


class StatusUnavailable(CaError):
    """The status store could not be read (database unreachable): OCSP answers tryLater (RFC 6960 §2.3)."""

    code = ErrorCode.UPSTREAM_UNAVAILABLE
