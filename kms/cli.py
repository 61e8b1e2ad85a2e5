"""`racentre kms ...`: the KMC for operators — status, recovery requests and approvals (each
authenticated by the officer's API token), recovery, KEK rotation, disaster-recovery export/import, and
a stand-alone KMC's identity: its CSR for the CA, the issued certificate, the CAs it trusts."""
from __future__ import annotations

import json
from pathlib import Path

import click
from asn1crypto import pem, x509

from access.auth import authenticate
from kms.config import read_certificates
from kms.recovery import Officer
from pkicore.algorithms import algorithm
from pkicore.csr import build_csr


def _kmc(ctx):
    config = ctx.obj.get("config")
    if config is not None and config.kmc.remote:
        raise click.UsageError(f"this site's KMC is the stand-alone one at {config.kmc.url} ([kmc] url): "
                               "run `racentre kms ...` with the KMC's own configuration, on its host")
    return ctx.obj["services"].kmc


def _principal(ctx, token: str):
    with ctx.obj["services"].db() as session:
        return authenticate(session, token)


def _read_der(path: str) -> bytes:
    data = Path(path).read_bytes()
    return pem.unarmor(data)[2] if pem.detect(data) else data


TOKEN = click.option("--token", envvar="RACENTRE_API_TOKEN", required=True, hide_input=True,
                     help="your API token (or RACENTRE_API_TOKEN): every step is done as you")


@click.group("kms")
def kms_group():
    """Key-management centre: escrowed encryption keys (GM/T 0034 / GM/T 0014)."""


@kms_group.command("status")
@click.pass_context
def status(ctx):
    """KMC certificate subject and KEK versions."""
    kmc = _kmc(ctx)
    click.echo(json.dumps({"keks": kmc.escrow.kek_status()}, indent=2))


@kms_group.command("certificate")
@click.option("--out", type=click.Path(dir_okay=False), default=None)
@click.pass_context
def certificate(ctx, out):
    """The KMC signing certificate (PEM)."""
    data = pem.armor("CERTIFICATE", _kmc(ctx).escrow.certificate)
    if out:
        Path(out).write_bytes(data)
    else:
        click.echo(data.decode(), nl=False)


@kms_group.command("csr")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PKCS#10 file to write (PEM)")
@click.option("--common-name", default=None, help="CN of the request (default: the KMC's configured subject)")
@click.pass_context
def csr_cmd(ctx, out, common_name):
    """A PKCS#10 request for the KMC signing key (in the HSM), for the CA: racentre ca issue --profile kmc."""
    kmc = _kmc(ctx)
    subject = tuple((k, common_name if k == "common_name" and common_name else v)
                    for k, v in kmc.escrow.config.kmc_subject)
    alg = algorithm("sm2-sm3")
    der = build_csr(subject, kmc.escrow.public_key_info, alg, kmc.escrow.sign)
    Path(out).write_bytes(pem.armor("CERTIFICATE REQUEST", der))
    click.echo(f"wrote {out}")


