"""`racentre ra ...`: API tokens, subject registration and the request workflow from the command line.

Workflow commands act as a named officer (``--as NAME``): an enabled console account or API token of
that officer holding the role the step needs, so four-eyes holds on the command line as over REST. Output
is JSON. Commands take ``ctx.obj["services"]`` (racentre.services.Services).
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from sqlalchemy import select

from access.auth import ROLES, ApiToken, Forbidden, create_token, token_list, token_set_disabled, token_set_expiry
from audit import trail as audit
from store.db import as_utc, reading, transaction, utcnow

from ca_bridge.api import RevocationReason
from ra.models import RequestKind
from ra.services import RaService
from ra.workflow import Actor


def _service(ctx) -> RaService:
    """The site's RA (``racentre.services.Services.ra``), issuing through the site's CA."""
    return ctx.obj["services"].ra


def _actor(ctx, name: str, role: str) -> Actor:
    """The named officer, checked, holding ``role``: an enabled, unexpired API token named NAME, else the
    enabled console account NAME (``ctx.obj["officer_principal"]``, wired by the racentre CLI), else an
    active token acting for officer NAME (``--officer NAME``). One officer, one identity: wang's console
    account, wang's token and ``--as wang`` are one person to four-eyes rules."""
    services = ctx.obj["services"]
    now = utcnow()

    def active(row) -> bool:
        return not row.disabled and (row.expires_at is None or as_utc(row.expires_at) > now)

    with services.db() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.name == name))
        if row is not None and active(row):
            if role not in row.roles.split(","):
                raise Forbidden(f"principal {name!r} does not hold the role {role}")
            return Actor(row.person, role)        # the officer the token acts for (four-eyes counts persons)
        acting = [t for t in session.scalars(select(ApiToken).where(ApiToken.officer == name)) if active(t)]
    lookup = ctx.obj.get("officer_principal")
    account = lookup(name) if lookup is not None else None
    if account is not None:
        if role not in account.roles:
            raise Forbidden(f"officer {name!r} does not hold the role {role}")
        return Actor(account.name, role)
    if any(role in t.roles.split(",") for t in acting):
        return Actor(name, role)
    if acting:
        raise Forbidden(f"officer {name!r} does not hold the role {role}")
    raise Forbidden(f"no active principal or officer named {name!r} (create one with `racentre console user add "
                    f"{name} --role ...` or `racentre ra token create`)")


