"""Every certificate profile we issue against what GmSSL 3 accepts (docs/REFERENCES.md §10).

Two checks, on the certificates of every profile as the site issues them (tests/interop/conftest.py
``every_profile``: SM2, ECDSA P-256/P-384 and RSA hierarchies; root, issuing CA, OCSP signer,
civil-servant signing and encryption, unit, server, TSA, KMC, seal maker):

* the real GmSSL 3.1.1 (``easy-gmssl`` builds libgmssl from the GmSSL source it ships):
  ``x509_cert_check`` on every SM2 certificate that has a GmSSL certificate type, ``x509_certs_verify`` on
  the whole chain of each TLS entity, ``x509_cert_verify_by_ca_cert`` for the rest. GmSSL 3 parses SM2 keys
  only and has no certificate type for OCSP responders or time-stamping units (its
  ``x509_ext_key_usage_check`` refuses any extended key usage outside TLS), so
* the independent checker ``gmssl_rules.rule_violations`` (written from the rule list) covers every
  certificate of every key family and kind. Negative tests show both refuse what GmSSL refuses.
"""
from __future__ import annotations

import pytest
from asn1crypto import x509

from tests.interop.gmssl_rules import (ABSENT, GMSSL_KIND, GMSSL_TYPES, GmSSL, as_gmssl_sees, rule_violations,
                                       with_extension, with_validity)

CERTIFICATE_PROFILES = set(GMSSL_KIND)


@pytest.fixture(scope="module")
def gmssl() -> GmSSL:
    lib = GmSSL.load()
    if lib is None:
        pytest.fail(ABSENT + " — scripts/setup.sh installs it (cmake, easy-gmssl); a missing GmSSL is a broken set-up")
    assert lib.version() >= 30101
    return lib


@pytest.fixture(scope="module")
def certificates(every_profile):
    certs = [c for c in every_profile if c.profile in CERTIFICATE_PROFILES]
    # every profile is there, in each key family that issues it
    assert {c.profile for c in certs if c.kind == "sm2"} == CERTIFICATE_PROFILES
    assert {c.profile for c in certs if c.kind == "ecdsa"} == CERTIFICATE_PROFILES - {"kmc", "seal-maker", "trust-evidence"}
    return certs


def test_every_certificate_follows_the_gmssl_rules(certificates):
    broken = {c.name: rule_violations(c.der, GMSSL_KIND[c.profile]) for c in certificates}
    assert {name: found for name, found in broken.items() if found} == {}
    for c in certificates:
        cert = x509.Certificate.load(c.der)
        bc = [e for e in cert["tbs_certificate"]["extensions"] if e["extn_id"].native == "basic_constraints"]
        if c.profile in ("root-ca", "issuing-ca"):
            assert bc and bc[0]["critical"].native and cert.ca, c.name
        else:
            assert bc == [], c.name           # no basicConstraints at all in an end entity


def test_sm2_certificates_pass_gmssls_own_checks(gmssl, certificates):
    sm2 = [c for c in certificates if c.kind == "sm2"]
    checked = []
    for c in sm2:
        for kind in GMSSL_TYPES.get(c.profile, ()):
            assert gmssl.cert_check(as_gmssl_sees(c.profile, c.der), kind), f"{c.name} refused as {kind}"
            checked.append((c.profile, kind))
        if c.chain:
            # the SM2 signature with the default ID, by the issuer
            assert gmssl.verify_by_ca(c.der, c.chain[0]), c.name
    assert {p for p, _ in checked} == set(GMSSL_TYPES)
    # whole chains the way a TLS/TLCP peer checks them: every certificate by type, path length, signatures
    for c in sm2:
        if c.profile in ("civil-servant-sign", "unit", "server"):
            for kind in (["server", "client"] if c.profile == "server" else ["client"]):
                assert gmssl.certs_verify([c.der, c.chain[0]], c.chain[1], kind), f"{c.name} chain as {kind}"


def test_gmssl_certverify_accepts_our_chains(gmssl, certificates, tmp_path):
    """``gmssl certverify``, the command-line tool: every SM2 end entity's chain, and the GM/T 0034 pair
    (signing + encryption certificate, ``-double_certs``); a chain under another root is refused."""
    sm2 = {c.profile: c for c in certificates if c.kind == "sm2"}
    for profile in ("civil-servant-sign", "unit", "server", "tsa", "kmc", "seal-maker", "ocsp-signer"):
        c = sm2[profile]
        done = gmssl.certverify([c.der, *c.chain[:-1]], c.chain[-1], tmp_path)
        assert done.returncode == 0 and done.stdout.count("Verification success") == 2, (profile, done.stderr)
    sign, enc = sm2["civil-servant-sign"], sm2["civil-servant-enc"]
    done = gmssl.certverify([sign.der, enc.der, sign.chain[0]], sign.chain[1], tmp_path, double_certs=True)
    assert done.returncode == 0 and done.stdout.count("Verification success") == 3, done.stdout + done.stderr
    other_root = next(c for c in certificates if c.kind == "ecdsa" and c.profile == "root-ca").der
    refused = gmssl.certverify([sign.der, sign.chain[0]], other_root, tmp_path)
    assert refused.returncode != 0


