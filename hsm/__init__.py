"""hsm: the one door to the keys the RA centre owns, over PKCS#11 (python-pkcs11).

Public surface: ``open_key_manager(config)`` returns a thread-safe ``KeyManager``; ``KeyRef`` names keys
(label or RFC 7512 URI); ``HsmConfig`` holds the settings; errors derive from ``HsmError``.
Only this package imports ``pkcs11``.
"""
from hsm.config import HsmConfig, SoftTokenConfig
from hsm.errors import (DataConflict, HsmError, HsmUnavailable, KeyNotFound, KeyNotPermitted, MechanismUnsupported,
                        PinIncorrect, PinLocked)
from hsm.keymanager import KeyManager, TokenInfo
from hsm.keys import KEY_SPECS, KeyInfo, KeyRef
from hsm.token import ensure_token, init_token, reinitialize_after_fork


def open_key_manager(config: HsmConfig) -> KeyManager:
    """Prepare the module (software token directory, auto-init when configured) and open the pool."""
    ensure_token(config)
    return KeyManager(config)


__all__ = ["HsmConfig", "SoftTokenConfig", "DataConflict", "HsmError", "HsmUnavailable", "KeyNotFound", "KeyNotPermitted",
           "MechanismUnsupported", "PinIncorrect", "PinLocked", "KeyManager", "TokenInfo", "KEY_SPECS",
           "KeyInfo", "KeyRef", "open_key_manager", "ensure_token", "init_token", "reinitialize_after_fork"]
