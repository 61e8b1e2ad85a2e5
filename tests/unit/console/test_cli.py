"""`racentre console user ...` against a configured database: add (password read from stdin, the TOTP
URI printed once, the password never), list, disable/enable, reset-totp; unknown roles refused."""
from __future__ import annotations

import re

from click.testing import CliRunner

from racentre import accounts, totp
from racentre.cli import cli
from racentre.services import Services
from racentre.config import load_config
from tests.pgschema import migrated
from tests.unit.console.site import PASSWORD


def test_user_commands(tmp_path, softtoken_module, monkeypatch):
    (tmp_path / "softtoken").mkdir()
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    config = tmp_path / "racentre.toml"
    config.write_text('[hsm]\ntoken = "console-cli"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
                      f'[database]\nurl = "{migrated(f"sqlite:///{tmp_path}/db.sqlite")}"\n')
    monkeypatch.setenv("RACENTRE_HSM_PIN", "cli-user-pin")
    monkeypatch.setenv("RACENTRE_SOFTTOKEN_SO_PIN", "cli-so-pin")
    runner = CliRunner()

    def run(*args, stdin=None):
        return runner.invoke(cli, ["--config", str(config), "console", "user", *args], input=stdin,
                             catch_exceptions=False)

    added = run("add", "wang", "--role", "ra_officer", "--role", "auditor", "--password-stdin", stdin=PASSWORD + "\n")
    assert added.exit_code == 0 and PASSWORD not in added.output
    secret = re.search(r"secret=([A-Z2-7]+)", added.output).group(1)
    services = Services(load_config(config))
    principal = accounts.password_login(services.db, "wang", PASSWORD, totp.totp(totp.secret_bytes(secret)),
                                        box=accounts.totp_box(services.key_manager))
    assert principal.roles == {"ra_officer", "auditor"}
    listed = run("list")
    assert "wang\tauditor,ra_officer\tpassword+totp" in listed.output
    assert run("disable", "wang").exit_code == 0 and "DISABLED" in run("list").output
    assert run("enable", "wang").exit_code == 0 and "DISABLED" not in run("list").output
    reset = run("reset-totp", "wang")
    assert reset.exit_code == 0 and secret not in reset.output and "otpauth://totp/" in reset.output
    refused = runner.invoke(cli, ["--config", str(config), "console", "user", "add", "li", "--role", "root"])
    assert refused.exit_code != 0
    services.close()
