"""Settings of the key-management centre (one frozen dataclass; defaults suit the embedded KMC) and the
``[kmc]`` configuration section that racentre.config reads into it.

    [kmc]
    url = ""                            # CA side: a stand-alone KMC's base URL (GM/T 0014 over HTTP,
                                        # POST {url}/kmc/v1/request); "" = the embedded KMC, in process
    certificate_file = "kmc.pem"        # CA side, with url: the KMC signing certificate (PEM/DER) that
                                        # must have signed every KMRespond
    timeout = 30                        # CA side: seconds per GM/T 0014 call
    trusted_ca_files = "issuing-ca.pem" # KMC side: CA certificates (PEM/DER, comma-separated) allowed to
                                        # call this KMC, besides those of `racentre kms trust-ca`
    approvals_required = 2              # M of the M-of-N key recovery ...
    panel_size = 3                      # ... N

Relative file names are relative to the configuration file. Files are read when used (a KMC's
certificate is issued after its configuration exists), and a missing one is a clear error then.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from pkicore import certificate
from pkicore.errors import ErrorCode, PkiError

# key -> type, as racentre.config.SCHEMA; every key is overridable by RACENTRE_KMC_<KEY>
SCHEMA = {"url": "str", "certificate_file": "str", "timeout": "int", "trusted_ca_files": "str",
          "approvals_required": "int", "panel_size": "int"}


class KmsConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


def read_certificates(path: str | Path) -> tuple[bytes, ...]:
    """Every certificate in a PEM file (or the one in a DER file), as DER; KmsConfigError otherwise."""
    return certificate.read_certificates(path, error=KmsConfigError)


@dataclass(frozen=True)
class KmsConfig:
    # HSM labels: {prefix}-sign (KMC signing key), {prefix}-mac (archive MAC key),
    # {prefix}-kek-v<n> (key-encryption keys), {prefix}-dr (disaster-recovery import key)
    key_prefix: str = "kmc"
    kmc_subject: tuple[tuple[str, str], ...] = (("country_name", "CN"), ("organization_name", "RA Centre"),
                                                ("common_name", "RA Centre KMC"))
    approvals_required: int = 2            # M
    panel_size: int = 3                    # N: the officer panel
    officers: tuple[str, ...] = ()         # named panel (len == N); empty: any key_recovery_officer
    approval_ttl: dt.timedelta = dt.timedelta(hours=24)
    request_ttl: dt.timedelta = dt.timedelta(days=7)
    retention: dt.timedelta = dt.timedelta(days=365 * 5)   # kept after expiry/revocation before destruction
    request_freshness: dt.timedelta = dt.timedelta(minutes=10)   # GM/T 0014 requestTime window
    rotation_batch: int = 200
    trusted_ca_certificates: tuple[bytes, ...] = field(default=())   # DER; CAs allowed to call the KMC
    trusted_ca_files: tuple[str, ...] = ()  # more of them, read when the KMC service starts
    # CA side: a stand-alone KMC ("" = the embedded one) and its signing certificate's file
    url: str = ""
    certificate_file: str = ""
    timeout: int = 30

    def __post_init__(self):
        if not (1 <= self.approvals_required <= self.panel_size):
            raise ValueError("need 1 <= approvals_required (M) <= panel_size (N)")
        if self.officers and len(set(self.officers)) != self.panel_size:
            raise ValueError("the officer panel must name exactly panel_size distinct officers")

    @classmethod
    def from_values(cls, values: dict, base: Path) -> "KmsConfig":
        """The loader's hook: ``values`` typed by ``SCHEMA``; file names resolved against ``base``."""
        values = dict(values)
        url = values.get("url", "").strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise KmsConfigError("kmc.url must be an http:// or https:// URL (or empty for the embedded KMC)")
        values["url"] = url
        if values.get("certificate_file"):
            values["certificate_file"] = str(base / values["certificate_file"])
        files = [f.strip() for f in values.pop("trusted_ca_files", "").split(",") if f.strip()]
        if values.get("timeout", 30) <= 0:
            raise KmsConfigError("kmc.timeout must be a positive number of seconds")
        try:
            return cls(**values, trusted_ca_files=tuple(str(base / f) for f in files))
        except ValueError as exc:
            raise KmsConfigError(f"[kmc]: {exc}") from exc

    @property
    def remote(self) -> bool:
        """Whether the CA reaches a stand-alone KMC over HTTP (else the embedded one, in process)."""
        return bool(self.url)

    def kmc_certificate(self) -> bytes:
        """CA side: the stand-alone KMC's signing certificate (DER) from ``certificate_file``."""
        if not self.certificate_file:
            raise KmsConfigError("kmc.url is set but kmc.certificate_file is not: name the KMC signing "
                                 "certificate (racentre ca issue --profile kmc ...) that verifies its answers")
        certs = read_certificates(self.certificate_file)
        if len(certs) != 1:
            raise KmsConfigError(f"kmc.certificate_file ({self.certificate_file}) must hold exactly one certificate")
        return certs[0]

    def trusted_cas(self) -> tuple[bytes, ...]:
        """KMC side: the CA certificates configured as allowed callers (inline ones, then the files')."""
        return tuple(self.trusted_ca_certificates) + tuple(
            der for path in self.trusted_ca_files for der in read_certificates(path))
