"""``racentre ca``: set up the CA hierarchy, list CAs, write CRLs, revoke certificates, certify a
service key held elsewhere from its PKCS#10 request (e.g. a stand-alone KMC), and list or retry the
GM/T 0014 notifications the CA still owes the KMC (``ca_bridge.kmc_link`` outbox), and CMP: one-time secrets
for vetted subjects, waiting CMP requests, the upstream CA queue (operators)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import click
from asn1crypto import csr as asn1_csr, pem

from ca_bridge.api import IssueRequest, RevocationReason
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import BadEncoding, IssuanceError
from ca_bridge.kmc_link import KmcLink, pending_notifications
from pkicore.algorithms import algorithm
from audit.trail import record
from store.db import transaction
from pkicore.keys import verify_signature


def _ca(ctx) -> EmbeddedCA:
    """The site's CA (``racentre.services.Services.ca``), with the KMC attached as ``racentre serve``
    has it: the stand-alone KMC of ``[kmc] url`` over HTTP, else the embedded one in process."""
    return ctx.obj["services"].ca


def _kmc_link(ctx) -> KmcLink:
    """The CA's GM/T 0014 link (its outbox of RevokeKeyReqs owed to the KMC)."""
    return _ca(ctx).kmc


@click.group("ca")
def ca_group():
    """The certificate authority: hierarchy, CRLs, revocation."""


@ca_group.command("init")
@click.option("--with-ecdsa", is_flag=True, help="also an ECDSA P-256 hierarchy (interoperability)")
@click.option("--with-rsa", is_flag=True, help="also an RSA hierarchy (interoperability)")
@click.option("--organization", default=None, help="O= of the CA names (default: [ca] organization)")
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
@click.option("--as", "as_name", default=None, metavar="NAME",
              help="an RA officer: required for a certificate issued through the RA")
@click.option("--justification", default=None, help="why (audited): required for a certificate issued through the RA")
@click.pass_context
def revoke_command(ctx, serial, ca_name, reason, as_name, justification):
    """Revoke certificate SERIAL (hexadecimal) issued by --ca (--reason certificate_hold: hold it;
    remove_from_crl: release the hold).

    A certificate issued through an RA request changes status through the RA (one path, one truth: the RA's
    request and certificate records always say what the CA's CRL and OCSP say), as officer --as with a
    --justification: a revocation or a hold (挂失) at once, audited like the console's emergency revocation; a
    release (解冻) as a resume request through the four-eyes gate, like the console's 解冻 (its vetting and
    second approval follow: `racentre ra request vet|approve ID`)."""
    try:
        number = int(serial, 16)
    except ValueError:
        raise click.BadParameter("SERIAL must be hexadecimal", param_hint="SERIAL") from None
    ca = _ca(ctx)
    ra_request = ra_request_number(ca.certificate(ca_name, number).request_id)
    if ra_request is not None:
        ra_revoke = ctx.obj.get("ra_revoke")
        if ra_revoke is None or not as_name or not justification:
            what = "released (解冻) by an RA resume request" if reason == RevocationReason.remove_from_crl.value \
                else "revoked or held through the RA"
            raise click.UsageError(f"{ca_name}/{number:x} was issued through RA request {ra_request}: it is {what}, "
                                   "so that the RA shows the same status as the CA. Give --as OFFICER (an RA "
                                   "officer) and --justification TEXT, or use `racentre ra request emergency-revoke "
                                   f"{ra_request}` or `racentre ra request submit --kind revocation|suspend|resume "
                                   f"--target {ra_request}`.")
        done = ra_revoke(ctx, ra_request, reason, as_name, justification)
        if done["kind"] == "resume" and done["state"] != "resumed":
            click.echo(f"{ca_name}/{number:x}: still on hold; release (解冻) request {done['id']} submitted with "
                       f"{len(done['approvals'])} of {done.get('approvals_required', '?')} approvals. Next: "
                       f"`racentre ra request vet {done['id']} --documents-checked --as OPERATOR`, then "
                       f"`racentre ra request approve {done['id']} --as ANOTHER_OFFICER`.")
        else:
            click.echo(f"{ca_name}/{number:x}: {done['state']} ({reason}) through RA {done['kind']} request "
                       f"{done['id']}")
        return
    status = ca.revoke(ca_name, number, RevocationReason(reason))
    click.echo(f"{ca_name}/{number:x}: {status.status}" + (f" ({status.reason.value})" if status.reason else ""))


def ra_request_number(request_id: str | None) -> int | None:
    """The RA request a certificate was issued for: the CA's idempotency key ``ra-<id>-<usage>``."""
    parts = (request_id or "").split("-")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "ra" and parts[1].isdigit() else None


def _responder_cas(ctx, ca_name: str | None) -> list[str]:
    ca = _ca(ctx)
    if ca_name is not None:
        ca.directory.get(ca_name)          # unknown: a clear error
        return [ca_name]
    return [name for name, info in ca.authorities().items() if info.ocsp_key_label]


