"""``racentre seal make|sign|verify``: seal making, sealing a PDF/OFD and verification from the shell."""
from __future__ import annotations

import sys
from pathlib import Path

import click

def _service(ctx):
    """The seal service of the site (``racentre.services.Services.seal``: the CA-certified seal maker,
    the site's TSA and revocation info once the site is set up; before, no maker: verification only)."""
    return ctx.obj["services"].seal


@click.group("seal")
def seal_group():
    """Electronic seals (GB/T 38540): make, sign, verify."""


@seal_group.command("make")
@click.option("--unit", required=True)
@click.option("--name", required=True)
@click.option("--type", "seal_type", default="official", type=click.Choice(["official", "contract", "finance", "personal", "invoice", "legal_person", "business"]))
@click.option("--picture", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--key-label", required=True, help="the unit's signing key in the HSM")
@click.option("--cert", "cert_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--algorithm", "alg_name", default=None,
              help="signature algorithm (default: the certificate key's: sm2-sm3, ecdsa-sha256/-sha384, rsa-sha256)")
@click.option("--size-mm", default=40, show_default=True)
@click.option("--days", default=365, show_default=True)
@click.option("--user", "users", multiple=True, help="principal allowed to use the seal (repeatable)")
@click.option("--out", type=click.Path(dir_okay=False), help="write the SESeal (.esl) here")
@click.option("--actor", default="cli")
@click.pass_context
def make(ctx, unit, name, seal_type, picture, key_label, cert_path, alg_name, size_mm, days, users, out, actor):
    from seal.registry import Signer, signer_algorithm  # noqa: PLC0415
    from seal.services import cert_der  # noqa: PLC0415
    svc = _service(ctx)
    cert = cert_der(Path(cert_path).read_bytes())
    rec = svc.registry.make_seal(actor=actor, role="ra_admin", unit=unit, name=name, seal_type=seal_type,
                                 picture=Path(picture).read_bytes(), width_mm=size_mm, height_mm=size_mm,
                                 signers=[Signer(key_label, cert, signer_algorithm(cert, alg_name))], valid_days=days,
                                 users=users)
    if out:
        Path(out).write_bytes(svc.registry.seal_der(rec.id))
    click.echo(f"seal {rec.id} es_id={rec.es_id} {rec.name} valid until {rec.valid_end.isoformat()}")


@seal_group.command("sign")
@click.argument("seal_id", type=int)
@click.argument("document", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
@click.option("--as", "principal", required=True, help="the authorised principal sealing")
@click.option("--page", type=int, default=None, help="1-based; -1 = last  [default: 1, or with --anchor any page]")
@click.option("--x-mm", default=120.0, show_default=True)
@click.option("--y-mm", default=40.0, show_default=True)
@click.option("--anchor", default=None, help="centre the seal over this text (e.g. the unit's name)")
@click.pass_context
def sign(ctx, seal_id, document, out, principal, page, x_mm, y_mm, anchor):
    from seal.services import Placement  # noqa: PLC0415
    if page is None and not anchor:
        page = 1
    index = None if page is None else (page - 1 if page > 0 else page)
    sealed = _service(ctx).seal(seal_id, Path(document).read_bytes(), principal=principal, role="ra_operator",
                                token="cli", placement=Placement(index, x_mm, y_mm, anchor=anchor))
    Path(out).write_bytes(sealed)
    click.echo(f"sealed {document} -> {out}")


EXIT_CODES = {"TOTAL_PASSED": 0, "TOTAL_FAILED": 1, "INDETERMINATE": 3}


@seal_group.command("verify")
@click.argument("document", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
@click.option("--trust", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="trust anchor (PEM or DER root certificate), repeatable: replaces the site's roots and trust list")
@click.pass_context
def verify(ctx, document, as_json, trust):
    """Verify a sealed PDF or OFD, or a bare seal (.esl), under the site's verification policy (its roots,
    [seal] trust_anchor_files, revocation, the seal registry). Prints the ETSI EN 319 102-1 indication per
    seal. Exit status: 0 TOTAL_PASSED, 1 TOTAL_FAILED, 3 INDETERMINATE."""
    from seal.services import cert_der  # noqa: PLC0415 - start-up cost, see above
    anchors = None
    if trust:
        try:
            anchors = tuple(cert_der(Path(t).read_bytes()) for t in trust)
        except ValueError as exc:
            raise click.ClickException(f"--trust: not a PEM or DER certificate ({exc})") from None
    data = Path(document).read_bytes()
    if ctx.obj:                             # inside `racentre`: the site's policy (or its stand-alone one)
        report = _service(ctx).verify(data, trust=anchors)
    else:                                   # the group alone (no site): only what --trust names is trusted
        from pkicore.validation import TrustPolicy  # noqa: PLC0415
        from seal.validation import SealPolicy  # noqa: PLC0415
        from seal.verify import verify_document  # noqa: PLC0415
        report = verify_document(data, SealPolicy(TrustPolicy(anchors or ()), TrustPolicy(anchors or ())))
    click.echo(report.to_json() if as_json else report.to_text())
    sys.exit(EXIT_CODES[report.indication.value])
