"""The seal API's input schemas (pkicore.inputs): what seal.views accepts and seal.openapi documents."""
from __future__ import annotations

from pkicore import inputs

# the per-route input schemas (pkicore.inputs; also the OpenAPI document: seal.openapi)
MAKE_FORM = inputs.Schema({
    "unit": inputs.required(inputs.Str(128, 1, strip=True)), "name": inputs.required(inputs.Str(128, 1, strip=True)),
    "type": inputs.required(inputs.Str(32, 1, strip=True)), "key_label": inputs.required(inputs.Str(128, 1)),
    "width_mm": inputs.Int(1, 1000, default=40), "height_mm": inputs.Int(1, 1000, default=40),
    "valid_days": inputs.Int(1, 36500, default=365),
    "users": inputs.Str(4096, description="comma-separated principals allowed to use the seal"),
    "algorithm": inputs.Str(32, description="default: the certificate key's (sm2-sm3, ecdsa-sha256, ...)"),
}, example={"unit": "杭州市数据资源局", "name": "杭州市数据资源局电子公章", "type": "official", "key_label": "seal-hz-1"})
LIST_QUERY = inputs.Schema({"unit": inputs.Str(128), "status": inputs.Enum(("active", "suspended", "revoked",
                                                                             "expired"))})
STATUS_BODY = inputs.Schema({"reason": inputs.Str(256)}, example={"reason": "印章保管人变更"})
AUTHORISE_BODY = inputs.Schema({"principal": inputs.required(inputs.Str(128, 1, strip=True))},
                               example={"principal": "app-oa"})
SIGN_QUERY = inputs.Schema({"page": inputs.Int(-1_000_000, 1_000_000, description="1-based; -1 = last"),
                            "x_mm": inputs.Number(-10_000, 10_000, default=120.0),
                            "y_mm": inputs.Number(-10_000, 10_000, default=40.0),
                            "anchor": inputs.Str(256, description="centre the seal over this text")})
VERIFY_QUERY = inputs.Schema({"format": inputs.Enum(("json", "text"), default="json")})
