"""Console pages for seals (GB/T 38540 registry: list, make, authorise staff, suspend/resume), M-of-N
key-recovery approvals (kms.recovery), the audit log browser, and resumable jobs with progress."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json

from asn1crypto import x509
from flask import Response, current_app, g, jsonify, redirect, request, url_for

from access.auth import require_roles
from gmt0014.messages import public_key_hash
from kms.recovery import Officer
from pkicore import inputs
from audit.trail import record
from store.db import transaction
from ra.errors import ValidationError
from racentre import audit as audit_trail
from racentre.console import formats, jobs, pages_desk, queries
from racentre.console.blueprint import bp, db, render
from seal import views as seal_views
from seal.registry import Signer, signer_algorithm
from seal.services import cert_der

SEAL_READERS = ("ra_admin", "auditor", "ra_officer", "ra_operator")
RECOVERY_READERS = ("key_recovery_officer", "ra_admin", "auditor")
AUDIT_READERS = ("auditor", "ra_admin")
JOB_READERS = ("ra_admin", "ra_operator", "auditor")


def _seals():
    return seal_views._service()     # the seal package builds its service on first use


def _back(endpoint: str, **values):
    return redirect(url_for(endpoint, **values), code=303)


# ------------------------------------------------------------------------------------------------ seals

@bp.get("/seals")
@require_roles(*SEAL_READERS)
def seals():
    registry = _seals().registry
    return render("seals.html", items=[r.as_dict() for r in registry.list(status=request.args.get("status") or None)])


SEAL_SIZES = inputs.Schema({"width_mm": inputs.Int(1, 1000, default=40), "height_mm": inputs.Int(1, 1000, default=40),
                           "valid_days": inputs.Int(1, 36500, default=365)})


@bp.post("/seals")
@require_roles("ra_admin")
def seal_make():
    form, files = request.form, request.files
    if "picture" not in files or "certificate" not in files:
        raise ValidationError("picture and certificate files are required")
    try:
        cert = cert_der(files["certificate"].read(64 * 1024))
        signer = Signer(form.get("key_label", ""), cert, signer_algorithm(cert))
        sizes = SEAL_SIZES.parse_text([(k, form[k]) for k in SEAL_SIZES.fields if form.get(k)], where="the form")
        width, height, days = sizes["width_mm"], sizes["height_mm"], sizes["valid_days"]
    except (ValueError, TypeError) as exc:
        raise ValidationError("the certificate must be PEM or DER and sizes whole numbers") from exc
    _seals().registry.make_seal(actor=g.principal.name, role=g.role, unit=form.get("unit", ""), name=form.get("name", ""),
                                seal_type=form.get("type", ""), picture=files["picture"].read(1024 * 1024),
                                width_mm=width, height_mm=height, valid_days=days, signers=[signer],
                                users=tuple(u.strip() for u in form.get("users", "").split(",") if u.strip()))
    return _back("console.seals")


@bp.post("/seals/<int:seal_id>/users")
@require_roles("ra_admin")
def seal_authorise(seal_id: int):
    principal = request.form.get("principal", "").strip()
    if not principal or len(principal) > 128:
        raise ValidationError("name the principal to authorise")
    _seals().registry.authorise(seal_id, principal, actor=g.principal.name, role=g.role)
    return _back("console.seals")


@bp.post("/seals/<int:seal_id>/<any(suspend, resume):action>")
@require_roles("ra_admin")
def seal_status(seal_id: int, action: str):
    getattr(_seals().registry, action)(seal_id, actor=g.principal.name, role=g.role,
                                       reason=request.form.get("reason", "")[:256])
    return _back("console.seals")


@bp.route("/seals/verify", methods=["GET", "POST"])
@require_roles(*SEAL_READERS)
def seal_verify():
    """Upload a sealed PDF/OFD or a bare seal (.esl): the same report as POST /seal/verify and
    `racentre seal verify` (one policy, seal.validation), in the officer's language, with a sketch of each
    sealed page showing where the seals sit (numbered as in the report)."""
    report = None
    name = None
    previews = []
    if request.method == "POST":
        upload = request.files.get("document")
        data = upload.read(seal_views.MAX_DOCUMENT + 1) if upload is not None else b""
        if not data:
            raise ValidationError("choose a document to verify")
        if len(data) > seal_views.MAX_DOCUMENT:
            raise seal_views.DocumentTooLarge(f"document larger than {seal_views.MAX_DOCUMENT} bytes")
        name = upload.filename
        report = _seals().verify(data).as_dict()
        previews = pages_desk.verification_previews(data)
    return render("seal_verify.html", report=report, filename=name, previews=previews)


# -------------------------------------------------------------------------------------- key recovery

@bp.get("/recovery")
@require_roles(*RECOVERY_READERS)
def recovery():
    """Approvals (person, certificate and recipient on each) and the look-up of archived keys by person,
    身份证号 or certificate serial (hex, as printed), from which a recovery request is opened."""
    book = jobs.local_kmc(current_app.extensions).book
    items = [book.status(rid) for rid in queries.kms_request_ids(db())]
    q = request.args.get("q", "")
    return render("recovery.html", items=items, keys=queries.escrowed_key_facts(db(), [i["key_id"] for i in items]),
                  q=q, found=queries.escrowed_certificates(db(), q) if q.strip() else None)


@bp.post("/recovery/open")
@require_roles("ra_admin", "key_recovery_officer")
def recovery_open():
    """Open a judicial recovery request for one archived key (the CA and serial of its certificate), to be
    delivered to the recipient certificate pasted here (PEM); M of N key-recovery officers then approve."""
    kmc = jobs.local_kmc(current_app.extensions)
    ca_name, serial = request.form.get("ca", ""), queries.hex_serial(request.form.get("serial", ""))
    authorities = current_app.extensions["racentre.ca"].authorities()
    if serial is None or ca_name not in authorities:
        raise ValidationError("choose a certificate from the look-up (CA and hexadecimal serial)")
    recipient = request.form.get("recipient_certificate", "").strip()
    if not recipient:
        raise ValidationError("paste the recipient's certificate (PEM): the recovered key is encrypted to it")
    ca_id = public_key_hash(x509.Certificate.load(authorities[ca_name].certificate).public_key.dump()).hex()
    key_id = kmc.escrow.find(ca_id, int(serial, 16))
    try:
        recipient_der = cert_der(recipient.encode())
    except (ValueError, TypeError):
        raise ValidationError("the recipient certificate is not a certificate (PEM)") from None
    kmc.book.request(purpose="recover", requested_by=g.principal.name, reason=request.form.get("reason", ""),
                     key_id=key_id, role=g.role, recipient_certificate=recipient_der)
    return redirect(url_for("console.recovery"), code=303)


@bp.post("/recovery/<int:rid>/approve")
@require_roles("key_recovery_officer")
def recovery_approve(rid: int):
    jobs.local_kmc(current_app.extensions).book.approve(rid, Officer(g.principal.name, g.principal.roles))
    return _back("console.recovery")


RECOVERY_FORMATS = {"sm2-enveloped-key": ("enveloped_key", "GB/T 35276 SM2EnvelopedKey"),
                    "signed-and-enveloped": ("signed_and_enveloped", "GM/T 0010 SignedAndEnvelopedData")}


@bp.post("/recovery/<int:rid>/recover")
@require_roles("ra_admin", "key_recovery_officer")
def recovery_execute(rid: int):
    """执行恢复: an approved judicial recovery (M distinct unexpired approvals, ``ApprovalBook.authorise``) is
    carried out once (``KeyEscrow.recover`` consumes the request) and the key, enveloped to the recipient
    certificate the request names, is downloaded: GB/T 35276 SM2EnvelopedKey (``format=sm2-enveloped-key``,
    the default) or the KMC-signed GM/T 0010 SignedAndEnvelopedData; the same as POST
    /kmc/v1/approval-requests/{id}/recover."""
    fmt = request.form.get("format") or "sm2-enveloped-key"
    if fmt not in RECOVERY_FORMATS:
        raise ValidationError(f"format is one of {', '.join(RECOVERY_FORMATS)}")
    kmc = jobs.local_kmc(current_app.extensions)
    delivery = kmc.escrow.recover(kmc.book.authorise(rid, actor=g.principal.name), actor=g.principal.name)
    return Response(getattr(delivery, RECOVERY_FORMATS[fmt][0]), mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="recovery-{rid}-{fmt}.der"'})


# ----------------------------------------------------------------------------------------- statistics

STATS_READERS = ("auditor", "ra_admin", "ra_officer")


def _day(value: str | None, default: dt.date) -> dt.date:
    try:
        return dt.date.fromisoformat(value) if value else default
    except ValueError:
        raise ValidationError("dates are YYYY-MM-DD") from None


@bp.get("/statistics")
@require_roles(*STATS_READERS)
def statistics():
    """统计: issued, revoked and pending per unit for a period (days in the console's time zone, ``from``
    and ``to`` inclusive; default this month), as a page or ``?format=csv`` (UTF-8 with BOM for Excel)."""
    tz = formats.zone(current_app.extensions["racentre.config"].console.timezone)
    today = dt.datetime.now(tz).date()
    first = _day(request.args.get("from"), today.replace(day=1))
    last = _day(request.args.get("to"), today)
    if last < first or (last - first).days > 3660:
        raise ValidationError("the period runs from `from` to `to` (at most ten years)")
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    rows = queries.statistics(db(), start, end)
    if request.args.get("format") == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["单位", "签发证书数", "吊销证书数", "待处理申请数", "统计起始", "统计截止"])
        for r in rows:
            writer.writerow([r["unit"] or "合计", r["issued"], r["revoked"], r["pending"], first.isoformat(),
                             last.isoformat()])
        return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="statistics-{first}-{last}.csv"'})
    return render("statistics.html", rows=rows, first=first, last=last)


# --------------------------------------------------------------------------------------------- audit

def _verify_trail():
    """racentre.audit.verify over the whole trail with the audit key's public half (None: no key yet), and
    against the site's HSM anchor (as `racentre audit verify` does)."""
    km = current_app.extensions["racentre.key_manager"]
    config = current_app.extensions["racentre.config"].audit
    return audit_trail.verify(db(), audit_trail.audit_public_key(km, config.key_label),
                              km=km if config.anchor else None, expected_site=config.site_id or None)


