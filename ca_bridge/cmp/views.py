"""HTTP transport of CMP (RFC 6712 §3): ``POST /.well-known/cmp`` and ``/.well-known/cmp/p/<profile>``
(RFC 9483 §6.1), request and answer ``application/pkixcmp``. Every CMP-level answer is HTTP 200 with a
PKIMessage (an ``error`` body when refused); a body that is no PKIMessage is 400 with an error
PKIMessage; a wrong media type 415 and an oversized body 413 (JSON, as every other 4xx of the site).
Wired by the composition root (``racentre.app``) over ``Services.cmp``."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from ca_bridge.cmp.server import MAX_MESSAGE, CmpServer
from ca_bridge.errors import CaError
from pkicore.errors import ErrorCode

bp = Blueprint("cmp", __name__)

EXTENSION_KEY = "racentre.cmp"
CMP_TYPE = "application/pkixcmp"


def _server() -> CmpServer:
    server = current_app.extensions.get(EXTENSION_KEY)
    if server is None:
        raise CaError("the CMP server is not configured in this service", code=ErrorCode.CONFIGURATION)
    return server


@bp.post("/.well-known/cmp")
@bp.post("/.well-known/cmp/p/<profile>")
def cmp(profile: str | None = None):
    if request.mimetype != CMP_TYPE:
        abort(415, description=f"send the PKIMessage as {CMP_TYPE} (RFC 6712 §3.4)")
    if request.content_length is not None and request.content_length > MAX_MESSAGE:
        abort(413, description=f"CMP messages are limited to {MAX_MESSAGE} bytes")
    body = request.stream.read(MAX_MESSAGE + 1)
    if len(body) > MAX_MESSAGE:
        abort(413, description=f"CMP messages are limited to {MAX_MESSAGE} bytes")
    if profile is not None and (len(profile) > 64 or not profile.replace("-", "").isalnum()):
        abort(404, description="unknown CMP profile label")
    status, answer = _server().handle(body, profile)
    response = Response(answer, status=status, mimetype=CMP_TYPE)
    response.headers["Cache-Control"] = "no-cache"          # RFC 6712 §3.6
    return response

