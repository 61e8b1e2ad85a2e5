"""HTTP view of the HSM for operators and monitoring: health and token info (no key operations)."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from access.auth import require_roles

bp = Blueprint("hsm", __name__, url_prefix="/hsm")


@bp.get("/health")
def health():
    km = current_app.extensions["racentre.key_manager"]
    info = km.info()
    km.random(8)  # proves a logged-in session works end to end
    return jsonify(status="ok", token=info.token, manufacturer=info.manufacturer,
                   vendor_profile=info.vendor_profile)


@bp.get("/info")
@require_roles("ra_admin", "auditor")
def info():
    return jsonify(current_app.extensions["racentre.key_manager"].info().as_dict())
