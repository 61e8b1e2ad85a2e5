"""``[ca]`` settings: which CA issues (``backend = "embedded"``, the default, or ``"cmp"``: an upstream CA
reached over CMP, RFC 9483 §5) and, for the upstream one, its URL, its trust anchors and our RA's
protection (an HSM key label and its certificate file, or a reference and a shared secret)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pkicore.certificate import read_certificates
from pkicore.errors import ErrorCode, PkiError
from pkicore.secret import Secret

SCHEMA = {"backend": "str", "upstream_url": "str", "trust_anchors_file": "str", "ra_key_label": "str",
          "ra_certificate_file": "str", "upstream_reference": "str", "upstream_secret": "secret",
          "timeout": "int", "poll_timeout": "int", "profile_in_path": "bool", "name": "str"}
BACKENDS = ("embedded", "cmp")


class CaConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class CaConfig:
    backend: str = "embedded"
    upstream_url: str = ""                 # e.g. https://ca.example.gov.cn/.well-known/cmp
    trust_anchors_file: str = ""           # PEM: the upstream CA's roots
    ra_key_label: str = ""                 # our RA's CMP protection key in the HSM
    ra_certificate_file: str = ""          # its certificate (id-kp-cmcRA at our own CA nodes)
    upstream_reference: str = ""           # MAC protection instead: senderKID and the shared secret
    upstream_secret: Secret | None = None
    timeout: int = 30
    poll_timeout: int = 10                 # seconds an approval waits on a "waiting" answer before 503
    profile_in_path: bool = True           # /.well-known/cmp/p/<profile> (RFC 9483 §6.1)
    name: str = "upstream"                 # the CA name recorded with the certificates it issues

    @classmethod
    def from_values(cls, values: dict, base: Path) -> "CaConfig":
        values = dict(values)
        if values.get("backend", "embedded") not in BACKENDS:
            raise CaConfigError(f"ca.backend must be one of {', '.join(BACKENDS)}")
        for key in ("trust_anchors_file", "ra_certificate_file"):
            if values.get(key):
                values[key] = str(base / values[key])
        config = cls(**values)
        if config.backend == "cmp":
            if not config.upstream_url.startswith(("http://", "https://")):
                raise CaConfigError("ca.upstream_url must be an http:// or https:// URL when ca.backend = \"cmp\"")
            if not config.trust_anchors_file:
                raise CaConfigError("ca.trust_anchors_file is required when ca.backend = \"cmp\"")
            signed = bool(config.ra_key_label and config.ra_certificate_file)
            mac = bool(config.upstream_reference and config.upstream_secret)
            if signed == mac:
                raise CaConfigError("give either ca.ra_key_label and ca.ra_certificate_file (signature) or "
                                    "ca.upstream_reference and ca.upstream_secret (MAC)")
        return config

    def trust_anchors(self) -> tuple[bytes, ...]:
        return read_certificates(self.trust_anchors_file, error=CaConfigError)

    def ra_certificates(self) -> tuple[bytes, ...]:
        return read_certificates(self.ra_certificate_file, error=CaConfigError)
