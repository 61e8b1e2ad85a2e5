"""SM2 signatures made in our token, verified by implementations nobody here wrote:
Bouncy Castle 1.72 (Java) and the OpenSSL 3.0 CLI with distid:1234567812345678."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import pem

from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_verify_many, require_bc
from tests.interop.openssl_cli import sm2_verify as openssl_sm2_verify


@pytest.fixture(scope="module")
def signed(softtoken_km, tmp_path_factory):
    """Several (key, message, signature) sets in files, default and custom user IDs."""
    out = tmp_path_factory.mktemp("sm2-interop")
    key = softtoken_km.generate_key_pair(f"interop-{secrets.token_hex(4)}", "sm2")
    (out / "pub.pem").write_bytes(pem.armor("PUBLIC KEY", key.public_key_info))
    cases = {}
    for name, message, uid in (("empty", b"", None), ("short", b"abc", None),
                               ("utf8", "RA 中心数字认证系统".encode(), None),
                               ("long", secrets.token_bytes(100_000), None),
                               ("custom-id", b"custom id message", b"ALICE123@YAHOO.COM")):
        (out / f"{name}.msg").write_bytes(message)
        (out / f"{name}.sig").write_bytes(softtoken_km.sign(key.label, message, user_id=uid))
        cases[name] = uid
    tampered = bytearray((out / "short.msg").read_bytes())
    tampered[0] ^= 1
    (out / "tampered.msg").write_bytes(bytes(tampered))
    return out, cases


def test_bouncy_castle_verifies_token_signatures(signed):
    require_bc()
    out, cases = signed
    argv = []
    for name, uid in cases.items():
        args = ["sm2-sig", out / "pub.pem", out / f"{name}.msg", out / f"{name}.sig"]
        if uid:
            args += ["--id", uid.decode()]
        argv.append(args)
    argv.append(["sm2-sig", out / "pub.pem", out / "tampered.msg", out / "short.sig"])
    argv.append(["sm2-sig", out / "pub.pem", out / "custom-id.msg", out / "custom-id.sig"])  # default ID
    results = bc_verify_many(argv)
    for result in results[:len(cases)]:
        assert_bc_ok(result)
    assert_bc_fails(results[-2])  # tampered message
    assert_bc_fails(results[-1])  # signed under another ID


def test_openssl_verifies_with_the_standard_id(signed):
    out, cases = signed
    for name, uid in cases.items():
        distid = uid.decode() if uid else "1234567812345678"
        assert openssl_sm2_verify(out / "pub.pem", out / f"{name}.msg", out / f"{name}.sig", distid=distid), name
    assert not openssl_sm2_verify(out / "pub.pem", out / "tampered.msg", out / "short.sig")


def test_openssl_empty_id_rejects_correct_signatures(signed):
    """The known trap: OpenSSL 3.0's default (empty) ID is not the GM/T 0009 default; we don't bend."""
    out, _ = signed
    assert not openssl_sm2_verify(out / "pub.pem", out / "short.msg", out / "short.sig", distid=None)
