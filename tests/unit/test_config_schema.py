"""One configuration path: every section's keys and types come from its dataclass (pkicore.settings),
every key can be set by the file and by RACENTRE_<SECTION>_<KEY>, and the commented operator file
(docs/racentre.example.toml) is what the code renders, documents every key and loads as written."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest

from pkicore.secret import Secret
from pkicore.settings import ConfigError, convert, format_duration, toml_value
from racentre.config import SECTIONS, Config, env_name, example_file, load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "racentre.example.toml"


def _section(config: Config, name: str):
    return config.hsm.softtoken if name == "softtoken" else getattr(config, name)


def _every_setting():
    return [(section, item) for section, cls in SECTIONS.items() for item in cls.settings().values()]


def test_every_field_is_a_documented_setting_or_marked_internal():
    for section, cls in SECTIONS.items():
        assert cls.SECTION == section and cls.DOC
        for f in dataclasses.fields(cls):
            assert "setting" in f.metadata, f"{section}.{f.name}: use pkicore.settings.setting() or internal()"
        for item in cls.settings().values():
            assert item.doc.strip(), f"{section}.{item.name} has no documentation"
    config_fields = {f.name for f in dataclasses.fields(Config)} - {"source"}
    assert config_fields == set(SECTIONS) - {"softtoken"}


def test_example_file_is_the_rendered_schema():
    assert EXAMPLE.read_text(encoding="utf-8") == example_file(), \
        "docs/racentre.example.toml is stale: run `racentre config example > docs/racentre.example.toml`"
    text = EXAMPLE.read_text(encoding="utf-8")
    for section, item in _every_setting():
        key = f"{item.name}_file" if item.kind == "secret" else item.name
        assert re.search(rf"^\[{section}\]\n(?:#.*\n|\n)*?# {key} =", text, re.M), f"{section}.{key} not documented"


def test_example_file_loads_commented_and_uncommented(tmp_path):
    """As shipped (all commented) it gives the defaults; with every line uncommented it still loads and
    each key takes the value written there."""
    assert load_config(EXAMPLE, environ={}) == dataclasses.replace(Config(), source=str(EXAMPLE))
    text = re.sub(r"^# (\w+ = .*)$", r"\1", EXAMPLE.read_text(encoding="utf-8"), flags=re.M)
    for section, item in _every_setting():
        if item.kind == "secret":
            (tmp_path / item.example).write_text(f"{section}-secret\n")
    path = tmp_path / "racentre.toml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path, environ={})
    assert config.ra.approvals["server"] == 1 and config.kmc.officers == ("zhao", "qian", "sun")
    assert config.hsm.pin == Secret("hsm-secret") and config.hsm.softtoken.so_pin == Secret("softtoken-secret")
    assert config.hsm.softtoken.dir == str(tmp_path / "softtoken")
    assert config.kmc.trusted_ca_files == (str(tmp_path / "issuing-ca.pem"),)
    assert config.tsa.unit_configs()["rsa"].policy == "2.999.1.2"


def _sample(item, default) -> str:
    """A valid value other than the default, as an environment variable would carry it."""
    if item.example is not None and item.example != default:
        value = item.example
    elif item.kind == "bool":
        value = not default
    elif item.kind == "int":
        value = (default or 0) + 1
    elif item.kind == "duration":
        value = default + dt.timedelta(minutes=1)
    elif item.kind == "str":
        value = f"{default}x"
    elif item.kind == "secret":
        value = "s3cret-from-env"
    else:
        raise AssertionError(f"{item.name}: give the setting an example")
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dt.timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return toml_value(value)
    return str(value)


@pytest.mark.parametrize("section, item", _every_setting(), ids=lambda v: getattr(v, "name", v))
def test_every_setting_is_overridable_by_environment(section, item):
    cls = SECTIONS[section]
    default = cls.defaults()[item.name]
    value = _sample(item, default)
    config = load_config(None, environ={env_name(section, item.name): value})
    got = getattr(_section(config, section), item.name)
    expected = cls.process_entries({item.name: convert(section, item, value, "test")}, Path.cwd())[item.name]
    assert got == expected and got != default, f"{env_name(section, item.name)} was not applied"


def test_secrets_from_environment_files(tmp_path):
    secrets = [(s, i) for s, i in _every_setting() if i.kind == "secret"]
    assert {(s, i.name) for s, i in secrets} >= {("hsm", "pin"), ("softtoken", "so_pin")}
    env = {}
    for section, item in secrets:
        (tmp_path / item.name).write_text(f"{section}.{item.name}\n")
        env[f"{env_name(section, item.name)}_FILE"] = str(tmp_path / item.name)
    config = load_config(None, environ=env)
    for section, item in secrets:
        assert getattr(_section(config, section), item.name) == Secret(f"{section}.{item.name}")


def test_ra_section_is_accepted_and_merged_over_the_defaults(tmp_path):
    path = tmp_path / "racentre.toml"
    path.write_text('[ra]\napprovals = { server = 2 }\nprofiles = { unit = { sign = "server" } }\n')
    config = load_config(path, environ={})
    policy = config.ra.policy()
    assert policy.approvals == {"civil-servant-dual": 2, "unit": 2, "server": 2}
    assert policy.profiles["unit"] == {"sign": "server"} and policy.profiles["server"] == {"sign": "server"}
    env = load_config(path, environ={"RACENTRE_RA_APPROVALS": "{ server = 3, unit = 4 }"})
    assert env.ra.policy().approvals == {"civil-servant-dual": 2, "unit": 4, "server": 3}


@pytest.mark.parametrize("text, message", [
    ('[ra]\napprovals = { server = 0 }\n', "at least 1"),
    ('[ra]\napprovals = { printer = 1 }\n', "request type"),
    ('[ra]\napprovals = 2\n', "not a valid table"),
    ('[ra]\nprofiles = { server = { sign = "no-such-profile" } }\n', "no CA profile"),
    ('[ra]\nprofiles = { server = { seal = "server" } }\n', "keys sign and enc"),
    ('[ca]\ncountry = "China"\n', "two letters"),
    ('[ca]\nroot_name = "{nope} Root"\n', "may be filled in"),
    ('[ca]\ncrl_validity = "1h"\ncrl_refresh = "2h"\n', "crl_refresh"),
    ('[ca]\nocsp_validity = "soon"\n', "not a valid duration"),
    ('[kmc]\nrequest_ttl = 0\n', "positive"),
    ('[softtoken]\nslots = 0\n', "softtoken.slots"),
    ('[console]\nsecure_cookies = "sometimes"\n', "secure_cookies"),
    ('[service]\nport = "http"\n', "not a valid int"),
    ('[service]\nport = true\n', "not a valid int"),
])
def test_bad_values_are_configuration_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_ca_names_and_validity_come_from_configuration(tmp_path):
    path = tmp_path / "racentre.toml"
    path.write_text('[ca]\norganization = "浙江省数字证书中心"\nroot_name = "{organization} 根 CA ({kind})"\n'
                    'crl_validity = "12h"\nocsp_validity = "30m"\n')
    ca = load_config(path, environ={}).ca
    assert ca.name("root_name", kind="SM2") == "浙江省数字证书中心 根 CA (SM2)"
    assert ca.subject("x") == (("country_name", "CN"), ("organization_name", "浙江省数字证书中心"),
                               ("common_name", "x"))
    assert ca.crl_validity == dt.timedelta(hours=12) and ca.ocsp_validity == dt.timedelta(minutes=30)
    kmc = load_config(path, environ={}).kmc
    assert dict(kmc.kmc_subject)["organization_name"] == "浙江省数字证书中心"


def test_tsa_policy_is_configured_not_a_placeholder(tmp_path):
    """No OID goes into tokens unless an operator set it: unset, the TSA refuses to build its units (a
    configuration error, HTTP 503) instead of writing a placeholder policy."""
    from timestamp.config import TsaConfig, TsaConfigError
    from timestamp.services import build_authority
    assert TsaConfig().policy == ""
    with pytest.raises(TsaConfigError, match=r"set \[tsa\] policy"):
        build_authority(TsaConfig(), None)
    for bad in ('policy = "tsa-policy-1"', 'accept_policies = "1.2.x"', 'units = "e=k:ecdsa-sha256:3.1"'):
        path = tmp_path / "bad.toml"
        path.write_text(f"[tsa]\n{bad}\n")
        with pytest.raises(ConfigError, match="not an OID"):
            load_config(path, environ={})
    assert load_config(None, environ={"RACENTRE_TSA_POLICY": "2.999.7.1"}).tsa.policy == "2.999.7.1"
