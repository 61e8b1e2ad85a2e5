"""``racentre console user add|list|disable|enable|reset-totp|set-password|bind-cert``: officer accounts
(one officer: console login, API token, CLI ``--as``). The demo's ``racentre console demo-team`` and
``racentre console user totp`` are the demo's (``racentre.demo.cli``, attached by ``racentre.cli``).

Passwords are read from a prompt (hidden, twice) or from standard input with ``--password-stdin``,
never from the command line; the TOTP secret is printed once, as an otpauth:// URI for the officer's
authenticator app (RFC 6238).
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from access.auth import ROLES, create_token
from audit.trail import record
from store.db import transaction
from racentre import accounts, totp
from seal.services import cert_der


@click.group("console")
def console_group():
    """The officers' web console."""


@console_group.group("user")
def user_group():
    """Officer accounts (password + TOTP and/or a client certificate)."""


def _db(ctx):
    return ctx.obj["services"].db


def _box(ctx):
    return accounts.totp_box(ctx.obj["services"].key_manager)


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("password", hide_input=True, confirmation_prompt=True)


def _show_secret(name: str, secret: str) -> None:
    click.echo(f"TOTP secret for {name} (shown once): {secret}")
    click.echo(f"otpauth URI: {totp.provisioning_uri(secret, name)}")


@user_group.command("add")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES), help="repeat for several")
@click.option("--display-name", default=None)
@click.option("--password/--no-password", default=True, show_default=True, help="password + TOTP login")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--cert", "cert_path", type=click.Path(dir_okay=False, exists=True), help="bind this client certificate")
@click.option("--api-token", is_flag=True,
              help="also create the officer's API token (named NAME, same roles; shown once) for REST clients")
@click.pass_context
def add_command(ctx, name, roles, display_name, password, password_stdin, cert_path, api_token):
    """Create officer NAME: the console account (password + TOTP and/or client certificate) and, with
    --api-token, their REST credential. The CLI acts as them with `--as NAME` (racentre ra ...)."""
    clear = _password(password_stdin) if password else None
    cert = cert_der(Path(cert_path).read_bytes()) if cert_path else None
    with transaction(_db(ctx)) as session:
        _, secret = accounts.add_account(session, name=name, roles=roles, actor="cli", box=_box(ctx),
                                         display_name=display_name, password=clear, cert_der=cert)
        token = create_token(session, name, list(roles)) if api_token else None
        if token:
            record(session, actor="cli", role="ra_admin", action="auth.token.create", target_type="api_token",
                   target_id=name, officer=name, roles=sorted(set(roles)), expires_at=None)
    click.echo(f"created officer account {name} ({', '.join(sorted(roles))})")
    if secret:
        _show_secret(name, secret)
    if token:
        click.echo(f"API token for {name} (shown once; Authorization: Bearer ...): {token}")


@user_group.command("list")
@click.pass_context
def list_command(ctx):
    """List officer accounts."""
    with _db(ctx)() as session:
        for a in accounts.list_accounts(session):
            flags = [f for f, on in (("password+totp", a["password"] and a["totp"]), ("certificate", a["certificate"]),
                                     ("DISABLED", a["disabled"]), ("LOCKED", a["locked"])) if on]
            click.echo(f"{a['name']}\t{','.join(a['roles'])}\t{' '.join(flags)}\tlast login {a['last_login_at'] or '-'}")


@user_group.command("disable")
@click.argument("name")
@click.pass_context
def disable_command(ctx, name):
    """Disable NAME (open sessions end at their next request)."""
    with transaction(_db(ctx)) as session:
        accounts.set_disabled(session, name, True, actor="cli")
    click.echo(f"disabled {name}")


@user_group.command("enable")
@click.argument("name")
@click.pass_context
def enable_command(ctx, name):
    """Enable NAME again."""
    with transaction(_db(ctx)) as session:
        accounts.set_disabled(session, name, False, actor="cli")
    click.echo(f"enabled {name}")


@user_group.command("reset-totp")
@click.argument("name")
@click.pass_context
def reset_totp_command(ctx, name):
    """Give NAME a new TOTP secret (the old one stops working)."""
    with transaction(_db(ctx)) as session:
        secret = accounts.reset_totp(session, name, actor="cli", box=_box(ctx))
    _show_secret(name, secret)


@user_group.command("set-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True)
@click.pass_context
def set_password_command(ctx, name, password_stdin):
    """Set NAME's password (and clear a lock-out)."""
    clear = _password(password_stdin)
    with transaction(_db(ctx)) as session:
        secret = accounts.set_password(session, name, clear, actor="cli", box=_box(ctx))
    click.echo(f"password of {name} set")
    if secret:
        _show_secret(name, secret)


@user_group.command("bind-cert")
@click.argument("name")
@click.argument("cert_path", type=click.Path(dir_okay=False, exists=True))
@click.pass_context
def bind_cert_command(ctx, name, cert_path):
    """Bind a client certificate (PEM or DER) to NAME."""
    with transaction(_db(ctx)) as session:
        accounts.bind_certificate(session, name, cert_der(Path(cert_path).read_bytes()), actor="cli")
    click.echo(f"certificate bound to {name}")
