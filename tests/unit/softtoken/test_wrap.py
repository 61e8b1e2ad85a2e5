"""Key wrapping as the key-escrow centre uses it: SM2 private key under SM4-ECB/CBC (the
GB/T 35276 SM2EnvelopedKey sm2EncryptedPrivateKey = SM4(d)), SM4 key under SM2 encryption (DER
SM2Cipher), AES key wrap with padding of an SM2 key as PKCS#8, and the extractability rules."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import keywrap
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (KeyUnextractable, WrappedKeyInvalid,
                               WrappedKeyLenRange, WrappingKeyTypeInconsistent)

from softtoken_helpers import (CKR_KEY_FUNCTION_NOT_PERMITTED, ALL_CAPS, raises_rv, CKK_SM2, CKK_SM4, M, SM2_OID_DER, ec_point_xy, gen_sm2, gmssl_verify,
                               sm2_public_template)
from test_mechanisms import sm4_key


def _sm2_d_from_gmssl_check(xy: bytes, d: bytes) -> bool:
    from gmssl import sm2 as gsm2
    return gsm2.CryptSM2(private_key=d.hex(), public_key="")._kg(
        int.from_bytes(d, "big"), gsm2.default_ecc_table["g"]) == xy.hex()


@pytest.mark.parametrize("mode", ["ecb", "cbc"])
def test_sm2_private_key_under_sm4(session, mode):
    kv = os.urandom(16)
    kek = sm4_key(session, kv)
    pub, priv = gen_sm2(session, extractable=True)
    xy = ec_point_xy(pub)
    iv = os.urandom(16)
    mech = M.SM4_ECB if mode == "ecb" else M.SM4_CBC
    param = None if mode == "ecb" else iv
    blob = kek.wrap_key(priv, mechanism=mech, mechanism_param=param)
    assert len(blob) == 32                       # SM4(d), no padding
    cm = modes.ECB() if mode == "ecb" else modes.CBC(iv)
    d = Cipher(algorithms.SM4(kv), cm).decryptor().update(blob)
    assert _sm2_d_from_gmssl_check(xy, d)        # the plaintext is the scalar d of this key pair

    # unwrap (as CKK_SM2, and as CKK_EC + SM2 params) -> same public key, signatures verify
    for kt, extra in ((CKK_SM2, {}), (KeyType.EC, {Attribute.EC_PARAMS: SM2_OID_DER})):
        tmpl = {Attribute.SIGN: True, Attribute.DECRYPT: True, **extra}
        k = kek.unwrap_key(ObjectClass.PRIVATE_KEY, kt, blob, mechanism=mech, mechanism_param=param,
                           template=tmpl)
        assert ec_point_xy(k) == xy
        assert k[Attribute.LOCAL] is False and k[Attribute.SENSITIVE] is True
        sig = k.sign(b"escrowed", mechanism=M.SM2_SM3)
        assert gmssl_verify(xy, sig, b"escrowed")
        assert pub.verify(b"escrowed", sig, mechanism=M.SM2_SM3)
        ct = pub.encrypt(b"to the escrowed key", mechanism=M.SM2_ENCRYPT)
        assert k.decrypt(ct, mechanism=M.SM2_ENCRYPT) == b"to the escrowed key"

    # a public key object can be derived from the unwrapped private key's point
    p2 = session.create_object(sm2_public_template(ec_point_xy(k)))
    assert p2.verify(b"escrowed", sig, mechanism=M.SM2_SM3)


def test_unwrap_envelope_made_outside(session):
    """A KMC-style envelope produced outside the token (SM4-ECB of d) unwraps to the right key."""
    from gmssl import sm2 as gsm2
    d = int.from_bytes(os.urandom(32), "big") % (0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122) + 1
    xy = bytes.fromhex(gsm2.CryptSM2(private_key="", public_key="")._kg(d, gsm2.default_ecc_table["g"]))
    kv = os.urandom(16)
    blob = Cipher(algorithms.SM4(kv), modes.ECB()).encryptor().update(d.to_bytes(32, "big"))
    kek = sm4_key(session, kv)
    k = kek.unwrap_key(ObjectClass.PRIVATE_KEY, CKK_SM2, blob, mechanism=M.SM4_ECB, template={Attribute.SIGN: True})
    assert ec_point_xy(k) == xy
    assert gmssl_verify(xy, k.sign(b"m", mechanism=M.SM2_SM3), b"m")
    with pytest.raises((WrappedKeyInvalid, WrappedKeyLenRange)):
        kek.unwrap_key(ObjectClass.PRIVATE_KEY, CKK_SM2, blob[:16], mechanism=M.SM4_ECB)
    with pytest.raises((WrappedKeyInvalid, WrappedKeyLenRange)):
        kek.unwrap_key(ObjectClass.PRIVATE_KEY, CKK_SM2, blob + b"x", mechanism=M.SM4_ECB)
    zero = Cipher(algorithms.SM4(kv), modes.ECB()).encryptor().update(bytes(32))   # d = 0 is not a key
    with pytest.raises(WrappedKeyInvalid):
        kek.unwrap_key(ObjectClass.PRIVATE_KEY, CKK_SM2, zero, mechanism=M.SM4_ECB)


def test_sm4_key_under_sm2_encrypt(session):
    pub, priv = gen_sm2(session)
    # the recipient's public key arrives as a session object (as from a certificate)
    rpub = session.create_object(sm2_public_template(ec_point_xy(pub), "recipient"))
    kv = os.urandom(16)
    sym = sm4_key(session, kv)
    blob = rpub.wrap_key(sym, mechanism=M.SM2_ENCRYPT)
    assert blob[0] == 0x30
    # independent decryption: gmssl (C1C3C2 raw) after unpacking the DER SM2Cipher
    from asn1crypto.core import Integer, OctetString, Sequence

    class SM2Cipher(Sequence):
        _fields = [("x", Integer), ("y", Integer), ("hash", OctetString), ("ct", OctetString)]
    c = SM2Cipher.load(blob)
    assert len(c["hash"].native) == 32 and len(c["ct"].native) == 16
    k = priv.unwrap_key(ObjectClass.SECRET_KEY, CKK_SM4, blob, mechanism=M.SM2_ENCRYPT,
                        template={Attribute.SENSITIVE: False, Attribute.EXTRACTABLE: True,
                                  Attribute.ENCRYPT: True, Attribute.DECRYPT: True})
    assert k[Attribute.VALUE] == kv
    assert k[Attribute.KEY_TYPE] == CKK_SM4 and k[Attribute.VALUE_LEN] == 16
    data = os.urandom(32)
    assert k.encrypt(data, mechanism=M.SM4_ECB) == sym.encrypt(data, mechanism=M.SM4_ECB)
    bad = bytearray(blob)
    bad[-1] ^= 0xFF
    with pytest.raises(WrappedKeyInvalid):
        priv.unwrap_key(ObjectClass.SECRET_KEY, CKK_SM4, bytes(bad), mechanism=M.SM2_ENCRYPT)
    with pytest.raises(WrappingKeyTypeInconsistent):     # SM2_ENCRYPT needs an SM2 public key
        sym.wrap_key(sym, mechanism=M.SM2_ENCRYPT)


def test_sm2_key_under_aes_key_wrap_pad_is_pkcs8(session):
    kek_v = os.urandom(32)
    kek = session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: KeyType.AES,
                                 Attribute.VALUE: kek_v, Attribute.WRAP: True, Attribute.UNWRAP: True})
    pub, priv = gen_sm2(session, extractable=True)
    blob = kek.wrap_key(priv, mechanism=Mechanism.AES_KEY_WRAP_PAD)
    p8 = keywrap.aes_key_unwrap_with_padding(kek_v, blob)
    from asn1crypto.keys import PrivateKeyInfo
    info = PrivateKeyInfo.load(p8)
    assert info["private_key_algorithm"]["algorithm"].dotted == "1.2.840.10045.2.1"
    assert info["private_key_algorithm"]["parameters"].chosen.dotted == "1.2.156.10197.1.301"
    k = kek.unwrap_key(ObjectClass.PRIVATE_KEY, CKK_SM2, blob, mechanism=Mechanism.AES_KEY_WRAP_PAD,
                       template={Attribute.SIGN: True})
    assert ec_point_xy(k) == ec_point_xy(pub)
    assert pub.verify(b"m", k.sign(b"m", mechanism=M.SM2_SM3), mechanism=M.SM2_SM3)


def test_wrap_rules(session):
    kek = sm4_key(session, os.urandom(16))
    _, locked = gen_sm2(session)                      # default: not extractable
    with pytest.raises(KeyUnextractable):
        kek.wrap_key(locked, mechanism=M.SM4_ECB)
    nowrap = sm4_key(session, os.urandom(16))
    nowrap[Attribute.WRAP] = False          # python object keeps its wrap_key method; the token refuses
    _, ok = gen_sm2(session, extractable=True)
    with raises_rv(CKR_KEY_FUNCTION_NOT_PERMITTED):
        nowrap.wrap_key(ok, mechanism=M.SM4_ECB)
    # extractable can go true -> false, never back
    ok[Attribute.EXTRACTABLE] = False
    with pytest.raises(KeyUnextractable):
        kek.wrap_key(ok, mechanism=M.SM4_ECB)
    # secret key under SM4 (aligned value)
    inner = sm4_key(session, os.urandom(16))
    assert len(kek.wrap_key(inner, mechanism=M.SM4_ECB)) == 16
    # AES KEK with SM4 mechanism is refused
    aes = session.generate_key(KeyType.AES, 128, capabilities=ALL_CAPS)
    with pytest.raises(WrappingKeyTypeInconsistent):
        aes.wrap_key(inner, mechanism=M.SM4_ECB)
