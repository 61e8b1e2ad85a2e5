"""Console pages of the RA and the CA: the request queue with filters, request detail with vetting,
four-eyes approval and rejection, "approve selected" from the queue (``RaService.approve_many``, one
transaction, one outcome per request), certificate search and detail, and revocation (an RA revocation
request through the same four-eyes gate, or for certificates without an RA request an immediate CA
revocation by an RA administrator, RFC 5280 §5.3.1 reasons)."""
from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

from asn1crypto import pem, x509
from flask import Response, current_app, g, redirect, request, url_for

from access.auth import require_roles
from ca_bridge.api import RevocationReason
from pkicore import inputs
from audit.trail import record
from store.db import transaction, utcnow
from ra import approval
from ra.bulk import RESULTS
from ra.errors import ValidationError
from ra.models import RequestState, RequestType
from ra.workflow import MAX_STATUS_REASON, Actor
from racentre.console import formats, queries
from racentre.console.blueprint import bp, db, render, t

READERS = ("ra_operator", "ra_officer", "ra_admin", "auditor")
RA_REVOCATION_REASONS = [r.value for r in RevocationReason        # 冻结/解冻 have their own requests (pages_lifecycle)
                         if r not in (RevocationReason.remove_from_crl, RevocationReason.ca_compromise,
                                      RevocationReason.aa_compromise, RevocationReason.certificate_hold)]


def ra():
    return current_app.extensions["racentre.ra"]


def ca():
    return current_app.extensions["racentre.ca"]


def actor() -> Actor:
    return Actor(g.principal.name, g.role)


def _int_arg(name: str) -> int | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 12:
        raise ValidationError(f"{name} must be a number")
    return int(value)


def _may_approve(req: dict) -> bool:
    """Whether this officer may approve ``req`` (a request dict of the service): an ``ra_officer`` whose
    approval ``ra.approval.decide`` would record (not the submitter, not the vetter, not one who approved
    it already). The service decides again when the officer approves."""
    if "ra_officer" not in g.principal.roles:
        return False
    decision = approval.decide(approval.Facts.of(req), (a["officer"] for a in req["approvals"]), g.principal.name,
                               ra().policy.approvals)
    return decision.records


def _form_ids(name: str) -> list[int]:
    """The ids a form's checkboxes ``name`` selected, in order, each once."""
    ids = []
    for value in request.form.getlist(name):
        value = value.strip()
        if not value.isdigit() or len(value) > 12:
            raise ValidationError(f"{name} must be a number")
        ids.append(int(value))
    return list(dict.fromkeys(ids))


@bp.get("/requests")
@require_roles(*READERS)
def requests():
    state = request.args.get("state") or None
    rtype = request.args.get("type") or None
    unit_id, min_age = _int_arg("unit_id"), _int_arg("older_than_days")
    if state is None and "state" not in request.args:
        state = "vetted" if "ra_officer" in g.principal.roles else "submitted"
    items = ra().list_requests(state=state, type=rtype, unit_id=unit_id, limit=500)
    now = utcnow()
    for item in items:
        item["age_days"] = (now - dt.datetime.fromisoformat(item["submitted_at"])).days
        item["may_approve"] = _may_approve(item)
    if min_age is not None:
        items = [i for i in items if i["age_days"] >= min_age]
    return render("requests.html", items=items, states=[s.value for s in RequestState],
                  types=[t.value for t in RequestType], units=queries.units(db()),
                  filters={"state": state or "", "type": rtype or "", "unit_id": unit_id, "older_than_days": min_age})


def _subject_record(req: dict) -> dict:
    if req["civil_servant_id"] is not None:
        person = ra().get_subject("civil-servant", req["civil_servant_id"])
        if not {"ra_operator", "ra_officer", "ra_admin"} & g.principal.roles:
            person["id_number"] = person["id_number"][:6] + "********" + person["id_number"][-4:]
        return person
    if req["server_id"] is not None:
        return ra().get_subject("server", req["server_id"])
    return ra().get_subject("unit", req["unit_id"])


@bp.get("/requests/<int:rid>")
@require_roles(*READERS)
def request_detail(rid: int):
    req = ra().get_request(rid)
    return render("request.html", req=req, record=_subject_record(req), unit=ra().get_subject("unit", req["unit_id"]),
                  csrs=queries.csr_details(db(), rid), may_approve=_may_approve(req),
                  documents=ra().documents_received(rid))


