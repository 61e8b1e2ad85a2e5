"""Console pages of the certificate lifecycle after issuance, started from the certificate page as EJBCA's RA
web and the Chinese commercial RA systems do:

* 冻结/解冻 (suspend/resume): an RA request of kind ``suspend`` (RFC 5280 §5.3.1 certificateHold) or ``resume``
  (its release, removeFromCRL) for the certificates of the issuing request, through the same four-eyes gate as
  revocation (``ra.workflow``; an officer who asks counts as its first approver), audited;
* 换发/补发 (renewal, re-key, re-issue after loss): a request of kind ``renewal``, ``rekey`` or ``reissue``
  vetted and approved like issuance; the old certificates are revoked (superseded) at issuance as the
  ``[ra]`` policy says (``ra.workflow.supersedes``);
* 即将过期 (expiry): certificates in force ending within N days (``[console] expiry_notice_days``), per unit,
  exportable as CSV, and the notice on the officers' home page;
* the SM2 envelope (GM/T 0010 SignedAndEnvelopedData, or the GB/T 35276 SM2EnvelopedKey USB-key middleware
  imports) of a dual-certificate subscriber's KMC-generated encryption key, for the operators who make the
  subscriber's USB key (制证), each download audited.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter

from flask import Response, g, redirect, request, url_for
from sqlalchemy import select

from access.auth import require_roles
from audit.trail import record
from store.db import as_utc, transaction, utcnow
from ra.errors import NotFound, ValidationError
from ra.models import CertRequest, RaCertificate, RequestKind, RequestState
from racentre.console import formats, i18n, queries
from racentre.console.blueprint import bp, config, db, render
from racentre.console.pages_ra import READERS, _ra_request_id, _serial, actor, ca, ra

SUBMITTERS = ("ra_operator", "ra_officer")     # who opens lifecycle requests (受理); officers count as first approver
ENVELOPE_ROLES = ("ra_operator", "ra_officer")  # 制证: who hands the subscriber the encryption key's envelope
RENEW_KINDS = (RequestKind.RENEWAL.value, RequestKind.REKEY.value, RequestKind.REISSUE.value)
EXPIRY_MAX = 2000
MAX_PEM = 20000


def _ra_row(ca_name: str, serial: str):
    """The RA's record of a certificate (request, usage, status, envelope present), or None for certificates
    the RA did not request."""
    with db()() as session:
        return session.execute(select(RaCertificate.request_id, RaCertificate.usage, RaCertificate.status,
                                      RaCertificate.key_envelope.is_not(None).label("has_envelope"),
                                      CertRequest.type, CertRequest.state)
                               .join(CertRequest, RaCertificate.request_id == CertRequest.id)
                               .where(RaCertificate.ca == ca_name, RaCertificate.serial == serial)).first()


@bp.app_template_filter("msg")
def _message(text):
    """A service's words (error, check detail, job error) in the officer's language (``i18n.message``)."""
    return i18n.message(text, g.get("lang", i18n.DEFAULT))


@bp.app_template_global("ra_certificate")
def ra_certificate(ca_name: str, serial: str) -> dict | None:
    """For the certificate page: what the RA knows of it and which lifecycle actions apply (and any request of
    the certificate's subject still in the queue that acts on it)."""
    row = _ra_row(ca_name, serial)
    if row is None:
        return None
    with db()() as session:
        open_requests = list(session.execute(
            select(CertRequest.id, CertRequest.kind, CertRequest.state)
            .where(CertRequest.target_request_id == row.request_id,
                   CertRequest.state.in_((RequestState.SUBMITTED.value, RequestState.VETTED.value,
                                          RequestState.RETURNED.value)))
            .order_by(CertRequest.id)))
    return {"request_id": row.request_id, "usage": row.usage, "status": row.status, "type": row.type,
            "has_envelope": bool(row.has_envelope) and row.usage == "enc",
            "open": [{"id": r.id, "kind": r.kind, "state": r.state} for r in open_requests]}


def _target(ca_name: str, serial: str) -> int:
    row = ca().certificate(ca_name, _serial(serial))
    rid = _ra_request_id(row)
    if rid is None:
        raise ValidationError("this certificate was not issued through an RA request")
    return rid


@bp.post("/certificates/<ca_name>/<serial>/<any(suspend, resume):action>")
@require_roles(*SUBMITTERS)
def certificate_hold(ca_name: str, serial: str, action: str):
    """冻结 (certificateHold) or 解冻 (removeFromCRL) of the certificates of this certificate's RA request: a
    request of kind ``suspend``/``resume`` through the four-eyes gate of revocation (RFC 5280 §5.3.1), with the
    officer's reason (``status_reason``, free text) shown on the request and audited."""
    rid = _target(ca_name, serial)
    original = ra().get_request(rid)
    result = ra().submit(actor(), type=original["type"], kind=action, target_request_id=rid,
                         status_reason=request.form.get("status_reason") or None)
    return redirect(url_for("console.request_detail", rid=result["id"]), code=303)


def _stored_csr(request_id: int) -> bytes | None:
    with db()() as session:
        return session.scalar(select(CertRequest.sign_csr).where(CertRequest.id == request_id))


def _pem_field(name: str) -> str | None:
    value = (request.form.get(name) or "").strip()
    if len(value) > MAX_PEM:
        raise ValidationError(f"{name} is longer than {MAX_PEM} characters")
    return value or None


@bp.route("/certificates/<ca_name>/<serial>/renew", methods=["GET", "POST"])
@require_roles(*SUBMITTERS)
def certificate_renew(ca_name: str, serial: str):
    """换发 (renewal: the same signing key, the request's CSR again unless a new one is pasted; re-key: a new
    key) and 补发 (re-issue after the USB key was lost: a new key, the old certificates superseded even when on
    hold): a request vetted and approved like issuance (``ra.workflow``)."""
    kind = request.values.get("kind", RequestKind.RENEWAL.value)
    if kind not in RENEW_KINDS:
        raise ValidationError(f"kind is one of {', '.join(RENEW_KINDS)}")
    row = ca().certificate(ca_name, _serial(serial))
    rid = _ra_request_id(row)
    if rid is None:
        raise ValidationError("this certificate was not issued through an RA request")
    original = ra().get_request(rid)
    if request.method == "GET":
        return render("renew.html", kind=kind, kinds=RENEW_KINDS, row=row, ca_name=ca_name, original=original,
                      subject=formats.dn(original["subject"]) if original.get("subject") else row.subject,
                      supersedes=kind != RequestKind.RENEWAL.value or ra().policy.renewal_supersedes,
                      kmc=ra().escrows_keys)
    csr = _pem_field("csr")
    if csr is None and kind == RequestKind.RENEWAL.value:
        csr = _stored_csr(rid)                     # the same key: its CSR (proof of possession) again
    if csr is None:
        raise ValidationError("a re-key or re-issue needs the subscriber's new certificate request (CSR)")
    result = ra().submit(actor(), type=original["type"], kind=kind, target_request_id=rid, sign_csr=csr,
                         enc_csr=_pem_field("enc_csr"))
    return redirect(url_for("console.request_detail", rid=result["id"]), code=303)


@bp.get("/certificates/<ca_name>/<serial>/envelope")
@require_roles(*ENVELOPE_ROLES)
def key_envelope(ca_name: str, serial: str):
    """The KMC's envelope of a dual-certificate subscriber's encryption key (GM/T 0034): ``p7`` the GM/T 0010
    SignedAndEnvelopedData, ``sm2env`` the GB/T 35276 SM2EnvelopedKey for USB-key middleware. Only the
    subscriber's signing key opens it; each download is audited (``console.key_envelope.download``)."""
    fmt = request.args.get("format", "sm2env")
    if fmt not in ("p7", "sm2env"):
        raise ValidationError("format is p7 or sm2env")
    number = format(_serial(serial), "x")
    row = _ra_row(ca_name, number)
    if row is None or row.usage != "enc" or not row.has_envelope:
        raise NotFound("this certificate has no encryption key generated by the key-management centre")
    name = "signed-and-enveloped" if fmt == "p7" else "sm2-enveloped-key"
    envelope = ra().key_envelope(row.request_id, name)
    with transaction(db()) as session:
        record(session, actor=g.principal.name, role=g.role, action="console.key_envelope.download",
               target_type="certificate", target_id=f"{ca_name}/{number}", format=name, request_id=row.request_id)
    return Response(envelope, mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{ca_name}-{number}-{"envelope.p7b" if fmt == "p7" else "sm2env.der"}"'})


# ------------------------------------------------------------------------------------------------ expiry

def _days(value: str | None) -> int:
    if not value:
        return config().expiry_notice_days
    if not value.isdigit() or not 1 <= int(value) <= 3660:
        raise ValidationError("days is a whole number from 1 to 3660")
    return int(value)


def expiring(days: int, unit: str = "") -> list[dict]:
    """Certificates in force ending within ``days``, soonest first (at most ``EXPIRY_MAX``), with days left."""
    rows = queries.search_certificates(db(), limit=EXPIRY_MAX, search=queries.CertificateSearch(
        unit=unit[:128].strip(), expiring_days=days, sort="expiry"))[:EXPIRY_MAX]
    now = utcnow()
    for r in rows:
        r["days_left"] = max(0, (as_utc(r["not_after"]) - now).days)
    return rows


def expiry_notice() -> dict:
    """The home page's notice: how many certificates end within ``[console] expiry_notice_days``, per unit."""
    days = config().expiry_notice_days
    rows = expiring(days)
    per_unit = Counter(r["unit"] or "" for r in rows)
    return {"days": days, "count": len(rows), "units": per_unit.most_common(5)}


@bp.get("/expiring")
@require_roles(*READERS)
def expiring_page():
    """即将过期: certificates in force ending within ``?days=`` (default ``[console] expiry_notice_days``),
    optionally of one unit, with per-unit counts; ``?format=csv`` exports them (UTF-8 with BOM for Excel)."""
    days, unit = _days(request.args.get("days")), request.args.get("unit", "")
    rows = expiring(days, unit)
    tz = formats.zone(config().timezone)
    if request.args.get("format") == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["单位", "持有人/主机", "主体", "签发 CA", "序列号", "模板", "失效时间", "剩余天数"])
        for r in rows:
            writer.writerow([r["unit"] or "本中心自用证书", r["person"] or r["host"] or "", formats.dn(r["subject"]), r["ca"],
                             r["serial"].upper(), r["profile"], formats.local_time(r["not_after"], tz), r["days_left"]])
        stamp = dt.datetime.now(tz).date().isoformat()
        return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="expiring-{days}d-{stamp}.csv"'})
    per_unit = Counter(r["unit"] or "" for r in rows).most_common()
    return render("expiring.html", rows=rows, days=days, unit=unit, per_unit=per_unit,
                  truncated=len(rows) >= EXPIRY_MAX)
