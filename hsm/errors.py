"""HSM errors: python-pkcs11 exceptions wrapped at the seam into PkiError subclasses with stable codes.

Messages never contain PINs or key material; the PKCS#11 return value name is kept for operators.
"""
from __future__ import annotations

import pkcs11.exceptions as p11e

from pkicore.errors import ErrorCode, PkiError


class HsmError(PkiError):
    code = ErrorCode.HSM_OPERATION_FAILED


class HsmUnavailable(HsmError):
    code = ErrorCode.HSM_UNAVAILABLE


class PinIncorrect(HsmError):
    code = ErrorCode.HSM_PIN_INCORRECT


class PinLocked(HsmError):
    code = ErrorCode.HSM_PIN_LOCKED


class KeyNotFound(HsmError):
    code = ErrorCode.HSM_KEY_NOT_FOUND


class MechanismUnsupported(HsmError):
    code = ErrorCode.HSM_MECHANISM_UNSUPPORTED


class KeyNotPermitted(HsmError):
    code = ErrorCode.HSM_KEY_NOT_PERMITTED


class SignatureInvalid(HsmError):
    code = ErrorCode.BAD_SIGNATURE


class DataConflict(HsmError):
    """A token data object did not hold the value a compare-and-set expected (``current``: what it held,
    None when absent)."""
    code = ErrorCode.HSM_OPERATION_FAILED

    def __init__(self, message: str, current: bytes | None = None):
        super().__init__(message)
        self.current = current


# Errors after which the session (or the whole module) must be reopened before retrying.
SESSION_LOST = (p11e.SessionClosed, p11e.SessionHandleInvalid, p11e.DeviceRemoved, p11e.DeviceError,
                p11e.TokenNotPresent, p11e.TokenNotRecognised, p11e.UserNotLoggedIn,
                p11e.GeneralError)

_MAP: list[tuple[type, type, str]] = [
    (p11e.PinIncorrect, PinIncorrect, "HSM PIN incorrect"),
    (p11e.PinLocked, PinLocked, "HSM PIN locked: the security officer must reset it"),
    (p11e.PinLenRange, PinIncorrect, "HSM PIN has an invalid length"),
    (p11e.MechanismInvalid, MechanismUnsupported, "mechanism not supported by the HSM"),
    (p11e.KeyTypeInconsistent, MechanismUnsupported, "key type does not match the mechanism"),
    (p11e.KeyNotWrappable, KeyNotPermitted, "key cannot be wrapped"),
    (p11e.KeyUnextractable, KeyNotPermitted, "key is not extractable"),
    (p11e.AttributeSensitive, KeyNotPermitted, "attribute is sensitive"),
    (p11e.SignatureInvalid, SignatureInvalid, "signature invalid"),
    (p11e.SignatureLenRange, SignatureInvalid, "signature invalid (length)"),
    (p11e.EncryptedDataInvalid, HsmError, "encrypted data invalid"),
    (p11e.EncryptedDataLenRange, HsmError, "encrypted data has an invalid length"),
    (p11e.WrappedKeyInvalid, HsmError, "wrapped key invalid"),
    (p11e.NoSuchKey, KeyNotFound, "key not found in the HSM"),
    (p11e.MultipleObjectsReturned, HsmError, "more than one key matches"),
    (p11e.NoSuchToken, HsmUnavailable, "HSM token not found"),
    (SESSION_LOST, HsmUnavailable, "HSM session or device lost"),
]


# python-pkcs11 0.10.1 leaves some return values unmapped ("Unmapped error code 0x68").
_UNMAPPED = {0x68: (KeyNotPermitted, "key is not permitted for this operation (CKR_KEY_FUNCTION_NOT_PERMITTED)")}


def wrap_pkcs11_error(exc: BaseException, action: str) -> HsmError:
    """Translate a python-pkcs11 exception into an HsmError (caller does ``raise ... from exc``)."""
    if type(exc) is p11e.PKCS11Error and exc.args and "Unmapped error code" in str(exc.args[0]):
        code = int(str(exc.args[0]).rsplit(" ", 1)[-1], 16)
        our_cls, message = _UNMAPPED.get(code, (HsmError, f"HSM returned CKR 0x{code:x}"))
        return our_cls(f"{action}: {message}")
    for p11_cls, our_cls, message in _MAP:
        if isinstance(exc, p11_cls):
            return our_cls(f"{action}: {message} ({type(exc).__name__})")
    return HsmError(f"{action}: HSM operation failed ({type(exc).__name__})")
