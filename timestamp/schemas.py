"""The TSA API's input schemas (pkicore.inputs): what timestamp.views accepts and timestamp.openapi documents."""
from __future__ import annotations

from pkicore import inputs

# the input of /tsa/verify (pkicore.inputs; also its OpenAPI request body: timestamp.openapi)
MAX_VERIFY_FIELD = 16 * 1024 * 1024
VERIFY_BODY = inputs.Schema({
    "token": inputs.required(inputs.Base64(MAX_VERIFY_FIELD, description="TimeStampToken or TimeStampResp, DER")),
    "data": inputs.Base64(MAX_VERIFY_FIELD, description="the stamped data"),
    "digest": inputs.Str(256, pattern="[0-9a-fA-F]*", description="or its digest, hex"),
    "crl": inputs.Base64(MAX_VERIFY_FIELD, description="CRLs, DER or PEM bundle"),
    "ca": inputs.Base64(MAX_VERIFY_FIELD, description="trust anchors, DER or PEM bundle"),
}, example={"token": "MIIE...", "digest": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"})
VERIFY_FORM = inputs.Schema({"digest": VERIFY_BODY.fields["digest"]})