@kms_group.command("install-certificate")
@click.argument("cert_file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def install_certificate(ctx, cert_file):
    """Install the KMC signing certificate the CA issued (PEM/DER; it must certify the KMC signing key)."""
    certs = read_certificates(cert_file)
    _kmc(ctx).escrow.install_certificate(certs[0], actor="cli")
    click.echo(f"installed the KMC certificate for {x509.Certificate.load(certs[0]).subject.human_friendly}")


@kms_group.command("trust-ca")
@click.argument("cert_file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def trust_ca(ctx, cert_file):
    """Let the CA(s) in CERT_FILE (PEM/DER; the SM2 issuing CA) call this KMC; stored in its database,
    picked up by a running KMC on the CA's next request."""
    service = _kmc(ctx).service
    for der in read_certificates(cert_file):
        ca = service.trust(der, persist=True, actor="cli")
        click.echo(f"trusted CA {ca.name} (key hash {ca.ca_id[:16]}...)")


@kms_group.command("request")
@click.option("--purpose", type=click.Choice(["recover", "destroy", "export"]), default="recover")
@click.option("--key-id", type=int, default=None)
@click.option("--recipient-cert", type=click.Path(exists=True, dir_okay=False), default=None,
              help="recovery: the certificate the key is enveloped to")
@click.option("--reason", required=True, help="court order / case reference")
@TOKEN
@click.pass_context
def request_cmd(ctx, purpose, key_id, recipient_cert, reason, token):
    """Open a request that needs M-of-N officer approvals."""
    who = _principal(ctx, token)
    kmc = _kmc(ctx)
    rid = kmc.book.request(purpose=purpose, requested_by=who.name, reason=reason, key_id=key_id,
                           recipient_certificate=_read_der(recipient_cert) if recipient_cert else None,
                           role=who.role_for(("ra_admin", "key_recovery_officer")))
    click.echo(json.dumps(kmc.book.status(rid), indent=2))


@kms_group.command("approve")
@click.argument("request_id", type=int)
@TOKEN
@click.pass_context
def approve(ctx, request_id, token):
    """Approve a request as the key-recovery officer the token belongs to."""
    who = _principal(ctx, token)
    kmc = _kmc(ctx)
    kmc.book.approve(request_id, Officer(who.name, who.roles))
    click.echo(json.dumps(kmc.book.status(request_id), indent=2))


@kms_group.command("recover")
@click.argument("request_id", type=int)
@click.option("--out-dir", required=True, type=click.Path(file_okay=False))
@TOKEN
@click.pass_context
def recover(ctx, request_id, out_dir, token):
    """Run an approved recovery: writes the envelopes for the named recipient."""
    who = _principal(ctx, token)
    kmc = _kmc(ctx)
    delivery = kmc.escrow.recover(kmc.book.authorise(request_id, actor=who.name), actor=who.name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recovered-envelope.der").write_bytes(delivery.enveloped_key)
    (out / "recovered-envelope-signed.der").write_bytes(delivery.signed_and_enveloped)
    click.echo(f"wrote {out / 'recovered-envelope.der'} and {out / 'recovered-envelope-signed.der'}")


@kms_group.command("rotate-kek")
@click.pass_context
def rotate_kek(ctx):
    """Start a KEK rotation (new active KEK version)."""
    click.echo(f"active KEK version {_kmc(ctx).escrow.rotate_kek(actor='cli')}")


@kms_group.command("rewrap")
@click.option("--batch", type=int, default=None)
@click.option("--all", "run_all", is_flag=True, help="repeat batches until every row moved")
@click.pass_context
def rewrap(ctx, batch, run_all):
    """Move archive rows to the active KEK in batches (the service keeps running)."""
    escrow = _kmc(ctx).escrow
    total = 0
    while True:
        moved = escrow.rewrap_batch(actor="cli", limit=batch)
        total += moved
        if not moved or not run_all:
            break
    click.echo(f"re-wrapped {total} row(s)")


@kms_group.command("dr-key")
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.pass_context
def dr_key(ctx, out):
    """This KMC's disaster-recovery import key (give it to the primary site)."""
    Path(out).write_bytes(pem.armor("PUBLIC KEY", _kmc(ctx).escrow.dr_public_key_info()))
    click.echo(f"wrote {out}")


@kms_group.command("export")
@click.argument("request_id", type=int)
@click.option("--dr-key", "dr_key_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@TOKEN
@click.pass_context
def export(ctx, request_id, dr_key_path, out, token):
    """Export the archive (wrapped, signed) for the DR site named by its key; needs an approved request."""
    who = _principal(ctx, token)
    kmc = _kmc(ctx)
    blob = kmc.escrow.export_archive(kmc.book.authorise(request_id, actor=who.name), _read_der(dr_key_path),
                                     actor=who.name)
    Path(out).write_bytes(blob)
    click.echo(f"wrote {out}")


@kms_group.command("import")
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--exporter-cert", required=True, type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def import_cmd(ctx, export_file, exporter_cert):
    """Import an export made to this KMC's DR key."""
    count = _kmc(ctx).escrow.import_archive(Path(export_file).read_bytes(), _read_der(exporter_cert), actor="cli")
    click.echo(f"imported {count} key(s)")


__all__ = ["kms_group"]