AUDIT_EXPORT_MAX = 10000


@bp.get("/audit")
@require_roles(*AUDIT_READERS)
def audit():
    """The log, newest first, with filters (actor, action prefix, target, days in the site's zone);
    ``?verify=1`` checks the hash chains and checkpoints too; ``?format=csv`` exports what the filters
    select (at most 10,000 rows, Chinese headers, UTF-8 with BOM), itself audited (``audit.export``)."""
    before = request.args.get("before", "")
    tz = formats.zone(current_app.extensions["racentre.config"].console.timezone)
    first, last = request.args.get("from") or None, request.args.get("to") or None
    since = dt.datetime.combine(_day(first, dt.date.min), dt.time(), tzinfo=tz) if first else None
    until = dt.datetime.combine(_day(last, dt.date.min) + dt.timedelta(days=1), dt.time(), tzinfo=tz) if last else None
    export = request.args.get("format") == "csv"
    filters = {"actor": request.args.get("actor", "")[:128], "action": request.args.get("action", "")[:64],
               "target": request.args.get("target", "")[:160]}
    rows = queries.audit_events(db(), **filters, before_id=int(before) if before.isdigit() and len(before) < 19 else None,
                                since=since, until=until, limit=AUDIT_EXPORT_MAX if export else 100)
    if export:
        with transaction(db()) as session:
            record(session, actor=g.principal.name, role=g.role, action="audit.export", target_type="audit_event",
                   target_id=f"{rows[-1].id}-{rows[0].id}" if rows else "-", rows=len(rows), format="csv",
                   **{f"filter_{k}": v for k, v in filters.items() if v}, **({"from": first} if first else {}),
                   **({"to": last} if last else {}))
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["编号", "时间", "操作人", "角色", "操作", "对象类型", "对象", "详情"])
        for e in rows:
            writer.writerow([e.id, formats.local_time(e.at, tz), e.actor, e.role, e.action, e.target_type, e.target_id,
                             json.dumps(e.detail, ensure_ascii=False, default=str)])
        return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="audit-export.csv"'})
    verdict = _verify_trail() if request.args.get("verify") == "1" else None
    return render("audit.html", rows=rows, verdict=verdict, filters=request.args)


