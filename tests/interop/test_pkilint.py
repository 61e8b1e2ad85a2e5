"""pkilint (DigiCert; RFC 5280, RFC 5480/8813, RFC 6960) on every certificate, CRL and OCSP response the site
issues (tests/interop/conftest.py ``every_profile``: SM2, ECDSA and RSA hierarchies, every profile, full,
delta and root CRLs, good and revoked OCSP answers), through pkilint's Python API
(``tests/interop/pkilint_lint.py``, the validators of ``lint_pkix_cert``, ``lint_crl -t CRL -p PKIX`` and
``lint_ocsp_response``)."""
from __future__ import annotations

from pkilint.validation import ValidationFindingSeverity

from tests.interop.gmssl_rules import with_extension
from tests.interop.pkilint_lint import Finding, lint_certificate, lint_crl, lint_ocsp_response

ERROR = ValidationFindingSeverity.ERROR
# The one expected finding. An SM2 encryption certificate carries keyEncipherment and dataEncipherment
# because GM/T 0015 requires them (SM2 encryption is public-key encryption of a session key, not ECDH);
# SM2 keys are id-ecPublicKey keys, to which pkilint applies RFC 5480/RFC 8813 §3 ("MUST NOT" for those
# two bits), so it reports them as an ERROR. docs/REFERENCES.md §11.
SM2_ENCRYPTION_CERTIFICATE = [Finding("ERROR", "pkix.key_usage_value_prohibited_for_ec",
                                      "certificate.tbsCertificate.extensions.0.extnValue.keyUsage")]


def lint(item, threshold):
    if item.profile.startswith("crl"):
        return lint_crl(item.der, threshold)
    if item.profile in ("ocsp-good", "ocsp-revoked"):
        return lint_ocsp_response(item.der, threshold)
    return lint_certificate(item.der, threshold)


def test_no_error_on_anything_we_issue_but_the_gmt0015_key_usages(every_profile):
    """ERROR or worse: nothing, except the SM2 encryption certificate's keyEncipherment/dataEncipherment,
    which GM/T 0015 requires (see SM2_ENCRYPTION_CERTIFICATE); the ECDSA encryption and server
    certificates have no such bit (RFC 8813 §3) and are clean."""
    linted = {item.name: lint(item, ERROR) for item in every_profile}
    assert {"sm2/crl/sm2", "sm2/crl-delta/sm2", "sm2/crl-root/sm2", "sm2/ocsp-good/sm2", "ecdsa/ocsp-revoked/ec-p256",
            "rsa/crl/rsa-2048", "ecdsa/server/ec-p256", "rsa/server/rsa-2048", "sm2/kmc/sm2"} <= set(linted)
    expected = {"sm2/civil-servant-enc/sm2": SM2_ENCRYPTION_CERTIFICATE,
                "sm2/app-encryption/sm2": SM2_ENCRYPTION_CERTIFICATE}
    assert {name: found for name, found in linted.items() if found} == expected


def test_no_warning_either(every_profile):
    """WARNING level (a SHOULD of RFC 5280/6960): none today, on any certificate, CRL or OCSP response."""
    warnings = {item.name: [f for f in lint(item, ValidationFindingSeverity.WARNING) if f.severity == "WARNING"]
                for item in every_profile}
    assert {name: found for name, found in warnings.items() if found} == {}


def test_pkilint_reports_what_we_used_to_issue(every_profile):
    """pkilint is not a no-op here: the old ECDSA P-256 server certificate's keyEncipherment (RFC 8813
    §3) is an ERROR, and so is the same bit on an ECDSA encryption certificate."""
    for profile, usage in (("server", {"digital_signature", "key_encipherment"}),
                           ("civil-servant-enc", {"key_encipherment", "key_agreement"})):
        cert = next(c for c in every_profile if c.kind == "ecdsa" and c.profile == profile and c.key == "ec-p256")
        old = with_extension(cert.der, "key_usage", usage, critical=True)
        assert [f.code for f in lint_certificate(old, ERROR)] == ["pkix.key_usage_value_prohibited_for_ec"]
        assert lint_certificate(cert.der, ERROR) == []


def test_local_issuer_certificates_are_clean(local_issuer_certificates):
    """pkicore.certificate's certificates (LocalIssuer, the KMC's bootstrap one): no ERROR, no WARNING."""
    linted = {f"{c.profile}/{c.key}/{i}": lint_certificate(c.der) for i, c in enumerate(local_issuer_certificates)}
    assert {name: found for name, found in linted.items() if found} == {}
