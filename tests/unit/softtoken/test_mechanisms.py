"""Non-SM2 mechanisms of the soft token against independent implementations: SM3/SHA-256 vs
hashlib, SM4 and AES vs cryptography, ECDSA P-256/P-384 and RSA PKCS#1 v1.5/PSS verified by
cryptography, AES key wrap (RFC 3394/5649) vs cryptography's keywrap, HMAC vs hmac."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pkcs11 import Attribute, KeyType, MGF, Mechanism, ObjectClass
from pkcs11.exceptions import DataLenRange, MechanismInvalid, MechanismParamInvalid

from softtoken_helpers import ALL_CAPS, CKK_SM4, M, P256_OID_DER


def sm4_key(session, value=None, tmpl=None):
    tmpl = tmpl or {}
    if value is None:
        return session.generate_key(CKK_SM4, 128, mechanism=M.SM4_KEY_GEN, capabilities=ALL_CAPS, template=tmpl)
    t = {Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: CKK_SM4, Attribute.VALUE: value,
         Attribute.ENCRYPT: True, Attribute.DECRYPT: True, Attribute.WRAP: True, Attribute.UNWRAP: True,
         Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True}
    t.update(tmpl)
    return session.create_object(t)


@pytest.mark.parametrize("mech,name", [(M.SM3, "sm3"), (Mechanism.SHA256, "sha256"),
                                       (Mechanism.SHA384, "sha384"), (Mechanism.SHA512, "sha512")])
def test_digests(session, mech, name):
    for data in (b"", b"abc", os.urandom(10000)):
        assert session.digest(data, mechanism=mech) == hashlib.new(name, data).digest()
    parts = [b"a" * 100, b"b" * 1000, b"c"]
    assert session.digest(iter(parts), mechanism=mech) == hashlib.new(name, b"".join(parts)).digest()


def test_sm3_known_answer(session):
    # GB/T 32905 example 1
    assert session.digest(b"abc", mechanism=M.SM3).hex() == \
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_sm4_ecb_cbc_vs_cryptography(session):
    kv = os.urandom(16)
    key = sm4_key(session, kv)
    data = os.urandom(64)
    iv = os.urandom(16)
    ref_ecb = Cipher(algorithms.SM4(kv), modes.ECB()).encryptor().update(data)
    ref_cbc = Cipher(algorithms.SM4(kv), modes.CBC(iv)).encryptor().update(data)
    assert key.encrypt(data, mechanism=M.SM4_ECB) == ref_ecb
    assert key.encrypt(data, mechanism=M.SM4_CBC, mechanism_param=iv) == ref_cbc
    assert key.decrypt(ref_ecb, mechanism=M.SM4_ECB) == data
    assert key.decrypt(ref_cbc, mechanism=M.SM4_CBC, mechanism_param=iv) == data
    # multi-part, odd chunking
    chunks = [data[:5], data[5:40], data[40:]]
    assert b"".join(key.encrypt(iter(chunks), mechanism=M.SM4_CBC, mechanism_param=iv)) == ref_cbc
    # GB/T 32907 Appendix A example 1
    std = sm4_key(session, bytes.fromhex("0123456789abcdeffedcba9876543210"))
    assert std.encrypt(bytes.fromhex("0123456789abcdeffedcba9876543210"), mechanism=M.SM4_ECB).hex() == \
        "681edf34d206965e86b3e94f536e4246"
    with pytest.raises(DataLenRange):
        key.encrypt(b"not aligned", mechanism=M.SM4_ECB)
    with pytest.raises(MechanismParamInvalid):
        key.encrypt(data, mechanism=M.SM4_CBC, mechanism_param=b"short iv")


def test_sm4_cbc_pad(session):
    kv, iv = os.urandom(16), os.urandom(16)
    key = sm4_key(session, kv)
    from cryptography.hazmat.primitives import padding as sympad
    for n in (0, 1, 15, 16, 33):
        data = os.urandom(n)
        p = sympad.PKCS7(128).padder()
        ref = Cipher(algorithms.SM4(kv), modes.CBC(iv)).encryptor().update(p.update(data) + p.finalize())
        ct = key.encrypt(data, mechanism=M.RACENTRE_SM4_CBC_PAD, mechanism_param=iv)
        assert ct == ref
        assert key.decrypt(ct, mechanism=M.RACENTRE_SM4_CBC_PAD, mechanism_param=iv) == data


def test_aes_modes_and_keygen(session):
    for bits in (128, 192, 256):
        k = session.generate_key(KeyType.AES, bits, capabilities=ALL_CAPS,
                                 template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
        kv = k[Attribute.VALUE]
        assert len(kv) == bits // 8 and k[Attribute.VALUE_LEN] == bits // 8
        iv, data = os.urandom(16), os.urandom(48)
        assert k.encrypt(data, mechanism=Mechanism.AES_CBC, mechanism_param=iv) == \
            Cipher(algorithms.AES(kv), modes.CBC(iv)).encryptor().update(data)
        assert k.decrypt(k.encrypt(b"short", mechanism_param=iv), mechanism_param=iv) == b"short"   # CBC_PAD


def test_aes_key_wrap_vs_cryptography(session):
    kek_v = os.urandom(32)
    kek = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                 Attribute.VALUE: kek_v, Attribute.WRAP: True, Attribute.UNWRAP: True})
    target_v = os.urandom(32)
    target = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                    Attribute.VALUE: target_v, Attribute.EXTRACTABLE: True,
                                    Attribute.ENCRYPT: True})
    wrapped = kek.wrap_key(target, mechanism=Mechanism.AES_KEY_WRAP)
    assert wrapped == keywrap.aes_key_wrap(kek_v, target_v)
    wrapped_pad = kek.wrap_key(target, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    assert wrapped_pad == keywrap.aes_key_wrap_with_padding(kek_v, target_v)
    # unwrap a blob made by cryptography (odd length, RFC 5649)
    odd = os.urandom(21)
    blob = keywrap.aes_key_wrap_with_padding(kek_v, odd)
    k = kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.GENERIC_SECRET, blob,
                       mechanism=Mechanism.AES_KEY_WRAP_PAD,
                       template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    assert k[Attribute.VALUE] == odd
    k2 = kek.unwrap_key(ObjectClass.SECRET_KEY, KeyType.AES, wrapped, mechanism=Mechanism.AES_KEY_WRAP,
                        template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True})
    assert k2[Attribute.VALUE] == target_v


def test_ecdsa_p256_verified_by_cryptography(session):
    pub, priv = session.generate_keypair(KeyType.EC, 256, mechanism=Mechanism.EC_KEY_PAIR_GEN,
                                         public_template={Attribute.EC_PARAMS: P256_OID_DER})
    point = pub[Attribute.EC_POINT][2:]
    cpub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    msg = b"ecdsa message"
    sig = priv.sign(msg, mechanism=Mechanism.ECDSA_SHA256)
    assert len(sig) == 64
    cpub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")),
                msg, ec.ECDSA(hashes.SHA256()))
    digest = hashlib.sha256(msg).digest()
    sig2 = priv.sign(digest, mechanism=Mechanism.ECDSA)
    cpub.verify(encode_dss_signature(int.from_bytes(sig2[:32], "big"), int.from_bytes(sig2[32:], "big")),
                msg, ec.ECDSA(hashes.SHA256()))
    assert pub.verify(msg, sig, mechanism=Mechanism.ECDSA_SHA256)
    assert pub.verify(digest, sig2, mechanism=Mechanism.ECDSA)


def test_ecdsa_p384_and_import(session):
    ck = ec.generate_private_key(ec.SECP384R1())
    from cryptography.hazmat.primitives import serialization
    point = ck.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    pub = session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: KeyType.EC,
                                 Attribute.EC_PARAMS: bytes.fromhex("06052B81040022"),
                                 Attribute.EC_POINT: b"\x04\x61" + point, Attribute.VERIFY: True})
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    r, s = decode_dss_signature(ck.sign(b"p384", ec.ECDSA(hashes.SHA384())))
    assert pub.verify(b"p384", r.to_bytes(48, "big") + s.to_bytes(48, "big"), mechanism=Mechanism.ECDSA_SHA384)


def test_rsa_pkcs1_and_pss_verified_by_cryptography(session):
    pub, priv = session.generate_keypair(KeyType.RSA, 2048)
    n = int.from_bytes(pub[Attribute.MODULUS], "big")
    e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
    assert pub[Attribute.MODULUS_BITS] == 2048
    cpub = rsa.RSAPublicNumbers(e, n).public_key()
    msg = b"rsa message"
    sig = priv.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS)
    cpub.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
    sig = priv.sign(msg, mechanism=Mechanism.SHA384_RSA_PKCS)
    cpub.verify(sig, msg, padding.PKCS1v15(), hashes.SHA384())
    pss = priv.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                    mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32))
    cpub.verify(pss, msg, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    pss0 = priv.sign(hashlib.sha256(msg).digest(), mechanism=Mechanism.RSA_PKCS_PSS,
                     mechanism_param=(Mechanism.SHA256, MGF.SHA256, 0))
    cpub.verify(pss0, msg, padding.PSS(padding.MGF1(hashes.SHA256()), 0), hashes.SHA256())
    assert pub.verify(msg, pss, mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                      mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32))
    with pytest.raises(MechanismParamInvalid):    # hash in params must match the mechanism's
        priv.sign(msg, mechanism=Mechanism.SHA256_RSA_PKCS_PSS, mechanism_param=(Mechanism.SHA384, MGF.SHA384, 48))
    # raw PKCS#1 v1.5 over a DigestInfo, and encryption
    ct = pub.encrypt(b"key material", mechanism=Mechanism.RSA_PKCS)
    assert priv.decrypt(ct, mechanism=Mechanism.RSA_PKCS) == b"key material"


def test_hmac(session):
    kv = os.urandom(32)
    k = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                               Attribute.VALUE: kv, Attribute.SIGN: True, Attribute.VERIFY: True})
    mac = k.sign(b"data", mechanism=Mechanism.SHA256_HMAC)
    assert mac == hmac.new(kv, b"data", "sha256").digest()
    assert k.verify(b"data", mac, mechanism=Mechanism.SHA256_HMAC)
    assert not k.verify(b"datA", mac, mechanism=Mechanism.SHA256_HMAC)
    assert k.sign(b"data", mechanism=M.RACENTRE_SM3_HMAC) == hmac.new(kv, b"data", "sm3").digest()
    g = session.generate_key(KeyType.GENERIC_SECRET, 256, mechanism=Mechanism.GENERIC_SECRET_KEY_GEN,
                             capabilities=ALL_CAPS)
    assert g.verify(b"x", g.sign(b"x", mechanism=Mechanism.SHA256_HMAC), mechanism=Mechanism.SHA256_HMAC)


def test_mechanism_list_and_info(token):
    mechs = token.slot.get_mechanisms()
    for m in (M.SM2_KEY_PAIR_GEN, M.SM2_SM3, M.SM2_SIGN_RAW, M.SM2_ENCRYPT, M.SM3, M.SM4_KEY_GEN, M.SM4_ECB,
              M.SM4_CBC, Mechanism.ECDSA, Mechanism.AES_KEY_WRAP_PAD, Mechanism.SHA256_RSA_PKCS_PSS):
        assert m in mechs
    info = token.slot.get_mechanism_info(M.SM2_SM3)
    assert info.min_key_length == 256 and info.max_key_length == 256
    from pkcs11 import MechanismFlag
    assert MechanismFlag.SIGN in info.flags and MechanismFlag.VERIFY in info.flags
    assert MechanismFlag.WRAP in token.slot.get_mechanism_info(M.SM4_ECB).flags
    with pytest.raises(MechanismInvalid):
        token.slot.get_mechanism_info(Mechanism.DES3_ECB)


def test_random(session):
    a, b = session.generate_random(256), session.generate_random(256)
    assert len(a) == 32 and a != b
    session.seed_random(b"extra entropy")


def test_rsa_private_key_import_and_p384_keygen(session):
    ck = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pn = ck.private_numbers()

    def b(v):
        return v.to_bytes((v.bit_length() + 7) // 8, "big")
    priv = session.create_object({
        Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.RSA, Attribute.SIGN: True,
        Attribute.MODULUS: b(pn.public_numbers.n), Attribute.PUBLIC_EXPONENT: b(pn.public_numbers.e),
        Attribute.PRIVATE_EXPONENT: b(pn.d), Attribute.PRIME_1: b(pn.p), Attribute.PRIME_2: b(pn.q),
        Attribute.EXPONENT_1: b(pn.dmp1), Attribute.EXPONENT_2: b(pn.dmq1), Attribute.COEFFICIENT: b(pn.iqmp)})
    assert priv[Attribute.LOCAL] is False and priv[Attribute.ALWAYS_SENSITIVE] is False
    sig = priv.sign(b"imported", mechanism=Mechanism.SHA512_RSA_PKCS)
    ck.public_key().verify(sig, b"imported", padding.PKCS1v15(), hashes.SHA512())
    pub, priv384 = session.generate_keypair(KeyType.EC, 384, mechanism=Mechanism.EC_KEY_PAIR_GEN,
                                            public_template={Attribute.EC_PARAMS: bytes.fromhex("06052B81040022")})
    cpub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), pub[Attribute.EC_POINT][2:])
    s = priv384.sign(b"p384", mechanism=Mechanism.ECDSA_SHA384)
    assert len(s) == 96
    cpub.verify(encode_dss_signature(int.from_bytes(s[:48], "big"), int.from_bytes(s[48:], "big")),
                b"p384", ec.ECDSA(hashes.SHA384()))
