"""Settings of the key-management centre: the ``[kmc]`` section of racentre.toml (one frozen dataclass whose
fields are the keys, pkicore.settings; defaults suit the embedded KMC). The CA side reads ``url``,
``certificate_file`` and ``timeout``; the rest is the KMC's (GM/T 0014 service, archive, M-of-N recovery).

Relative file names are relative to the configuration file. Files are read when used (a KMC's
certificate is issued after its configuration exists), and a missing one is a clear error then.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pkicore import certificate
from pkicore.errors import ErrorCode
from pkicore.settings import ConfigError, Configurable, internal, setting


class KmsConfigError(ConfigError):
    code = ErrorCode.CONFIGURATION


def read_certificates(path: str | Path) -> tuple[bytes, ...]:
    """Every certificate in a PEM file (or the one in a DER file), as DER; KmsConfigError otherwise."""
    return certificate.read_certificates(path, error=KmsConfigError)


@dataclass(frozen=True)
class KmsConfig(Configurable):
    SECTION = "kmc"
    DOC = ("The key-management centre (GM/T 0014, GM/T 0034 key escrow): the CA side names a stand-alone KMC\n"
           "(or none: the embedded one); the KMC side sets its callers, archive and M-of-N key recovery.")
    # CA side: a stand-alone KMC ("" = the embedded one) and its signing certificate's file
    url: str = setting("", doc='CA side: a stand-alone KMC\'s base URL (POST {url}/kmc/v1/request); "" = the '
                               'embedded KMC, in process', example="https://kmc.example.gov.cn")
    certificate_file: str = setting("", doc="CA side, with url: the KMC signing certificate (PEM/DER) that must "
                                            "have signed every KMRespond", example="kmc.pem")
    timeout: int = setting(30, doc="CA side: seconds per GM/T 0014 call")
    trusted_ca_files: tuple[str, ...] = setting(
        (), doc="KMC side: CA certificates (PEM/DER) allowed to call this KMC, besides those of "
                "`racentre kms trust-ca`", example=("issuing-ca.pem",))
    approvals_required: int = setting(2, doc="M of the M-of-N key recovery ...", example=1)
    panel_size: int = setting(3, doc="... N: the officer panel")
    officers: tuple[str, ...] = setting((), doc="the named panel (exactly panel_size officers); empty: any "
                                                "key_recovery_officer", example=("zhao", "qian", "sun"))
    recipient_files: tuple[str, ...] = setting(
        (), doc="certificates (PEM/DER) a recovered key may be enveloped to besides those the trusted CAs "
                "issued (the recipient list)", example=("court.pem",))
    approval_ttl: dt.timedelta = setting(dt.timedelta(hours=24), doc="an officer's recovery approval lapses "
                                                                     "after this long")
    request_ttl: dt.timedelta = setting(dt.timedelta(days=7), doc="an open recovery request expires after this long")
    retention: dt.timedelta = setting(dt.timedelta(days=365 * 5),
                                      doc="escrowed keys are kept this long after expiry or revocation, then destroyed")
    request_freshness: dt.timedelta = setting(dt.timedelta(minutes=10),
                                              doc="GM/T 0014 requestTime window: older or later requests are refused")
    rotation_batch: int = setting(200, doc="archived keys re-wrapped per transaction (`racentre kms rewrap` without --batch)")
    # HSM labels: {prefix}-sign (KMC signing key), {prefix}-mac (archive MAC key),
    # {prefix}-kek-v<n> (key-encryption keys), {prefix}-dr (disaster-recovery import key)
    key_prefix: str = setting("kmc", doc="HSM labels: {prefix}-sign, {prefix}-mac, {prefix}-kek-v<n>, {prefix}-dr")
    # the bootstrap self-signed certificate's subject ([ca] organization; a site replaces the certificate)
    kmc_subject: tuple[tuple[str, str], ...] = internal((("country_name", "CN"), ("organization_name", "RA Centre"),
                                                         ("common_name", "RA Centre KMC")))
    trusted_ca_certificates: tuple[bytes, ...] = internal(())   # DER; CAs allowed to call the KMC

    def __post_init__(self):
        if not (1 <= self.approvals_required <= self.panel_size):
            raise ValueError("need 1 <= approvals_required (M) <= panel_size (N)")
        if self.officers and len(set(self.officers)) != self.panel_size:
            raise ValueError("the officer panel must name exactly panel_size distinct officers")
        if min(self.approval_ttl, self.request_ttl, self.retention, self.request_freshness) <= dt.timedelta(0):
            raise ValueError("kmc durations (approval_ttl, request_ttl, retention, request_freshness) are positive")

    @classmethod
    def process_entries(cls, values: dict, base: Path) -> dict:
        """File names resolved against ``base``; the URL checked."""
        url = values.get("url", "").strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise KmsConfigError("kmc.url must be an http:// or https:// URL (or empty for the embedded KMC)")
        values["url"] = url
        if values.get("certificate_file"):
            values["certificate_file"] = str(base / values["certificate_file"])
        for key in ("trusted_ca_files", "recipient_files"):
            if key in values:
                values[key] = tuple(str(base / f) for f in values[key])
        if values.get("timeout", 30) <= 0:
            raise KmsConfigError("kmc.timeout must be a positive number of seconds")
        if values.get("rotation_batch", 200) <= 0:
            raise KmsConfigError("kmc.rotation_batch must be positive")
        return values

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

    def recovery_recipients(self) -> tuple[bytes, ...]:
        """The recipient list: certificates a recovered key may be enveloped to without being ours."""
        return tuple(der for path in self.recipient_files for der in read_certificates(path))

    def trusted_cas(self) -> tuple[bytes, ...]:
        """KMC side: the CA certificates configured as allowed callers (inline ones, then the files')."""
        return tuple(self.trusted_ca_certificates) + tuple(
            der for path in self.trusted_ca_files for der in read_certificates(path))
