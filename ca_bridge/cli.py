"""``racentre ca``: set up the CA hierarchy, list CAs, write CRLs, revoke certificates (operators)."""
from __future__ import annotations

from pathlib import Path

import click

from ca_bridge.api import RevocationReason
from ca_bridge.embedded import EmbeddedCA


def _ca(ctx) -> EmbeddedCA:
    services = ctx.obj["services"]
    if "ca" not in ctx.obj:
        ctx.obj["ca"] = EmbeddedCA.from_services(services)
    return ctx.obj["ca"]


@click.group("ca")
def ca_group():
    """The certificate authority: hierarchy, CRLs, revocation."""


@ca_group.command("init")
@click.option("--with-ecdsa", is_flag=True, help="also an ECDSA P-256 hierarchy (interoperability)")
@click.option("--with-rsa", is_flag=True, help="also an RSA hierarchy (interoperability)")
@click.option("--organization", default="RA Centre", show_default=True, help="O= of the CA names")
@click.pass_context
def init_command(ctx, with_ecdsa, with_rsa, organization):
    """Create the SM2 root CA, issuing CA and OCSP signer (keys in the HSM). Refused if they exist."""
    kinds = ["sm2"] + (["ecdsa"] if with_ecdsa else []) + (["rsa"] if with_rsa else [])
    for name in _ca(ctx).init_hierarchy(kinds=tuple(kinds), organization=organization, actor="cli"):
        click.echo(f"created CA {name}")


@ca_group.command("list")
@click.pass_context
def list_command(ctx):
    """List the CAs with their algorithm, issuer and key label."""
    for info in _ca(ctx).authorities().values():
        click.echo(f"{info.name}\t{info.algorithm.name}\tparent={info.parent or '-'}\tkey={info.key_label}"
                   f"\tocsp={info.ocsp_key_label or '-'}\tnot_after={info.not_after:%Y-%m-%d}")


@ca_group.command("crl")
@click.argument("name")
@click.option("--delta", is_flag=True, help="the delta CRL instead of the full one")
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="file to write (DER)")
@click.option("--new", "new", is_flag=True, help="sign a new CRL even if the current one is fresh")
@click.pass_context
def crl_command(ctx, name, delta, out, new):
    """Write CA NAME's current CRL (DER)."""
    crls = _ca(ctx).crls
    published = crls.generate(name, delta=delta) if new else crls.current(name, delta=delta)
    Path(out).write_bytes(published.der)
    click.echo(f"{'delta ' if delta else ''}CRL {published.number} of {name} written to {out}")


@ca_group.command("revoke")
@click.argument("serial")
@click.option("--ca", "ca_name", required=True, help="the issuing CA's name")
@click.option("--reason", type=click.Choice([r.value for r in RevocationReason]), default="unspecified",
              show_default=True)
@click.pass_context
def revoke_command(ctx, serial, ca_name, reason):
    """Revoke certificate SERIAL (hexadecimal) issued by --ca."""
    try:
        number = int(serial, 16)
    except ValueError:
        raise click.BadParameter("SERIAL must be hexadecimal", param_hint="SERIAL") from None
    status = _ca(ctx).revoke(ca_name, number, RevocationReason(reason))
    click.echo(f"{ca_name}/{number:x}: {status.status}" + (f" ({status.reason.value})" if status.reason else ""))
