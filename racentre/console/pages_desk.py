"""Console pages of the counter: 受理 (request entry for a 公务员, a 单位 or an 应用服务器 with the
identity documents checklist, ``ra.intake``), the person and unit registries (人员、单位) with each one's
requests and certificates, roster import (批量导入, ``racentre.console.roster``: Chinese headers, one
outcome per row, all or nothing), and sealing a PDF/OFD (签章) with a preview of where the seal goes
(``seal.geometry``) before it is applied."""
from __future__ import annotations

import base64
import binascii
import re

from flask import Response, current_app, g, redirect, request, url_for

from access.auth import require_roles
from pkicore import inputs
from pkicore.errors import ErrorCode, PkiError
from ra.errors import NotFound, ValidationError
from ra.id_numbers import validate_hostname, validate_id_number, validate_ip, validate_name, validate_uscc
from ra.intake import DOCUMENTS, REQUIRED_DOCUMENTS
from ra.models import RequestType
from ra.workflow import Actor
from racentre.console import columns, queries, registers, roster
from racentre.console.blueprint import bp, db, render, t
from seal import ses
from seal import views as seal_views
from seal.services import Placement

READERS = ("ra_operator", "ra_officer", "ra_admin", "auditor")
SEAL_USERS = ("ra_operator", "ra_officer", "ra_admin")
TYPES = [t.value for t in RequestType]
MAX_PEM = 64 * 1024
MAX_SEAL_DOCUMENT = 10 * 1024 * 1024
# errors that the entry form answers beside the filled-in form (the input's fault)
FORM_ERRORS = (ErrorCode.BAD_REQUEST, ErrorCode.BAD_ENCODING, ErrorCode.BAD_SIGNATURE, ErrorCode.UNSUPPORTED_ALGORITHM,
               ErrorCode.NOT_FOUND, ErrorCode.CONFLICT, ErrorCode.TOO_LARGE)      # the preview round-trip carries the document in the form (base64)


def _ra():
    return current_app.extensions["racentre.ra"]


def _actor() -> Actor:
    return Actor(g.principal.name, g.role)


def _page_arg() -> int:
    value = request.args.get("page", "1")
    if not value.isdigit() or not 1 <= int(value) <= 10000:
        raise ValidationError(t("bad_page"))
    return int(value)


