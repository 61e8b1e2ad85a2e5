"""The demo's commands: ``racentre demo --out DIR [--url URL]`` (``racentre.demo.run.run_demo``), and the
demo's RA team, ``racentre console demo-team`` and ``racentre console user totp NAME``
(``racentre.demo.team``). ``racentre.cli`` attaches the team commands to the console group, so that the
console package imports nothing of the demo."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from store.db import transaction
from racentre import accounts
from racentre.demo import team
from racentre.demo.run import run_demo


def _db(ctx):
    return ctx.obj["services"].db


def _box(ctx):
    return accounts.totp_box(ctx.obj["services"].key_manager)


@click.command("demo")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="artefact directory")
@click.option("--url", default=None, help="the running service (default: the same app in this process)")
@click.option("--console-day/--no-console-day", default=True, show_default=True,
              help="the demo team's day in the console, in headless Chromium, with screenshots")
@click.pass_context
def demo_command(ctx, out_dir, url, console_day):
    """Run the demo flows through the REST API and write their artefacts into DIR."""
    for name in run_demo(ctx.obj["services"], Path(out_dir), url, console_day=console_day):
        click.echo(f"wrote {Path(out_dir) / name}")


@click.command("totp")
@click.argument("name")
@click.pass_context
def totp_command(ctx, name):
    """Print the current one-time code of demo officer NAME (only accounts `racentre console demo-team`
    made; audited). A real officer's code is only in their authenticator app."""
    with transaction(_db(ctx)) as session:
        click.echo(team.current_code(session, name, _box(ctx), actor="cli"))


@click.command("demo-team")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="also write the logins (password, TOTP secrets, API tokens) to this file, mode 0600")
@click.option("--password-stdin", is_flag=True, help="read the team's password from standard input")
@click.pass_context
def demo_team_command(ctx, out_path, password_stdin):
    """Create (or reset) the demo's RA team: one officer per role, enough for every four-eyes rule."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else team.new_password()
    with transaction(_db(ctx)) as session:
        creds = team.create_team(session, _box(ctx), password)
    lines = [f"{c.member.name:<6} {c.member.display_name:<4} {','.join(c.member.roles):<21} {c.member.duty}"
             for c in creds]
    click.echo("\n".join(lines))
    if out_path:
        body = [f"# RA centre demo team (written by racentre console demo-team); password of every officer: "
                f"{password}", "# name\troles\tTOTP secret (base32)\totpauth URI\tAPI token"]
        body += [f"{c.member.name}\t{','.join(c.member.roles)}\t{c.totp_secret}\t{c.otpauth_uri}\t{c.api_token}"
                 for c in creds]
        target = Path(out_path)
        target.touch(mode=0o600, exist_ok=True)
        target.chmod(0o600)
        target.write_text("\n".join(body) + "\n", encoding="utf-8")
    if not password_stdin:
        click.echo(f"password of every officer: {password}")
