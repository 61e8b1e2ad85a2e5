"""Error behaviour: CKA_SENSITIVE/CKA_EXTRACTABLE enforcement and the attribute change rules,
unknown mechanisms, key-type mismatches, bad handles, NULL pointers, the output-length
convention (NULL buffer / CKR_BUFFER_TOO_SMALL) and bad templates - all without crashing."""

from __future__ import annotations

import ctypes
import os

import pytest
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (AttributeReadOnly, AttributeSensitive, AttributeTypeInvalid, AttributeValueInvalid,
                               KeyTypeInconsistent, MechanismInvalid, TemplateIncomplete, TemplateInconsistent)

from softtoken_helpers import (CKK_SM2, CKK_SM4, CKR_CURVE_NOT_SUPPORTED, ALL_CAPS, M, SM2_OID_DER, Raw,
                               ec_point_xy, gen_sm2, raises_rv, sm2_public_template)
from test_mechanisms import sm4_key

CKR_OK = 0
CKR_ARGUMENTS_BAD = 0x7
CKR_KEY_HANDLE_INVALID = 0x60
CKR_OBJECT_HANDLE_INVALID = 0x82
CKR_OPERATION_NOT_INITIALIZED = 0x91
CKR_SESSION_HANDLE_INVALID = 0xB3
CKR_BUFFER_TOO_SMALL = 0x150
CKR_MECHANISM_INVALID = 0x70
CKR_SIGNATURE_INVALID = 0xC0


class CK_MECHANISM(ctypes.Structure):
    _fields_ = [("mechanism", ctypes.c_ulong), ("pParameter", ctypes.c_void_p), ("ulParameterLen", ctypes.c_ulong)]


class CK_ATTRIBUTE(ctypes.Structure):
    _fields_ = [("type", ctypes.c_ulong), ("pValue", ctypes.c_void_p), ("ulValueLen", ctypes.c_ulong)]


def test_sensitive_and_extractable(session):
    pub, priv = gen_sm2(session)
    with pytest.raises(AttributeSensitive):
        priv[Attribute.VALUE]
    assert pub[Attribute.EC_POINT]                         # public parts are readable
    with pytest.raises(AttributeReadOnly):
        priv[Attribute.SENSITIVE] = False                  # true -> false never
    with pytest.raises(AttributeReadOnly):
        priv[Attribute.EXTRACTABLE] = True                 # false -> true never
    # a non-sensitive but non-extractable key still hides its value
    k = sm4_key(session, os.urandom(16), {Attribute.EXTRACTABLE: False})
    with pytest.raises(AttributeSensitive):
        k[Attribute.VALUE]
    # non-sensitive + extractable: readable; then sensitive false -> true is allowed
    kv = os.urandom(16)
    k2 = sm4_key(session, kv)
    assert k2[Attribute.VALUE] == kv
    k2[Attribute.SENSITIVE] = True
    with pytest.raises(AttributeSensitive):
        k2[Attribute.VALUE]
    assert k2[Attribute.ALWAYS_SENSITIVE] is False
    # generated secret keys default to sensitive and not extractable
    g = session.generate_key(CKK_SM4, 128, mechanism=M.SM4_KEY_GEN, capabilities=ALL_CAPS)
    assert g[Attribute.SENSITIVE] is True and g[Attribute.EXTRACTABLE] is False
    with pytest.raises(AttributeSensitive):
        g[Attribute.VALUE]


def test_label_and_id_changes_persist(session, token_dir):
    pub, priv = gen_sm2(session, store=True, label="before")
    priv[Attribute.LABEL] = "after"
    priv[Attribute.ID] = b"\x42"
    assert priv[Attribute.LABEL] == "after"
    from softtoken_helpers import run_py
    r = run_py("t = lib.get_slots()[0].get_token()\n"
               "with t.open(user_pin='1234') as s:\n"
               "    k = s.get_key(label='after', object_class=pkcs11.ObjectClass.PRIVATE_KEY)\n"
               "    print(k[pkcs11.Attribute.ID].hex(), len(k.sign(b'x', mechanism=M.SM2_SM3)))\n", token_dir)
    assert r.stdout.split() == ["42", "64"], r.stderr
    with pytest.raises(AttributeReadOnly):
        priv[Attribute.KEY_TYPE] = KeyType.RSA
    with pytest.raises(AttributeReadOnly):
        pub[Attribute.EC_POINT] = b"\x04\x41\x04" + bytes(64)