def _id_arg(name: str, source) -> int | None:
    value = (source.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValidationError(f"{name} must be a number")
    return int(value)


# ------------------------------------------------------------------------------------------------ 受理

def _names(text: str) -> list[str]:
    return [n for n in re.split(r"[\s,，;；]+", text or "") if n]


def _pem_field(form, files, name: str) -> str | bytes | None:
    upload = files.get(f"{name}_file")
    if upload is not None and upload.filename:
        data = upload.read(MAX_PEM + 1)
        if len(data) > MAX_PEM:
            raise ValidationError(t("csr_too_large"))
        return data                                   # PEM or DER, as ra.csr.parse_csr takes either
    text = (form.get(name) or "").strip()
    return text or None


def _intake_fields(form, files) -> tuple[dict, dict]:
    """(keyword arguments of RaService.intake, field errors) from the form; each field is checked by the RA's
    own validators (ra.id_numbers) so the officer sees which field is wrong."""
    errors: dict[str, str] = {}
    rtype = form.get("type", "")
    if rtype not in TYPES:
        errors["type"] = t("choose_type")
        return {}, errors

    def check(field: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            errors[field] = f"{t('field_' + field)}：{exc.public_message}"
            return None

    fields: dict = {"type": rtype, "documents": [d for d in form.getlist("documents") if d in DOCUMENTS]}
    missing = [d for d in REQUIRED_DOCUMENTS[rtype] if d not in fields["documents"]]
    if missing:
        errors["documents"] = t("documents_missing") + "：" + "、".join(t("doc_" + d) for d in missing)
    if form.get("unit_mode") == "new" or rtype == RequestType.UNIT.value and form.get("unit_mode") != "existing":
        fields["unit"] = {"name": check("unit_name", validate_name, form.get("unit_name", ""), "unit name", 128),
                          "uscc": check("uscc", validate_uscc, form.get("uscc", ""),
                                        check_org_code=_ra().policy.check_org_code),
                          "legal_representative": check("legal_representative", validate_name,
                                                        form.get("legal_representative", ""), "legal representative")}
    else:
        unit_id = form.get("unit_id", "")
        if not unit_id.isdigit() or len(unit_id) > 18:
            errors["unit_id"] = t("choose_unit")
        else:
            fields["unit_id"] = int(unit_id)
    if rtype == RequestType.CIVIL_SERVANT_DUAL.value:
        contact = None
        try:
            contact = roster._contact({"mobile": form.get("mobile", "").strip(), "email": form.get("email", "").strip()})
        except ValidationError as exc:
            errors["contact"] = exc.public_message
        fields["person"] = {"name": check("name", validate_name, form.get("name", ""), "name"),
                            "id_number": check("id_number", validate_id_number, form.get("id_number", "")),
                            "department": form.get("department", "").strip() or None,
                            "position": form.get("position", "").strip() or None, "contact": contact}
    elif rtype == RequestType.SERVER.value:
        host = check("host_name", validate_hostname, form.get("host_name", ""))
        dns = [check("dns_names", validate_hostname, n) for n in _names(form.get("dns_names", ""))]
        ips = [check("ip_addresses", validate_ip, n) for n in _names(form.get("ip_addresses", ""))]
        fields["server"] = {"host_name": host, "dns_names": dns, "ip_addresses": ips}
    try:
        fields["sign_csr"] = _pem_field(form, files, "sign_csr")
        if not fields["sign_csr"]:
            errors["sign_csr"] = t("csr_required")
        if rtype == RequestType.CIVIL_SERVANT_DUAL.value and form.get("enc_source") == "csr":
            fields["enc_csr"] = _pem_field(form, files, "enc_csr")
            if not fields["enc_csr"]:
                errors["enc_csr"] = t("enc_csr_required")
    except ValidationError as exc:
        errors["sign_csr"] = exc.public_message
    return fields, errors


def _intake_page(status: int = 200, *, form=None, errors=None, message=None):
    form = form if form is not None else {"type": request.args.get("type", RequestType.CIVIL_SERVANT_DUAL.value)}
    rtype = form.get("type") if form.get("type") in TYPES else RequestType.CIVIL_SERVANT_DUAL.value
    documents = form.getlist("documents") if hasattr(form, "getlist") else []
    return render("intake.html", status, form=form, rtype=rtype, types=TYPES, errors=errors or {}, message=message,
                  units=queries.units(db()), documents=DOCUMENTS, required=REQUIRED_DOCUMENTS, checked=documents,
                  kmc=_ra().escrows_keys)


@bp.get("/intake")
@require_roles("ra_operator")
def intake():
    """受理: the entry form for the chosen request type (?type=civil-servant-dual | unit | server); ``person_id``
    or ``unit_id`` fill in a registered person or unit (a new certificate for someone already registered)."""
    form = {"type": request.args.get("type", RequestType.CIVIL_SERVANT_DUAL.value)}
    person_id, unit_id = _id_arg("person_id", request.args), _id_arg("unit_id", request.args)
    if person_id is not None:
        found = registers.person(db(), person_id)
        if found is None:
            raise NotFound(f"civil servant {person_id} not found")
        form.update(type=RequestType.CIVIL_SERVANT_DUAL.value, unit_mode="existing", unit_id=str(found["unit_id"]),
                    name=found["name"], id_number=found["id_number"], department=found["department"] or "",
                    position=found["position"] or "")
    elif unit_id is not None:
        form.update(unit_mode="existing", unit_id=str(unit_id))
    return _intake_page(form=form)


@bp.post("/intake")
@require_roles("ra_operator")
def intake_submit():
    """Check every field (身份证号 by GB 11643, 统一社会信用代码 by GB 32100, host names, the CSR's proof of
    possession and subject), then register and submit in one transaction; on any error the form comes back
    filled in as it was sent, with the error beside its field (400)."""
    fields, errors = _intake_fields(request.form, request.files)
    if errors:
        return _intake_page(400, form=request.form, errors=errors, message=t("form_has_errors"))
    try:
        req = _ra().intake(_actor(), **fields)
    except PkiError as exc:
        if exc.code not in FORM_ERRORS:          # not the input's fault (HSM, database, CA): the error page
            raise
        return _intake_page(409 if exc.code is ErrorCode.CONFLICT else 400, form=request.form,
                            message=f"{t('intake_refused')}：{exc.public_message}")
    return redirect(url_for("console.request_detail", rid=req["id"]), code=303)


# ---------------------------------------------------------------------------------------- 人员、单位

def _masking() -> bool:
    return not {"ra_operator", "ra_officer", "ra_admin"} & g.principal.roles


@bp.get("/people")
@require_roles(*READERS)
def people():
    """人员: civil servants by name, 身份证号 (or its last digits), department or unit; 50 a page."""
    page, unit_id = _page_arg(), _id_arg("unit_id", request.args)
    q = request.args.get("q", "")[:64]
    rows = registers.search_people(db(), text=q, unit_id=unit_id, page=page)
    if _masking():
        for r in rows:
            r["id_number"] = registers.mask_id(r["id_number"])
    return render("people.html", items=rows[:registers.PAGE_SIZE], more=len(rows) > registers.PAGE_SIZE, q=q,
                  page=page, unit_id=unit_id, units=queries.units(db()))


@bp.get("/people/<int:person_id>")
@require_roles(*READERS)
def person_detail(person_id: int):
    found = registers.person(db(), person_id)
    if found is None:
        raise NotFound(f"civil servant {person_id} not found")
    if _masking():
        found["id_number"] = registers.mask_id(found["id_number"])
    return render("person.html", p=found)


@bp.get("/units")
@require_roles(*READERS)
def units_page():
    """单位: units by name or 统一社会信用代码, with their people and servers counted; 50 a page."""
    page = _page_arg()
    q = request.args.get("q", "")[:128]
    rows = registers.search_units(db(), text=q, page=page)
    return render("units.html", items=rows[:registers.PAGE_SIZE], more=len(rows) > registers.PAGE_SIZE, q=q, page=page)


@bp.get("/units/<int:unit_id>")
@require_roles(*READERS)
def unit_detail(unit_id: int):
    found = registers.unit(db(), unit_id)
    if found is None:
        raise NotFound(f"unit {unit_id} not found")
    if _masking():
        for p in found["people"]:
            p["id_number"] = registers.mask_id(p["id_number"])
    return render("unit.html", u=found)


# ------------------------------------------------------------------------------------------- 批量导入

@bp.get("/roster")
@require_roles("ra_operator", "ra_admin")
def roster_page():
    return render("roster.html", outcomes=None, units=queries.units(db()), headers=columns.HEADERS)


@bp.post("/roster")
@require_roles("ra_operator", "ra_admin")
def roster_import():
    """Check (``mode=check``) or import (``mode=import``) a roster: every row's outcome; written only when
    every row passed (one transaction), else nothing."""
    upload = request.files.get("roster")
    data = upload.read(roster.MAX_ROSTER + 1) if upload is not None else b""
    if not data:
        raise ValidationError(t("choose_roster"))
    commit = request.form.get("mode") == "import"
    outcomes, written = roster.run(db(), _actor(), data, default_unit_id=_id_arg("unit_id", request.form),
                                   commit=commit, policy=_ra().policy)
    failed = sum(o.result == "failed" for o in outcomes)
    return render("roster.html", 200 if not failed else 400, outcomes=outcomes, written=written, commit=commit,
                  failed=failed, created=sum(o.result == "created" for o in outcomes),
                  existing=sum(o.result == "existing" for o in outcomes), filename=upload.filename,
                  units=queries.units(db()), headers=columns.HEADERS)


# ----------------------------------------------------------------------------------------------- 签章

def _seal_service():
    return seal_views._service()


def _usable_seals() -> list:
    """Active seals this officer is authorised to use (the registry's own check runs again when sealing)."""
    return [s for s in _seal_service().registry.list(status="active") if g.principal.name in s.users]


PLACE = inputs.Schema({"seal_id": inputs.Int(0, inputs.MAX_ID), "page": inputs.Int(-10000, 10000, default=1),
                       "x_mm": inputs.Int(0, 2000, default=120), "y_mm": inputs.Int(0, 2000, default=40),
                       "anchor": inputs.Str(100, strip=True)})


def _placement(form) -> tuple[int, Placement]:
    values = PLACE.parse_text([(k, form[k]) for k in PLACE.fields if form.get(k, "") != ""], where="the form")
    if "seal_id" not in values:
        raise ValidationError(t("choose_seal"))
    anchor = values.get("anchor") or None
    page = values.get("page", 1)
    if page == 0:
        raise ValidationError(t("bad_page"))
    return values["seal_id"], Placement(page - 1 if page > 0 else page, float(values["x_mm"]),
                                        float(values["y_mm"]), anchor=anchor)


def _document(form, files) -> tuple[bytes, str]:
    upload = files.get("document")
    if upload is not None and upload.filename:
        data = upload.read(MAX_SEAL_DOCUMENT + 1)
        name = upload.filename
    else:
        try:
            data = base64.b64decode(form.get("document_b64", ""), validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(t("choose_document")) from None
        name = form.get("filename", "document")
    if not data:
        raise ValidationError(t("choose_document"))
    if len(data) > MAX_SEAL_DOCUMENT:
        raise seal_views.DocumentTooLarge(f"document larger than {MAX_SEAL_DOCUMENT} bytes")
    return data, re.sub(r"[^\w.\-\u4e00-\u9fff]", "_", name)[:100] or "document"


def seal_picture_bytes(seal_id: int) -> tuple[str, bytes]:
    view = ses.parse_seal(_seal_service().registry.seal_der(seal_id))
    return view.picture_type, view.picture


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@bp.get("/seals/<int:seal_id>/picture")
@require_roles(*READERS)
def seal_picture(seal_id: int):
    """The seal's picture (印模) as made, for previews."""
    kind, data = seal_picture_bytes(seal_id)
    mime = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp"}
    return Response(data, mimetype=mime.get(kind.lower(), "application/octet-stream"),
                    headers={"Cache-Control": "private, max-age=300"})


@bp.get("/seals/sign")
@require_roles(*SEAL_USERS)
def seal_sign():
    return render("seal_sign.html", seals=_usable_seals(), form={}, preview=None)


@bp.post("/seals/sign")
@require_roles(*SEAL_USERS)
def seal_sign_post():
    """``action=preview``: the page sketched with the seal's picture where it will go (the document is kept in
    the form for the next step); ``action=seal``: seal it (``SealService.seal``: the registry checks the seal
    is active and this officer may use it; the signing is recorded) and download the sealed document."""
    data, name = _document(request.form, request.files)
    seal_id, placement = _placement(request.form)
    service = _seal_service()
    if request.form.get("action") == "seal":
        sealed = service.seal(seal_id, data, principal=g.principal.name, role=g.role, token=g.principal.name,
                              placement=placement)
        ofd = sealed.startswith(b"PK")
        stem = name.rsplit(".", 1)[0]
        return Response(sealed, mimetype="application/ofd" if ofd else "application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{stem}-sealed.{"ofd" if ofd else "pdf"}"'})
    if seal_id not in {s.id for s in _usable_seals()}:
        raise ValidationError(t("seal_not_yours"))
    box, page_mm = service.placement_box(seal_id, data, placement)
    from seal import geometry          # with pyHanko: loaded by the first document handled (seal.services)
    _, picture = seal_picture_bytes(seal_id)
    png = geometry.sketch(page_mm, [box], picture=picture, text=geometry.text_boxes(data, box.page))
    preview = {"image": _data_uri(png), "page": box.page + 1, "x": round(box.x, 1), "y": round(box.y, 1),
               "width": box.width, "height": box.height, "page_width": round(page_mm[0], 1),
               "page_height": round(page_mm[1], 1), "document_b64": base64.b64encode(data).decode("ascii"),
               "filename": name}
    return render("seal_sign.html", seals=_usable_seals(), form=request.form, preview=preview)


def verification_previews(data: bytes) -> list[dict]:
    """For the verification page: one sketch per page that carries seals, each seal boxed and numbered as in
    the report (an unreadable layout gives no sketch, never an error: the report stands on its own)."""
    from seal import geometry          # with pyHanko: loaded by the first document handled (seal.services)
    try:
        boxes = geometry.seal_boxes(data)
        pages = sorted({b.page for b in boxes})[:10]
        out = []
        for page in pages:
            size = geometry.page_size(data, page)
            png = geometry.sketch(size, [b for b in boxes if b.page == page], text=geometry.text_boxes(data, page))
            out.append({"page": page + 1, "image": _data_uri(png),
                        "seals": [b.label for b in boxes if b.page == page]})
        return out
    except PkiError:
        return []
