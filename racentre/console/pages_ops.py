"""Console pages for seals (GB/T 38540 registry: list, make, authorise staff, suspend/resume), M-of-N
key-recovery approvals (kms.recovery), the audit log browser, and resumable jobs with progress."""
from __future__ import annotations

from flask import current_app, g, jsonify, redirect, request, url_for

from access.auth import require_roles
from kms.recovery import Officer
from ra.errors import ValidationError
from racentre import audit as audit_trail
from racentre.console import jobs, queries
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


@bp.post("/seals")
@require_roles("ra_admin")
def seal_make():
    form, files = request.form, request.files
    if "picture" not in files or "certificate" not in files:
        raise ValidationError("picture and certificate files are required")
    try:
        cert = cert_der(files["certificate"].read(64 * 1024))
        signer = Signer(form.get("key_label", ""), cert, signer_algorithm(cert))
        width, height, days = (int(form.get(k) or d) for k, d in (("width_mm", 40), ("height_mm", 40), ("valid_days", 365)))
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
    `racentre seal verify` (one policy, seal.validation), in the officer's language."""
    report = None
    name = None
    if request.method == "POST":
        upload = request.files.get("document")
        data = upload.read(seal_views.MAX_DOCUMENT + 1) if upload is not None else b""
        if not data:
            raise ValidationError("choose a document to verify")
        if len(data) > seal_views.MAX_DOCUMENT:
            raise seal_views.DocumentTooLarge(f"document larger than {seal_views.MAX_DOCUMENT} bytes")
        name = upload.filename
        report = _seals().verify(data).as_dict()
    return render("seal_verify.html", report=report, filename=name)


# -------------------------------------------------------------------------------------- key recovery

@bp.get("/recovery")
@require_roles(*RECOVERY_READERS)
def recovery():
    book = jobs.local_kmc(current_app.extensions).book
    items = [book.status(rid) for rid in queries.kms_request_ids(db())]
    return render("recovery.html", items=items)


@bp.post("/recovery/<int:rid>/approve")
@require_roles("key_recovery_officer")
def recovery_approve(rid: int):
    jobs.local_kmc(current_app.extensions).book.approve(rid, Officer(g.principal.name, g.principal.roles))
    return _back("console.recovery")


# --------------------------------------------------------------------------------------------- audit

def _verify_trail():
    """racentre.audit.verify over the whole trail with the audit key's public half (None: no key yet), and
    against the site's HSM anchor (as `racentre audit verify` does)."""
    km = current_app.extensions["racentre.key_manager"]
    config = current_app.extensions["racentre.config"].audit
    return audit_trail.verify(db(), audit_trail.audit_public_key(km, config.key_label),
                              km=km if config.anchor else None, expected_site=config.site_id or None)


@bp.get("/audit")
@require_roles(*AUDIT_READERS)
def audit():
    """The log, newest first, with filters; ``?verify=1`` checks the hash chains and checkpoints too."""
    before = request.args.get("before", "")
    rows = queries.audit_events(db(), actor=request.args.get("actor", "")[:128],
                                action=request.args.get("action", "")[:64], target=request.args.get("target", "")[:160],
                                before_id=int(before) if before.isdigit() else None)
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
    if not unit_id.isdigit() or "roster" not in request.files:
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
