"""HTTP API of the seal service under /seal: seal making and management (ra_admin), sealing a PDF or OFD
with a seal the caller is authorised to use, and verification (GB/T 38540 §8, PAdES).

Documents travel as the raw request body (application/pdf, application/ofd or application/octet-stream);
everything is processed in memory (no temporary files). Malformed documents give 400, never 500.
"""
from __future__ import annotations

import threading

from flask import Blueprint, Response, current_app, g, jsonify, request

from access.auth import require_roles
from pkicore.errors import ErrorCode, PkiError
from seal.registry import Signer, signer_algorithm
from seal.services import Placement, SealService, cert_der

EXTENSION_KEY = "racentre.seal"
FACTORY_KEY = "racentre.seal.factory"
MAX_DOCUMENT = 32 * 1024 * 1024
bp = Blueprint("seal", __name__, url_prefix="/seal")
_build_lock = threading.Lock()

ADMIN = ("ra_admin",)
READERS = ("ra_admin", "auditor", "ra_officer", "ra_operator", "api_client")
SEALERS = ("api_client", "ra_operator", "ra_officer", "ra_admin")


class SealRequestError(PkiError):
    code = ErrorCode.BAD_REQUEST


class DocumentTooLarge(PkiError):
    code = ErrorCode.TOO_LARGE


def _service() -> SealService:
    service = current_app.extensions.get(EXTENSION_KEY)
    if service is None:            # built on first use: the TSA and the seal maker need a provisioned site
        with _build_lock:
            service = current_app.extensions.get(EXTENSION_KEY)
            if service is None:
                service = current_app.extensions[EXTENSION_KEY] = current_app.extensions[FACTORY_KEY]()
    return service


def _body() -> bytes:
    if request.content_length is not None and request.content_length > MAX_DOCUMENT:
        raise DocumentTooLarge(f"document larger than {MAX_DOCUMENT} bytes")
    data = request.get_data(cache=False)
    if not data:
        raise SealRequestError("send the document as the request body")
    return data


def _int(name: str, default=None, *, source=None):
    value = (source or request.args).get(name, default)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        raise SealRequestError(f"{name} must be an integer") from None


def _float(name: str, default: float) -> float:
    try:
        return float(request.args.get(name, default))
    except (TypeError, ValueError):
        raise SealRequestError(f"{name} must be a number") from None


@bp.post("/seals")
@require_roles(*ADMIN)
def make_seal():
    """multipart/form-data: unit, name, type, width_mm, height_mm, valid_days, key_label, certificate
    (file, PEM or DER), picture (file), users (comma-separated principals), algorithm (optional; default
    the certificate key's: sm2-sm3, ecdsa-sha256 / -sha384 by curve, rsa-sha256)."""
    form, files = request.form, request.files
    for field in ("unit", "name", "type", "key_label"):
        if not form.get(field):
            raise SealRequestError(f"{field} is required")
    if "picture" not in files or "certificate" not in files:
        raise SealRequestError("picture and certificate files are required")
    try:
        cert = cert_der(files["certificate"].read(64 * 1024))
    except (ValueError, TypeError, KeyError) as exc:
        raise SealRequestError("certificate must be a PEM or DER X.509 certificate") from exc
    alg = signer_algorithm(cert, form.get("algorithm"))     # default: the certificate key's
    svc = _service()
    record = svc.registry.make_seal(
        actor=g.principal.name, role=g.role, unit=form["unit"], name=form["name"], seal_type=form["type"],
        picture=files["picture"].read(1024 * 1024), width_mm=_int("width_mm", 40, source=form),
        height_mm=_int("height_mm", 40, source=form), valid_days=_int("valid_days", 365, source=form),
        signers=[Signer(form["key_label"], cert, alg)],
        users=tuple(u.strip() for u in form.get("users", "").split(",") if u.strip()))
    return jsonify(record.as_dict()), 201


