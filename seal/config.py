"""The ``[seal]`` configuration section: the verification policy an operator can see and change.

    [seal]
    trust_anchor_files = "province-root.pem, partner-ca.pem"   # roots trusted besides this site's own
                                     # (PEM/DER, comma-separated, relative to the config file): the trust list
    require_revocation = true        # a certificate naming a CRL or OCSP responder whose status cannot be
                                     # established is INDETERMINATE / TRY_LATER, never valid

This site's own roots are always trusted; a document whose signer chains to none of these anchors is
INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND (seal.validation).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pkicore.certificate import read_certificates
from pkicore.errors import ErrorCode, PkiError

SCHEMA = {"trust_anchor_files": "str", "require_revocation": "bool"}


class SealConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class SealConfig:
    trust_anchor_files: tuple[str, ...] = ()
    require_revocation: bool = True

    @classmethod
    def from_values(cls, values: dict, base: Path) -> "SealConfig":
        """The loader's hook: ``values`` typed by ``SCHEMA``; file names resolved against ``base``."""
        values = dict(values)
        files = [f.strip() for f in values.pop("trust_anchor_files", "").split(",") if f.strip()]
        return cls(trust_anchor_files=tuple(str(base / f) for f in files), **values)

    def trust_list(self) -> tuple[bytes, ...]:
        """The configured trust anchors (DER), read now (a file that cannot be read is a configuration error)."""
        out = []
        for path in self.trust_anchor_files:
            try:
                out += read_certificates(path)
            except (OSError, ValueError) as exc:
                raise SealConfigError(f"seal.trust_anchor_files: cannot read a certificate from {path}") from exc
        return tuple(out)