def _echo(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _read(path: str | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


_AS = click.option("--as", "as_name", required=True, metavar="NAME", help="act as this principal")


@click.group("ra")
def ra_group():
    """Registration authority: tokens, subjects, requests."""


# ---------------------------------------------------------------------------------------------- tokens

@ra_group.group("token")
def token_group():
    """API tokens (shown once, stored hashed)."""


@token_group.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, type=click.Choice(ROLES), help="repeatable")
@click.option("--expires-in-days", type=click.IntRange(1, 3660), default=None, help="default: no expiry")
@click.option("--officer", default=None,
              help="the officer (person) this token acts for, e.g. their console account name [default: NAME]")
@click.option("--actor", default="cli", show_default=True)
@click.pass_context
def token_create(ctx, name, roles, expires_in_days, officer, actor):
    """Create an API token for NAME and print it (it cannot be shown again). A token and a console account
    of one officer (--officer) count as one person for four-eyes approval."""
    expires = utcnow() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    with transaction(ctx.obj["services"].db) as session:
        token = create_token(session, name, list(roles), expires_at=expires, officer=officer)
        audit.record(session, actor=actor, role="ra_admin", action="auth.token.create", target_type="api_token",
                     target_id=name, officer=officer or name, roles=sorted(set(roles)),
                     expires_at=expires.isoformat() if expires else None)
    click.echo(token)


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_list_cmd(ctx, as_json):
    """Every API token: principal, roles, state (active / disabled / expired) and expiry."""
    with reading(ctx.obj["services"].db) as session:
        rows = token_list(session)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(f"{r['name']:<24} officer {r['officer']:<20} {r['state']:<9} {','.join(r['roles']):<40} "
                   f"expires {r['expires_at'] or 'never'}")


@token_group.command("disable")
@click.argument("name")
@click.option("--actor", default="cli", show_default=True)
@click.pass_context
def token_disable(ctx, name, actor):
    """Disable NAME's API token at once (audited); `enable` undoes it."""
    with transaction(ctx.obj["services"].db) as session:
        token_set_disabled(session, name, True, actor=actor)
    click.echo(f"API token of {name} disabled")


@token_group.command("enable")
@click.argument("name")
@click.option("--actor", default="cli", show_default=True)
@click.pass_context
def token_enable(ctx, name, actor):
    """Enable NAME's API token again (audited)."""
    with transaction(ctx.obj["services"].db) as session:
        token_set_disabled(session, name, False, actor=actor)
    click.echo(f"API token of {name} enabled")


@token_group.command("expire")
@click.argument("name")
@click.option("--in-days", type=click.IntRange(0, 3660), default=0, show_default=True,
              help="0: expire now")
@click.option("--never", is_flag=True, help="remove the expiry")
@click.option("--actor", default="cli", show_default=True)
@click.pass_context
def token_expire(ctx, name, in_days, never, actor):
    """Set when NAME's API token expires (now by default; audited)."""
    when = None if never else utcnow() + dt.timedelta(days=in_days)
    with transaction(ctx.obj["services"].db) as session:
        token_set_expiry(session, name, when, actor=actor)
    click.echo(f"API token of {name} expires {when.isoformat() if when else 'never'}")


# -------------------------------------------------------------------------------------------- subjects

@ra_group.group("subject")
def subject_group():
    """Register units, civil servants and servers."""


@subject_group.command("add-unit")
@click.option("--name", required=True)
@click.option("--uscc", required=True, help="统一社会信用代码")
@click.option("--legal-representative", required=True)
@_AS
@click.pass_context
def add_unit(ctx, name, uscc, legal_representative, as_name):
    actor = _actor(ctx, as_name, "ra_operator")
    _echo(_service(ctx).add_unit(actor, name=name, uscc=uscc, legal_representative=legal_representative)[0])


@subject_group.command("add-civil-servant")
@click.option("--name", required=True)
@click.option("--id-number", required=True, help="公民身份号码")
@click.option("--unit-id", type=int, required=True)
@click.option("--department", default=None, help="the certificate's OU")
@click.option("--position", default=None)
@click.option("--contact", default=None)
@_AS
@click.pass_context
def add_civil_servant(ctx, name, id_number, unit_id, department, position, contact, as_name):
    actor = _actor(ctx, as_name, "ra_operator")
    _echo(_service(ctx).add_civil_servant(actor, name=name, id_number=id_number, unit_id=unit_id,
                                          department=department, position=position, contact=contact)[0])


@subject_group.command("add-server")
@click.option("--host", "host_name", required=True, help="primary host name (the CN)")
@click.option("--unit-id", type=int, required=True)
@click.option("--dns", "dns_names", multiple=True, help="further DNS names (repeatable)")
@click.option("--ip", "ip_addresses", multiple=True, help="IP addresses (repeatable)")
@_AS
@click.pass_context
def add_server(ctx, host_name, unit_id, dns_names, ip_addresses, as_name):
    actor = _actor(ctx, as_name, "ra_operator")
    _echo(_service(ctx).add_server(actor, host_name=host_name, unit_id=unit_id, dns_names=list(dns_names),
                                   ip_addresses=list(ip_addresses))[0])


# -------------------------------------------------------------------------------------------- requests

@ra_group.group("request")
def request_group():
    """Submit, vet, approve, reject, show and list certificate requests."""


@request_group.command("submit")
@click.option("--type", "rtype", required=True, type=click.Choice(["civil-servant-dual", "unit", "server"]))
@click.option("--kind", default="new", type=click.Choice([k.value for k in RequestKind]))
@click.option("--subject-id", type=int, default=None)
@click.option("--csr", type=click.Path(exists=True, dir_okay=False), default=None, help="PEM or DER")
@click.option("--enc-csr", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--enc-public-key", type=click.Path(exists=True, dir_okay=False), default=None, help="SPKI PEM/DER")
@click.option("--target", "target_request_id", type=int, default=None, help="renewal/rekey/revocation: request id")
@click.option("--reason", "revocation_reason", default=None, help="revocation reason (RFC 5280 name)")
@click.option("--status-reason", default=None, metavar="TEXT",
              help="suspend/resume/revocation: the officer's reason in their own words (shown on the request, audited)")
@click.option("--role", default="applicant", type=click.Choice(["applicant", "api_client", "ra_operator"]))
@click.option("--enrol-by-cmp", is_flag=True, help="no CSR: once approved, the subscriber enrols over CMP with a "
                                                   "one-time secret (racentre ra request cmp-secret)")
@_AS
@click.pass_context
def submit(ctx, rtype, kind, subject_id, csr, enc_csr, enc_public_key, target_request_id, revocation_reason,
           status_reason, role, enrol_by_cmp, as_name):
    actor = _actor(ctx, as_name, role)
    extra = {"enrol_by_cmp": True} if enrol_by_cmp else {}
    if status_reason is not None:
        extra["status_reason"] = status_reason
    _echo(_service(ctx).submit(actor, type=rtype, kind=kind, subject_id=subject_id, sign_csr=_read(csr),
                               enc_csr=_read(enc_csr), enc_public_key=_read(enc_public_key),
                               target_request_id=target_request_id, revocation_reason=revocation_reason, **extra))


@request_group.command("cmp-secret")
@click.argument("request_id", type=int)
@_AS
@click.pass_context
def cmp_secret(ctx, request_id, as_name):
    """A one-time CMP secret bound to approved request REQUEST_ID (submitted with --enrol-by-cmp): hand
    reference and secret to the subscriber out of band (openssl cmp -cmd ir -ref REF -secret pass:SECRET)."""
    _echo(_service(ctx).issue_cmp_secret(_actor(ctx, as_name, "ra_officer"), request_id))


@request_group.command("vet")
@click.argument("request_id", type=int)
@click.option("--documents-checked/--documents-not-checked", default=None, required=True,
              help="state that the identity documents were seen")
@click.option("--note", default=None)
@_AS
@click.pass_context
def vet(ctx, request_id, documents_checked, note, as_name):
    actor = _actor(ctx, as_name, "ra_operator")
    _echo(_service(ctx).vet(actor, request_id, documents_checked=bool(documents_checked), note=note))


@request_group.command("approve")
@click.argument("request_ids", type=int, nargs=-1, required=True)
@_AS
@click.pass_context
def approve(ctx, request_ids, as_name):
    """Approve one request (prints it), or several in one transaction (prints one outcome each)."""
    actor = _actor(ctx, as_name, "ra_officer")
    if len(request_ids) == 1:
        _echo(_service(ctx).approve(actor, request_ids[0]))
    else:
        _echo({"items": _service(ctx).approve_many(actor, list(request_ids))})


@request_group.command("reject")
@click.argument("request_id", type=int)
@click.option("--reason", required=True)
@_AS
@click.pass_context
def reject(ctx, request_id, reason, as_name):
    actor = _actor(ctx, as_name, "ra_officer")
    _echo(_service(ctx).reject(actor, request_id, reason))


@request_group.command("return")
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="what the submitter must correct")
@click.option("--role", default="ra_officer", type=click.Choice(["ra_officer", "ra_operator"]))
@_AS
@click.pass_context
def return_request(ctx, request_id, reason, role, as_name):
    """退回补正: send a submitted or vetted request back for correction (not a final rejection)."""
    _echo(_service(ctx).return_for_correction(_actor(ctx, as_name, role), request_id, reason))


@request_group.command("resubmit")
@click.argument("request_id", type=int)
@click.option("--csr", type=click.Path(exists=True, dir_okay=False), default=None, help="a corrected CSR")
@click.option("--enc-csr", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--enc-public-key", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--role", default="ra_operator", type=click.Choice(["applicant", "api_client", "ra_operator"]))
@_AS
@click.pass_context
def resubmit(ctx, request_id, csr, enc_csr, enc_public_key, role, as_name):
    """Resubmit a returned request (vetting and approvals start again)."""
    _echo(_service(ctx).resubmit(_actor(ctx, as_name, role), request_id, sign_csr=_read(csr),
                                 enc_csr=_read(enc_csr), enc_public_key=_read(enc_public_key)))


@request_group.command("emergency-revoke")
@click.argument("request_id", type=int)
@click.option("--justification", required=True, help="why (audited), e.g. the holder reported the key lost")
@_AS
@click.pass_context
def emergency_revoke(ctx, request_id, justification, as_name):
    """Key compromise: revoke request REQUEST_ID's certificates now (keyCompromise), as one officer, audited."""
    _echo(_service(ctx).emergency_revoke(_actor(ctx, as_name, "ra_officer"), request_id, justification))


def ra_revoke(ctx, request_id: int, reason: str, as_name: str, justification: str) -> dict:
    """``racentre ca revoke`` of a certificate issued through RA request ``request_id``, as the RA does it (one
    path, one truth): a revocation or a hold (certificateHold, 挂失) is the RA's immediate, audited action of
    officer ``as_name`` (``RaService.emergency_revoke`` with ``reason``); a release (removeFromCRL) is a 解冻
    request submitted by the officer (their first approval, ``justification`` its reason), carried out when
    vetted and approved under the ``[ra] approvals`` policy, as from the console."""
    if reason == RevocationReason.remove_from_crl.value:
        original = _service(ctx).get_request(request_id)
        return _service(ctx).submit(_actor(ctx, as_name, "ra_officer"), type=original["type"],
                                    kind=RequestKind.RESUME.value, target_request_id=request_id,
                                    status_reason=justification)
    return _service(ctx).emergency_revoke(_actor(ctx, as_name, "ra_officer"), request_id, justification,
                                          reason=reason)


@request_group.command("show")
@click.argument("request_id", type=int)
@click.pass_context
def show(ctx, request_id):
    _echo(_service(ctx).get_request(request_id))


@request_group.command("list")
@click.option("--state", default=None)
@click.option("--type", "rtype", default=None)
@click.option("--unit-id", type=int, default=None)
@click.option("--limit", type=int, default=100)
@click.pass_context
def list_requests(ctx, state, rtype, unit_id, limit):
    _echo(_service(ctx).list_requests(state=state, type=rtype, unit_id=unit_id, limit=limit))
