"""``racentre audit checkpoint|verify|export|verify-export``: the tamper-evident audit trail from the shell.

``checkpoint`` is meant for cron; ``verify`` exits 1 when anything is wrong and names each row.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

from racentre.audit import (AuditTampered, audit_public_key, export_range, load_public_key, parse_bound,
                            site_checkpointer, verify, verify_export)


def _label(ctx) -> str:
    return ctx.obj["config"].audit.key_label


@click.group("audit")
def audit_group():
    """Tamper-evident audit trail: hash chains per writer, HSM-signed checkpoints, auditor exports."""


@audit_group.command("checkpoint")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def checkpoint_command(ctx, as_json):
    """Sign every chain's head with the HSM audit key and anchor it in the HSM (cron, or `racentre serve`)."""
    services = ctx.obj["services"]
    try:
        cp = site_checkpointer(services, ctx.obj["config"]).checkpoint()
    except AuditTampered as exc:
        click.echo(f"audit checkpoint REFUSED: {exc.public_message}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(cp.as_dict(), ensure_ascii=False, indent=2))
    else:
        click.echo(f"checkpoint #{cp.seq} at {cp.as_dict()['at']} over {len(cp.heads)} chains ({cp.hash[:16]}...)"
                   + (", anchored in the HSM" if cp.anchored else "") + (", time-stamped" if cp.timestamped else ""))


def _tsa_trust(services) -> tuple[bytes, ...]:
    site = getattr(services, "site", None)
    return tuple(site.roots()) if site is not None else ()


@audit_group.command("verify")
@click.option("--json", "as_json", is_flag=True)
@click.option("--checkpoint/--no-checkpoint", "then_checkpoint", default=True, show_default=True,
              help="when the trail verifies, sign its current heads")
@click.option("--grace", default=600, show_default=True,
              help="seconds: rows dated this long before a checkpoint must be covered by it")
@click.option("--sink", "sink_path", type=click.Path(dir_okay=False), default=None,
              help="also compare with the checkpoints in this append-only sink file (default: [audit] sink_file)")
@click.pass_context
def verify_command(ctx, as_json, then_checkpoint, grace, sink_path):
    """Verify every row, link and checkpoint signature, and the checkpoints against the site's HSM anchor;
    exit 1 and name what is wrong (a modified, deleted, inserted or reordered row, a rewritten chain, a
    truncated tail, a deleted writer or checkpoint, a replaced site identity)."""
    services = ctx.obj["services"]
    km = services.key_manager
    config = ctx.obj["config"].audit
    sink_path = sink_path or (config.sink_file if config.sink_file and Path(config.sink_file).is_file() else None)
    result = verify(services.db, audit_public_key(km, _label(ctx)), grace=dt.timedelta(seconds=grace),
                    km=km if config.anchor else None, expected_site=config.site_id or None, sink_path=sink_path,
                    tsa_trust=_tsa_trust(services))
    out = result.as_dict()
    if result.ok and then_checkpoint:
        out["checkpoint"] = site_checkpointer(services, ctx.obj["config"]).checkpoint().as_dict()
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    else:
        verdict = "OK" if result.ok else "FAILED"
        click.echo(f"audit trail {verdict}: {result.rows} rows in {result.writers} chains, "
                   f"{result.checkpoints} checkpoints, {result.unanchored} rows after the last checkpoint")
        for problem in result.problems:
            click.echo(f"  - [{problem.kind}] {problem.message}")
        for note in result.notes:
            click.echo(f"  note: {note}")
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
                          key_label=_label(ctx), actor=actor, checkpointer=site_checkpointer(services, ctx.obj["config"]))
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
