"""REST API of the trust services under /api/v1/trust (GM/T 0029 signature-server functions, GM/T 0020
SOF_* names): application keys (ra_admin creates, an application uses only its own), sign, verify,
certificate information and validation, envelopes, certificate login, evidence records.

JSON in, JSON out; binary values as base64 (certificates also as PEM). Bad input gives 400 with the
reason. The blueprint is made by ``create_blueprint(require_roles)``: the composition root passes its
role check (access.auth), so this package imports nothing above it.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import threading
from typing import Callable

from flask import Blueprint, Response, current_app, g, jsonify, request

from trust.errors import TrustError, TrustForbidden
from trust.evidence import read_record
from trust.openapi import openapi_document
from trust.services import TrustService

EXTENSION_KEY = "racentre.trust"
APP = ("application",)
ADMIN = ("ra_admin",)
KEY_READERS = ("application", "ra_admin", "auditor")
VERIFIERS = ("application", "api_client", "ra_officer", "ra_admin", "auditor")
EVIDENCE_READERS = ("application", "ra_admin", "auditor")
FIELDS = {
    "key": {"application", "purpose", "key_algorithm", "profile", "common_name", "organization", "dns_names", "uscc"},
    "sign": {"data", "form", "key_id", "detached", "gm", "user_id", "user_id_hex", "signing_time", "timestamp",
             "evidence"},
    "verify": {"signature", "data", "certificate", "form", "user_id", "user_id_hex", "algorithm", "evidence"},
    "cert": {"certificate", "at"},
    "encrypt": {"data", "recipients"},
    "decrypt": {"envelope", "key_id"},
    "login": {"challenge_id", "signature", "certificate", "form", "evidence"},
}


_build_lock = threading.Lock()


def service_of(app) -> TrustService:
    """``app``'s TrustService, built on first use (the CA and the TSA need a provisioned site)."""
    service = app.extensions.get(EXTENSION_KEY)
    if not isinstance(service, TrustService):
        with _build_lock:
            service = app.extensions[EXTENSION_KEY]
            if not isinstance(service, TrustService):
                service = app.extensions[EXTENSION_KEY] = service()
    return service


def _service() -> TrustService:
    return service_of(current_app)


def _payload(kind: str) -> dict:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise TrustError("send a JSON object")
    unknown = set(payload) - FIELDS[kind]
    if unknown:
        raise TrustError(f"unknown fields: {', '.join(sorted(unknown))}")
    return payload


