"""The token's own SM2 code (hsm/softtoken/src/sm2p256*.c, GB/T 32918.1/.2/.4/.5): its C
self-test against OpenSSL, the constant-time check under valgrind, the standard's vectors through
the token, OpenSSL-made keys, signatures and ciphertexts both ways through the token, and the
RACENTRE_SOFTTOKEN_SM2_IMPL=openssl escape hatch interoperating with the default code."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import EncryptedDataInvalid

from softtoken_helpers import (CKK_SM2, REPO, SM2_GX, SM2_GY, SM2_N, SM2_OID_DER, SOFTTOKEN_DIR, M, ec_point_xy,
                               gen_sm2, gmssl_verify, raw_to_der, sm2_e, sm2_public_template)
from tests.threads import run_threads

KAT = json.loads((REPO / "tests" / "vectors" / "sm2_sign_kat.json").read_text())
SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200")


def test_c_selftest_cross_checks_openssl():
    """k*G, k*P (20 000 random scalars + edge scalars, P = G, -G), signatures and ciphertexts
    both ways against OpenSSL, the GB/T 32918.5 known answer, corrupted inputs rejected."""
    r = subprocess.run(["make", "-s", "-C", str(SOFTTOKEN_DIR), "selftest", "SELFTEST_N=20000"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ALL OK" in r.stdout
    assert "20000 random scalars" in r.stdout
    assert "FAIL" not in r.stdout + r.stderr


@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind not installed (scripts/setup.sh installs it)")
def test_constant_time_under_valgrind():
    """keygen, sign, encrypt, decrypt (good and tampered) with d and the nonces marked undefined:
    memcheck reports any branch or memory index depending on them; the canary proves it would."""
    r = subprocess.run(["make", "-s", "-C", str(SOFTTOKEN_DIR), "ctgrind"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ctgrind run: keygen, sign, encrypt, decrypt" in r.stdout
    assert "canary detected (ok)" in r.stdout
    assert "uninitialised" not in r.stderr, r.stderr


def _import_priv(session, d: int, label="imp"):
    return session.create_object({
        Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: CKK_SM2, Attribute.EC_PARAMS: SM2_OID_DER,
        Attribute.VALUE: d.to_bytes(32, "big"), Attribute.SIGN: True, Attribute.DECRYPT: True,
        Attribute.TOKEN: False, Attribute.LABEL: label})


def test_kat_vectors_through_the_token(session):
    """tests/vectors/sm2_sign_kat.json: d gives the standard's point, (r, s) verifies, every
    invalid twin is refused, and our signatures with that key verify with gmssl."""
    d = int(KAT["d"], 16)
    priv = _import_priv(session, d)
    xy = ec_point_xy(priv)
    pub = session.create_object(sm2_public_template(xy, "kat"))
    msg, uid = bytes.fromhex(KAT["message"]), bytes.fromhex(KAT["user_id"])
    sig = bytes.fromhex(KAT["r"] + KAT["s"])
    assert sm2_e(xy, msg, uid).hex().upper() == KAT["e"]
    assert pub.verify(msg, sig, mechanism=M.SM2_SM3, mechanism_param=uid)
    assert pub.verify(bytes.fromhex(KAT["e"]), sig, mechanism=M.SM2_SIGN_RAW)
    for bad in KAT["invalid"]:
        m = bytes.fromhex(bad.get("message", KAT["message"]))
        u = bytes.fromhex(bad.get("user_id", KAT["user_id"]))
        r = int(bad.get("r", KAT["r"]), 16).to_bytes(32, "big")
        s = int(bad.get("s", KAT["s"]), 16).to_bytes(32, "big")
        kw = {"mechanism_param": u} if u else {}
        if not u:      # an empty ID is no parameter at all for the token: check it over e instead
            assert not pub.verify(sm2_e(xy, m, u), r + s, mechanism=M.SM2_SIGN_RAW), bad["why"]
        else:
            assert not pub.verify(m, r + s, mechanism=M.SM2_SM3, **kw), bad["why"]
    for i in range(20):
        m = b"kat key message %d" % i
        assert gmssl_verify(xy, priv.sign(m, mechanism=M.SM2_SM3), m)


def test_verify_rejects_out_of_range_signatures(session):
    pub, priv = gen_sm2(session)
    msg = b"range"
    sig = priv.sign(msg, mechanism=M.SM2_SM3)
    r, s = sig[:32], sig[32:]
    n = SM2_N.to_bytes(32, "big")
    for bad in (bytes(32) + s, r + bytes(32), n + s, r + n, b"\xff" * 32 + s, r + b"\xff" * 32,
                r + ((SM2_N - int.from_bytes(r, "big")) % SM2_N).to_bytes(32, "big")):   # t = r + s = n
        assert not pub.verify(msg, bad, mechanism=M.SM2_SM3)
    assert pub.verify(msg, sig, mechanism=M.SM2_SM3)


def _openssl(*args, **kw):
    return subprocess.run(["openssl", *args], capture_output=True, check=True, **kw)


@pytest.fixture
def openssl_key(tmp_path):
    """An SM2 key made by OpenSSL: (PEM path, d, X||Y)."""
    pem = tmp_path / "k.pem"
    _openssl("genpkey", "-algorithm", "SM2", "-out", str(pem))
    der = _openssl("pkey", "-in", str(pem), "-outform", "DER").stdout     # SEC1 ECPrivateKey
    assert der[5:7] == b"\x04\x20"
    d = int.from_bytes(der[7:39], "big")
    xy = der[-64:]
    return pem, d, xy


def test_openssl_key_signatures_both_ways(session, openssl_key, tmp_path):
    pem, d, xy = openssl_key
    priv = _import_priv(session, d)
    assert ec_point_xy(priv) == xy                           # d*G by our code = OpenSSL's point
    pub = session.create_object(sm2_public_template(xy, "ossl"))
    (tmp_path / "pub.der").write_bytes(SPKI_PREFIX + b"\x04" + xy)
    for i, msg in enumerate((b"", b"a", b"x" * 1000, os.urandom(77))):
        mf, sf = tmp_path / f"m{i}", tmp_path / f"s{i}"
        mf.write_bytes(msg)
        # token -> OpenSSL
        sf.write_bytes(raw_to_der(priv.sign(msg, mechanism=M.SM2_SM3)))
        r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey",
                            str(tmp_path / "pub.der"), "-rawin", "-digest", "sm3", "-pkeyopt",
                            "distid:1234567812345678", "-in", str(mf), "-sigfile", str(sf)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr
        # OpenSSL -> token
        der = _openssl("pkeyutl", "-sign", "-inkey", str(pem), "-rawin", "-digest", "sm3", "-pkeyopt",
                       "distid:1234567812345678", "-in", str(mf)).stdout
        from asn1crypto.algos import DSASignature
        rs = DSASignature.load(der).native
        raw = rs["r"].to_bytes(32, "big") + rs["s"].to_bytes(32, "big")
        assert pub.verify(msg, raw, mechanism=M.SM2_SM3)
        assert not pub.verify(msg + b"!", raw, mechanism=M.SM2_SM3)


def test_openssl_key_encryption_both_ways(session, openssl_key, tmp_path):
    pem, d, xy = openssl_key
    priv = _import_priv(session, d)
    pub = session.create_object(sm2_public_template(xy, "ossl"))
    for i, msg in enumerate((b"k", b"sixteen byte key", os.urandom(32), os.urandom(200), os.urandom(5000))):
        # token encrypts, OpenSSL decrypts (byte-compatible DER SM2Cipher, C1 C3 C2)
        ct = pub.encrypt(msg, mechanism=M.SM2_ENCRYPT)
        (tmp_path / f"c{i}").write_bytes(ct)
        out = _openssl("pkeyutl", "-decrypt", "-inkey", str(pem), "-in", str(tmp_path / f"c{i}")).stdout
        assert out == msg
        # OpenSSL encrypts, the token decrypts
        (tmp_path / f"m{i}").write_bytes(msg)
        oct_ = _openssl("pkeyutl", "-encrypt", "-inkey", str(pem), "-in", str(tmp_path / f"m{i}")).stdout
        assert priv.decrypt(oct_, mechanism=M.SM2_ENCRYPT) == msg


def _der_parts(ct: bytes):
    """offsets of C1.x, C1.y, C3 and C2 inside a DER SM2Cipher"""
    p = 2 if ct[1] < 0x80 else 2 + (ct[1] & 0x7F)
    offs = []
    for _ in range(4):
        ln = ct[p + 1]
        h = 2
        if ln & 0x80:
            k = ln & 0x7F
            ln = int.from_bytes(ct[p + 2:p + 2 + k], "big")
            h += k
        offs.append((p + h, ln))
        p += h + ln
    return offs


def test_tampered_ciphertexts_all_give_the_same_error(session):
    pub, priv = gen_sm2(session)
    msg = b"key escrow secret"
    ct = pub.encrypt(msg, mechanism=M.SM2_ENCRYPT)
    parts = _der_parts(ct)
    for _which, (off, ln) in zip(("C1.x", "C1.y", "C3", "C2"), parts):
        for pos in (off, off + ln - 1):
            bad = bytearray(ct)
            bad[pos] ^= 0x04
            with pytest.raises(EncryptedDataInvalid):
                priv.decrypt(bytes(bad), mechanism=M.SM2_ENCRYPT)
    # C1 replaced by a valid point (G): on the curve, so only C3 can catch it
    (yo, yl) = parts[1]
    g = bytes.fromhex("0221") + b"\0" + SM2_GX.to_bytes(32, "big") + bytes.fromhex("0221") + b"\0" + \
        SM2_GY.to_bytes(32, "big")
    body = g + ct[yo + yl:]
    forged = b"\x30" + (bytes([len(body)]) if len(body) < 128 else b"\x81" + bytes([len(body)])) + body
    with pytest.raises(EncryptedDataInvalid):
        priv.decrypt(forged, mechanism=M.SM2_ENCRYPT)
    assert priv.decrypt(ct, mechanism=M.SM2_ENCRYPT) == msg


def _login_session(lib):
    from conftest import USER_PIN
    return lib.get_slots()[0].get_token().open(rw=True, user_pin=USER_PIN)


def test_openssl_escape_hatch_interoperates(token, p11, monkeypatch):
    """Keys, signatures and ciphertexts made with RACENTRE_SOFTTOKEN_SM2_IMPL=openssl work with
    the default (own) code and the other way round."""
    made = {}
    for impl in ("own", "openssl", "own"):
        if impl == "openssl":
            monkeypatch.setenv("RACENTRE_SOFTTOKEN_SM2_IMPL", "openssl")
        else:
            monkeypatch.delenv("RACENTRE_SOFTTOKEN_SM2_IMPL", raising=False)
        p11.reinitialize()
        with _login_session(p11) as s:
            for name, (sig, ct, msg) in made.items():       # made by the other implementation
                pub = s.get_key(label=name, object_class=ObjectClass.PUBLIC_KEY)
                priv = s.get_key(label=name, object_class=ObjectClass.PRIVATE_KEY)
                assert pub.verify(msg, sig, mechanism=M.SM2_SM3), (impl, name)
                assert priv.decrypt(ct, mechanism=M.SM2_ENCRYPT) == msg, (impl, name)
                assert priv.decrypt(pub.encrypt(msg, mechanism=M.SM2_ENCRYPT), mechanism=M.SM2_ENCRYPT) == msg
            name = f"{impl}-{len(made)}"
            pub, priv = gen_sm2(s, label=name, store=True, id_=name.encode())
            msg = f"made with {impl}".encode()
            made[name] = (priv.sign(msg, mechanism=M.SM2_SM3), pub.encrypt(msg, mechanism=M.SM2_ENCRYPT), msg)
            assert gmssl_verify(ec_point_xy(pub), made[name][0], msg)
    monkeypatch.delenv("RACENTRE_SOFTTOKEN_SM2_IMPL", raising=False)
    p11.reinitialize()


def test_many_signatures_verify_with_gmssl(session):
    """200 signatures over distinct messages and keys (fresh nonces each): gmssl, an independent
    pure-Python verifier, accepts every one; the token's own verify agrees."""
    for k in range(10):
        pub, priv = gen_sm2(session, label=f"g{k}")
        xy = ec_point_xy(pub)
        for i in range(20):
            msg = os.urandom(i * 7)
            sig = priv.sign(msg, mechanism=M.SM2_SM3)
            assert gmssl_verify(xy, sig, msg)
            assert pub.verify(msg, sig, mechanism=M.SM2_SM3)


