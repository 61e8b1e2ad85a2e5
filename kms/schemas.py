"""The KMC API's input schemas (pkicore.inputs): what kms.views accepts and kms.openapi documents."""
from __future__ import annotations

from kms.recovery import PURPOSES
from pkicore import inputs

# the per-route input schemas (also the OpenAPI request bodies: kms.openapi)
OPEN_REQUEST = inputs.Schema({
    "purpose": inputs.Enum(PURPOSES, default="recover"),
    "reason": inputs.Str(max_length=1024, description="court order, case number, ..."),
    "key_id": inputs.Id(description="the archived key (or give ca_id and user_cert_no)").or_null(),
    "ca_id": inputs.Str(max_length=256).or_null(),
    "user_cert_no": inputs.Serial(description="the encryption certificate's serial (integer, decimal, or 0x hex)").or_null(),
    "serial": inputs.HexSerial(description="the encryption certificate's serial as printed on it (hex, 1A:2B…); "
                                           "instead of user_cert_no").or_null(),
    "recipient_certificate": inputs.Certificate(description="recover: the certificate the key is enveloped "
                                                            "to (PEM or base64 DER)").or_null(),
}, example={"purpose": "recover", "key_id": 7, "reason": "（2026）浙01刑初12号 判决书",
            "recipient_certificate": "MIIB..."})
EXPORT = inputs.Schema({"dr_public_key_info": inputs.required(inputs.PublicKeyInfo(
    description="the disaster-recovery KMC's SM2 SubjectPublicKeyInfo"))})
IMPORT = inputs.Schema({"export": inputs.required(inputs.Base64(max_bytes=64 * 1024 * 1024,
                                                                description="the export, as /export returned it")),
                        "exporter_certificate": inputs.required(inputs.Certificate())})
REWRAP_QUERY = inputs.Schema({"limit": inputs.Int(minimum=1, maximum=100_000)})