def test_unknown_mechanism_and_key_type_mismatch(session):
    pub, priv = gen_sm2(session)
    with pytest.raises(MechanismInvalid):
        priv.sign(b"x", mechanism=Mechanism.DSA_SHA1)
    with pytest.raises(MechanismInvalid):
        session.digest(b"x", mechanism=Mechanism.SHA224)
    k = sm4_key(session, os.urandom(16))
    with pytest.raises(KeyTypeInconsistent):
        k.encrypt(bytes(16), mechanism=Mechanism.AES_ECB)
    rpub, rpriv = session.generate_keypair(KeyType.RSA, 2048)
    with pytest.raises(KeyTypeInconsistent):
        rpriv.sign(b"x", mechanism=M.SM2_SM3)
    with pytest.raises(KeyTypeInconsistent):
        priv.sign(b"x", mechanism=Mechanism.SHA256_RSA_PKCS)
    with pytest.raises(KeyTypeInconsistent):            # SM4 mechanism, AES key
        session.generate_key(KeyType.AES, 128, capabilities=ALL_CAPS).encrypt(bytes(16), mechanism=M.SM4_ECB)


def test_bad_templates(session):
    with pytest.raises(TemplateIncomplete):
        session.create_object({Attribute.KEY_TYPE: CKK_SM2, Attribute.LABEL: "no class"})
    with pytest.raises(TemplateIncomplete):
        session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: CKK_SM2})
    with pytest.raises(AttributeValueInvalid):          # not on the curve
        session.create_object(sm2_public_template(bytes(range(64))))
    with pytest.raises(AttributeValueInvalid):
        session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: CKK_SM4,
                               Attribute.VALUE: b"short"})
    with pytest.raises(TemplateInconsistent):           # CKK_SM2 with the P-256 curve
        t = sm2_public_template(bytes(64))
        t[Attribute.EC_PARAMS] = bytes.fromhex("06082A8648CE3D030107")
        session.create_object(t)
    with raises_rv(CKR_CURVE_NOT_SUPPORTED):
        session.generate_keypair(KeyType.EC, 256, mechanism=Mechanism.EC_KEY_PAIR_GEN,
                                 public_template={Attribute.EC_PARAMS: bytes.fromhex("06052B8104000A")})
    with pytest.raises(AttributeTypeInvalid):
        session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.MODULUS: b"\x01"})
    with pytest.raises(AttributeReadOnly):              # CKA_LOCAL is set by the token only
        session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: CKK_SM4,
                               Attribute.VALUE: bytes(16), Attribute.LOCAL: True})


def test_certificate_and_data_objects(session):
    cert = session.create_object({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.CERTIFICATE_TYPE: 0,
                                  Attribute.VALUE: b"\x30\x03\x02\x01\x01", Attribute.LABEL: "cert",
                                  Attribute.SUBJECT: b"\x30\x00", Attribute.ID: b"\x01"})
    assert cert[Attribute.VALUE] == b"\x30\x03\x02\x01\x01"
    found = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: b"\x01"}))
    assert len(found) == 1
    d = session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.VALUE: b"blob",
                               Attribute.APPLICATION: "racentre", Attribute.LABEL: "d"})
    d[Attribute.VALUE] = b"changed"
    assert d[Attribute.VALUE] == b"changed"
    d.destroy()
    assert not list(session.get_objects({Attribute.LABEL: "d"}))


def test_find_objects_templates(session):
    gen_sm2(session, label="a", id_=b"\x01")
    gen_sm2(session, label="b", id_=b"\x02")
    assert len(list(session.get_objects({Attribute.KEY_TYPE: CKK_SM2}))) == 4
    assert len(list(session.get_objects({Attribute.ID: b"\x02"}))) == 2
    assert len(list(session.get_objects({Attribute.ID: b"\x02", Attribute.CLASS: ObjectClass.PUBLIC_KEY}))) == 1
    assert not list(session.get_objects({Attribute.LABEL: "nope"}))


# ---- raw calls: handles, NULL pointers, output-length convention ------------------------------

def _raw_session(raw):
    h = ctypes.c_ulong()
    assert raw.dll.C_OpenSession(ctypes.c_ulong(0), ctypes.c_ulong(6), None, None, ctypes.byref(h)) == CKR_OK
    return h


