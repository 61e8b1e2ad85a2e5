"""The ``[trust]`` configuration section: the verification policy and the login settings an operator sets.

    [trust]
    trust_anchor_files = "province-root.pem"   # roots trusted besides this site's own (the trust list)
    require_revocation = true    # a certificate naming a CRL/OCSP whose status is unknown: never valid
    challenge_ttl = 120          # seconds a login challenge may be answered (single use)
    id_mask_head = 6             # 身份证号 shown in login answers: this many leading characters ...
    id_mask_tail = 4             # ... and this many trailing ones, the rest as '*'
    evidence_key_label = "trust-evidence"   # the HSM key that signs evidence records (SM2, CA-certified)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pkicore.certificate import read_certificates
from pkicore.errors import ErrorCode, PkiError

SCHEMA = {"trust_anchor_files": "str", "require_revocation": "bool", "challenge_ttl": "int",
          "id_mask_head": "int", "id_mask_tail": "int", "evidence_key_label": "str"}


class TrustConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class TrustConfig:
    trust_anchor_files: tuple[str, ...] = ()
    require_revocation: bool = True
    challenge_ttl: int = 120
    id_mask_head: int = 6
    id_mask_tail: int = 4
    evidence_key_label: str = "trust-evidence"

    @classmethod
    def from_values(cls, values: dict, base: Path) -> "TrustConfig":
        values = dict(values)
        files = [f.strip() for f in values.pop("trust_anchor_files", "").split(",") if f.strip()]
        config = cls(trust_anchor_files=tuple(str(base / f) for f in files), **values)
        if not 10 <= config.challenge_ttl <= 3600:
            raise TrustConfigError("trust.challenge_ttl must be between 10 and 3600 seconds")
        if config.id_mask_head < 0 or config.id_mask_tail < 0 or config.id_mask_head + config.id_mask_tail > 12:
            raise TrustConfigError("trust.id_mask_head + id_mask_tail must be between 0 and 12")
        return config

    def trust_list(self) -> tuple[bytes, ...]:
        """The configured trust anchors (DER), read now."""
        out: list[bytes] = []
        for path in self.trust_anchor_files:
            try:
                out += read_certificates(path)
            except (OSError, ValueError) as exc:
                raise TrustConfigError(f"trust.trust_anchor_files: cannot read a certificate from {path}") from exc
        return tuple(out)
