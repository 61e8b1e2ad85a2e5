"""Distinguished names for people to read: RFC 4514 short labels, most significant RDN first
(``C=CN, O=某市人民政府, CN=陈晓明``), decoded leniently — real certificates carry UTF-8 bytes inside
IA5String and PrintableString (an emailAddress with Chinese characters, REFERENCES §13), which
asn1crypto's strict decoding refuses with UnicodeDecodeError. For display only: nothing compares these
strings."""
from __future__ import annotations

from asn1crypto import x509

# RFC 4514 §3 labels, plus the usual ones for attributes it does not name
LABELS = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.12": "title",
    "2.5.4.42": "GN", "2.5.4.97": "organizationIdentifier", "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
}


def attribute_text(value) -> str:
    """The text of an attribute value; bytes that the declared string type cannot hold are read as UTF-8
    (then GB 18030) instead of failing."""
    try:
        native = value.native
    except (UnicodeDecodeError, ValueError):
        native = None
    if isinstance(native, str):
        return native
    raw = getattr(getattr(value, "chosen", value), "contents", b"") or b""
    for encoding in ("utf-8", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", errors="replace")


def display_name(name: x509.Name) -> str:
    """``C=CN, O=…, CN=…`` in certificate order (RFC 4514 reverses it; people read it this way round)."""
    parts = []
    try:
        rdns = list(name.chosen)
    except (ValueError, TypeError, AttributeError):
        return "?"
    for rdn in rdns:
        for atv in rdn:
            oid = atv["type"].dotted
            parts.append(f"{LABELS.get(oid, oid)}={attribute_text(atv['value'])}")
    return ", ".join(parts)


def common_name(name: x509.Name) -> str | None:
    for rdn in name.chosen:
        for atv in rdn:
            if atv["type"].dotted == "2.5.4.3":
                return attribute_text(atv["value"])
    return None