# ---------------------------------------------------------------------------------------------- jobs

@bp.get("/jobs")
@require_roles(*JOB_READERS)
def jobs_page():
    return render("jobs.html", items=[jobs.as_dict(j) for j in queries.jobs(db())], units=queries.units(db()))


def _job(job_id: int) -> dict:
    row = queries.job(db(), job_id)
    if row is None:
        raise jobs.JobError(f"no job {job_id}", code=jobs.ErrorCode.NOT_FOUND)
    return jobs.as_dict(row)


@bp.get("/jobs/<int:job_id>")
@require_roles(*JOB_READERS)
def job_detail(job_id: int):
    return render("job.html", job=_job(job_id))


@bp.get("/jobs/<int:job_id>.json")
@require_roles(*JOB_READERS)
def job_json(job_id: int):
    return jsonify(_job(job_id))


@bp.post("/jobs/crl")
@require_roles("ra_admin")
def job_crl():
    return _back("console.job_detail", job_id=jobs.submit(db(), "crl", actor=g.principal.name, role=g.role))


@bp.post("/jobs/kek-rotation")
@require_roles("ra_admin")
def job_kek():
    return _back("console.job_detail", job_id=jobs.submit(db(), "kek-rotation", actor=g.principal.name, role=g.role))


@bp.post("/jobs/import")
@require_roles("ra_operator", "ra_admin")
def job_import():
    unit_id = request.form.get("unit_id", "")
    if not unit_id.isdigit() or len(unit_id) > 18 or "roster" not in request.files:
        raise ValidationError("choose a unit and a roster file")
    payload = request.files["roster"].read(jobs.MAX_ROSTER + 1)
    job_id = jobs.submit(db(), "import-civil-servants", actor=g.principal.name, role=g.role,
                         params={"unit_id": int(unit_id)}, payload=payload)
    return _back("console.job_detail", job_id=job_id)


@bp.post("/jobs/<int:job_id>/resume")
@require_roles("ra_operator", "ra_admin")
def job_resume(job_id: int):
    jobs.resume(db(), job_id, actor=g.principal.name, role=g.role)
    return _back("console.job_detail", job_id=job_id)