@bp.post("/requests/<int:rid>/vet")
@require_roles("ra_operator")
def vet(rid: int):
    ra().vet(actor(), rid, documents_checked=request.form.get("documents_checked") == "yes",
             note=request.form.get("note") or None)
    return redirect(url_for("console.request_detail", rid=rid), code=303)


@bp.post("/requests/<int:rid>/approve")
@require_roles("ra_officer")
def approve(rid: int):
    ra().approve(actor(), rid)
    return redirect(url_for("console.request_detail", rid=rid), code=303)


@bp.post("/requests/approve")
@require_roles("ra_officer")
def approve_selected():
    """EJBCA's "approve selected": the ticked requests of the queue in one ``approve_many`` call (at most
    500; the service refuses more), then a page with the counts per result and each failure's reason."""
    ids = _form_ids("request_id")
    if not ids:
        raise ValidationError(t("nothing_selected"))
    outcomes = ra().approve_many(actor(), ids)
    counts = Counter(o["result"] for o in outcomes)
    return render("approve_result.html", outcomes=outcomes, counts=[(r, counts[r]) for r in RESULTS if counts[r]],
                  failed=[o for o in outcomes if o["result"] == "failed"])


@bp.post("/requests/<int:rid>/return")
@require_roles("ra_officer", "ra_operator")
def return_request(rid: int):
    """退回补正: back to the submitter for correction (not a final rejection)."""
    ra().return_for_correction(actor(), rid, request.form.get("reason", ""))
    return redirect(url_for("console.request_detail", rid=rid), code=303)


@bp.post("/requests/<int:rid>/resubmit")
@require_roles("ra_operator")
def resubmit(rid: int):
    """A returned request, corrected (optionally a new CSR pasted as PEM), back into the queue."""
    csr = (request.form.get("csr") or "").strip() or None
    ra().resubmit(actor(), rid, sign_csr=csr)
    return redirect(url_for("console.request_detail", rid=rid), code=303)


@bp.post("/requests/<int:rid>/reject")
@require_roles("ra_officer", "ra_operator")
def reject(rid: int):
    ra().reject(actor(), rid, request.form.get("reason", ""))
    return redirect(url_for("console.request_detail", rid=rid), code=303)


@bp.get("/certificates")
@require_roles(*READERS)
def certificates():
    """证书查询: by name, 身份证号, unit, host name or serial (part of it); status, profile, unit and expiry
    filters; sorted by issue date, expiry or subject; 50 per page."""
    search = queries.CertificateSearch.from_args(request.args)
    rows = queries.search_certificates(db(), search=search)
    more = len(rows) > queries.PAGE_SIZE
    args = {k: v for k, v in request.args.items() if k in ("q", "unit", "status", "profile", "expiring_days", "sort")}
    return render("certificates.html", items=rows[:queries.PAGE_SIZE], search=search, q=search.text,
                  status=search.status, more=more, args=args, sorts=list(queries.CERT_SORTS),
                  profiles=queries.certificate_profiles(db()))


def _serial(serial: str) -> int:
    """A serial as printed on certificates (hex, RFC 5280 §4.1.2.2), checked by pkicore.inputs."""
    try:
        return inputs.hex_serial(serial)
    except inputs.InputError as exc:
        raise ValidationError(exc.public_message) from None


def _certificate_view(row) -> dict:
    cert = x509.Certificate.load(row.certificate)
    extensions = []
    for ext in cert["tbs_certificate"]["extensions"]:
        extensions.append({"name": ext["extn_id"].native, "critical": ext["critical"].native})
    key = cert.public_key
    return {"subject": formats.dn(cert.subject), "issuer": formats.dn(cert.issuer),
            "signature_algorithm": cert["signature_algorithm"]["algorithm"].native,
            "key": f"{key.algorithm} {key.bit_size}" + (f" ({key.curve[1]})" if key.algorithm == "ec" else ""),
            "key_usage": ", ".join(sorted(cert.key_usage_value.native)) if cert.key_usage_value else "",
            "extensions": extensions, "fingerprint": hashlib.sha256(row.certificate).hexdigest(),
            "pem": pem.armor("CERTIFICATE", row.certificate).decode("ascii")}