@bp.get("/seals")
@require_roles(*READERS)
def list_seals():
    return jsonify(seals=[r.as_dict() for r in _service().registry.list(unit=request.args.get("unit"),
                                                                         status=request.args.get("status"))])


@bp.get("/seals/<int:seal_id>")
@require_roles(*READERS)
def get_seal(seal_id: int):
    return jsonify(_service().registry.get(seal_id).as_dict())


@bp.get("/seals/<int:seal_id>/esl")
@require_roles(*READERS)
def get_seal_der(seal_id: int):
    return Response(_service().registry.seal_der(seal_id), mimetype="application/octet-stream",
                    headers={"Content-Disposition": f"attachment; filename=seal-{seal_id}.esl"})


@bp.post("/seals/<int:seal_id>/<any(suspend, resume, revoke):action>")
@require_roles(*ADMIN)
def change_status(seal_id: int, action: str):
    payload = request.get_json(silent=True) or {}
    reason = str(payload.get("reason", ""))[:256]
    reg = _service().registry
    record = getattr(reg, action)(seal_id, actor=g.principal.name, role=g.role, reason=reason)
    return jsonify(record.as_dict())


@bp.post("/seals/<int:seal_id>/users")
@require_roles(*ADMIN)
def authorise(seal_id: int):
    principal = (request.get_json(silent=True) or {}).get("principal")
    if not isinstance(principal, str) or not principal.strip() or len(principal) > 128:
        raise SealRequestError("principal is required")
    return jsonify(_service().registry.authorise(seal_id, principal.strip(), actor=g.principal.name,
                                                 role=g.role).as_dict())


@bp.delete("/seals/<int:seal_id>/users/<principal>")
@require_roles(*ADMIN)
def deauthorise(seal_id: int, principal: str):
    return jsonify(_service().registry.deauthorise(seal_id, principal, actor=g.principal.name,
                                                   role=g.role).as_dict())


@bp.post("/seals/<int:seal_id>/sign")
@require_roles(*SEALERS)
def sign(seal_id: int):
    """Body: the PDF or OFD; query: page (1-based; -1 = last), x_mm, y_mm, or anchor=<text> to centre the
    seal over that text (on ``page`` if given, else the first page showing it; 400 when not found).
    Returns the sealed document."""
    data = _body()
    anchor = request.args.get("anchor") or None
    if anchor is not None and len(anchor) > 256:
        raise SealRequestError("anchor must be at most 256 characters")
    page = _int("page", None if anchor else 1)
    if page is not None:
        page = page - 1 if page > 0 else page
    placement = Placement(page, _float("x_mm", 120.0), _float("y_mm", 40.0), anchor=anchor)
    sealed = _service().seal(seal_id, data, principal=g.principal.name, role=g.role, token=g.principal.name,
                             placement=placement)
    kind = "application/ofd" if sealed.startswith(b"PK") else "application/pdf"
    return Response(sealed, mimetype=kind)


@bp.get("/seals/<int:seal_id>/records")
@require_roles("ra_admin", "auditor")
def records(seal_id: int):
    return jsonify(records=_service().registry.signing_records(seal_id))


@bp.post("/verify")
@require_roles(*READERS)
def verify():
    """Body: a sealed PDF or OFD. Returns the report (JSON; ?format=text for the human-readable form)."""
    report = _service().verify(_body())
    if request.args.get("format") == "text":
        return Response(report.to_text() + "\n", mimetype="text/plain; charset=utf-8")
    return jsonify(report.as_dict())


def install(app, service: SealService | None = None, *, factory=None) -> None:
    """Register the blueprint over a seal service, or over ``factory()`` that builds it on first use
    (``racentre.app.build_app`` passes the site's: its seal maker needs the HSM and the CA)."""
    if service is not None:
        app.extensions[EXTENSION_KEY] = service
    else:
        app.extensions[FACTORY_KEY] = factory
    app.register_blueprint(bp)
