"""The ``[ca]`` configuration section: the names the CA hierarchy is created with (GM/T 0015 subject
DN: C, O, CN), how long CRLs (RFC 5280 §5.1.2.5 nextUpdate) and OCSP responses (RFC 6960 §2.4
nextUpdate) stay valid, and which CA the RA issues through: the embedded one, or an upstream CA over CMP
(RFC 9483 §5; ``backend = "cmp"``, ``ca_bridge.cmp.upstream.CmpCA``). Keys and types from the fields
(pkicore.settings)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pkicore.certificate import read_certificates
from pkicore.secret import Secret
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
    backend: str = setting("embedded", doc='which CA the RA issues through: "embedded" (this node\'s HSM CA) or '
                                           '"cmp" (an upstream CA over CMP, RFC 9483)', example="cmp")
    upstream_url: str = setting("", doc="with backend = \"cmp\": the upstream CA's CMP endpoint",
                                example="https://ca.example.gov.cn/.well-known/cmp")
    trust_anchors_file: str = setting("", doc="the upstream CA's root certificates (PEM)", example="upstream-roots.pem")
    ra_key_label: str = setting("", doc="our RA's CMP protection key in the HSM (signature protection)",
                                example="ra-cmp")
    ra_certificate_file: str = setting("", doc="its certificate (and chain), PEM; cmp-ra profile at a CA node of ours",
                                       example="ra-cert.pem")
    upstream_reference: str = setting("", doc="MAC protection instead: the senderKID the upstream CA gave us")
    upstream_secret: Secret | None = setting(None, doc="and the shared secret (upstream_secret_file = \"...\")",
                                             example="upstream-secret.txt")
    upstream_timeout: int = setting(30, doc="seconds per CMP exchange with the upstream CA")
    poll_timeout: int = setting(10, doc="seconds an approval waits on a \"waiting\" answer (then the request stays awaiting_ca; the sweep collects it)")
    profile_in_path: bool = setting(True, doc="append /p/<profile> to upstream_url (RFC 9483 §6.1)")
    upstream_name: str = setting("upstream", doc="the CA name the RA records for certificates issued upstream")

    @classmethod
    def process_entries(cls, values: dict, base: Path) -> dict:
        """File names resolved against ``base``."""
        values = dict(values)
        for key in ("trust_anchors_file", "ra_certificate_file"):
            if values.get(key) and base is not None:
                values[key] = str(Path(base) / values[key])
        return values

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
        if self.backend not in ("embedded", "cmp"):
            raise ConfigError('ca.backend must be "embedded" or "cmp"')

    def check_upstream(self) -> None:
        """The settings ``backend = "cmp"`` needs together (checked when the upstream CA is built)."""
        if self.backend == "cmp":
            if not self.upstream_url.startswith(("http://", "https://")):
                raise ConfigError('ca.upstream_url must be an http:// or https:// URL when ca.backend = "cmp"')
            if not self.trust_anchors_file:
                raise ConfigError('ca.trust_anchors_file is required when ca.backend = "cmp"')
            signed = bool(self.ra_key_label and self.ra_certificate_file)
            mac = bool(self.upstream_reference and self.upstream_secret)
            if signed == mac:
                raise ConfigError("give either ca.ra_key_label and ca.ra_certificate_file (signature) or "
                                  "ca.upstream_reference and ca.upstream_secret (MAC)")

    def trust_anchors(self) -> tuple[bytes, ...]:
        return read_certificates(self.trust_anchors_file, error=ConfigError)

    def ra_certificates(self) -> tuple[bytes, ...]:
        return read_certificates(self.ra_certificate_file, error=ConfigError)

    def name(self, key: str, *, kind: str = "", service: str = "", organization: str | None = None) -> str:
        """The common name ``key`` (one of ``NAME_FIELDS``) with its placeholders filled in."""
        return getattr(self, key).format(organization=organization or self.organization, kind=kind, service=service)

    def subject(self, common_name: str, organization: str | None = None) -> tuple[tuple[str, str], ...]:
        """(C, O, CN) as ``ca_bridge.api.IssueRequest.subject`` pairs."""
        return (("country_name", self.country), ("organization_name", organization or self.organization),
                ("common_name", common_name))
