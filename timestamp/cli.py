"""`racentre tsa ...`: provision the TSA units, stamp a file and verify a token (``racentre tsa serve``,
the TSA alone, is the shell's: ``racentre.serve``)."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import click
from asn1crypto import x509

from timestamp.errors import TsaError
from timestamp.services import provision
from timestamp.verify import load_certificates, load_crls, verify_token


@click.group("tsa")
def tsa_group():
    """RFC 3161 / GM/T 0033 timestamp authority."""


@tsa_group.command("provision")
@click.pass_context
def tsa_provision(ctx):
    """Generate missing unit keys in the HSM and certify each by the site's CA (kept in the database,
    read by every node; issued once per key and CA)."""
    config = ctx.obj["config"]
    services = ctx.obj["services"]
    if not services.site.provisioned:
        raise TsaError("the site has no CA yet: run `racentre setup`, which also certifies the TSA units")
    for unit, chain in provision(config.tsa, services.key_manager, services.site.tsa_issuer()).items():
        click.echo(f"{unit}: {x509.Certificate.load(chain[0]).subject.human_friendly}, "
                   f"serial {x509.Certificate.load(chain[0]).serial_number:x}")


@tsa_group.command("stamp")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--unit", default=None, help="TSA unit (default: the default unit)")
@click.option("--digest", default="sm3", show_default=True, help="imprint hash")
@click.pass_context
def tsa_stamp(ctx, data_path, out_path, unit, digest):
    """Time-stamp a file in process (the token, DER)."""
    services = ctx.obj["services"]
    svc = services.tsa
    token = svc.authority.stamp_digest(digest, hashlib.new(digest, Path(data_path).read_bytes()).digest(),
                                       unit=unit)
    Path(out_path).write_bytes(token)
    click.echo(f"wrote {out_path}")


@tsa_group.command("verify")
@click.option("--token", "token_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="TimeStampToken or TimeStampResp (DER)")
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False), help="the stamped data")
@click.option("--ca", "ca_path", type=click.Path(exists=True, dir_okay=False), help="trust anchors (PEM/DER)")
@click.option("--crl", "crl_paths", multiple=True, type=click.Path(exists=True, dir_okay=False), help="CRL(s)")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
def tsa_verify(token_path, data_path, ca_path, crl_paths, as_json):
    """Check a token against data, a chain to --ca and revocation in --crl (exit 1 when it fails)."""
    crls = [c for p in crl_paths for c in load_crls(Path(p).read_bytes())]
    result = verify_token(Path(token_path).read_bytes(),
                          data=Path(data_path).read_bytes() if data_path else None,
                          trust=load_certificates(Path(ca_path).read_bytes()) if ca_path else (), crls=crls)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(f"{'OK' if result.ok else 'FAILED'}: genTime={result.gen_time and result.gen_time.isoformat()} "
                   f"serial={result.serial and format(result.serial, 'x')} policy={result.policy} "
                   f"tsa={result.tsa_subject!r} algorithm={result.algorithm}")
        for reason in result.reasons:
            click.echo(f"  error: {reason}")
        for warning in result.warnings:
            click.echo(f"  warning: {warning}")
    if not result.ok:
        sys.exit(1)
