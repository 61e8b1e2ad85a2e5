"""SM2 in the soft token: GB/T 32918.2 signatures (Z value, default and custom user ID, known
answer of GB/T 32918.5 Annex A), raw-digest signatures, GB/T 32918.4 encryption with GM/T 0009
DER ciphertext, cross-checked against gmssl, tongsuopy and the OpenSSL CLI."""

from __future__ import annotations

import subprocess

import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import (EncryptedDataInvalid, KeyTypeInconsistent, MechanismParamInvalid,
                               DataLenRange)

from softtoken_helpers import (CKK_SM2, DEFAULT_ID, M, SM2_OID_DER, ec_point_xy, gen_sm2, gmssl_verify,
                               raw_to_der, sm2_e, sm2_public_template, sm2_z)
from tests.threads import run_threads

KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_X = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
KAT_Y = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
KAT_R = "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
KAT_S = "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
KAT_Z = "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
KAT_E = "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"


def test_keypair_attributes(session):
    pub, priv = gen_sm2(session)
    assert pub[Attribute.KEY_TYPE] == CKK_SM2
    assert pub[Attribute.EC_PARAMS] == SM2_OID_DER
    ep = pub[Attribute.EC_POINT]
    assert ep[:3] == b"\x04\x41\x04" and len(ep) == 67
    # the private object exposes the same public point (needed to derive Z for signing)
    assert priv[Attribute.EC_POINT] == ep
    assert priv[Attribute.SENSITIVE] is True
    assert priv[Attribute.EXTRACTABLE] is False
    assert priv[Attribute.ALWAYS_SENSITIVE] is True
    assert priv[Attribute.NEVER_EXTRACTABLE] is True
    assert priv[Attribute.LOCAL] is True
    assert priv[Attribute.KEY_GEN_MECHANISM] == M.SM2_KEY_PAIR_GEN


def test_sign_default_id_verified_by_gmssl_and_tongsuopy(session):
    pub, priv = gen_sm2(session)
    xy = ec_point_xy(pub)
    msg = b"RA centre SM2 message"
    sig = priv.sign(msg, mechanism=M.SM2_SM3)
    assert len(sig) == 64                          # raw r || s
    assert gmssl_verify(xy, sig, msg)
    assert not gmssl_verify(xy, sig, msg + b"x")
    # tongsuopy (Tongsuo/OpenSSL C code, default ID 1234567812345678)
    from tongsuopy.crypto import hashes
    from tongsuopy.crypto.asymciphers import ec as tec
    tpub = tec.EllipticCurvePublicNumbers(int.from_bytes(xy[:32], "big"), int.from_bytes(xy[32:], "big"),
                                          tec.SM2()).public_key()
    tpub.verify(raw_to_der(sig), msg, tec.ECDSA(hashes.SM3()))
    # and our own verify
    assert pub.verify(msg, sig, mechanism=M.SM2_SM3)
    assert not pub.verify(msg + b"!", sig, mechanism=M.SM2_SM3)


def test_sign_custom_id(session):
    pub, priv = gen_sm2(session)
    xy = ec_point_xy(pub)
    uid = b"alice@example.cn"
    msg = b"hello with a user ID"
    sig = priv.sign(msg, mechanism=M.SM2_SM3, mechanism_param=uid)
    assert gmssl_verify(xy, sig, msg, uid)
    assert not gmssl_verify(xy, sig, msg, DEFAULT_ID)
    assert pub.verify(msg, sig, mechanism=M.SM2_SM3, mechanism_param=uid)
    assert not pub.verify(msg, sig, mechanism=M.SM2_SM3)                    # default ID differs
    # an explicit default ID is the same as none
    sig2 = priv.sign(msg, mechanism=M.SM2_SM3, mechanism_param=DEFAULT_ID)
    assert pub.verify(msg, sig2, mechanism=M.SM2_SM3)


def test_multipart_sign_verify(session):
    pub, priv = gen_sm2(session)
    parts = [b"part one, ", b"", b"part two, ", b"x" * 5000]
    sig = priv.sign(iter(parts), mechanism=M.SM2_SM3)
    assert gmssl_verify(ec_point_xy(pub), sig, b"".join(parts))
    assert pub.verify(iter(parts), sig, mechanism=M.SM2_SM3)


