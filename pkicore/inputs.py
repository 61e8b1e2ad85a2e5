"""Request input checks shared by every HTTP endpoint: pure helpers and declarative schemas that turn
untrusted values into typed ones or raise ``InputError`` (one mapping: HTTP 400 with the reason).

Every endpoint (REST under /api/v1, the console's forms, KMC, TSA, OCSP, seal, CA, HSM admin) reads its
path, query, form and JSON input through these, so a hostile value is refused before it reaches a
database driver (ids beyond the signed 64-bit columns, SQLite INTEGER / PostgreSQL BIGINT), a decoder
(base64, PEM, DER: X.690 parsed in full here, not lazily later) or a recursive structure. A ``Schema``
also gives the JSON Schema (OpenAPI 3.1 / JSON Schema 2020-12) it enforces, so the API document and
the check are one table. Nothing here knows HTTP; nothing imports above pkicore.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from asn1crypto import crl as asn1_crl
from asn1crypto import keys, pem, x509

from pkicore.errors import ErrorCode, PkiError

MAX_ID = 2 ** 63 - 1                 # every id column: SQLite INTEGER, PostgreSQL BIGINT
MAX_SERIAL_OCTETS = 20               # RFC 5280 §4.1.2.2: serial numbers are at most 20 octets
MAX_STRING = 4096
MAX_DER = 1024 * 1024


class InputError(PkiError):
    """A request value is missing, of the wrong type, out of range or undecodable (HTTP 400)."""

    code = ErrorCode.BAD_REQUEST


# ---------------------------------------------------------------------------------------- scalar helpers

def integer(value: Any, name: str, *, minimum: int | None = 0, maximum: int = MAX_ID) -> int:
    """A JSON integer (not a bool, not a float) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be an integer")
    if (minimum is not None and value < minimum) or value > maximum:
        low = "" if minimum is None else f"{minimum}.."
        raise InputError(f"{name} must be in the range {low}{maximum}")
    return value


def decimal(text: Any, name: str, *, minimum: int | None = 0, maximum: int = MAX_ID) -> int:
    """An integer written in ASCII decimal (a query parameter, a form field, a path segment)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return integer(text, name, minimum=minimum, maximum=maximum)
    if not isinstance(text, str):
        raise InputError(f"{name} must be a decimal integer")
    body = text.strip()
    digits = body[1:] if body[:1] in "+-" else body
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > 40:
        raise InputError(f"{name} must be a decimal integer")
    return integer(int(body), name, minimum=minimum, maximum=maximum)


def number(value: Any, name: str, *, minimum: float, maximum: float) -> float:
    """A finite number (JSON number or decimal text) within [minimum, maximum]."""
    if isinstance(value, bool):
        raise InputError(f"{name} must be a number")
    if isinstance(value, str):
        if len(value) > 40:
            raise InputError(f"{name} must be a number")
        try:
            value = float(value)
        except ValueError:
            raise InputError(f"{name} must be a number") from None
    if not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a number")
    try:
        value = float(value)
    except OverflowError:
        raise InputError(f"{name} must be in the range {minimum}..{maximum}") from None
    if not (minimum <= value <= maximum):          # also refuses NaN
        raise InputError(f"{name} must be in the range {minimum}..{maximum}")
    return value


def identifier(value: Any, name: str) -> int:
    """A record id: a non-negative integer that fits the id columns (JSON integer or decimal text)."""
    return decimal(value, name) if isinstance(value, str) else integer(value, name)


_HEX = re.compile(r"[0-9a-fA-F]+")


def hex_serial(text: Any, name: str = "serial", *, max_octets: int = MAX_SERIAL_OCTETS) -> int:
    """A certificate serial number as printed on certificates: hexadecimal, optionally ``0x``-prefixed
    and with ``:`` or space separators (RFC 5280 §4.1.2.2: positive, at most 20 octets)."""
    if not isinstance(text, str):
        raise InputError(f"{name} must be a hexadecimal string")
    body = text.strip().replace(":", "").replace(" ", "")
    if body[:2].lower() == "0x":
        body = body[2:]
    if not body or len(body) > 2 * max_octets + 2 or not _HEX.fullmatch(body):
        raise InputError(f"{name} must be a hexadecimal serial number of at most {max_octets} octets")
    number = int(body, 16)
    if number.bit_length() > 8 * max_octets:
        raise InputError(f"{name} must be a hexadecimal serial number of at most {max_octets} octets")
    return number


def serial(value: Any, name: str = "serial", *, max_octets: int = MAX_SERIAL_OCTETS) -> int:
    """A serial given as a JSON integer, as decimal text, or as hex text with a ``0x`` prefix."""
    if isinstance(value, str) and value.strip()[:2].lower() == "0x":
        return hex_serial(value, name, max_octets=max_octets)
    number = decimal(value, name, minimum=0, maximum=2 ** (8 * max_octets) - 1)
    return number


def string(value: Any, name: str, *, max_length: int = MAX_STRING, min_length: int = 0,
           pattern: str | None = None, strip: bool = False) -> str:
    """A string of bounded length (characters), printable unless it is meant to hold newlines."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be a string")
    if strip:
        value = value.strip()
    if len(value) > max_length:
        raise InputError(f"{name} must be at most {max_length} characters")
    if len(value) < min_length:
        raise InputError(f"{name} is required" if min_length == 1 else f"{name} must be at least {min_length} characters")
    if "\x00" in value:
        raise InputError(f"{name} must not contain NUL characters")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise InputError(f"{name} has an invalid format")
    return value


def boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "on", "yes", "false", "0", "off", "no", ""):
        return value.lower() in ("true", "1", "on", "yes")
    raise InputError(f"{name} must be true or false")


def choice(value: Any, name: str, choices: Iterable[str]) -> str:
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{name} must be one of: {', '.join(options)}")
    return value


def b64(value: Any, name: str, *, max_bytes: int = MAX_DER) -> bytes:
    """Standard base64 (RFC 4648 §4), padding required, whitespace tolerated."""
    if not isinstance(value, str):
        raise InputError(f"{name} must be a base64 string")
    text = "".join(value.split())
    if len(text) > (max_bytes + 2) // 3 * 4:
        raise InputError(f"{name} must decode to at most {max_bytes} bytes")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{name} is not valid base64") from None


def pem_or_der(value: Any, name: str, *, max_bytes: int = MAX_DER) -> bytes:
    """DER bytes from raw DER (bytes), a PEM text or a base64 DER string (the first PEM block)."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if len(data) > max_bytes * 2:
            raise InputError(f"{name} is too large")
        if pem.detect(data):
            try:
                return pem.unarmor(data)[2]
            except (ValueError, TypeError):
                raise InputError(f"{name} is not valid PEM") from None
        return data
    if not isinstance(value, str):
        raise InputError(f"{name} must be PEM or base64 DER text")
    if "-----BEGIN" in value:
        return pem_or_der(value.encode("utf-8", "replace"), name, max_bytes=max_bytes)
    return b64(value, name, max_bytes=max_bytes)


def _parsed(loader: Callable[[bytes], Any], der: bytes, name: str, what: str):
    """Load DER and parse it in full (asn1crypto is lazy: a malformed inner field would otherwise raise
    later, anywhere)."""
    try:
        value = loader(der)
        value.native  # noqa: B018 - forces the full parse
        return value
    except Exception:  # noqa: BLE001 - asn1crypto raises ValueError, TypeError, KeyError, OverflowError...
        raise InputError(f"{name} is not a DER {what}") from None


def certificate(value: Any, name: str = "certificate") -> bytes:
    """An X.509 certificate (RFC 5280 §4.1) as raw DER, PEM or base64 DER; returns its DER, fully parsed."""
    der = pem_or_der(value, name)
    _parsed(lambda d: x509.Certificate.load(d, strict=True), der, name, "X.509 certificate")
    return der


def certificates(blob: bytes, name: str = "certificates") -> list[bytes]:
    """Certificates from a DER certificate or a PEM bundle, each fully parsed."""
    if not isinstance(blob, (bytes, bytearray)):
        raise InputError(f"{name} must be PEM or DER")
    if pem.detect(blob):
        try:
            ders = [der for kind, _, der in pem.unarmor(bytes(blob), multiple=True) if kind == "CERTIFICATE"]
        except (ValueError, TypeError):
            raise InputError(f"{name} is not valid PEM") from None
    else:
        ders = [bytes(blob)]
    if not ders:
        raise InputError(f"{name} holds no certificate")
    for der in ders:
        _parsed(lambda d: x509.Certificate.load(d, strict=True), der, name, "X.509 certificate")
    return ders


def crls(blob: bytes, name: str = "crl") -> list[bytes]:
    """CRLs (RFC 5280 §5.1) from DER or a PEM bundle, each fully parsed."""
    if not isinstance(blob, (bytes, bytearray)):
        raise InputError(f"{name} must be PEM or DER")
    if pem.detect(blob):
        try:
            ders = [der for kind, _, der in pem.unarmor(bytes(blob), multiple=True) if kind == "X509 CRL"]
        except (ValueError, TypeError):
            raise InputError(f"{name} is not valid PEM") from None
    else:
        ders = [bytes(blob)]
    if not ders:
        raise InputError(f"{name} holds no CRL")
    for der in ders:
        _parsed(lambda d: asn1_crl.CertificateList.load(d, strict=True), der, name, "CRL")
    return ders


def public_key_info(value: Any, name: str = "public_key_info") -> bytes:
    """A SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) as DER, PEM or base64 DER; fully parsed."""
    der = pem_or_der(value, name)
    _parsed(lambda d: keys.PublicKeyInfo.load(d, strict=True), der, name, "SubjectPublicKeyInfo")
    return der


def json_object(data: Any, name: str = "the body") -> dict:
    """A parsed JSON body that must be an object (not an array, string, number or null)."""
    if not isinstance(data, dict):
        raise InputError(f"{name} must be a JSON object")
    return data


# -------------------------------------------------------------------------------- declarative schemas

@dataclass(frozen=True)
class Field:
    """One input field: how to check a JSON value (``check``) and a text value from a query string or a
    form (``text``, default: as ``check``), its JSON Schema, whether it is required, its default."""

    check: Callable[[Any, str], Any]
    schema: dict
    required: bool = False
    default: Any = None
    nullable: bool = False
    text: Callable[[str, str], Any] | None = None
    description: str = ""

    def optional(self, default: Any = None) -> "Field":
        return Field(self.check, self.schema, False, default, self.nullable, self.text, self.description)

    def or_null(self) -> "Field":
        return Field(self.check, self.schema, self.required, self.default, True, self.text, self.description)

    def described(self, text: str) -> "Field":
        return Field(self.check, self.schema, self.required, self.default, self.nullable, self.text, text)

    def json_schema(self) -> dict:
        out = dict(self.schema)
        if self.nullable:
            kind = out.get("type")
            if isinstance(kind, str):
                out["type"] = [kind, "null"]
            elif "enum" in out:
                out["enum"] = [*out["enum"], None]
        if self.default is not None:
            out["default"] = self.default
        if self.description:
            out["description"] = self.description
        return out


def Int(minimum: int = 0, maximum: int = MAX_ID, **kw) -> Field:  # noqa: N802 - a field constructor
    return Field(lambda v, n: integer(v, n, minimum=minimum, maximum=maximum),
                 {"type": "integer", "minimum": minimum, "maximum": maximum},
                 text=lambda v, n: decimal(v, n, minimum=minimum, maximum=maximum), **kw)


def Number(minimum: float, maximum: float, **kw) -> Field:  # noqa: N802
    return Field(lambda v, n: number(v, n, minimum=minimum, maximum=maximum),
                 {"type": "number", "minimum": minimum, "maximum": maximum}, **kw)


def Id(**kw) -> Field:  # noqa: N802
    return Field(lambda v, n: integer(v, n), {"type": "integer", "minimum": 0, "maximum": MAX_ID},
                 text=lambda v, n: decimal(v, n), **kw)


def Str(max_length: int = 256, min_length: int = 0, pattern: str | None = None, strip: bool = False,
        **kw) -> Field:  # noqa: N802
    schema = {"type": "string", "maxLength": max_length}
    if min_length:
        schema["minLength"] = min_length
    if pattern:
        schema["pattern"] = f"^(?:{pattern})$"
    return Field(lambda v, n: string(v, n, max_length=max_length, min_length=min_length, pattern=pattern,
                                     strip=strip), schema, **kw)


def Bool(**kw) -> Field:  # noqa: N802
    def strict(value, name):
        if not isinstance(value, bool):
            raise InputError(f"{name} must be true or false")
        return value
    return Field(strict, {"type": "boolean"}, text=boolean, **kw)


def Enum(choices: Iterable[str], **kw) -> Field:  # noqa: N802
    options = tuple(choices)
    return Field(lambda v, n: choice(v, n, options), {"enum": list(options)}, **kw)


def Base64(max_bytes: int = MAX_DER, **kw) -> Field:  # noqa: N802
    return Field(lambda v, n: b64(v, n, max_bytes=max_bytes),
                 {"type": "string", "contentEncoding": "base64", "maxLength": (max_bytes + 2) // 3 * 4 + 1024}, **kw)


def Certificate(**kw) -> Field:  # noqa: N802
    return Field(certificate, {"type": "string", "description": "X.509 certificate, PEM or base64 DER"}, **kw)


def PublicKeyInfo(**kw) -> Field:  # noqa: N802
    return Field(public_key_info, {"type": "string", "description": "SubjectPublicKeyInfo, PEM or base64 DER"}, **kw)


def Serial(**kw) -> Field:  # noqa: N802
    return Field(serial, {"type": ["integer", "string"],
                          "description": "serial number: an integer, decimal text, or hex text with 0x"}, **kw)


def HexSerial(**kw) -> Field:  # noqa: N802
    return Field(hex_serial, {"type": "string", "pattern": "^(0x)?[0-9a-fA-F: ]{1,%d}$" % (3 * MAX_SERIAL_OCTETS + 2),
                              "description": "serial number in hexadecimal, as printed on certificates (1A:2B…)"},
                 **kw)


def List(item: Field, max_items: int = 500, min_items: int = 0, unique: bool = False, **kw) -> Field:  # noqa: N802
    def check(value, name):
        if not isinstance(value, list):
            raise InputError(f"{name} must be an array")
        if len(value) > max_items or len(value) < min_items:
            raise InputError(f"{name} must hold {min_items}..{max_items} items")
        out = [item.check(v, f"{name}[{i}]") for i, v in enumerate(value)]
        if unique and len(set(map(repr, out))) != len(out):
            raise InputError(f"{name} must not repeat an item")
        return out
    schema = {"type": "array", "items": item.json_schema(), "maxItems": max_items}
    if min_items:
        schema["minItems"] = min_items
    if unique:
        schema["uniqueItems"] = True
    return Field(check, schema, **kw)


def required(f: Field) -> Field:
    return Field(f.check, f.schema, True, None, f.nullable, f.text, f.description)


@dataclass(frozen=True)
class Schema:
    """The fields of one JSON body, form or query string. ``parse`` refuses unknown fields (unless
    ``open``), missing required ones and any value its field refuses; it returns the checked values with
    defaults filled in (absent optional fields without a default are left out)."""

    fields: Mapping[str, Field]
    open: bool = False
    example: dict = field(default_factory=dict)

    def parse(self, data: Any, *, where: str = "the body") -> dict:
        data = json_object(data, where)
        return self._check(data.items(), text=False, where=where)

    def parse_text(self, pairs: Mapping[str, str] | Iterable[tuple[str, str]], *, where: str = "the query") -> dict:
        """Values that arrive as text (a query string, a form): each field's ``text`` parser."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        return self._check(items, text=True, where=where)

    def _check(self, items, *, text: bool, where: str) -> dict:
        out: dict = {}
        unknown = []
        for name, value in items:
            spec = self.fields.get(name)
            if spec is None:
                if not self.open:
                    unknown.append(str(name)[:64])
                continue
            if name in out:
                raise InputError(f"{name} is given more than once")
            if value is None:
                if spec.nullable:
                    out[name] = None
                elif spec.required:
                    raise InputError(f"{name} is required")
                continue
            parse = spec.text if (text and spec.text is not None) else spec.check
            out[name] = parse(value, name)
        if unknown:
            raise InputError(f"unknown fields: {', '.join(sorted(unknown))}")
        missing = [n for n, spec in self.fields.items() if spec.required and n not in out]
        if missing:
            raise InputError(f"missing fields: {', '.join(missing)}")
        for name, spec in self.fields.items():
            if name not in out and spec.default is not None:
                out[name] = spec.default
        return out

    def json_schema(self) -> dict:
        schema = {"type": "object", "properties": {n: f.json_schema() for n, f in self.fields.items()},
                  "additionalProperties": self.open}
        req = [n for n, f in self.fields.items() if f.required]
        if req:
            schema["required"] = req
        if self.example:
            schema["examples"] = [self.example]
        return schema

    def query_parameters(self) -> list[dict]:
        """The fields as OpenAPI query parameters."""
        return [{"name": n, "in": "query", "required": f.required, "schema": f.json_schema()}
                for n, f in self.fields.items()]