def test_ec_key_pair_gen_on_the_sm2_curve_is_sm2_throughout(session):
    """CKM_EC_KEY_PAIR_GEN with the SM2 curve OID makes an SM2 key on the own code: it signs
    (gmssl verifies) and encrypts/decrypts with CKM_SM2_ENCRYPT."""
    from pkcs11 import KeyType
    from softtoken_helpers import ALL_CAPS
    pub, priv = session.generate_keypair(KeyType.EC, 256, mechanism=M.EC_KEY_PAIR_GEN, capabilities=ALL_CAPS,
                                         public_template={Attribute.EC_PARAMS: SM2_OID_DER})
    assert pub[Attribute.KEY_TYPE] == KeyType.EC
    sig = priv.sign(b"ec-sm2", mechanism=M.SM2_SM3)
    assert gmssl_verify(ec_point_xy(pub), sig, b"ec-sm2")
    ct = pub.encrypt(b"ec-sm2 secret", mechanism=M.SM2_ENCRYPT)
    assert priv.decrypt(ct, mechanism=M.SM2_ENCRYPT) == b"ec-sm2 secret"


def test_threads_share_one_key_cache_for_encrypt_and_decrypt(token):
    """Four sessions in four threads encrypt to and decrypt with one stored key at once (one
    sm2p256_key cache per key object, referenced by each operation)."""
    from conftest import USER_PIN
    with token.open(rw=True, user_pin=USER_PIN) as s0:
        gen_sm2(s0, store=True, label="tdec")
        done = []

        def worker(n):
            with token.open() as s:
                pub = s.get_key(label="tdec", object_class=ObjectClass.PUBLIC_KEY)
                priv = s.get_key(label="tdec", object_class=ObjectClass.PRIVATE_KEY)
                for i in range(30):
                    msg = f"thread {n} secret {i}".encode()
                    assert priv.decrypt(pub.encrypt(msg, mechanism=M.SM2_ENCRYPT),
                                        mechanism=M.SM2_ENCRYPT) == msg
                    done.append(1)

        errors = run_threads(worker, 4)
        assert not errors, errors
        assert len(done) == 120
