"""Identity validators: 公民身份号码 (GB 11643-1999), 统一社会信用代码 (GB 32100-2015) with its embedded
组织机构代码 (GB 11714-1997), host names (RFC 1123 LDH, RFC 5890/5891 IDNA 2008) and IP addresses.

Each validator returns the normalised value or raises ``ValidationError`` with a message that says
which rule failed. The check characters come from python-stdnum (``stdnum.cn.ric``, ``stdnum.cn.uscc``)
and IDNA 2008 from the ``idna`` package; the organisation-code check inside a USCC (GB 11714), which
stdnum does not have, is written here.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
import unicodedata

import idna
from stdnum.cn import ric as stdnum_ric
from stdnum.cn import uscc as stdnum_uscc

from ra.errors import ValidationError

# --- GB 11643-1999 citizen identity number -----------------------------------------------------------

# GB/T 2260 province-level codes (first two digits); 71 Taiwan, 81/82 Hong Kong/Macao, 83 the
# residence permits for Taiwan residents (GB 11643 numbering).
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
    "71", "81", "82", "83",
})


def id_check_character(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character over the first 17 digits (GB 11643-1999 §8.2), by python-stdnum."""
    return stdnum_ric.calc_check_digit(first17 + "0")      # stdnum takes the number with a check place


def validate_id_number(value: str, *, today: dt.date | None = None) -> str:
    """A GB 11643-1999 18-character citizen identity number; returns it with an upper-case X."""
    if not isinstance(value, str):
        raise ValidationError("identity number must be a string")
    number = value.strip().upper()
    if len(number) != 18:
        raise ValidationError(f"identity number must have 18 characters, got {len(number)}")
    if not number[:17].isascii() or not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise ValidationError("identity number must be 17 digits followed by a digit or X")
    if number[:2] not in PROVINCES:
        raise ValidationError(f"identity number region code {number[:6]} names no province ({number[:2]})")
    try:
        birth = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValidationError(f"identity number birth date {number[6:14]} is not a calendar date") from None
    if birth.year < 1800 or birth > (today or dt.date.today()):
        raise ValidationError(f"identity number birth date {number[6:14]} is out of range")
    expected = id_check_character(number[:17])
    if number[17] != expected:
        raise ValidationError("identity number check character is wrong (ISO 7064 MOD 11-2)")
    return number


# --- GB 32100-2015 unified social credit code ---------------------------------------------------------

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"                # 31 characters: no I O Z S V
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
# GB 32100 table 1: registration management department codes (机构编制 1, 外交 2, 司法行政 3, 文化 4,
# 民政 5, 旅游 6, 宗教 7, 工会 8, 工商 9, 中央军委改革和编制办公室 A, 农业 N, 其他 Y)
USCC_DEPARTMENTS = frozenset("123456789ANY")
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def uscc_check_character(first17: str) -> str:
    """GB 32100-2015 §5: weighted MOD 31 check character over the first 17 characters, by python-stdnum."""
    return stdnum_uscc.calc_check_digit(first17)


def org_code_check_character(first8: str) -> str:
    """GB 11714-1997 check character of a 组织机构代码 body (digits and upper-case letters A=10...)."""
    total = sum(int(c, 36) * w for c, w in zip(first8, _ORG_WEIGHTS))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def validate_uscc(value: str, *, check_org_code: bool = True) -> str:
    """A GB 32100-2015 unified social credit code; returns it upper-case.

    ``check_org_code``: also check positions 9-17 as a GB 11714 organisation code (true for codes
    assigned to organisations that had one; individual businesses may fail it, so callers can opt out).
    """
    if not isinstance(value, str):
        raise ValidationError("unified social credit code must be a string")
    code = value.strip().upper()
    if len(code) != 18:
        raise ValidationError(f"unified social credit code must have 18 characters, got {len(code)}")
    bad = sorted({c for c in code if c not in _USCC_VALUE})
    if bad:
        raise ValidationError("unified social credit code contains characters outside the GB 32100 set "
                              f"(no I, O, Z, S, V): {''.join(bad)}")
    if code[0] not in USCC_DEPARTMENTS:
        raise ValidationError(f"unified social credit code registration department {code[0]!r} is unknown")
    if not "1" <= code[1] <= "9":
        raise ValidationError(f"unified social credit code organisation category {code[1]!r} is not 1-9")
    if not code[2:8].isdigit() or code[2:4] not in PROVINCES | {"10"}:
        raise ValidationError(f"unified social credit code region code {code[2:8]} is malformed")
    if code[17] != uscc_check_character(code[:17]):
        raise ValidationError("unified social credit code check character is wrong (GB 32100 MOD 31)")
    if check_org_code and code[16] != org_code_check_character(code[8:16]):
        raise ValidationError("organisation code inside the unified social credit code has a wrong "
                              "check character (GB 11714)")
    return code


# --- names, host names and IP addresses ---------------------------------------------------------------

def validate_name(value: str, what: str = "name", max_length: int = 64) -> str:
    """A person or organisation name: NFC-normalised, 1..max_length characters, no control characters."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string")
    name = unicodedata.normalize("NFC", value.strip())
    if not name:
        raise ValidationError(f"{what} must not be empty")
    if len(name) > max_length:
        raise ValidationError(f"{what} is longer than {max_length} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ValidationError(f"{what} contains control or unassigned characters")
    return name


_LDH = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_hostname(value: str) -> str:
    """A DNS host name for a server certificate, returned in lower-case A-label form.

    RFC 1123 LDH labels of 1-63 octets, at most 253 octets in all, at least two labels, no wildcard,
    a top-level label that is not all digits (that would be an IP address). Non-ASCII labels are
    converted to A-labels by IDNA 2008 (RFC 5891 with UTS #46 mapping, the ``idna`` package), which
    refuses what IDNA 2003 let through (e.g. symbols and disallowed code points).
    """
    if not isinstance(value, str):
        raise ValidationError("host name must be a string")
    name = value.strip().rstrip(".")
    if not name:
        raise ValidationError("host name must not be empty")
    if "*" in name:
        raise ValidationError(f"host name {value!r}: wildcards are not issued")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise ValidationError(f"host name {value!r} is not a valid internationalised name (IDNA 2008: "
                                  f"{exc})") from exc
    name = name.lower()
    if len(name) > 253:
        raise ValidationError(f"host name {value!r} is longer than 253 characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise ValidationError(f"host name {value!r} must be fully qualified (at least two labels)")
    for label in labels:
        if not _LDH.match(label):
            raise ValidationError(f"host name {value!r}: label {label!r} breaks the letter-digit-hyphen "
                                  "rule (1-63 characters, no leading or trailing hyphen)")
        if label[2:4] == "--" and not label.startswith("xn--"):
            raise ValidationError(f"host name {value!r}: label {label!r} has hyphens in positions 3-4")
    if labels[-1].isdigit():
        raise ValidationError(f"host name {value!r} has an all-numeric top-level label")
    return name


def validate_ip(value: str) -> str:
    """An IPv4 or IPv6 unicast address for a server certificate (compressed canonical form)."""
    if not isinstance(value, str):
        raise ValidationError("IP address must be a string")
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValidationError(f"{value!r} is not an IPv4 or IPv6 address") from None
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise ValidationError(f"IP address {address} is unspecified, multicast or loopback")
    return str(address)
