"""Client-certificate authentication behind a TLS-terminating proxy (nginx ``ssl_verify_client``).

The proxy verifies the TLS client certificate and passes it on as a URL-encoded PEM header
(``$ssl_client_escaped_cert``) with the verification result (``$ssl_client_verify`` = SUCCESS). The
headers are believed only from the configured proxy addresses (``[console] trusted_proxies``), and we
check again ourselves: the certificate's path must lead to one of our roots (RFC 5280 §6.1 through
pkicore.validation), allow
clientAuth when it carries an extended key usage (RFC 5280 §4.2.1.12), and be good in the CA's own
status store (not revoked, issued by us).
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import unquote

from asn1crypto import x509
from flask import current_app, request

from access.auth import AuthError
from pkicore.validation import TrustPolicy, validate_certificate
from racentre import accounts
from racentre.console.config import ConsoleConfig

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.S)
MAX_HEADER = 16 * 1024


@dataclass(frozen=True)
class VerifiedCertificate:
    der: bytes
    ca: str
    serial: int
    subject: str


def _from_trusted_proxy(remote_addr: str | None, config: ConsoleConfig) -> bool:
    try:
        remote = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(remote in net for net in config.proxy_networks())


def presented_certificate(headers, remote_addr: str | None, config: ConsoleConfig) -> bytes | None:
    """The DER certificate the proxy passed, None when there is none; AuthError when the header comes
    from anywhere but a trusted proxy or the proxy did not verify it."""
    value = headers.get(config.cert_header)
    if not value:
        return None
    if not _from_trusted_proxy(remote_addr, config):
        raise AuthError("client-certificate headers are accepted only from the configured TLS proxy")
    if headers.get(config.verify_header, "") != "SUCCESS":
        raise AuthError("the TLS proxy did not verify the client certificate")
    if len(value) > MAX_HEADER:
        raise AuthError("client certificate header too large")
    match = _PEM.search(unquote(value))
    if match is None:
        raise AuthError("client certificate header is not a PEM certificate")
    try:
        return base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AuthError("client certificate header is not a PEM certificate") from exc


def verify_client_certificate(ca, der: bytes) -> VerifiedCertificate:
    """Check ``der`` against our CA (``ca_bridge.embedded.EmbeddedCA``: ``authorities()``, ``status()``):
    its path to one of our roots through pkicore.validation (RFC 5280 §6 by pyhanko-certvalidator with
    the SM2 validator: names, key identifiers, signatures, validity, basic constraints), clientAuth
    when an extended key usage is present (RFC 5280 §4.2.1.12), and good in the CA's own status store
    (the database every node shares: a revocation counts at once, before any CRL is published)."""
    try:
        cert = x509.Certificate.load(der, strict=True)
        issuer_der = cert.issuer.dump()
        eku = cert.extended_key_usage_value
    except (ValueError, KeyError, TypeError) as exc:
        raise AuthError("client certificate is malformed") from exc
    authorities = list(ca.authorities().values())
    roots = tuple(info.certificate for info in authorities if info.is_root)
    policy = TrustPolicy(roots, tuple(info.certificate for info in authorities if not info.is_root),
                         require_revocation=False)
    checked = validate_certificate(der, policy, who="client", key_usage=None)
    if checked.findings:
        raise AuthError(f"client certificate refused: {checked.findings[0].message}")
    if eku is not None and not {"client_auth", "any_extended_key_usage"} & set(eku.native):
        raise AuthError("client certificate does not allow client authentication")
    aki = cert.authority_key_identifier
    info = next((i for i in authorities if i.subject_der == issuer_der and (aki is None or aki == i.key_id)), None)
    if info is None:
        raise AuthError("client certificate is not issued by one of our CAs")
    status = ca.status(info.name, cert.serial_number)
    if status.status != "good":
        raise AuthError(f"client certificate is {status.status}")
    return VerifiedCertificate(der, info.name, cert.serial_number, cert.subject.human_friendly)


API_HEADER = "X-RACentre-API"


def api_principal():
    """The API's client-certificate principal source (access.auth.add_principal_source): the account
    bound to a verified certificate. A browser presents client certificates by itself, so calls that
    change state must also carry ``X-RACentre-API: 1``, a header no cross-site form can add (CSRF)."""
    from_config = current_app.extensions["racentre.config"].console
    der = presented_certificate(request.headers, request.remote_addr, from_config)
    if der is None:
        return None
    if request.method not in ("GET", "HEAD", "OPTIONS") and request.headers.get(API_HEADER) != "1":
        raise AuthError(f"client-certificate calls that change state carry the header {API_HEADER}: 1")
    verify_client_certificate(current_app.extensions["racentre.ca"], der)
    return accounts.certificate_account(current_app.extensions["racentre.db"], der, audit_login=False)