def _audit(ctx, action: str, ca_name: str, **detail) -> None:
    with transaction(ctx.obj["services"].db) as session:
        record(session, actor="cli", role="ca_admin", action=action, target_type="ca", target_id=ca_name, **detail)


@ca_group.command("ocsp-purge")
@click.option("--ca", "ca_name", default=None, help="one CA (default: every CA with an OCSP responder)")
@click.pass_context
def ocsp_purge_command(ctx, ca_name):
    """Delete the pre-produced OCSP responses (RFC 5019; table ca_ocsp_response, shared by every node):
    each node signs afresh at the next request without a nonce (e.g. after replacing a responder key)."""
    for name in _responder_cas(ctx, ca_name):
        deleted = _ca(ctx).store.purge(name)
        _audit(ctx, "ca.ocsp.purge", name, deleted=deleted)
        click.echo(f"{name}: {deleted} pre-produced OCSP response(s) deleted")


@ca_group.command("ocsp-regenerate")
@click.option("--ca", "ca_name", default=None, help="one CA (default: every CA with an OCSP responder)")
@click.pass_context
def ocsp_regenerate_command(ctx, ca_name):
    """Sign afresh every pre-produced OCSP response kept (each for its certificate's status now, valid from
    now), e.g. from cron ahead of busy hours; responses for serials the CA does not know are deleted."""
    for name in _responder_cas(ctx, ca_name):
        signed, dropped = _ca(ctx).ocsp.regenerate(name)
        _audit(ctx, "ca.ocsp.regenerate", name, signed=signed, dropped=dropped)
        click.echo(f"{name}: {signed} pre-produced OCSP response(s) signed afresh, {dropped} deleted")


def read_csr(data: bytes) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """A PKCS#10 request (PEM or DER) whose signature verifies with its own key (proof of possession;
    SM2 with the default user ID): its subject RDNs and SubjectPublicKeyInfo."""
    try:
        der = pem.unarmor(data)[2] if pem.detect(data) else data
        req = asn1_csr.CertificationRequest.load(der, strict=True)
        info = req["certification_request_info"]
        spki = info["subject_pk_info"].dump()
        subject = tuple((ava["type"].native, ava["value"].native) for rdn in info["subject"].chosen for ava in rdn)
        alg = algorithm(req["signature_algorithm"]["algorithm"].dotted)
    except (ValueError, TypeError, KeyError) as exc:
        raise BadEncoding("not a PKCS#10 request with a supported signature algorithm (PEM or DER)") from exc
    if not all(isinstance(value, str) for _, value in subject):
        raise BadEncoding("the request's subject has a non-string attribute")
    if not verify_signature(spki, alg, info.dump(), req["signature"].native):
        raise IssuanceError("the request's signature does not verify with its public key (no proof of possession)")
    return subject, spki


@ca_group.command("issue")
@click.option("--profile", required=True, help="a profile of ca_bridge/profiles (e.g. kmc for a stand-alone KMC)")
@click.option("--csr", "csr_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="the PKCS#10 request (e.g. from racentre kms csr)")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="certificate to write (PEM)")
@click.option("--ca-out", type=click.Path(dir_okay=False), default=None,
              help="also write the issuing CA's certificate (PEM), e.g. for racentre kms trust-ca")
@click.option("--ca", "ca_name", default=None, help="issuing CA (default: the profile's)")
@click.option("--validity-days", type=int, default=None)
@click.pass_context
def issue_command(ctx, profile, csr_path, out, ca_out, ca_name, validity_days):
    """Issue a certificate for a service key that lives elsewhere (its CSR). Idempotent per key and
    profile: issuing again returns the same certificate."""
    subject, spki = read_csr(Path(csr_path).read_bytes())
    key_hash = hashlib.sha256(spki).hexdigest()[:16]
    issued = _ca(ctx).issue(IssueRequest(request_id=f"cli:{profile}:{key_hash}", profile=profile, subject=subject,
                                         public_key_info=spki, validity_days=validity_days, ca=ca_name))
    Path(out).write_bytes(pem.armor("CERTIFICATE", issued.certificate))
    if ca_out:
        Path(ca_out).write_bytes(pem.armor("CERTIFICATE", _ca(ctx).authorities()[issued.ca].certificate))
    click.echo(f"{issued.ca}/{issued.serial:x} ({issued.profile}) written to {out}"
               + (f"; issuing CA to {ca_out}" if ca_out else ""))


@ca_group.command("kmc-pending")
@click.pass_context
def kmc_pending_command(ctx):
    """List the notifications the KMC has not answered yet (RevokeKeyReq outbox)."""
    ca = _ca(ctx)
    rows = pending_notifications(ca.db, ca.directory)
    if not rows:
        click.echo("no pending KMC notifications")
        return
    click.echo("ca/serial\tkind\tattempts\tnext attempt\tlast error")
    for row in rows:
        nxt = f"{row.next_attempt_at:%Y-%m-%d %H:%M:%S}Z" if row.next_attempt_at else "-"
        click.echo(f"{row.ca}/{row.serial:x}\t{row.kind}\t{row.attempts}\t{nxt}\t{row.last_error or '-'}")


@ca_group.command("kmc-retry")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="at most this many notifications in this sweep")
@click.pass_context
def kmc_retry_command(ctx, limit):
    """Send the notifications owed to the KMC that are due (one sweep; for cron)."""
    ca = _ca(ctx)
    if not pending_notifications(ca.db, ca.directory, limit=1):
        answered, failed = 0, 0                 # nothing owed: no need to reach (or build) the KMC
    else:
        answered, failed = _kmc_link(ctx).retry_due(limit=limit)
    left = len(pending_notifications(ca.db, ca.directory))
    click.echo(f"KMC notifications: {answered} answered, {failed} failed, {left} pending")


