"""How the console shows names and times to officers: distinguished names in the order they are
read on a certificate with the short attribute names officers know (``C=CN, O=杭州市数据资源局, CN=陈晓明``,
RFC 4514 §3 names, most significant first as X.501 orders them), and times in the site's zone (``[console]
timezone``, default Asia/Shanghai: Beijing time), never raw ISO strings in UTC."""
from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from asn1crypto import x509

# asn1crypto's attribute names -> the short names of RFC 4514 §3 / RFC 5280 (and GB/T 20518's usage)
SHORT = {"country_name": "C", "organization_name": "O", "organizational_unit_name": "OU", "common_name": "CN",
         "locality_name": "L", "state_or_province_name": "ST", "serial_number": "serialNumber",
         "email_address": "E", "domain_component": "DC", "street_address": "STREET", "title": "T",
         "given_name": "GN", "surname": "SN", "organization_identifier": "organizationIdentifier"}
_RFC4514_SPLIT = re.compile(r"(?<!\\),")


def dn(value) -> str:
    """``C=CN, O=…, CN=…`` from an asn1crypto Name, a sequence of (attribute, value) pairs in certificate
    order, or the CA's stored RFC 4514 text (least significant first, so it is reversed here)."""
    if value is None or value == "":
        return ""
    if isinstance(value, x509.Name):
        pairs = [(attr["type"].native, attr["value"].native) for rdn in value.chosen for attr in rdn]
    elif isinstance(value, str):
        parts = [p.strip() for p in _RFC4514_SPLIT.split(value) if p.strip()]
        if not all("=" in p for p in parts):
            return value
        pairs = [tuple(p.split("=", 1)) for p in reversed(parts)]
        pairs = [(k.strip(), v.replace("\\,", ",")) for k, v in pairs]
    else:
        pairs = [(str(k), str(v)) for k, v in value]
    return ", ".join(f"{SHORT.get(k, k)}={v}" for k, v in pairs)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name or "Asia/Shanghai")


def local_time(value, tz: ZoneInfo, *, date_only: bool = False) -> str:
    """A timestamp (aware datetime, or ISO 8601 text as the services return it) in ``tz``, to the second."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        value = value.astimezone(tz)
        return value.strftime("%Y-%m-%d" if date_only else "%Y-%m-%d %H:%M:%S")
    return str(value)
