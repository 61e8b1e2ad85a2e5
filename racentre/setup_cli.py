"""``racentre setup``: bring a site to a working state, idempotently — the CA hierarchy (SM2, optionally
ECDSA/RSA for interoperability), the TSA units' certificates from our CA, the KMC's certificate (and
its trust of our SM2 issuing CAs), the seal maker's certificate. Safe to re-run: what exists is kept.
"""
from __future__ import annotations

import click
from asn1crypto import pem, x509

from kms.services import kmc_from_services
from racentre.provision import Site
from timestamp.services import provision as provision_tsa


def _current(path, site: Site) -> bool:
    """Whether a TSA certificate file was issued by the CA that issues for its key now (else it came
    from elsewhere, or from the SM2 CA before the key's own hierarchy was added)."""
    try:
        certs = [der for _, _, der in pem.unarmor(path.read_bytes(), multiple=True)]
    except (OSError, ValueError):
        return False
    if not certs:
        return False
    cert = x509.Certificate.load(certs[0])
    return cert.issuer.dump() == site.ca.issuing_ca_for(cert.public_key.dump()).subject_der


def setup_site(services, kinds: tuple[str, ...] = ("sm2",)) -> list[str]:
    """Everything a fresh site needs; returns what was done, one line each."""
    site: Site = services.site
    done = [f"created CA {name}" for name in site.init(kinds)]
    config = services.config.tsa
    stale = [name for name in config.unit_configs() if not _current(config.cert_file(name), site)]
    for unit, path in provision_tsa(config, services.key_manager, site.tsa_issuer(), force=bool(stale)).items():
        if unit in stale:
            done.append(f"TSA unit {unit}: certificate from our CA written to {path}")
    # a stand-alone KMC ([kmc] url) is certified from its CSR instead: racentre ca issue --profile kmc ...
    if not services.config.kmc.remote:
        kmc = kmc_from_services(services)
        was_self_signed = x509.Certificate.load(kmc.escrow.certificate).self_signed != "no"
        site.connect_kmc(kmc)
        if was_self_signed:
            done.append("KMC: signing certificate issued by our CA")
    site.seal_maker()
    return done


@click.command("setup")
@click.option("--with-ecdsa", is_flag=True, help="also an ECDSA P-256 hierarchy (interoperability)")
@click.option("--with-rsa", is_flag=True, help="also an RSA hierarchy (interoperability)")
@click.pass_context
def setup_command(ctx, with_ecdsa, with_rsa):
    """Set up (or check) the site: CA hierarchy, TSA, KMC and seal-maker certificates."""
    kinds = ("sm2",) + (("ecdsa",) if with_ecdsa else ()) + (("rsa",) if with_rsa else ())
    for line in setup_site(ctx.obj["services"], kinds) or ["the site is already set up"]:
        click.echo(line)
