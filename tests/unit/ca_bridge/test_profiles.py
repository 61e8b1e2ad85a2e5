"""ca_bridge.profiles: the load-time rules that keep every profile inside what GmSSL 3 and RFC 8813 accept
(REFERENCES §10), and the operator's way out for a longer root (allow_long_validity, warned)."""
from __future__ import annotations

import datetime as dt
import logging
import secrets
import shutil

import pytest
from asn1crypto import x509

from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import ProfileError
from ca_bridge.profiles import GMSSL_MAX_VALIDITY_DAYS, PROFILE_DIR, load_profiles
from tests.unit.ca_bridge.conftest import PUBLIC_URL


@pytest.fixture
def profile_dir(tmp_path):
    """A copy of the shipped profiles to edit."""
    for path in PROFILE_DIR.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def edit(directory, name: str, old: str, new: str) -> None:
    path = directory / f"{name}.toml"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_shipped_profiles_stay_inside_the_limits():
    profiles = load_profiles()
    for profile in profiles.values():
        assert profile.max_validity_days < GMSSL_MAX_VALIDITY_DAYS and not profile.allow_long_validity
        for algorithm in profile.key_algorithms:
            usage = profile.key_usage_for(algorithm)
            if algorithm.startswith("ec-"):
                assert not usage & {"key_encipherment", "data_encipherment"}, (profile.name, algorithm)
    assert profiles["root-ca"].validity_days == 3650
    assert profiles["server"].key_usage_for("rsa-3072") == {"digital_signature", "key_encipherment"}
    assert profiles["server"].key_usage_for("ec-p256") == {"digital_signature"}
    assert profiles["civil-servant-enc"].key_usage_for("sm2") == {"key_encipherment", "data_encipherment",
                                                                  "key_agreement"}
    assert profiles["civil-servant-enc"].key_usage_for("ec-p384") == {"key_agreement"}


@pytest.mark.parametrize("name,old,new,match", [
    # RFC 8813 §3: keyEncipherment with an ECDSA key
    ("server", "rsa = [", "ec = [", "RFC 8813 forbids key_encipherment for ec-p256"),
    ("civil-servant-enc", 'ec = ["key_agreement"]', 'ec-p384 = ["key_agreement"]', "for ec-p256 keys"),
    # a 20-year root without the operator's explicit consent
    ("root-ca", "validity_days = 3650\nmax_validity_days = 3652", "validity_days = 7300\nmax_validity_days = 7300",
     "GmSSL 3 refuses"),
    ("issuing-ca", "max_validity_days = 3652", "max_validity_days = 3653", "max_validity_days 3653 is more than 3652"),
    # GmSSL 3: serverAuth needs digitalSignature; a CA takes no extended key usage
    ("server", 'key_usage = ["digital_signature"]', 'key_usage = ["non_repudiation"]', "needs digitalSignature"),
    ("issuing-ca", "extended_key_usage = []", 'extended_key_usage = ["ocsp_signing"]', "no extended key usage"),
    ("issuing-ca", 'key_usage = ["key_cert_sign", "crl_sign"]', 'key_usage = ["key_cert_sign"]', "cRLSign"),
    ("unit", 'extended_key_usage = ["client_auth", "email_protection"]',
     'extended_key_usage = ["any_extended_key_usage"]', "anyExtendedKeyUsage alone"),
    ("server", "rsa = [", "dsa = [", "unknown key algorithm or family 'dsa'"),
    ("unit", '"organization_name", "common_name"]\n',
     '"organization_name", "common_name"]\n[key_usage_by_key]\nrsa = ["digital_signature"]\n',
     "names key algorithms the profile does not accept"),
])
def test_profiles_outside_the_rules_are_refused(profile_dir, name, old, new, match):
    edit(profile_dir, name, old, new)
    with pytest.raises(ProfileError, match=match):
        load_profiles(profile_dir)


def test_a_longer_root_is_configured_explicitly_and_warned(profile_dir, softtoken_km, db, caplog):
    """allow_long_validity = true in root-ca.toml: a 20-year root is issued, with a warning at load time
    and another when the root is created."""
    edit(profile_dir, "root-ca", "validity_days = 3650\nmax_validity_days = 3652\nallow_long_validity = false",
         "validity_days = 7300\nmax_validity_days = 7300\nallow_long_validity = true")
    with caplog.at_level(logging.WARNING):
        profiles = load_profiles(profile_dir)
    assert any("root-ca" in r.getMessage() and "allow_long_validity" in r.getMessage() for r in caplog.records)
    caplog.clear()
    tag = f"l{secrets.token_hex(4)}-"
    authority = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag, profiles=profiles)
    with caplog.at_level(logging.WARNING):
        authority.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    root = x509.Certificate.load(authority.directory.get(f"{tag}root-sm2").certificate)
    assert root.not_valid_after - root.not_valid_before == dt.timedelta(days=7300)
    assert [r for r in caplog.records if r.levelno == logging.WARNING and "root-ca" in r.getMessage()
            and "GmSSL 3 refuses" in r.getMessage()]
    issuing = x509.Certificate.load(authority.directory.get(f"{tag}issuing-sm2").certificate)
    assert issuing.not_valid_after - issuing.not_valid_before == dt.timedelta(days=3650)