def test_raw_bad_handles_and_null_pointers(session):
    pub, priv = gen_sm2(session)       # logs the token in (login state is per token)
    raw = Raw()
    h = _raw_session(raw)
    mech = CK_MECHANISM(M.SM2_SM3, None, 0)
    assert raw.dll.C_SignInit(ctypes.c_ulong(999999), ctypes.byref(mech), ctypes.c_ulong(1)) == CKR_SESSION_HANDLE_INVALID
    assert raw.dll.C_SignInit(h, ctypes.byref(mech), ctypes.c_ulong(999999)) == CKR_KEY_HANDLE_INVALID
    assert raw.dll.C_SignInit(h, ctypes.byref(mech), ctypes.c_ulong(0)) == CKR_KEY_HANDLE_INVALID
    attr = CK_ATTRIBUTE(0, None, 0)
    assert raw.dll.C_GetAttributeValue(h, ctypes.c_ulong(999999), ctypes.byref(attr), ctypes.c_ulong(1)) == \
        CKR_OBJECT_HANDLE_INVALID
    assert raw.dll.C_GetAttributeValue(h, ctypes.c_ulong(1), None, ctypes.c_ulong(1)) == CKR_ARGUMENTS_BAD
    assert raw.dll.C_Sign(h, b"x", ctypes.c_ulong(1), None, None) == CKR_OPERATION_NOT_INITIALIZED
    assert raw.dll.C_GetTokenInfo(ctypes.c_ulong(0), None) == CKR_ARGUMENTS_BAD
    assert raw.dll.C_GetSlotList(ctypes.c_ubyte(0), None, None) == CKR_ARGUMENTS_BAD
    assert raw.dll.C_CreateObject(h, None, ctypes.c_ulong(3), None) == CKR_ARGUMENTS_BAD
    # a template attribute with a NULL value and a length
    bad = (CK_ATTRIBUTE * 1)(CK_ATTRIBUTE(0, None, 8))
    out = ctypes.c_ulong()
    assert raw.dll.C_CreateObject(h, bad, ctypes.c_ulong(1), ctypes.byref(out)) != CKR_OK
    unknown = CK_MECHANISM(0x8FFFFFFF, None, 0)
    assert raw.dll.C_SignInit(h, ctypes.byref(unknown), ctypes.c_ulong(1)) == CKR_MECHANISM_INVALID
    assert raw.dll.C_CloseSession(h) == CKR_OK
    assert raw.dll.C_CloseSession(h) == CKR_SESSION_HANDLE_INVALID


def test_raw_output_length_convention(session):
    pub, priv = gen_sm2(session)
    raw = Raw()
    h = _raw_session(raw)
    # the private key's handle: find it through python-pkcs11's object
    mech = CK_MECHANISM(M.SM2_SM3, None, 0)
    assert raw.dll.C_SignInit(h, ctypes.byref(mech), ctypes.c_ulong(priv.handle)) == CKR_OK
    n = ctypes.c_ulong(0)
    assert raw.dll.C_Sign(h, b"msg", ctypes.c_ulong(3), None, ctypes.byref(n)) == CKR_OK and n.value == 64
    small = ctypes.create_string_buffer(10)
    n.value = 10
    assert raw.dll.C_Sign(h, b"msg", ctypes.c_ulong(3), small, ctypes.byref(n)) == CKR_BUFFER_TOO_SMALL
    assert n.value == 64
    buf = ctypes.create_string_buffer(64)
    n.value = 64
    assert raw.dll.C_Sign(h, b"msg", ctypes.c_ulong(3), buf, ctypes.byref(n)) == CKR_OK      # still active
    assert pub.verify(b"msg", buf.raw, mechanism=M.SM2_SM3)
    assert raw.dll.C_Sign(h, b"msg", ctypes.c_ulong(3), buf, ctypes.byref(n)) == CKR_OPERATION_NOT_INITIALIZED
    # destroyed key: its handle is invalid afterwards
    priv.destroy()
    assert raw.dll.C_SignInit(h, ctypes.byref(mech), ctypes.c_ulong(priv.handle)) == CKR_KEY_HANDLE_INVALID
    raw.dll.C_CloseSession(h)


def test_verify_rejects_garbage_signatures(session):
    pub, priv = gen_sm2(session)
    xy = ec_point_xy(pub)
    assert xy
    n = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
    for sig in (bytes(64), b"\xff" * 64, n.to_bytes(32, "big") * 2, os.urandom(64)):
        assert not pub.verify(b"m", sig, mechanism=M.SM2_SM3)
    for sig in (b"", b"\x30\x44", bytes(65)):
        assert not pub.verify(b"m", sig, mechanism=M.SM2_SM3)
    assert SM2_OID_DER
