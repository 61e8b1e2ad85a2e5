"""``racentre audit checkpoint|verify|export|verify-export``: the tamper-evident audit trail from the shell.

``checkpoint`` is meant for cron; ``verify`` exits 1 when anything is wrong and names each row.
"""
from __future__ import annotations

import datetime as dt
import json
import sys

import click

from racentre.audit import (audit_public_key, checkpoint, export_range, load_public_key, parse_bound, verify,
                            verify_export)


def _label(ctx) -> str:
    return ctx.obj["config"].audit.key_label


@click.group("audit")
def audit_group():
    """Tamper-evident audit trail: hash chains per writer, HSM-signed checkpoints, auditor exports."""


@audit_group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def checkpoint_command(ctx, as_json):
    """Sign every chain's head with the HSM audit key (run it from cron)."""
    services = ctx.obj["services"]
    cp = checkpoint(services.db, services.key_manager, key_label=_label(ctx))
    if as_json:
        click.echo(json.dumps(cp.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"checkpoint #{cp.seq} at {cp.as_dict()['at']} over {len(cp.heads)} chains ({cp.hash[:16]}...)")


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option("--checkpoint/--no-checkpoint", "then_checkpoint", default=True, show_default=True,
              help="when the trail verifies, sign its current heads")
@click.option("--grace", default=600, show_default=True,
              help="seconds: rows dated this long before a checkpoint must be covered by it")
@click.pass_context
def verify_command(ctx, as_json, then_checkpoint, grace):
    """Verify every row, link and checkpoint signature; exit 1 and name the rows when anything is wrong."""
    services = ctx.obj["services"]
    km = services.key_manager
    result = verify(services.db, audit_public_key(km, _label(ctx)), grace=dt.timedelta(seconds=grace))
    out = result.as_dict()
    if result.ok and then_checkpoint:
        out["checkpoint"] = checkpoint(services.db, km, key_label=_label(ctx)).as_dict()
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        verdict = "OK" if result.ok else "FAILED"
        click.echo(f"audit trail {verdict}: {result.rows} rows in {result.writers} chains, "
                   f"{result.checkpoints} checkpoints, {result.unanchored} rows after the last checkpoint")
        for problem in result.problems:
            click.echo(f"  - [{problem.kind}] {problem.message}")
        if "checkpoint" in out:
            click.echo(f"signed checkpoint #{out['checkpoint']['seq']}")
    if not result.ok:
        sys.exit(1)


@audit_group.command("export")
@click.option("--from", "start", default=None, help="first row: id or ISO 8601 time")
@click.option("--to", "end", default=None, help="last row: id or ISO 8601 time")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="FILE.json (FILE.json.sig beside)")
@click.option("--actor", default="auditor", show_default=True, help="who exports (audited)")
@click.pass_context
def export_command(ctx, start, end, out, actor):
    """Write a signed range for an external reviewer: FILE.json, FILE.json.sig, FILE.json.pub.pem."""
    services = ctx.obj["services"]
    result = export_range(services.db, services.key_manager, out, start=parse_bound(start), end=parse_bound(end),
                          key_label=_label(ctx), actor=actor)
    click.echo(f"exported {result.rows} rows ({result.links} links, {result.checkpoints} checkpoints)")
    for path in result.files():
        click.echo(f"wrote {path}")


@audit_group.command("verify-export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--sig", "sig_path", type=click.Path(exists=True, dir_okay=False), help="default: FILE.sig")
@click.option("--public-key", "key_path", type=click.Path(exists=True, dir_okay=False),
              help="the audit public key (PEM or DER) obtained out of band; default: the one in the export")
@click.option("--json", "as_json", is_flag=True)
def verify_export_command(file, sig_path, key_path, as_json):
    """Check an export on its own (no HSM, no database needed)."""
    check = verify_export(file, signature_path=sig_path,
                          public_key_info=load_public_key(key_path) if key_path else None)
    if as_json:
        click.echo(json.dumps(check.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"export {'OK' if check.ok else 'FAILED'}: {check.rows} rows, {check.links} links, "
                   f"{check.checkpoints} checkpoints; key SM3 fingerprint {check.fingerprint} ({check.key_source})")
        for problem in check.problems:
            click.echo(f"  - [{problem.kind}] {problem.message}")
    if not check.ok:
        sys.exit(1)
