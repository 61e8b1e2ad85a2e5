"""The one error root of the RA centre: a stable code plus a message safe to show to a caller.

Subclasses by meaning live in each package (HsmError, RaError, ...); only the web layer maps them to
HTTP. The public message never carries secrets; the cause goes to the log via ``raise ... from``.
"""
from __future__ import annotations

import enum


class ErrorCode(str, enum.Enum):
    """Every error code the RA centre can return, in one table (XiPKI's ErrorCode shape)."""

    BAD_REQUEST = "bad_request"
    BAD_ENCODING = "bad_encoding"
    BAD_SIGNATURE = "bad_signature"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CONFIGURATION = "configuration"
    TOO_LARGE = "too_large"
    # HSM
    HSM_UNAVAILABLE = "hsm_unavailable"
    HSM_PIN_INCORRECT = "hsm_pin_incorrect"
    HSM_PIN_LOCKED = "hsm_pin_locked"
    HSM_KEY_NOT_FOUND = "hsm_key_not_found"
    HSM_MECHANISM_UNSUPPORTED = "hsm_mechanism_unsupported"
    HSM_OPERATION_FAILED = "hsm_operation_failed"
    HSM_KEY_NOT_PERMITTED = "hsm_key_not_permitted"
    # a service we depend on (e.g. a stand-alone KMC) is down, failing, or answered unverifiably
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_UNTRUSTED = "upstream_untrusted"
    # no trustworthy time (the TSA's clock is unsynchronised or its error bound too large)
    TIME_UNAVAILABLE = "time_unavailable"
    INTERNAL = "internal"


class PkiError(Exception):
    """Root of every error the RA centre raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, public_message: str, *, code: ErrorCode | None = None):
        super().__init__(public_message)
        if code is not None:
            self.code = code
        self.public_message = public_message

    def __str__(self) -> str:
        return f"{self.public_message} [{self.code.value}]"
