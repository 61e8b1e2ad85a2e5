"""The HSM's share of the OpenAPI 3.1 document (hsm.views): health and token information."""
from __future__ import annotations

from pkicore.openapi import fragment, json_content, op

TAG = "HSM"

HEALTH = {"type": "object", "properties": {"status": {"const": "ok"}, "token": {"type": "string"},
                                           "manufacturer": {"type": "string"}, "vendor_profile": {"type": "string"}}}


def openapi_fragment() -> dict:
    return fragment({
        "/hsm/health": {"get": op(
            "liveness: a logged-in PKCS#11 session works end to end (draws 8 random bytes)", TAG, roles=None,
            ok={"description": "the token answers", "content": json_content(HEALTH, {
                "status": "ok", "token": "racentre", "manufacturer": "RA Centre", "vendor_profile": "softtoken"})},
            errors=(503,))},
        "/hsm/info": {"get": op(
            "token and slot information, mechanisms (no key material)", TAG, roles=("ra_admin", "auditor"),
            ok={"description": "token information", "content": json_content({"type": "object"})}, errors=(503,))},
    }, tags=[(TAG, "the hardware security module the centre's keys live in (PKCS#11)")])
