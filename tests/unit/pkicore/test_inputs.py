"""pkicore.inputs: the one request-validation layer's helpers and schemas (each refusal an InputError,
HTTP 400 with the reason; each schema also its JSON Schema)."""
from __future__ import annotations

import base64

import pytest
from asn1crypto import pem

from pkicore import inputs
from pkicore.inputs import InputError


def test_integers_fit_the_id_columns():
    assert inputs.integer(2 ** 63 - 1, "id") == 2 ** 63 - 1
    for bad in (2 ** 63, -1, True, 1.0, "1", None, [1]):
        with pytest.raises(InputError):
            inputs.integer(bad, "id")
    assert inputs.decimal(" 42 ", "n") == 42 and inputs.decimal("+7", "n") == 7
    for bad in ("", "4 2", "0x10", "١٢", "9" * 41, "1e3", "-1"):
        with pytest.raises(InputError):
            inputs.decimal(bad, "n")
    assert inputs.decimal("-5", "n", minimum=-10) == -5


def test_numbers_are_finite_and_bounded():
    assert inputs.number("1.5", "x", minimum=0, maximum=2) == 1.5
    for bad in ("nan", "inf", "1e400", 10 ** 400, True, "x" * 41, 3):
        with pytest.raises(InputError):
            inputs.number(bad, "x", minimum=0, maximum=2)


def test_strings_base64_and_der():
    assert inputs.string(" a ", "s", strip=True) == "a"
    for bad, kw in ((5, {}), ("a\x00", {}), ("x" * 5, {"max_length": 4}), ("", {"min_length": 1}),
                    ("ab", {"pattern": "[a]+"})):
        with pytest.raises(InputError):
            inputs.string(bad, "s", **kw)
    assert inputs.b64("AAEC\nAw==", "b") == b"\x00\x01\x02\x03"
    for bad in ("%%%", "AAA", 5, "A" * 100):
        with pytest.raises(InputError):
            inputs.b64(bad, "b", max_bytes=10)
    with pytest.raises(InputError, match="not a DER X.509 certificate"):
        inputs.certificate(base64.b64encode(b"\x30\x03\x02\x01\x01").decode())
    with pytest.raises(InputError, match="holds no certificate"):
        inputs.certificates(pem.armor("X509 CRL", b"\x30\x00"))
    with pytest.raises(InputError, match="not a DER CRL"):
        inputs.crls(b"\x30\x80")
    with pytest.raises(InputError, match="SubjectPublicKeyInfo"):
        inputs.public_key_info("MAA=")


def test_schema_parse_and_json_schema():
    schema = inputs.Schema({"id": inputs.required(inputs.Id()), "note": inputs.Str(8).or_null(),
                            "kind": inputs.Enum(("a", "b"), default="a"), "n": inputs.Int(1, 5)},
                           example={"id": 1})
    assert schema.parse({"id": 3, "note": None}) == {"id": 3, "note": None, "kind": "a"}
    assert schema.parse_text({"id": "3", "n": "5"}) == {"id": 3, "n": 5, "kind": "a"}
    for bad, message in (([], "JSON object"), ({}, "missing fields: id"), ({"id": 1, "x": 1}, "unknown fields: x"),
                         ({"id": 2 ** 63}, "id must be in the range"), ({"id": 1, "kind": "c"}, "kind must be one of"),
                         ({"id": None}, "id is required"), ({"id": 1, "n": 0}, "n must be in the range")):
        with pytest.raises(InputError, match=message):
            schema.parse(bad)
    js = schema.json_schema()
    assert js["required"] == ["id"] and js["additionalProperties"] is False and js["examples"] == [{"id": 1}]
    assert js["properties"]["note"]["type"] == ["string", "null"] and js["properties"]["kind"]["default"] == "a"
    assert js["properties"]["id"]["maximum"] == 2 ** 63 - 1
    assert [p["name"] for p in schema.query_parameters()] == ["id", "note", "kind", "n"]
    lists = inputs.Schema({"ids": inputs.List(inputs.Id(), max_items=2, unique=True)})
    assert lists.parse({"ids": [1, 2]}) == {"ids": [1, 2]}
    for bad in ([1, 1], [1, 2, 3], [True], "1"):
        with pytest.raises(InputError):
            lists.parse({"ids": bad})
