"""The ``[trust]`` configuration section: the verification policy and the login settings an operator sets
(keys and types from the fields, pkicore.settings).

This site's own roots are always trusted; a signer that chains to none of the anchors is INDETERMINATE /
NO_CERTIFICATE_CHAIN_FOUND, SOF_ValidateCert −1 (trust.verify, trust.verdict).
"""
from __future__ import annotations

from dataclasses import dataclass

from pkicore.errors import ErrorCode
from pkicore.settings import ConfigError, Configurable, TrustListSection, setting


class TrustConfigError(ConfigError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class TrustConfig(TrustListSection, Configurable):
    CONFIG_ERROR = TrustConfigError
    SECTION = "trust"
    DOC = "Trust services for applications (签名验签, 身份认证, 责任认定): verification policy, login, evidence."
    trust_anchor_files: tuple[str, ...] = setting(
        (), doc="roots trusted besides this site's own (PEM/DER, relative to this file): the trust list",
        example=("province-root.pem",))
    require_revocation: bool = setting(True, doc="a certificate naming a CRL or OCSP responder whose status cannot "
                                                 "be established is INDETERMINATE / TRY_LATER, never valid")
    challenge_ttl: int = setting(120, doc="seconds a certificate-login challenge may be answered (single use)")
    id_mask_head: int = setting(6, doc="身份证号 in login answers: this many leading characters shown")
    id_mask_tail: int = setting(4, doc="... and this many trailing ones, the rest as '*'")
    evidence_key_label: str = setting("trust-evidence", doc="the HSM key that signs evidence records (SM2, "
                                                            "certified by our CA)")

    def __post_init__(self):
        if not 10 <= self.challenge_ttl <= 3600:
            raise TrustConfigError("trust.challenge_ttl must be between 10 and 3600 seconds")
        if self.id_mask_head < 0 or self.id_mask_tail < 0 or self.id_mask_head + self.id_mask_tail > 12:
            raise TrustConfigError("trust.id_mask_head + id_mask_tail must be between 0 and 12")