def test_gmssl_cannot_be_fooled_by_the_wrong_type(gmssl, certificates):
    """GmSSL's checks are not a no-op here: a signing certificate is no key-encipherment certificate, an end
    entity is no CA, a client certificate is no server certificate, and a chain needs the right root."""
    by = {(c.kind, c.profile): c for c in certificates if c.key in ("sm2",)}
    assert not gmssl.cert_check(by["sm2", "civil-servant-sign"].der, "client_enc")
    assert not gmssl.cert_check(as_gmssl_sees("civil-servant-enc", by["sm2", "civil-servant-enc"].der), "client")
    assert not gmssl.cert_check(by["sm2", "civil-servant-enc"].der, "client_enc")     # emailProtection only
    assert not gmssl.cert_check(by["sm2", "unit"].der, "ca")
    assert not gmssl.cert_check(by["sm2", "issuing-ca"].der, "server")
    assert not gmssl.cert_check(by["sm2", "unit"].der, "server")
    server = by["sm2", "server"]
    assert not gmssl.certs_verify([server.der, server.chain[0]], by["sm2", "tsa"].der, "server")


@pytest.mark.parametrize("profile,kind", [("unit", "client"), ("server", "server"), ("tsa", "other"),
                                          ("ocsp-signer", "ocsp")])
def test_an_empty_basic_constraints_is_refused(certificates, gmssl_or_none, profile, kind):
    """What we issued before: basicConstraints {} (DER 30 00) in an end entity."""
    cert = next(c for c in certificates if c.kind == "sm2" and c.profile == profile)
    bad = with_extension(cert.der, "basic_constraints", b"\x30\x00", critical=False)
    assert bytes.fromhex("0603551d1304023000") in bad             # extnID 2.5.29.19, extnValue 30 00
    assert "basicConstraints is an empty SEQUENCE" in rule_violations(bad, kind)
    assert rule_violations(cert.der, kind) == []
    if gmssl_or_none is not None and kind in ("client", "server"):
        assert gmssl_or_none.cert_check(cert.der, kind) and not gmssl_or_none.cert_check(bad, kind)


@pytest.mark.parametrize("days,refused", [(3653, False), (3654, True), (7300, True)])
def test_an_over_long_validity_is_refused(certificates, gmssl_or_none, days, refused):
    """GmSSL's X509_VALIDITY_MAX_DAYS (3,653); our old root was 7,300 days."""
    root = next(c for c in certificates if c.kind == "sm2" and c.profile == "root-ca")
    changed = with_validity(root.der, days)
    assert any("exceeds 3,653 days" in v for v in rule_violations(changed, "ca")) is refused
    if gmssl_or_none is not None:
        assert gmssl_or_none.cert_check(changed, "ca") is not refused


@pytest.mark.parametrize("profile,kind,ext,value,critical,message", [
    ("server", "server", "extended_key_usage", ["client_auth"], False, "extKeyUsage without server_auth"),
    ("unit", "client", "extended_key_usage", ["any_extended_key_usage"], False, "anyExtendedKeyUsage alone"),
    ("server", "server", "key_usage", {"key_encipherment"}, True, "no digitalSignature"),
    ("civil-servant-enc", "encipher", "key_usage", {"key_agreement"}, True, "no keyEncipherment"),
    ("unit", "client", "key_usage", {"digital_signature", "key_cert_sign"}, True, "keyCertSign/cRLSign"),
    ("issuing-ca", "ca", "basic_constraints", {"ca": True}, False, "without critical basicConstraints"),
    ("unit", "client", "basic_constraints", {"ca": True}, True, "end entity with cA TRUE"),
    ("unit", "client", "authority_key_identifier", {"key_identifier": b"\x01" * 20}, True,
     "authority_key_identifier is critical"),
    ("unit", "client", "inhibit_any_policy", 0, True, "inhibit_any_policy is present"),
    ("unit", "client", "1.2.3.4", b"\x05\x00", True, "unknown critical extension"),
])
def test_other_gmssl_rules_are_applied(certificates, gmssl_or_none, profile, kind, ext, value, critical, message):
    cert = next(c for c in certificates if c.kind == "sm2" and c.profile == profile)
    bad = with_extension(cert.der, ext, value, critical)
    assert any(message in v for v in rule_violations(bad, kind)), rule_violations(bad, kind)
    # GmSSL 3.1.1 lets these two through (REFERENCES §10 lists the rules of later GmSSL 3 releases)
    if gmssl_or_none is not None and message not in ("inhibit_any_policy is present",
                                                     "without critical basicConstraints"):
        enc = profile == "civil-servant-enc"
        bad = with_extension(bad, "extended_key_usage", None, False) if enc else bad
        assert not gmssl_or_none.cert_check(bad, "client_enc" if enc else kind)


@pytest.fixture(scope="module")
def gmssl_or_none():
    """The real GmSSL where installed; the negative tests also run the independent checker without it."""
    return GmSSL.load()


def test_local_issuer_certificates_follow_the_gmssl_rules(local_issuer_certificates, gmssl_or_none):
    """pkicore.certificate (the tests' LocalIssuer for the seal/TSA test PKIs, the KMC's bootstrap
    certificate): CA certificates with critical cA TRUE, end entities without basicConstraints."""
    kinds = {"ca": "ca", "end-entity": "other", "tsa": "other"}
    broken = {f"{c.profile}/{c.key}/{i}": rule_violations(c.der, kinds[c.profile])
              for i, c in enumerate(local_issuer_certificates)}
    assert {name: found for name, found in broken.items() if found} == {}
    assert {c.key for c in local_issuer_certificates} == {"sm2-sm3", "ecdsa-sha256", "rsa-sha256"}
    if gmssl_or_none is not None:
        for c in local_issuer_certificates:
            if c.key == "sm2-sm3" and c.profile == "ca":
                assert gmssl_or_none.cert_check(c.der, "ca")
            if c.key == "sm2-sm3" and c.chain:
                assert gmssl_or_none.verify_by_ca(c.der, c.chain[0])