def _ra_request_id(row) -> int | None:
    parts = (row.request_id or "").split("-")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "ra" and parts[1].isdigit() else None


def _chain(ca_name: str) -> list[dict]:
    """The issuing CA up to the root: name, subject and validity of each, as the detail page shows them."""
    out, name = [], ca_name
    while name is not None:
        info = ca().directory.get(name)
        cert = x509.Certificate.load(info.certificate)
        out.append({"name": info.name, "subject": formats.dn(cert.subject), "not_after": info.not_after})
        name = info.parent
    return out


@bp.get("/certificates/<ca_name>/<serial>.<any(pem, der, chain):fmt>")
@require_roles(*READERS)
def certificate_download(ca_name: str, serial: str, fmt: str):
    """The certificate as PEM or DER, or PEM with its CA chain up to the root (for USB-key middleware and
    relying parties)."""
    row = ca().certificate(ca_name, _serial(serial))
    name = f"{ca_name}-{row.serial}"
    if fmt == "der":
        return Response(row.certificate, mimetype="application/pkix-cert",
                        headers={"Content-Disposition": f'attachment; filename="{name}.cer"'})
    chain = [row.certificate] + ([ca().directory.get(c["name"]).certificate for c in _chain(ca_name)]
                                 if fmt == "chain" else [])
    return Response(b"".join(pem.armor("CERTIFICATE", c) for c in chain), mimetype="application/x-pem-file",
                    headers={"Content-Disposition": f'attachment; filename="{name}{"-chain" if fmt == "chain" else ""}.pem"'})


@bp.get("/certificates/<ca_name>/<serial>")
@require_roles(*READERS)
def certificate_detail(ca_name: str, serial: str):
    row = ca().certificate(ca_name, _serial(serial))
    return render("certificate.html", row=row, ca_name=ca_name, view=_certificate_view(row), chain=_chain(ca_name),
                  ra_request=_ra_request_id(row), reasons=RA_REVOCATION_REASONS,
                  ca_reasons=[r.value for r in RevocationReason if r != RevocationReason.remove_from_crl],
                  status_reason_max=MAX_STATUS_REASON)


@bp.post("/certificates/<ca_name>/<serial>/request-revocation")
@require_roles("ra_officer")
def request_revocation(ca_name: str, serial: str):
    row = ca().certificate(ca_name, _serial(serial))
    rid = _ra_request_id(row)
    if rid is None:
        raise ValidationError("this certificate was not issued through an RA request")
    original = ra().get_request(rid)
    result = ra().submit(actor(), type=original["type"], kind="revocation", target_request_id=rid,
                         revocation_reason=request.form.get("reason") or None,
                         status_reason=request.form.get("status_reason") or None)
    return redirect(url_for("console.request_detail", rid=result["id"]), code=303)


@bp.post("/certificates/<ca_name>/<serial>/emergency-revoke")
@require_roles("ra_officer")
def emergency_revoke(ca_name: str, serial: str):
    """Key compromise: this officer revokes the certificate's RA request at once, audited with the reason."""
    row = ca().certificate(ca_name, _serial(serial))
    rid = _ra_request_id(row)
    if rid is None:
        raise ValidationError("this certificate was not issued through an RA request")
    ra().emergency_revoke(actor(), rid, request.form.get("justification", ""))
    return redirect(url_for("console.certificate_detail", ca_name=ca_name, serial=serial), code=303)


@bp.post("/certificates/<ca_name>/<serial>/revoke")
@require_roles("ra_admin")
def revoke_now(ca_name: str, serial: str):
    row = ca().certificate(ca_name, _serial(serial))
    if _ra_request_id(row) is not None:
        raise ValidationError("certificates issued through the RA are revoked by an RA revocation request")
    try:
        reason = RevocationReason(request.form.get("reason", "unspecified"))
    except ValueError:
        raise ValidationError("unknown revocation reason") from None
    with transaction(db()) as session:           # the officer's audit row commits with the revocation
        record(session, actor=g.principal.name, role=g.role, action="console.certificate.revoke",
               target_type="certificate", target_id=f"{ca_name}/{serial}", reason=reason.value)
        ca().revoke(ca_name, _serial(serial), reason, session=session)
    return redirect(url_for("console.certificate_detail", ca_name=ca_name, serial=serial), code=303)
