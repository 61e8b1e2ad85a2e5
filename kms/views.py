"""KMC over HTTP: the GM/T 0014 endpoint (signed DER, no bearer token) and the operator API for
recovery requests and approvals, KEK rotation and disaster-recovery export/import."""
from __future__ import annotations

import base64

from asn1crypto import pem
from flask import Blueprint, Response, current_app, g, jsonify, request

from access.auth import require_roles
from gmt0014.messages import CONTENT_TYPE
from kms.errors import EscrowError
from kms.recovery import Officer
from kms.schemas import EXPORT, IMPORT, OPEN_REQUEST, REWRAP_QUERY
from kms.services import KmsParts
from pkicore import inputs

bp = Blueprint("kms", __name__, url_prefix="/kmc/v1")

OFFICER, ADMIN, AUDITOR = "key_recovery_officer", "ra_admin", "auditor"


def _kmc() -> KmsParts:
    return current_app.extensions["racentre.kms"]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _body(schema: inputs.Schema) -> dict:
    """The JSON object body, checked against the route's schema (pkicore.inputs: 400 with the reason)."""
    if not request.get_data(cache=True):
        return schema.parse({})
    return schema.parse(request.get_json(silent=True))


def _delivery_json(d) -> dict:
    return {"key_id": d.key_id, "user_cert_no": str(d.user_cert_no), "public_key_info": _b64(d.public_key_info),
            "enveloped_key": _b64(d.enveloped_key), "signed_and_enveloped": _b64(d.signed_and_enveloped)}


@bp.post("/request")
def gmt0014_request():
    """GM/T 0014: DER CARequest in (application/octet-stream), DER KMRespond out (always signed)."""
    if request.mimetype != CONTENT_TYPE:
        raise EscrowError(f"send the DER CARequest as {CONTENT_TYPE}")
    return Response(_kmc().service.handle(request.get_data(), source=request.remote_addr or "?"),
                    mimetype=CONTENT_TYPE)


@bp.get("/certificate")
def certificate():
    return Response(pem.armor("CERTIFICATE", _kmc().escrow.certificate), mimetype="application/x-pem-file")



@bp.post("/approval-requests")
@require_roles(ADMIN, OFFICER)
def open_request():
    body = _body(OPEN_REQUEST)
    kmc = _kmc()
    key_id = body.get("key_id")
    number = body.get("serial") if body.get("serial") is not None else body.get("user_cert_no")
    if key_id is None and number is not None:
        key_id = kmc.escrow.find(body.get("ca_id") or "", number)
    rid = kmc.book.request(purpose=body["purpose"], requested_by=g.principal.name,
                           reason=body.get("reason", ""), key_id=key_id, role=g.role,
                           recipient_certificate=body.get("recipient_certificate"))
    return jsonify(kmc.book.status(rid)), 201


@bp.get("/approval-requests/<int:rid>")
@require_roles(ADMIN, OFFICER, AUDITOR)
def request_status(rid: int):
    return jsonify(_kmc().book.status(rid))


@bp.post("/approval-requests/<int:rid>/approve")
@require_roles(OFFICER)
def approve(rid: int):
    kmc = _kmc()
    kmc.book.approve(rid, Officer(g.principal.name, g.principal.roles))
    return jsonify(kmc.book.status(rid))


@bp.post("/approval-requests/<int:rid>/recover")
@require_roles(ADMIN, OFFICER)
def recover(rid: int):
    kmc = _kmc()
    auth = kmc.book.authorise(rid, actor=g.principal.name)
    return jsonify(_delivery_json(kmc.escrow.recover(auth, actor=g.principal.name)))


@bp.post("/approval-requests/<int:rid>/destroy")
@require_roles(ADMIN, OFFICER)
def destroy(rid: int):
    kmc = _kmc()
    kmc.escrow.destroy(kmc.book.authorise(rid, actor=g.principal.name), actor=g.principal.name)
    return jsonify(kmc.book.status(rid))


@bp.post("/approval-requests/<int:rid>/export")
@require_roles(ADMIN, OFFICER)
def export(rid: int):
    kmc = _kmc()
    dr_key = _body(EXPORT)["dr_public_key_info"]
    blob = kmc.escrow.export_archive(kmc.book.authorise(rid, actor=g.principal.name), dr_key,
                                     actor=g.principal.name)
    return Response(blob, mimetype="application/json")


@bp.get("/dr-key")
@require_roles(ADMIN)
def dr_key():
    return jsonify(public_key_info=_b64(_kmc().escrow.dr_public_key_info()))


@bp.post("/import")
@require_roles(ADMIN)
def import_archive():
    body = _body(IMPORT)
    count = _kmc().escrow.import_archive(body["export"], body["exporter_certificate"], actor=g.principal.name)
    return jsonify(imported=count)


@bp.get("/kek")
@require_roles(ADMIN, AUDITOR)
def kek_status():
    return jsonify(keks=_kmc().escrow.kek_status())


@bp.post("/kek/rotate")
@require_roles(ADMIN)
def kek_rotate():
    return jsonify(active_version=_kmc().escrow.rotate_kek(actor=g.principal.name))


@bp.post("/kek/rewrap")
@require_roles(ADMIN)
def kek_rewrap():
    limit = REWRAP_QUERY.parse_text(request.args).get("limit")
    return jsonify(moved=_kmc().escrow.rewrap_batch(actor=g.principal.name, limit=limit))