def test_gbt32918_known_answer(session):
    """Annex A of GB/T 32918.5: the standard's (r, s) over "message digest" verifies in the token."""
    from gmssl import sm2 as gsm2
    xy = bytes.fromhex(gsm2.CryptSM2(private_key=f"{KAT_D:064x}", public_key="")._kg(
        KAT_D, gsm2.default_ecc_table["g"]))
    assert xy.hex().upper() == KAT_X + KAT_Y
    msg = b"message digest"
    assert sm2_z(xy).hex().upper() == KAT_Z
    assert sm2_e(xy, msg).hex().upper() == KAT_E
    pub = session.create_object(sm2_public_template(xy, "kat"))
    sig = bytes.fromhex(KAT_R + KAT_S)
    assert pub.verify(msg, sig, mechanism=M.SM2_SM3)
    assert pub.verify(bytes.fromhex(KAT_E), sig, mechanism=M.SM2_SIGN_RAW)
    bad = bytearray(sig)
    bad[10] ^= 1
    assert not pub.verify(msg, bytes(bad), mechanism=M.SM2_SM3)
    # also importable as CKK_EC + SM2 curve: still SM2, not ECDSA
    pub_ec = session.create_object(sm2_public_template(xy, "kat-ec", key_type=0x3))
    assert pub_ec.verify(msg, sig, mechanism=M.SM2_SM3)
    # the private key imported gives the same public point and signs verifiably
    priv = session.create_object({
        Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: CKK_SM2, Attribute.EC_PARAMS: SM2_OID_DER,
        Attribute.VALUE: KAT_D.to_bytes(32, "big"), Attribute.SIGN: True, Attribute.TOKEN: False})
    assert ec_point_xy(priv) == xy
    assert gmssl_verify(xy, priv.sign(msg, mechanism=M.SM2_SM3), msg)


def test_raw_digest_sign(session):
    pub, priv = gen_sm2(session)
    xy = ec_point_xy(pub)
    e = sm2_e(xy, b"raw")
    sig = priv.sign(e, mechanism=M.SM2_SIGN_RAW)
    assert gmssl_verify(xy, sig, b"raw")
    assert pub.verify(e, sig, mechanism=M.SM2_SIGN_RAW)
    assert pub.verify(b"raw", sig, mechanism=M.SM2_SM3)
    with pytest.raises(DataLenRange):
        priv.sign(e[:31], mechanism=M.SM2_SIGN_RAW)
    assert not pub.verify(e, sig[:63], mechanism=M.SM2_SIGN_RAW)   # CKR_SIGNATURE_LEN_RANGE -> False


def test_ecdsa_refused_on_sm2_key(session):
    """The SoftHSM trap: plain ECDSA on the SM2 curve is not SM2 and must be refused."""
    pub, priv = gen_sm2(session)
    with pytest.raises(KeyTypeInconsistent):
        priv.sign(b"x" * 32, mechanism=M.ECDSA)
    with pytest.raises(KeyTypeInconsistent):
        priv.sign(b"x", mechanism=M.ECDSA_SHA256)
    # same for a CKK_EC key on the SM2 curve (made with CKM_EC_KEY_PAIR_GEN)
    from pkcs11 import KeyType
    pub2, priv2 = session.generate_keypair(KeyType.EC, 256, mechanism=M.EC_KEY_PAIR_GEN,
                                           public_template={Attribute.EC_PARAMS: SM2_OID_DER})
    assert pub2[Attribute.KEY_TYPE] == KeyType.EC
    with pytest.raises(KeyTypeInconsistent):
        priv2.sign(b"x" * 32, mechanism=M.ECDSA)
    sig = priv2.sign(b"msg", mechanism=M.SM2_SM3)
    assert gmssl_verify(ec_point_xy(pub2), sig, b"msg")


def test_bad_mechanism_param(session):
    pub, priv = gen_sm2(session)
    with pytest.raises(MechanismParamInvalid):
        priv.sign(b"m", mechanism=M.SM2_SIGN_RAW, mechanism_param=b"id")
    with pytest.raises(MechanismParamInvalid):
        priv.sign(b"m", mechanism=M.SM2_SM3, mechanism_param=b"x" * 9000)


