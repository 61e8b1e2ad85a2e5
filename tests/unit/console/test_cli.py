"""`racentre console user ...` against a configured database: add (password read from stdin, the TOTP
URI printed once, the password never), list, disable/enable, reset-totp; unknown roles refused."""
from __future__ import annotations

import re

from click.testing import CliRunner

from racentre import accounts, totp
from racentre.cli import cli
from racentre.services import Services
from racentre.config import load_config
from tests.cli_session import CliSession
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


def test_init_token_from_pin_files_demo_team_and_one_officer_identity(tmp_path, softtoken_module):
    """Issue 17, in fresh processes: `hsm init-token` takes the configured PIN files (no prompt, no PIN on
    the command line) and the service then logs in with them; `console demo-team` makes one officer per role
    (two operators, two approvers, three key-recovery officers), writes their logins to a 0600 file and gives
    each an API token that authenticates as the same officer; `console user totp` shows a demo officer's
    current code and refuses any other account; `user add --api-token` makes an officer's REST credential.
    The commands after the token is initialised run one after another in one more interpreter
    (tests/cli_session.py), started after `hsm info` proved the PIN files open the token."""
    import os
    import subprocess
    import sys
    (tmp_path / "softtoken").mkdir()
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    (tmp_path / "user.pin").write_text("init-user-pin\n")
    (tmp_path / "so.pin").write_text("init-so-pin\n")
    url = migrated(f"sqlite:///{tmp_path}/db.sqlite")
    (tmp_path / "racentre.toml").write_text(
        '[hsm]\ntoken = "init-from-files"\npin_file = "user.pin"\n[softtoken]\ndir = "softtoken"\n'
        f'auto_init = false\nso_pin_file = "so.pin"\n[database]\nurl = "{url}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env["RACENTRE_CONFIG"] = str(tmp_path / "racentre.toml")

    def fresh(*args, stdin=None):
        return subprocess.run([sys.executable, "-m", "racentre.cli", *args], cwd=tmp_path, env=env, input=stdin,
                              capture_output=True, text=True, timeout=120)

    assert fresh("hsm", "info").returncode == 2                    # no such token yet, and no auto_init
    init = fresh("hsm", "init-token", stdin="")                     # nothing to type: the PINs are configured
    assert init.returncode == 0, init.stderr
    assert "initialised token 'init-from-files'" in init.stdout and "SO PIN from the configuration" in init.stdout
    assert "init-user-pin" not in init.stdout + init.stderr and "init-so-pin" not in init.stdout + init.stderr
    assert fresh("hsm", "info").returncode == 0                     # the service's PIN file opens it
    with CliSession(env, tmp_path) as session:
        _demo_team_and_identities(session.run, tmp_path)


def _demo_team_and_identities(run, tmp_path):
    from access.auth import authenticate

    team = run("console", "demo-team", "--out", str(tmp_path / "officers.tsv"))
    assert team.returncode == 0, team.stderr
    rows = [ln.split() for ln in team.stdout.splitlines() if not ln.startswith("password")]
    roles = sorted(r[2] for r in rows)
    assert roles == sorted(["ra_operator"] * 2 + ["ra_officer"] * 2 + ["ra_admin", "auditor"]
                           + ["key_recovery_officer"] * 3)
    assert (tmp_path / "officers.tsv").stat().st_mode & 0o777 == 0o600
    lines = (tmp_path / "officers.tsv").read_text().splitlines()
    password = lines[0].rsplit(" ", 1)[1]
    assert f"password of every officer: {password}" in team.stdout
    logins = {f[0]: f for f in (ln.split("\t") for ln in lines[2:])}
    code = run("console", "user", "totp", "sun")
    assert code.returncode == 0 and re.fullmatch(r"\d{6}\n", code.stdout)
    assert code.stdout.strip() in {totp.totp(totp.secret_bytes(logins["sun"][2]), at)
                                   for at in (__import__("time").time() - 30, __import__("time").time())}
    services = Services(load_config(tmp_path / "racentre.toml", environ={}))
    with services.db() as session:
        assert authenticate(session, logins["sun"][4]).name == "sun"     # sun's token is the officer sun
    services.database.dispose()

    added = run("console", "user", "add", "li", "--role", "ra_officer", "--password-stdin", "--api-token",
                stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    token = re.search(r"API token for li \(shown once; Authorization: Bearer \.\.\.\): (rac_\S+)", added.stdout).group(1)
    services = Services(load_config(tmp_path / "racentre.toml", environ={}))
    with services.db() as session:
        principal = authenticate(session, token)
        assert principal.name == "li" and principal.roles == {"ra_officer"}
    services.database.dispose()
    refused = run("console", "user", "totp", "li")
    assert refused.returncode == 2 and "not a demo account" in refused.stderr and not refused.stdout
    again = run("console", "demo-team")                              # run again: the same people, new secrets
    assert again.returncode == 0 and [ln.split()[0] for ln in again.stdout.splitlines()[:9]] == [r[0] for r in rows]
