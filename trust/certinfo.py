"""SOF_GetCertInfo / SOF_GetCertInfoByOid (GM/T 0020): a certificate's subject fields, serial, validity,
issuer, key and usages, and the GM/T 0015 identity extensions (身份证号 1.2.156.10260.4.1.1.1, 统一社会信用代码
1.2.156.10260.4.1.4.4, ...) that our profiles carry, as JSON. Read leniently (pkicore.names): a name with
UTF-8 in a PrintableString is shown, not refused."""
from __future__ import annotations

import functools
import hashlib
import pickle

from asn1crypto import core, pem, x509

from pkicore.names import LABELS, attribute_text, display_name
from pkicore.oids import OID
from trust.errors import TrustError

IDENTITY_NAMES = {
    OID.ID_CARD_NUMBER: "id_card_number",                 # 居民身份证号码
    OID.PASSPORT_NUMBER: "passport_number",
    OID.SOCIAL_INSURANCE_NUMBER: "social_insurance_number",
    OID.UNIFIED_SOCIAL_CREDIT_CODE: "unified_social_credit_code",   # 统一社会信用代码
    # older GM/T 0015-2012 numbering (REFERENCES §1, accepted on parse)
    "1.2.156.10260.4.1.1": "identity_code",
    "1.2.156.10260.4.1.3": "ic_registration_number",
    "1.2.156.10260.4.1.4": "organization_code",
    "1.2.156.10260.4.1.5": "taxation_number",
}


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from DER or PEM (TrustError, a 400, otherwise)."""
    try:
        if pem.detect(data):
            _, _, data = pem.unarmor(data)
        cert = x509.Certificate.load(data, strict=True)
        cert["tbs_certificate"]["subject_public_key_info"].native  # noqa: B018 - parse now, not later
        return cert
    except (ValueError, TypeError, KeyError) as exc:
        raise TrustError("not an X.509 certificate (PEM or DER)") from exc


def identity_extensions(cert: x509.Certificate) -> dict[str, str]:
    """GM/T 0015 identity extensions: name (or OID) -> the string value."""
    out: dict[str, str] = {}
    for ext in cert["tbs_certificate"]["extensions"]:
        oid = ext["extn_id"].dotted
        if oid in IDENTITY_NAMES or oid.startswith("1.2.156.10260.4.1."):
            raw = ext["extn_value"].native
            try:
                value = attribute_text(core.load(raw)) if raw else ""
            except ValueError:
                value = raw.decode("utf-8", errors="replace")
            out[IDENTITY_NAMES.get(oid, oid)] = value
    return out


def subject_fields(name: x509.Name) -> dict[str, list[str]]:
    """Short label (CN, O, OU, C, ...) -> values, in certificate order."""
    out: dict[str, list[str]] = {}
    for rdn in name.chosen:
        for atv in rdn:
            oid = atv["type"].dotted
            out.setdefault(LABELS.get(oid, oid), []).append(attribute_text(atv["value"]))
    return out


def key_description(cert: x509.Certificate) -> str:
    spki = cert.public_key
    if spki.algorithm == "ec":
        params = spki["algorithm"]["parameters"]
        curve = params.chosen.dotted if params.name == "named" else "?"
        if curve == OID.SM2_CURVE:
            return "sm2"
        return {"1.2.840.10045.3.1.7": "ec-p256", "1.3.132.0.34": "ec-p384"}.get(curve, f"ec {curve}")
    if spki.algorithm == "rsa":
        return f"rsa-{spki.bit_size}"
    return spki.algorithm


def cert_info(data: bytes | x509.Certificate) -> dict:
    """The SOF_GetCertInfo answer for a certificate (DER, PEM or parsed)."""
    cert = data if isinstance(data, x509.Certificate) else load_certificate(data)
    der = cert.dump()
    tbs = cert["tbs_certificate"]
    try:
        usage = sorted(cert.key_usage_value.native) if cert.key_usage_value is not None else None
        eku = list(cert.extended_key_usage_value.native) if cert.extended_key_usage_value is not None else None
        san = [n for n in (cert.valid_domains or [])] + [n for n in (cert.valid_ips or [])]
    except ValueError:
        usage, eku, san = None, None, []
    return {
        "version": tbs["version"].native,
        "serial": format(cert.serial_number, "X"),
        "subject": display_name(cert.subject),
        "subject_fields": subject_fields(cert.subject),
        "issuer": display_name(cert.issuer),
        "issuer_fields": subject_fields(cert.issuer),
        "not_before": tbs["validity"]["not_before"].native.isoformat(),
        "not_after": tbs["validity"]["not_after"].native.isoformat(),
        "signature_algorithm": cert["signature_algorithm"]["algorithm"].dotted,
        "key_algorithm": key_description(cert),
        "key_usage": usage,
        "extended_key_usage": eku,
        "subject_alt_names": san,
        "identity": identity_extensions(cert),
        "sha256": hashlib.sha256(der).hexdigest(),
    }


@functools.lru_cache(maxsize=1024)
def _cert_info_der(der: bytes) -> dict:
    return cert_info(der)


@functools.lru_cache(maxsize=1024)
def _cert_info_pickled(der: bytes) -> bytes:
    return pickle.dumps(_cert_info_der(der), protocol=pickle.HIGHEST_PROTOCOL)


def cached_cert_info(der: bytes) -> dict:
    """``cert_info`` of DER, remembered (a certificate's information never changes); a copy each time
    (unpickled: a tenth of ``copy.deepcopy``'s cost, measured on the verification hot path)."""
    return pickle.loads(_cert_info_pickled(der))


def info_by_oid(data: bytes, oid: str) -> str | None:
    """SOF_GetCertInfoByOid: the value of the extension ``oid`` as text (identity extensions decoded)."""
    cert = load_certificate(data)
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].dotted == oid:
            raw = ext["extn_value"].native
            try:
                return attribute_text(core.load(raw))
            except ValueError:
                return raw.hex() if isinstance(raw, bytes) else str(ext["extn_value"].parsed.native)
    return None


def mask_id(value: str, head: int, tail: int) -> str:
    """身份证号 masked for display: ``head`` leading and ``tail`` trailing characters kept."""
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + (value[-tail:] if tail else "")