def test_encrypt_decrypt_in_token(session):
    pub, priv = gen_sm2(session)
    for msg in (b"a", b"sixteen byte key", b"z" * 1000):
        ct = pub.encrypt(msg, mechanism=M.SM2_ENCRYPT)
        assert ct[0] == 0x30                                   # DER SM2Cipher
        assert len(ct) >= len(msg) + 96
        assert priv.decrypt(ct, mechanism=M.SM2_ENCRYPT) == msg
    ct = bytearray(pub.encrypt(b"secret message", mechanism=M.SM2_ENCRYPT))
    ct[-3] ^= 0x01                                             # C2 changed -> C3 mismatch
    with pytest.raises(EncryptedDataInvalid):
        priv.decrypt(bytes(ct), mechanism=M.SM2_ENCRYPT)


@pytest.mark.parametrize("blob", [b"", b"\x30", b"\x30\x03\x02\x01\x01", b"\x30\x82\xff\xff" + b"\0" * 40,
                                  bytes(200), b"\x30\x81\x80" + b"\x02" * 128])
def test_malformed_ciphertexts(session, blob):
    pub, priv = gen_sm2(session)
    with pytest.raises((EncryptedDataInvalid, DataLenRange)):
        priv.decrypt(blob, mechanism=M.SM2_ENCRYPT)
    # the session is still usable afterwards
    assert priv.decrypt(pub.encrypt(b"ok", mechanism=M.SM2_ENCRYPT), mechanism=M.SM2_ENCRYPT) == b"ok"


def test_decrypt_openssl_ciphertext(session, tmp_path):
    """openssl pkeyutl encrypts to the token's exported SM2 public key; the token decrypts."""
    pub, priv = gen_sm2(session)
    xy = ec_point_xy(pub)
    # SubjectPublicKeyInfo: id-ecPublicKey + sm2p256v1 + 04||X||Y
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200") + b"\x04" + xy
    der = tmp_path / "pub.der"
    der.write_bytes(spki)
    (tmp_path / "msg").write_bytes(b"made by openssl")
    subprocess.run(["openssl", "pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey", str(der),
                    "-in", str(tmp_path / "msg"), "-out", str(tmp_path / "ct")], check=True)
    ct = (tmp_path / "ct").read_bytes()
    assert priv.decrypt(ct, mechanism=M.SM2_ENCRYPT) == b"made by openssl"


def test_openssl_verifies_token_signature(session, tmp_path):
    pub, priv = gen_sm2(session)
    xy = ec_point_xy(pub)
    spki = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d034200") + b"\x04" + xy
    (tmp_path / "pub.der").write_bytes(spki)
    (tmp_path / "msg").write_bytes(b"checked by openssl")
    (tmp_path / "sig").write_bytes(raw_to_der(priv.sign(b"checked by openssl", mechanism=M.SM2_SM3)))
    r = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey",
                        str(tmp_path / "pub.der"), "-rawin", "-digest", "sm3", "-pkeyopt",
                        "distid:1234567812345678", "-in", str(tmp_path / "msg"), "-sigfile",
                        str(tmp_path / "sig")], capture_output=True, text=True)
    assert r.returncode == 0 and "Success" in r.stdout, r.stdout + r.stderr


def test_eight_threads_sign_concurrently(token):
    from conftest import USER_PIN
    with token.open(rw=True, user_pin=USER_PIN) as s0:
        pub, priv = gen_sm2(s0, store=True, label="threads")
        xy = ec_point_xy(pub)
        results = []

        def worker(n):
            with token.open() as s:     # login state is per token, already logged in
                k = s.get_key(label="threads", object_class=ObjectClass.PRIVATE_KEY)
                for i in range(40):
                    msg = f"thread {n} message {i}".encode()
                    results.append((msg, k.sign(msg, mechanism=M.SM2_SM3)))

        errors = run_threads(worker, 8)
        assert not errors, errors
        assert len(results) == 320
        for msg, sig in results:
            assert gmssl_verify(xy, sig, msg)