def _b64(payload: dict, name: str, *, required: bool = True) -> bytes | None:
    value = payload.get(name)
    if value is None:
        if required:
            raise TrustError(f"{name} is required (base64)")
        return None
    if not isinstance(value, str):
        raise TrustError(f"{name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise TrustError(f"{name} is not valid base64") from None


def _cert(payload: dict, name: str = "certificate", *, required: bool = True) -> bytes | None:
    value = payload.get(name)
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii", errors="replace")
    return _b64(payload, name, required=required)


def _bool(payload: dict, name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise TrustError(f"{name} must be true or false")
    return value


def _int(payload: dict, name: str) -> int | None:
    value = payload.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2 ** 63):
        raise TrustError(f"{name} must be a positive integer")
    return value


def _str(payload: dict, name: str, default: str | None = None, *, limit: int = 256) -> str | None:
    value = payload.get(name, default)
    if value is not None and (not isinstance(value, str) or len(value) > limit):
        raise TrustError(f"{name} must be a string of at most {limit} characters")
    return value


def _user_id(payload: dict) -> bytes | None:
    if payload.get("user_id") is not None and payload.get("user_id_hex") is not None:
        raise TrustError("give user_id or user_id_hex, not both")
    if payload.get("user_id_hex") is not None:
        try:
            return bytes.fromhex(_str(payload, "user_id_hex", limit=2048))
        except ValueError:
            raise TrustError("user_id_hex is not hexadecimal") from None
    value = _str(payload, "user_id", limit=1024)
    return value.encode("utf-8") if value is not None else None


def _application() -> str:
    return g.principal.name


def create_blueprint(require_roles: Callable) -> Blueprint:
    bp = Blueprint("trust", __name__, url_prefix="/api/v1/trust")

    @bp.post("/keys")
    @require_roles(*ADMIN)
    def create_key():
        p = _payload("key")
        dns = p.get("dns_names") or []
        if not isinstance(dns, list) or not all(isinstance(d, str) for d in dns) or len(dns) > 20:
            raise TrustError("dns_names must be a list of at most 20 strings")
        key = _service().keys.create(
            _str(p, "application", "", limit=64), purpose=_str(p, "purpose", "sign"),
            key_algorithm=_str(p, "key_algorithm", "sm2"), profile=_str(p, "profile"),
            common_name=_str(p, "common_name", "", limit=64), organization=_str(p, "organization", limit=128),
            dns_names=tuple(dns), uscc=_str(p, "uscc", limit=18), actor=g.principal.name, role=g.role)
        return jsonify(key.as_dict()), 201

    @bp.get("/keys")
    @require_roles(*KEY_READERS)
    def list_keys():
        mine = "application" in g.principal.roles and not g.principal.roles & {"ra_admin", "auditor"}
        keys = _service().keys.list(_application() if mine else request.args.get("application"))
        return jsonify(keys=[k.as_dict() for k in keys])

    def _own_key(key_id: int):
        key = _service().keys.get(key_id)
        if not g.principal.roles & {"ra_admin", "auditor"} and key.application != _application():
            raise TrustForbidden("this key belongs to another application")
        return key

    @bp.get("/keys/<int:key_id>")
    @require_roles(*KEY_READERS)
    def get_key(key_id: int):
        return jsonify(_own_key(key_id).as_dict())

    @bp.get("/keys/<int:key_id>/certificate")
    @require_roles(*KEY_READERS)
    def key_certificate(key_id: int):
        key = _own_key(key_id)
        pem = "".join(_pem(c) for c in (key.certificate, *key.chain))
        return Response(pem, mimetype="application/pem-certificate-chain")

    @bp.post("/keys/<int:key_id>/disable")
    @require_roles(*ADMIN)
    def disable_key(key_id: int):
        return jsonify(_service().keys.set_disabled(key_id, True, actor=g.principal.name, role=g.role).as_dict())

    @bp.post("/keys/<int:key_id>/enable")
    @require_roles(*ADMIN)
    def enable_key(key_id: int):
        return jsonify(_service().keys.set_disabled(key_id, False, actor=g.principal.name, role=g.role).as_dict())

    @bp.post("/sign")
    @require_roles(*APP)
    def sign():
        p = _payload("sign")
        return jsonify(_service().sign(
            _application(), _b64(p, "data"), role=g.role, form=_str(p, "form", "cms"), key_id=_int(p, "key_id"),
            detached=_bool(p, "detached"), gm=_bool(p, "gm"), user_id=_user_id(p),
            signing_time=_bool(p, "signing_time"), timestamp=_bool(p, "timestamp"), evidence=_bool(p, "evidence")))

    @bp.post("/verify")
    @require_roles(*VERIFIERS)
    def verify():
        p = _payload("verify")
        return jsonify(_service().verify(
            _application(), role=g.role, signature=_b64(p, "signature"), data=_b64(p, "data", required=False),
            certificate=_cert(p, required=False), form=_str(p, "form", "cms"), user_id=_user_id(p),
            algorithm=_str(p, "algorithm", limit=32), evidence=_bool(p, "evidence")))

    @bp.post("/certificates/validate")
    @require_roles(*VERIFIERS)
    def validate():
        p = _payload("cert")
        at = _str(p, "at", limit=40)
        when = None
        if at is not None:
            try:
                when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError:
                raise TrustError("at must be an ISO 8601 time") from None
            if when.tzinfo is None:
                raise TrustError("at must carry a time zone (e.g. Z)")
        return jsonify(_service().validate_certificate(_cert(p), at=when))

    @bp.post("/certificates/info")
    @require_roles(*VERIFIERS)
    def info():
        return jsonify(_service().certificate_info(_cert(_payload("cert"))))

    @bp.post("/envelopes/encrypt")
    @require_roles(*APP)
    def encrypt():
        p = _payload("encrypt")
        recipients = p.get("recipients")
        if not isinstance(recipients, list) or not 0 < len(recipients) <= 50:
            raise TrustError("recipients must be a list of 1..50 certificates")
        certs = [_cert({"certificate": r}) for r in recipients]
        der = _service().encrypt(_application(), _b64(p, "data"), certs, role=g.role)
        return jsonify(envelope=base64.b64encode(der).decode("ascii"), format="GM/T 0010 EnvelopedData")

    @bp.post("/envelopes/decrypt")
    @require_roles(*APP)
    def decrypt():
        p = _payload("decrypt")
        data = _service().decrypt(_application(), _b64(p, "envelope"), role=g.role, key_id=_int(p, "key_id"))
        return jsonify(data=base64.b64encode(data).decode("ascii"))

    @bp.post("/login/challenges")
    @require_roles(*APP)
    def challenge():
        return jsonify(_service().login_challenge(_application(), role=g.role)), 201

    @bp.post("/login")
    @require_roles(*APP)
    def login():
        p = _payload("login")
        challenge_id = _str(p, "challenge_id", limit=64)
        if not challenge_id:
            raise TrustError("challenge_id is required")
        return jsonify(_service().login_answer(
            _application(), challenge_id, role=g.role, signature=_b64(p, "signature"),
            certificate=_cert(p, required=False), form=_str(p, "form", "raw"), evidence=_bool(p, "evidence")))

    @bp.get("/evidence/<record_id>")
    @require_roles(*EVIDENCE_READERS)
    def evidence(record_id: str):
        only = None if g.principal.roles & {"ra_admin", "auditor"} else _application()
        der = _service().evidence_der(record_id, application=only)
        if request.args.get("format") == "json":
            return jsonify(read_record(der))
        return Response(der, mimetype="application/pkcs7-mime",
                        headers={"Content-Disposition": f"attachment; filename=evidence-{record_id}.der"})

    @bp.get("/openapi.json")
    def openapi():
        return jsonify(openapi_document())

    openapi.public_reason = "API description, no data"
    return bp


def _pem(der: bytes) -> str:
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = "\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN CERTIFICATE-----\n{lines}\n-----END CERTIFICATE-----\n"


def install(app, service_factory: Callable[[], TrustService], require_roles: Callable) -> None:
    """Wire the trust service (built on first use) and its blueprint into ``app``."""
    app.extensions[EXTENSION_KEY] = service_factory
    app.register_blueprint(create_blueprint(require_roles))
