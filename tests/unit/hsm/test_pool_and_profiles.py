"""Session-pool recovery, vendor profiles as data, and the web view of the HSM."""
from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from hsm import HsmConfig, KeyManager
from hsm.vendor import VENDOR_DIR, all_profiles, detect_profile, load_profile
from pkicore import algorithm, verify_signature
from racentre.config import Config
from racentre.web import create_app


def test_lost_session_is_reopened(softtoken_km):
    key = softtoken_km.generate_key_pair(f"pool-{secrets.token_hex(4)}", "sm2")
    softtoken_km.sign(key.label, b"warm")
    # Close every idle session behind the pool's back, as a device reset would.
    pooled = [softtoken_km.pool.acquire() for _ in range(2)]
    for p in pooled:
        p.session.close()
        softtoken_km.pool.release(p)
    sig = softtoken_km.sign(key.label, b"after the reset")
    assert verify_signature(key.public_key_info, algorithm("sm2-sm3"), b"after the reset", sig)


def test_every_vendor_file_loads_and_names_known_logical_mechanisms():
    logical = {"sm2-keygen", "sm2-sign-sm3", "sm2-sign-digest", "sm2-encrypt", "sm3", "sm4-keygen",
               "sm4-ecb", "sm4-cbc", "sm4-cbc-pad", "hmac-sm3"}
    profiles = all_profiles()
    assert {p.name for p in profiles} >= {"racentre-softtoken", "softhsm2", "sansec", "tass"}
    for profile in profiles:
        assert set(profile.vendor_mechanisms) <= logical, profile.name
        assert all(code >= 0x80000000 for code in profile.vendor_mechanisms.values()), profile.name


def test_softtoken_codes_match_the_c_header():
    """The Python mirror and hsm/softtoken/include/racentre_vendor.h must not drift apart."""
    header = (VENDOR_DIR.parent / "softtoken" / "include" / "racentre_vendor.h").read_text()
    defines = {}
    for line in header.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "#define" and parts[2].startswith("0x"):
            defines[parts[1]] = int(parts[2].rstrip("UL"), 16)
    profile = load_profile("racentre-softtoken")
    expected = {"sm2-keygen": "CKM_SM2_KEY_PAIR_GEN", "sm2-sign-sm3": "CKM_SM2_SM3",
                "sm2-sign-digest": "CKM_SM2_SIGN_RAW", "sm2-encrypt": "CKM_SM2_ENCRYPT", "sm3": "CKM_SM3",
                "sm4-keygen": "CKM_SM4_KEY_GEN", "sm4-ecb": "CKM_SM4_ECB", "sm4-cbc": "CKM_SM4_CBC",
                "sm4-cbc-pad": "CKM_RACENTRE_SM4_CBC_PAD", "hmac-sm3": "CKM_RACENTRE_SM3_HMAC"}
    for logical, define in expected.items():
        assert profile.vendor_mechanisms[logical] == defines[define], logical
    assert profile.key_types == {"sm2": defines["CKK_SM2"], "sm4": defines["CKK_SM4"]}


def test_tass_and_sansec_behaviours_follow_xipkis_table():
    """XiPKI's vendor.conf gives TASS ECDSA_SIGNATURE_X962, SM2_SIGNATURE_X962, EC_PRIVATEKEY_ECPOINT and
    SM2_PRIVATEKEY_ECPOINT, and Sansec the two ECPOINT behaviours; standard tokens (SoftHSMv2) none."""
    tass, sansec, softhsm = (load_profile(n).quirks for n in ("tass", "sansec", "softhsm2"))
    assert tass.der_signature("sm2") and tass.der_signature("ec") and not tass.der_signature("rsa")
    assert tass.private_key_ec_point("sm2") and tass.private_key_ec_point("ec")
    assert not sansec.der_signature("sm2") and not sansec.der_signature("ec")
    assert sansec.private_key_ec_point("sm2") and sansec.private_key_ec_point("ec")
    assert not softhsm.der_signature("ec") and not softhsm.private_key_ec_point("ec")
    assert load_profile("tass").vendor_mechanisms["sm4-ecb"] == 0x80000108


def test_detection_by_manufacturer():
    assert detect_profile("RA Centre").name == "racentre-softtoken"
    assert detect_profile("SoftHSM project").name == "softhsm2"
    unknown = detect_profile("Acme HSM Inc")
    assert unknown.name == "generic" and not unknown.has("sm2-sign-sm3") and unknown.has("ecdsa-sha256")


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="known: .*sansec"):
        load_profile("nosuchvendor")


def test_a_vendor_module_by_configuration_alone(tmp_path, softtoken_config):
    """A vendor profile written as data (CKK_EC + SM2 curve, ID computed on our side via the digest
    mechanism) drives the same token with no code change."""
    text = (VENDOR_DIR / "racentre-softtoken.toml").read_text()
    text = text.replace('name = "racentre-softtoken"', 'name = "acme-ec-sm2"')
    text = text.replace('sm2_key_type = "vendor"', 'sm2_key_type = "ec"')
    text = text.replace("sm2_user_id_parameter = true", "sm2_user_id_parameter = false")
    text = text.replace("sm2-sign-sm3 = 0x80008100", "")  # this vendor signs digests only
    (tmp_path / "acme.toml").write_text(text)
    config = HsmConfig(**{**softtoken_config.__dict__, "vendor": str(tmp_path / "acme.toml")})
    km = KeyManager(config)
    try:
        key = km.generate_key_pair(f"acme-{secrets.token_hex(4)}", "sm2")
        assert key.key_type == "sm2"
        for uid in (None, b"another-id"):
            sig = km.sign(key.label, b"vendor path", user_id=uid)
            assert km.verify(key.label, b"vendor path", sig, user_id=uid)
        sig = km.sign(key.label, b"vendor path")
        assert verify_signature(key.public_key_info, algorithm("sm2-sm3"), b"vendor path", sig)
    finally:
        km.close()


def test_health_endpoint_and_json_errors(softtoken_km):
    app = create_app(Config(hsm=softtoken_km.config), softtoken_km)
    client = app.test_client()
    health = client.get("/hsm/health")
    assert health.status_code == 200 and health.json["status"] == "ok"
    assert health.json["vendor_profile"] == "racentre-softtoken"
    assert client.get("/hsm/info").status_code == 401          # token details need ra_admin or auditor
    assert "sm2-sign-sm3" in softtoken_km.info().as_dict()["mechanisms"]
    missing = client.get("/no/such/route")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"
    assert Path(softtoken_km.config.module).is_file()