# ------------------------------------------------------------------------------------------------ CMP

def _rdns(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        attr, sep, text = value.partition("=")
        if not sep or not attr.strip() or not text.strip():
            raise click.BadParameter(f"{value!r}: give attribute=value, e.g. common_name=app.zj.gov.cn")
        pairs.append((attr.strip(), text.strip()))
    return tuple(pairs)


@ca_group.command("cmp-secret")
@click.option("--as", "officer", required=True, help="the officer issuing it (audited)")
@click.option("--profile", required=True, help="the certificate profile the secret enrols for")
@click.option("--rdn", "rdn", multiple=True, required=True,
              help="the vetted subject, in order: country_name=CN --rdn common_name=... (repeat)")
@click.option("--dns", "dns", multiple=True, help="a DNS name of the vetted server (repeat)")
@click.option("--ip", "ips", multiple=True, help="an IP address of the vetted server (repeat)")
@click.option("--approvals", type=click.IntRange(0, 5), default=0, show_default=True,
              help="other officers who must approve the CMP request before it is issued (four-eyes)")
@click.pass_context
def cmp_secret_command(ctx, officer, profile, rdn, dns, ips, approvals):
    """Issue a one-time CMP secret (RFC 9483 §4.1.5) for a vetted subject; hand reference and secret to
    the subscriber out of band (openssl cmp -ref REF -secret pass:SECRET)."""
    reference, secret = ctx.obj["services"].cmp.issue_secret(officer, profile=profile, subject=_rdns(rdn),
                                                             dns_names=dns, ip_addresses=ips,
                                                             approvals_required=approvals)
    click.echo(f"reference {reference}\nsecret {secret}")


@ca_group.command("cmp-waiting")
@click.pass_context
def cmp_waiting_command(ctx):
    """CMP requests waiting for officers (pollReq answers pollRep until approved)."""
    rows = ctx.obj["services"].cmp.waiting()
    if not rows:
        click.echo("no CMP request is waiting")
    for row in rows:
        click.echo(f"{row['transaction_id']}\t{row['kind']}\t{len(row['approvals'])}/{row['required']}\t"
                   f"{row['sender']}\t{row['subject']}")


@ca_group.command("cmp-approve")
@click.argument("transaction_id")
@click.option("--as", "officer", required=True)
@click.pass_context
def cmp_approve_command(ctx, transaction_id, officer):
    """An officer's approval of a waiting CMP request (each officer once; not the secret's issuer)."""
    done = ctx.obj["services"].cmp.approve(officer, transaction_id)
    click.echo(f"{transaction_id}: {len(done['approvals'])}/{done['required']} approvals")


@ca_group.command("cmp-sweep")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="at most this many RA requests in this sweep")
@click.pass_context
def cmp_sweep_command(ctx, limit):
    """RA node with [ca] backend = "cmp": carry on the approved requests awaiting the upstream CA (state
    awaiting_ca) -- poll, re-send under the same transactionID, confirm -- and record each outcome:
    issued, or failed with the CA's reason (one sweep; racentre serve sweeps on its own timer)."""
    services = ctx.obj["services"]
    if services.upstream_ca is None:
        raise click.ClickException('[ca] backend is not "cmp": there is no upstream CA queue')
    results = services.ra.collect_awaiting(limit=limit)
    states = [v if isinstance(v, str) else "failed" for v in results.values()]
    for rid, value in sorted(results.items()):
        click.echo(f"request {rid}: {value if isinstance(value, str) else 'failed: ' + value.public_message}")
    # CA requests queued by other callers than the RA (e.g. `racentre ca issue` through the upstream CA)
    others = services.upstream_ca.retry_pending(skip_prefix="ra-")
    click.echo(f"upstream CA: {states.count('issued')} issued, {states.count('failed')} refused, "
               f"{states.count('awaiting_ca')} still awaiting the CA"
               + (f"; other queued requests: {sum(v == 'issued' for v in others.values())} issued, "
                  f"{sum(v == 'pending' for v in others.values())} pending" if others else ""))


@ca_group.command("cmp-retry", hidden=True)
@click.pass_context
def cmp_retry_command(ctx):
    """The former name of cmp-sweep."""
    ctx.invoke(cmp_sweep_command, limit=100)
