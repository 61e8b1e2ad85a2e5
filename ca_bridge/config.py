"""The ``[ca]`` configuration section: the names the CA hierarchy is created with (GM/T 0015 subject
DN: C, O, CN) and how long CRLs (RFC 5280 §5.1.2.5 nextUpdate) and OCSP responses (RFC 6960 §2.4
nextUpdate) stay valid. Keys and types from the fields (pkicore.settings)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pkicore.settings import ConfigError, Configurable, setting

NAME_FIELDS = ("root_name", "issuing_name", "ocsp_name", "service_name")


@dataclass(frozen=True)
class CaConfig(Configurable):
    SECTION = "ca"
    DOC = ("The embedded CA: the names `racentre setup` / `racentre ca init` give the hierarchy and the\n"
           "centre's own service certificates, and the validity of CRLs and OCSP responses.")
    organization: str = setting("RA Centre", doc="O= of every CA and service certificate the centre makes "
                                                 "for itself", example="某省数字证书认证中心")
    country: str = setting("CN", doc="C= of those names (ISO 3166 two letters)", example="HK")
    root_name: str = setting("{organization} {kind} Root CA",
                             doc="CN= of each root CA; {organization} and {kind} (SM2, ECDSA P-256, RSA) are filled in")
    issuing_name: str = setting("{organization} {kind} Issuing CA", doc="CN= of each issuing CA")
    ocsp_name: str = setting("{organization} {kind} OCSP Responder", doc="CN= of each OCSP signer")
    service_name: str = setting("{organization} {service}",
                                doc="CN= of the centre's own service certificates; {service} is e.g. "
                                    "\"TSA default\", \"KMC\", \"Seal Maker\"")
    crl_validity: dt.timedelta = setting(dt.timedelta(days=1), doc="CRL nextUpdate - thisUpdate")
    crl_refresh: dt.timedelta = setting(dt.timedelta(hours=1), doc="a stored CRL is re-signed after this long "
                                                                   "even without a revocation")
    ocsp_validity: dt.timedelta = setting(dt.timedelta(hours=1), doc="OCSP nextUpdate - thisUpdate; pre-produced "
                                                                     "responses are replaced half-way")

    def __post_init__(self):
        if not self.organization.strip() or len(self.organization) > 64:
            raise ConfigError("ca.organization: 1 to 64 characters (RFC 5280 ub-organization-name)")
        if len(self.country) != 2 or not self.country.isascii() or not self.country.isalpha():
            raise ConfigError("ca.country: two letters (ISO 3166)")
        for key in NAME_FIELDS:
            try:
                name = self.name(key, kind="ECDSA P-256", service="TSA default")
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"ca.{key}: only {{organization}}, {{kind}} and {{service}} may be filled in") \
                    from exc
            if not name.strip() or len(name) > 64:
                raise ConfigError(f"ca.{key}: the common name must be 1 to 64 characters (RFC 5280 ub-common-name)")
        if min(self.crl_validity, self.crl_refresh, self.ocsp_validity) <= dt.timedelta(0):
            raise ConfigError("ca.crl_validity, crl_refresh and ocsp_validity are positive")
        if self.crl_refresh > self.crl_validity:
            raise ConfigError("ca.crl_refresh must not exceed ca.crl_validity (a CRL would be served expired)")

    def name(self, key: str, *, kind: str = "", service: str = "", organization: str | None = None) -> str:
        """The common name ``key`` (one of ``NAME_FIELDS``) with its placeholders filled in."""
        return getattr(self, key).format(organization=organization or self.organization, kind=kind, service=service)

    def subject(self, common_name: str, organization: str | None = None) -> tuple[tuple[str, str], ...]:
        """(C, O, CN) as ``ca_bridge.api.IssueRequest.subject`` pairs."""
        return (("country_name", self.country), ("organization_name", organization or self.organization),
                ("common_name", common_name))
