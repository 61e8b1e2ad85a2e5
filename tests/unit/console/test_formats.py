"""The console's names and times (issue 17): DNs as officers read them, Beijing time by default."""
from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import x509

from pkicore.errors import PkiError
from racentre.config import load_config
from racentre.console.formats import dn, local_time, zone


def test_dn_in_certificate_order_with_short_names():
    name = x509.Name.build({"country_name": "CN", "organization_name": "杭州市数据资源局", "common_name": "陈晓明"})
    assert dn(name) == "C=CN, O=杭州市数据资源局, CN=陈晓明"
    assert dn((("country_name", "CN"), ("organizational_unit_name", "办公室"), ("common_name", "陈晓明"))) \
        == "C=CN, OU=办公室, CN=陈晓明"
    assert dn("CN=RA Centre SM2 Issuing CA,O=RA Centre\\, Hangzhou,C=CN") == \
        "C=CN, O=RA Centre, Hangzhou, CN=RA Centre SM2 Issuing CA"
    assert dn("") == "" and dn("not a dn") == "not a dn"


def test_times_in_the_configured_zone():
    at = dt.datetime(2026, 12, 7, 16, 30, 5, tzinfo=dt.timezone.utc)
    assert local_time(at, zone("Asia/Shanghai")) == "2026-12-08 00:30:05"
    assert local_time(at.isoformat(), zone("Asia/Shanghai"), date_only=True) == "2026-12-08"
    assert local_time(at, zone("Europe/Berlin")) == "2026-12-07 17:30:05"
    assert local_time(None, zone("")) == "" and local_time("garbage", zone("")) == "garbage"


def test_timezone_setting_is_checked(tmp_path):
    (tmp_path / "ok.toml").write_text('[console]\ntimezone = "Asia/Urumqi"\n')
    assert load_config(tmp_path / "ok.toml", environ={}).console.timezone == "Asia/Urumqi"
    assert load_config(None, environ={}).console.timezone == "Asia/Shanghai"
    (tmp_path / "bad.toml").write_text('[console]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(PkiError, match="IANA"):
        load_config(tmp_path / "bad.toml", environ={})
