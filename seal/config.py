"""The ``[seal]`` configuration section: the verification policy an operator can see and change (keys and
types from the fields, pkicore.settings).

This site's own roots are always trusted; a document whose signer chains to none of the anchors is
INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND (seal.validation).
"""
from __future__ import annotations

from dataclasses import dataclass

from pkicore.errors import ErrorCode
from pkicore.settings import ConfigError, Configurable, TrustListSection, setting

class SealConfigError(ConfigError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class SealConfig(TrustListSection, Configurable):
    CONFIG_ERROR = SealConfigError
    SECTION = "seal"
    DOC = "Electronic seals (GB/T 38540): the verification policy."
    trust_anchor_files: tuple[str, ...] = setting(
        (), doc="roots trusted besides this site's own (PEM/DER, relative to this file): the trust list",
        example=("province-root.pem", "partner-ca.pem"))
    require_revocation: bool = setting(True, doc="a certificate naming a CRL or OCSP responder whose status cannot "
                                                 "be established is INDETERMINATE / TRY_LATER, never valid")
