"""Identity validators: published examples plus numbers whose check characters this test computes on
its own (not with the code under test)."""
from __future__ import annotations

import datetime as dt

import pytest

from ra.errors import ValidationError
from ra.id_numbers import validate_hostname, validate_id_number, validate_ip, validate_name, validate_uscc


def _id_check(first17: str) -> str:
    # ISO 7064 MOD 11-2 written out from GB 11643-1999 §8.2: W_i = 2^(i-1) mod 11, i counted from the right
    total = sum(int(d) * (2 ** (18 - pos) % 11) for pos, d in enumerate(first17, start=1))
    return "10X98765432"[total % 11]


_USCC_SET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _uscc_check(first17: str) -> str:
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]   # GB 32100 table
    c = 31 - sum(_USCC_SET.index(ch) * w for ch, w in zip(first17, weights)) % 31
    return _USCC_SET[0 if c == 31 else c]


def _org_check(first8: str) -> str:
    weights = [3, 7, 9, 10, 5, 8, 4, 2]                                             # GB 11714 table
    c = 11 - sum((int(ch) if ch.isdigit() else ord(ch) - 55) * w for ch, w in zip(first8, weights)) % 11
    return {10: "X", 11: "0"}.get(c, str(c))


PUBLISHED_IDS = ["11010519491231002X", "440524188001010014"]       # GB 11643-1999 appendix examples
PUBLISHED_USCC = ["91350100M000100Y43",                           # the example used in GB 32100 guides
                  "914403001922038216", "9144030071526726XG", "91110000802100433B"]   # public company codes


@pytest.mark.parametrize("number", PUBLISHED_IDS)
def test_published_id_numbers(number):
    assert validate_id_number(number) == number
    assert validate_id_number(number.lower()) == number


@pytest.mark.parametrize("body", ["31010419900307123", "33010219850101002", "65010420000229551",
                                  "52010219791231999", "81000019991231004"])
def test_generated_id_numbers(body):
    number = body + _id_check(body)
    assert validate_id_number(number) == number
    wrong = body + ("0" if _id_check(body) != "0" else "1")
    with pytest.raises(ValidationError, match="check character"):
        validate_id_number(wrong)


@pytest.mark.parametrize("number, reason", [
    ("11010519491231002", "18 characters"),
    ("1101051949123100211", "18 characters"),
    ("11010519491231002Y", "digit or X"),
    ("1101051949123100X2", "digit or X"),
    ("99010519491231002X", "region code"),
    ("00010519491231002X", "region code"),
    ("110105" + "19490230" + "002", "calendar date"),
    ("110105" + "21000101" + "002", "out of range"),
    ("１１010519491231002X", "digit"),      # full-width digits
    (None, "string"),
])
def test_invalid_id_numbers(number, reason):
    if number is not None and len(number) == 17 and number[6:14] in ("19490230", "21000101"):
        number += _id_check(number)
    with pytest.raises(ValidationError, match=reason):
        validate_id_number(number, today=dt.date(2030, 1, 1))


def test_published_id_wrong_check():
    with pytest.raises(ValidationError, match="MOD 11-2"):
        validate_id_number("110105194912310021")


@pytest.mark.parametrize("code", PUBLISHED_USCC)
def test_published_uscc(code):
    assert validate_uscc(code) == code
    assert validate_uscc(code.lower()) == code


@pytest.mark.parametrize("prefix, org8", [("11330100", "00250014"), ("52110000", "MA01A2B3"),
                                          ("93440300", "12345678"), ("Y1100000", "ABCD1234")])
def test_generated_uscc(prefix, org8):
    first17 = prefix + org8 + _org_check(org8)
    code = first17 + _uscc_check(first17)
    if any(c in code for c in "IOZSV"):
        pytest.skip("generated code falls outside the character set")
    assert validate_uscc(code) == code


@pytest.mark.parametrize("code, reason", [
    ("91350100M000100Y4", "18 characters"),
    ("91350100M000100Y4I", "outside the GB 32100 set"),
    ("91350100O000100Y43", "outside the GB 32100 set"),
    ("B1350100M000100Y43", "registration department"),
    ("90350100M000100Y43", "category"),
    ("91AB0100M000100Y43", "region code"),
    ("91350100M000100Y44", "check character is wrong"),
])
def test_invalid_uscc(code, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_uscc(code)


def test_uscc_with_bad_embedded_org_code():
    org8 = "00250014"
    bad_org_check = "0" if _org_check(org8) != "0" else "1"
    first17 = "11330100" + org8 + bad_org_check
    code = first17 + _uscc_check(first17)
    with pytest.raises(ValidationError, match="GB 11714"):
        validate_uscc(code)
    assert validate_uscc(code, check_org_code=False) == code


@pytest.mark.parametrize("name, expected", [
    ("www.example.gov.cn", "www.example.gov.cn"),
    ("WWW.Example.GOV.cn.", "www.example.gov.cn"),
    ("a-b.c1.cn", "a-b.c1.cn"),
    ("例子.中国", "xn--fsqu00a.xn--fiqs8s"),
    ("xn--fiqs8s.xn--fiqs8s", "xn--fiqs8s.xn--fiqs8s"),
])
def test_valid_hostnames(name, expected):
    assert validate_hostname(name) == expected


@pytest.mark.parametrize("name, reason", [
    ("", "empty"), ("localhost", "two labels"), ("*.example.cn", "wildcard"), ("-a.example.cn", "letter-digit"),
    ("a-.example.cn", "letter-digit"), ("a_b.example.cn", "letter-digit"), ("a" * 64 + ".cn", "letter-digit"),
    (("a" * 63 + ".") * 4 + "cn", "253"), ("10.0.0.1", "all-numeric"), ("ab--c.example.cn", "positions 3-4"),
    ("a..b.cn", "letter-digit"),
])
def test_invalid_hostnames(name, reason):
    with pytest.raises(ValidationError, match=reason):
        validate_hostname(name)


def test_ip_addresses():
    assert validate_ip("10.1.2.3") == "10.1.2.3"
    assert validate_ip("2001:DB8::1") == "2001:db8::1"
    for bad in ("256.1.1.1", "10.1.2", "0.0.0.0", "224.0.0.1", "127.0.0.1", "::", "::1", "host.cn"):
        with pytest.raises(ValidationError):
            validate_ip(bad)


def test_names():
    assert validate_name("  张三 ") == "张三"
    for bad in ("", "   ", "a\x00b", "x" * 65):
        with pytest.raises(ValidationError):
            validate_name(bad)
