"""The configuration loader: file + RACENTRE_* overrides, secrets from files, secrets never echoed."""
from __future__ import annotations

import pytest

from pkicore.secret import Secret
from racentre.config import ConfigError, load_config


def test_defaults_without_a_file():
    cfg = load_config(None, environ={})
    assert cfg.hsm.token == "racentre" and cfg.hsm.pin is None
    assert cfg.database.url.startswith("sqlite:///")
    assert cfg.hsm.is_softtoken


def test_file_then_environment_overrides(tmp_path):
    (tmp_path / "pin").write_text("file-pin\n")
    path = tmp_path / "racentre.toml"
    path.write_text('[hsm]\ntoken = "from-file"\npin_file = "pin"\npool_size = 2\n'
                    '[softtoken]\ndir = "tok"\nauto_init = true\n[database]\nurl = "sqlite:///x.db"\n')
    cfg = load_config(path, environ={})
    assert cfg.hsm.token == "from-file" and cfg.hsm.pin == Secret("file-pin") and cfg.hsm.pool_size == 2
    assert cfg.hsm.softtoken.dir == str(tmp_path / "tok") and cfg.hsm.softtoken.auto_init is True
    env = {"RACENTRE_HSM_TOKEN": "from-env", "RACENTRE_HSM_PIN": "env-pin", "RACENTRE_HSM_POOL_SIZE": "9",
           "RACENTRE_DATABASE_URL": "postgresql+psycopg://127.0.0.1/test",
           "RACENTRE_HSM_MODULE": "/usr/lib/softhsm/libsofthsm2.so", "RACENTRE_SOFTTOKEN_AUTO_INIT": "no"}
    cfg = load_config(path, environ=env)
    assert cfg.hsm.token == "from-env" and cfg.hsm.pin.reveal() == "env-pin" and cfg.hsm.pool_size == 9
    assert cfg.database.url == "postgresql+psycopg://127.0.0.1/test"
    assert not cfg.hsm.is_softtoken and cfg.hsm.softtoken.auto_init is False


def test_config_file_named_by_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[service]\nport = 9999\n')
    assert load_config(None, environ={"RACENTRE_CONFIG": str(path)}).service.port == 9999


def test_secrets_are_never_printed(tmp_path):
    cfg = load_config(None, environ={"RACENTRE_HSM_PIN": "s3cr3t-pin"})
    assert "s3cr3t-pin" not in repr(cfg) and "s3cr3t-pin" not in str(cfg.hsm)
    with pytest.raises(ConfigError) as err:
        load_config(None, environ={"RACENTRE_HSM_POOL_SIZE": "s3cr3t-pin"})
    assert "s3cr3t-pin" not in str(err.value)


@pytest.mark.parametrize("text, message", [
    ("[nosuch]\nx = 1\n", "unknown configuration section"),
    ("[hsm]\nbogus = 1\n", "unknown setting hsm.bogus"),
    ("[hsm]\ntoken = \n", "not valid TOML"),
    ("[hsm]\ntoken_file = \"x\"\n", "only secrets"),
    ("[hsm]\npin_file = \"missing\"\n", "cannot read hsm.pin_file"),
])
def test_bad_files_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/racentre.toml", environ={})


def test_audit_checkpoints_are_on_by_default_and_visible_in_the_file(tmp_path):
    audit = load_config(None, environ={}).audit
    assert (audit.checkpoint_interval, audit.checkpoint_rows, audit.anchor, audit.timestamp) == (60, 10_000, True, True)
    assert (audit.sink_file, audit.sink_syslog, audit.site_id) == ("", False, "")
    path = tmp_path / "racentre.toml"
    path.write_text('[audit]\ncheckpoint_interval = 30\ncheckpoint_rows = 500\nanchor = false\ntimestamp = false\n'
                    'sink_file = "remote/checkpoints.jsonl"\nsink_syslog = true\nsite_id = "ab12"\n')
    audit = load_config(path, environ={"RACENTRE_AUDIT_CHECKPOINT_ROWS": "42"}).audit
    assert (audit.checkpoint_interval, audit.checkpoint_rows, audit.anchor, audit.timestamp) == (30, 42, False, False)
    assert audit.sink_file == str(tmp_path / "remote" / "checkpoints.jsonl") and audit.sink_syslog
    assert audit.site_id == "ab12"
