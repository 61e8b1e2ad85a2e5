"""``racentre setup``: bring a site to a working state, idempotently — the database schema (``racentre db
upgrade``), the CA hierarchy (SM2, optionally ECDSA/RSA for interoperability), every HSM key the centre
uses (CA keys, TSA units, the KMC's signing, MAC, KEK and disaster-recovery keys, the seal maker, the
audit checkpoint key, the officers' TOTP sealing keys), the TSA units' certificates from our CA (kept in
the database, so every node serves them), the KMC's certificate (and its trust of our SM2 issuing CAs),
the seal maker's and the trust evidence key's certificates, the audit trail's site identity and its first HSM-anchored checkpoint.
Safe to re-run, and to run on several nodes at once: the whole set-up holds one lock of the database
(``store.db.named_lock``), so a second run waits and then finds everything made.
"""
from __future__ import annotations

import click
from asn1crypto import x509
from sqlalchemy import select

from pkicore.algorithms import algorithm
from audit.trail import AuditCheckpoint
from store.db import named_lock
from racentre.accounts import totp_box
from racentre.audit import ensure_audit_key, ensure_site, site_checkpointer, site_id_of
from racentre.site import Site

SETUP_LOCK = "site-setup"


def setup_site(services, kinds: tuple[str, ...] = ("sm2",)) -> list[str]:
    """Everything a fresh site needs (the schema must be current); returns what was done, one line each."""
    with named_lock(services.database, SETUP_LOCK):
        return _setup(services, kinds)


def _setup(services, kinds: tuple[str, ...]) -> list[str]:
    site: Site = services.site
    km = services.key_manager
    done = [f"created CA {name}" for name in site.init(kinds)]
    issue_tsa = site.tsa_issuer()
    for name, unit in services.config.tsa.unit_configs().items():
        spki = km.ensure_key_pair(unit.key, algorithm(unit.algorithm).key_algorithm)
        if site.tsa_certificates(name, spki) is None:
            chain = issue_tsa(spki, name)
            done.append(f"TSA unit {name}: certificate issued by our CA "
                        f"({x509.Certificate.load(chain[1]).subject.human_friendly})")
            services.tsa.retry_now()    # a TSA this process could not build before is built on next use
    # a stand-alone KMC ([kmc] url) is certified from its CSR instead: racentre ca issue --profile kmc ...
    if not services.config.kmc.remote:
        kmc = services.kmc          # built on a site with a CA: certified by it, trusting its SM2 issuing CAs
        site.connect_kmc(kmc)       # (again, in case this process built it before the hierarchy existed)
        if site.kmc_certified:
            done.append("KMC: signing certificate issued by our CA")
        kmc.escrow.dr_public_key_info()
    site.seal_maker()
    site.evidence_signer(services.config.trust.evidence_key_label)
    for info in services.ca.authorities().values():       # the CMP server's protection identities (RFC 9483)
        if not info.is_root:
            services.cmp.signer(info)
    services.cmp.sealer.ensure_keys()
    ensure_audit_key(km, services.config.audit.key_label)
    with services.db() as session:
        had_site = site_id_of(session)
    site_id = ensure_site(services.db)
    if had_site is None:
        done.append(f"audit site identity {site_id} (pin it as [audit] site_id = \"{site_id}\")")
    if services.config.audit.anchor:
        with services.db() as session:
            has_checkpoint = session.scalar(select(AuditCheckpoint.seq).limit(1)) is not None
        if not has_checkpoint:     # the trail's first checkpoint, and with it the site's HSM anchor
            cp = site_checkpointer(services).checkpoint()
            done.append(f"audit checkpoint #{cp.seq} anchored in the HSM")
    totp_box(km).ensure_keys()
    return done


@click.command("setup")
@click.option("--with-ecdsa", is_flag=True, help="also an ECDSA P-256 hierarchy (interoperability)")
@click.option("--with-rsa", is_flag=True, help="also an RSA hierarchy (interoperability)")
@click.pass_context
def setup_command(ctx, with_ecdsa, with_rsa):
    """Create (or check) the site: database schema, CA hierarchy, every HSM key, TSA/KMC/seal-maker
    certificates. The one command that creates a site, so it upgrades the schema first (as `racentre db
    upgrade` does); every other command refuses a schema that is not its own."""
    kinds = ("sm2",) + (("ecdsa",) if with_ecdsa else ()) + (("rsa",) if with_rsa else ())
    services = ctx.obj["services"]
    services.upgrade_database()
    for line in setup_site(services, kinds) or ["the site is already set up"]:
        click.echo(line)
