"""The ``[seal]`` configuration section: the verification policy an operator can see and change (keys and
types from the fields, pkicore.settings).

This site's own roots are always trusted; a document whose signer chains to none of the anchors is
INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND (seal.validation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pkicore.certificate import read_certificates
from pkicore.errors import ErrorCode
from pkicore.settings import ConfigError, Configurable, setting

class SealConfigError(ConfigError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class SealConfig(Configurable):
    SECTION = "seal"
    DOC = "Electronic seals (GB/T 38540): the verification policy."
    trust_anchor_files: tuple[str, ...] = setting(
        (), doc="roots trusted besides this site's own (PEM/DER, relative to this file): the trust list",
        example=("province-root.pem", "partner-ca.pem"))
    require_revocation: bool = setting(True, doc="a certificate naming a CRL or OCSP responder whose status cannot "
                                                 "be established is INDETERMINATE / TRY_LATER, never valid")

    @classmethod
    def process_entries(cls, values: dict, base: Path) -> dict:
        """File names resolved against ``base``."""
        if "trust_anchor_files" in values:
            values["trust_anchor_files"] = tuple(str(base / f) for f in values["trust_anchor_files"])
        return values

    def trust_list(self) -> tuple[bytes, ...]:
        """The configured trust anchors (DER), read now (a file that cannot be read is a configuration error)."""
        out = []
        for path in self.trust_anchor_files:
            try:
                out += read_certificates(path)
            except (OSError, ValueError) as exc:
                raise SealConfigError(f"seal.trust_anchor_files: cannot read a certificate from {path}") from exc
        return tuple(out)
