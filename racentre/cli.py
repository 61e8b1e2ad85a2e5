"""The `racentre` command: one entry point for operators (click). Reads the same settings as the service."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ca_bridge.cli import ca_group
from hsm import HsmConfig
from hsm.cli import hsm_group
from kms.cli import kms_group
from pkicore.errors import PkiError
from ra.cli import ra_group, ra_revoke
from racentre.accounts import enabled_principal
from racentre.audit_cli import audit_group
from racentre.config import CONFIG_ENV, DatabaseConfig, example_file, load_config, locate_config
from racentre.console.cli import console_group, user_group
from racentre.demo.cli import demo_command, demo_team_command, totp_command
from racentre.migrate import head, require_current
from racentre.serve import serve_command, tsa_serve_command
from racentre.setup_cli import setup_command
from racentre.services import Services
from seal.cli import seal_group
from timestamp.cli import tsa_group
from trust.cli import trust_group


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="configuration file (default: $RACENTRE_CONFIG or ./racentre.toml)")
@click.option("-v", "--verbose", is_flag=True, help="log at INFO level")
@click.pass_context
def cli(ctx, config_path, verbose):
    """RA centre for government identity: RA, SM2 CA, HSM, key escrow, timestamps, seals."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.ensure_object(dict)
    path, how = locate_config(config_path, demo=True)
    if how == "defaults":
        click.echo(f"racentre: no configuration file (--config, ${CONFIG_ENV} or ./racentre.toml in {Path.cwd()}): "
                   f"built-in defaults (database {DatabaseConfig().url}, HSM token {HsmConfig().token!r}). "
                   f"A site: export {CONFIG_ENV}=/path/to/racentre.toml", err=True)
    elif how.startswith("the demo"):
        click.echo(f"racentre: using {how}: {path} (export {CONFIG_ENV}={path} to say so)", err=True)
    ctx.obj["config"] = load_config(path)
    ctx.obj["services"] = services = Services(ctx.obj["config"])
    # `--as NAME` of the ra commands: NAME's console account is the officer (one identity, racentre.accounts)
    ctx.obj["officer_principal"] = lambda name: enabled_principal(services.db, name, "cli")
    ctx.obj["ra_revoke"] = ra_revoke          # `racentre ca revoke` of an RA certificate goes through the RA
    ctx.obj["trust_service"] = lambda: services.trust
    ctx.call_on_close(services.close)


@cli.group("db")
def db_group():
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx):
    """Bring the configured database to this version's schema (the one step that changes it; run it once,
    from one node, before starting nodes of a new version; concurrent runs wait for each other)."""
    services = ctx.obj["services"]
    services.upgrade_database()
    click.echo(f"database schema is at {head()}")


@db_group.command("check")
@click.pass_context
def db_check(ctx):
    """Exit 0 when the database is at this version's schema, else say why (exit 2)."""
    require_current(ctx.obj["services"].database)
    click.echo(f"database schema is at {head()}, as this version expects")


@cli.group("config")
def config_group():
    """The configuration file (racentre.toml)."""


@config_group.command("example")
def config_example():
    """Print every setting with its documentation and default (docs/racentre.example.toml)."""
    click.echo(example_file(), nl=False)


@config_group.command("check")
@click.pass_context
def config_check(ctx):
    """Read the configuration (file and RACENTRE_* environment) and say which file it came from."""
    source = ctx.obj["config"].source
    click.echo(f"configuration OK: {source or 'no file (defaults and environment)'}")


cli.add_command(hsm_group)
cli.add_command(ca_group)
cli.add_command(ra_group)
cli.add_command(demo_command)
cli.add_command(setup_command)
cli.add_command(serve_command)
tsa_group.add_command(tsa_serve_command)      # `racentre tsa serve`: serving is the shell's
cli.add_command(tsa_group)
cli.add_command(kms_group)
cli.add_command(seal_group)
console_group.add_command(demo_team_command)    # the demo's RA team (racentre.demo.team)
user_group.add_command(totp_command)
cli.add_command(console_group)
cli.add_command(audit_group)
cli.add_command(trust_group)


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PkiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
