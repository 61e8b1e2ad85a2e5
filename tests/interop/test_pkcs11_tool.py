"""OpenSC pkcs11-tool against the RA Centre soft token: slot/token/mechanism listing, token and
PIN initialisation, EC P-256 and RSA key generation, ECDSA signatures checked by cryptography,
and an SM2 signature (vendor mechanism 0x80008100) checked independently with the default ID.

pkcs11-tool 0.23 knows no SM2 curve name, so SM2 key generation through it is not possible; the
SM2 key is made with python-pkcs11 and then used by pkcs11-tool by its CKA_ID."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "unit" / "softtoken"))

from softtoken_helpers import (LIB_PATH, M, build_library, ec_point_xy, gen_sm2, gmssl_verify, raw_to_der,  # noqa: E402
                               write_conf)

PKCS11_TOOL = shutil.which("pkcs11-tool")
pytestmark = pytest.mark.skipif(PKCS11_TOOL is None, reason="OpenSC pkcs11-tool is not installed (apt install opensc)")

SO_PIN, PIN = "87654321", "5678"


@pytest.fixture(scope="module")
def tokdir(tmp_path_factory):
    build_library()
    d = tmp_path_factory.mktemp("tool") / "softtoken"
    write_conf(d)
    old = os.environ.get("RACENTRE_SOFTTOKEN_DIR")
    os.environ["RACENTRE_SOFTTOKEN_DIR"] = str(d)
    yield d
    if old is None:
        os.environ.pop("RACENTRE_SOFTTOKEN_DIR", None)
    else:
        os.environ["RACENTRE_SOFTTOKEN_DIR"] = old


def tool(tokdir, *args, check=True):
    env = dict(os.environ, RACENTRE_SOFTTOKEN_DIR=str(tokdir))
    r = subprocess.run([PKCS11_TOOL, "--module", str(LIB_PATH), *args], env=env, capture_output=True, text=True,
                       timeout=120)
    if check:
        assert r.returncode == 0, f"pkcs11-tool {' '.join(args)}\n{r.stdout}\n{r.stderr}"
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def initialised(tokdir):
    out = tool(tokdir, "-L")
    assert "RA Centre SoftToken slot 0" in out and "uninitialized" in out
    tool(tokdir, "--init-token", "--slot", "0", "--label", "interop", "--so-pin", SO_PIN)
    tool(tokdir, "--slot", "0", "--init-pin", "--login", "--so-pin", SO_PIN, "--pin", PIN)
    return tokdir


def test_list_slots_info_and_mechanisms(initialised):
    out = tool(initialised, "-L")
    assert "token label        : interop" in out
    assert "token manufacturer : RA Centre" in out
    assert "token model        : SoftToken-SM2" in out
    assert "PIN initialized" in out and "token initialized" in out and "login required" in out
    info = tool(initialised, "-I")
    assert "Cryptoki version 2.40" in info and "RA Centre" in info
    mechs = tool(initialised, "-M")
    for code in ("0x80008001", "0x80008100", "0x80008104", "0x80008200", "0x80009001",
                 "0x80000107", "0x80000108", "0x80000109"):
        assert f"mechtype-{code}" in mechs, code
    assert "ECDSA-SHA256" in mechs and "RSA-PKCS-PSS" in mechs


def test_ec_keygen_and_ecdsa_signature(initialised, tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    tool(initialised, "--login", "--pin", PIN, "--keypairgen", "--key-type", "EC:prime256v1",
         "--id", "01", "--label", "tool-ec")
    (tmp_path / "msg").write_bytes(b"signed by pkcs11-tool")
    tool(initialised, "--login", "--pin", PIN, "--sign", "-m", "ECDSA-SHA256", "--id", "01",
         "-i", str(tmp_path / "msg"), "-o", str(tmp_path / "sig"))
    tool(initialised, "--read-object", "--type", "pubkey", "--id", "01", "-o", str(tmp_path / "pub.der"))
    pub = serialization.load_der_public_key((tmp_path / "pub.der").read_bytes())
    sig = (tmp_path / "sig").read_bytes()
    assert len(sig) == 64
    pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
               b"signed by pkcs11-tool", ec.ECDSA(hashes.SHA256()))


def test_rsa_keygen_and_signature(initialised, tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    tool(initialised, "--login", "--pin", PIN, "--keypairgen", "--key-type", "rsa:2048", "--id", "02",
         "--label", "tool-rsa")
    (tmp_path / "msg").write_bytes(b"rsa via pkcs11-tool")
    tool(initialised, "--login", "--pin", PIN, "--sign", "-m", "SHA256-RSA-PKCS", "--id", "02",
         "-i", str(tmp_path / "msg"), "-o", str(tmp_path / "sig"))
    tool(initialised, "--read-object", "--type", "pubkey", "--id", "02", "-o", str(tmp_path / "pub.der"))
    pub = serialization.load_der_public_key((tmp_path / "pub.der").read_bytes())
    pub.verify((tmp_path / "sig").read_bytes(), b"rsa via pkcs11-tool", padding.PKCS1v15(), hashes.SHA256())


def test_sm2_signature_with_vendor_mechanism(initialised, tmp_path):
    import pkcs11
    lib = pkcs11.lib(str(LIB_PATH))
    lib.reinitialize()                      # read this module's token directory
    token = lib.get_slots()[0].get_token()
    with token.open(rw=True, user_pin=PIN) as s:
        pub, _ = gen_sm2(s, store=True, label="tool-sm2", id_=b"\x03")
        xy = ec_point_xy(pub)
    lib.reinitialize()                      # log out and release the token for pkcs11-tool
    msg = b"SM2 through pkcs11-tool"
    (tmp_path / "msg").write_bytes(msg)
    tool(initialised, "--login", "--pin", PIN, "--sign", "-m", "0x80008100", "--id", "03",
         "-i", str(tmp_path / "msg"), "-o", str(tmp_path / "sig"))
    sig = (tmp_path / "sig").read_bytes()
    assert len(sig) == 64
    assert gmssl_verify(xy, sig, msg)       # pure-Python SM2 with the default ID 1234567812345678
    # and the OpenSSL CLI, with the ID made explicit
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200") + b"\x04" + xy
    (tmp_path / "pub.der").write_bytes(spki)
    (tmp_path / "sig.der").write_bytes(raw_to_der(sig))
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey",
                        str(tmp_path / "pub.der"), "-rawin", "-digest", "sm3", "-pkeyopt",
                        "distid:1234567812345678", "-in", str(tmp_path / "msg"), "-sigfile",
                        str(tmp_path / "sig.der")], capture_output=True, text=True)
    assert "Signature Verified Successfully" in r.stdout, r.stdout + r.stderr
    assert M.SM2_SM3 == 0x80008100


def test_list_objects(initialised):
    out = tool(initialised, "--login", "--pin", PIN, "--list-objects")
    for label in ("tool-ec", "tool-rsa", "tool-sm2"):
        assert f"label:      {label}" in out
    assert "Private Key Object; EC" in out and "Private Key Object; RSA" in out
    public_only = tool(initialised, "--list-objects")
    assert "Private Key Object" not in public_only      # private objects need the PIN
    assert "Public Key Object; EC" in public_only
