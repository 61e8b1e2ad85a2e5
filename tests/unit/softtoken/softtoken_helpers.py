"""Test helpers for the RA Centre soft token: vendor-code registration for python-pkcs11 0.10.1,
library build/location, ctypes access to the C_* functions python-pkcs11 does not wrap
(C_InitToken, raw calls with odd arguments) and SM2 reference arithmetic (GB/T 32918)."""

from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass

REPO = Path(__file__).resolve().parents[3]
SOFTTOKEN_DIR = REPO / "hsm" / "softtoken"
LIB_PATH = SOFTTOKEN_DIR / "build" / "libracentre-softtoken.so"
HELPER_DIR = Path(__file__).resolve().parent

# --- vendor codes: mirror of hsm/softtoken/include/racentre_vendor.h (Sansec values) ---------
VENDOR_KEY_TYPES = {"SM2": 0x80000004, "SM4": 0x80000106}
VENDOR_MECHANISMS = {
    "SM2_KEY_PAIR_GEN": 0x80008001,
    "SM2_SM3": 0x80008100,
    "SM2_SIGN_RAW": 0x80008104,
    "SM2_ENCRYPT": 0x80008200,
    "SM3": 0x80009001,
    "SM4_KEY_GEN": 0x80000107,
    "SM4_ECB": 0x80000108,
    "SM4_CBC": 0x80000109,
    # ours, not Sansec's
    "RACENTRE_SM4_CBC_PAD": 0x80520001,
    "RACENTRE_SM3_HMAC": 0x80520002,
}
SM2_OID_DER = bytes.fromhex("06082A811CCF5501822D")
P256_OID_DER = bytes.fromhex("06082A8648CE3D030107")
DEFAULT_ID = b"1234567812345678"

SIGN_VERIFY = MechanismFlag.SIGN | MechanismFlag.VERIFY
ALL_CAPS = (MechanismFlag.SIGN | MechanismFlag.VERIFY | MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
            | MechanismFlag.WRAP | MechanismFlag.UNWRAP)


def _extend_enum(enum_cls, name: str, value: int):
    """Add a member to an IntEnum after creation (python-pkcs11's enums are closed)."""
    existing = enum_cls._value2member_map_.get(value)
    if existing is not None:
        return existing
    member = int.__new__(enum_cls, value)
    member._name_ = name
    member._value_ = value
    enum_cls._value2member_map_[value] = member
    enum_cls._member_map_[name] = member
    enum_cls._member_names_.append(name)
    type.__setattr__(enum_cls, name, member)   # EnumType.__setattr__ refuses new members
    return member


def register_vendor_codes() -> None:
    """Make Mechanism(0x80008100), KeyType(0x80000004) ... valid in python-pkcs11 0.10.1."""
    for name, value in VENDOR_KEY_TYPES.items():
        _extend_enum(KeyType, name, value)
    for name, value in VENDOR_MECHANISMS.items():
        _extend_enum(Mechanism, name, value)
    # default capabilities, so generate_key/unwrap_key work without `capabilities=`
    from pkcs11.defaults import DEFAULT_KEY_CAPABILITIES
    DEFAULT_KEY_CAPABILITIES.setdefault(KeyType.SM2, MechanismFlag.SIGN | MechanismFlag.VERIFY
                                        | MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
                                        | MechanismFlag.WRAP | MechanismFlag.UNWRAP)
    DEFAULT_KEY_CAPABILITIES.setdefault(KeyType.SM4, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
                                        | MechanismFlag.WRAP | MechanismFlag.UNWRAP)


register_vendor_codes()
CKK_SM2 = KeyType.SM2
CKK_SM4 = KeyType.SM4
M = Mechanism


# --- build / load ------------------------------------------------------------------------------
def build_library() -> Path:
    subprocess.run(["make", "-s", "-C", str(SOFTTOKEN_DIR)], check=True)
    return LIB_PATH


def write_conf(token_dir: Path, **kw) -> None:
    conf = {"pbkdf2_iterations": 1000, "slots": 2}
    conf.update(kw)
    token_dir.mkdir(parents=True, exist_ok=True)
    (token_dir / "softtoken.conf").write_text("".join(f"{k} = {v}\n" for k, v in conf.items()))


class Raw:
    """ctypes view of the exported C_* entry points (same library instance as python-pkcs11)."""

    def __init__(self, path: Path = LIB_PATH):
        self.dll = ctypes.CDLL(str(path))
        for fn in ("C_InitToken", "C_Initialize", "C_Finalize", "C_OpenSession", "C_CloseSession",
                   "C_Login", "C_SignInit", "C_Sign", "C_Verify", "C_VerifyInit", "C_GetAttributeValue",
                   "C_FindObjectsInit", "C_GetTokenInfo", "C_Encrypt", "C_EncryptInit", "C_Decrypt",
                   "C_DecryptInit", "C_DestroyObject", "C_GenerateRandom", "C_CreateObject",
                   "C_SetAttributeValue", "C_GetSlotList"):
            getattr(self.dll, fn).restype = ctypes.c_ulong

    def init_token(self, slot: int, so_pin: str, label: str) -> int:
        lab = label.encode().ljust(32, b" ")[:32]
        pin = so_pin.encode()
        return self.dll.C_InitToken(ctypes.c_ulong(slot), pin, ctypes.c_ulong(len(pin)), lab)


def init_token(lib, slot: int = 0, so_pin: str = "12345678", user_pin: str = "1234", label: str = "test"):
    rv = Raw().init_token(slot, so_pin, label)
    assert rv == 0, hex(rv)
    token = lib.get_slots()[slot].get_token()
    with token.open(rw=True, so_pin=so_pin) as s:
        s.init_pin(user_pin)
    return lib.get_slots()[slot].get_token()


def run_py(code: str, token_dir: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter (new library instance) on token_dir."""
    env = dict(os.environ)
    env["RACENTRE_SOFTTOKEN_DIR"] = str(token_dir)
    env["PYTHONPATH"] = str(HELPER_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    prelude = "import pkcs11\nfrom softtoken_helpers import *\nlib = pkcs11.lib(str(LIB_PATH))\n"
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True,
                          timeout=timeout)


# --- SM2 reference arithmetic (GB/T 32918.1 / .2), independent of the token ---------------------
SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
SM2_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SM2_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
SM2_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def sm2_z(pub_xy: bytes, uid: bytes = DEFAULT_ID) -> bytes:
    entl = (len(uid) * 8).to_bytes(2, "big")
    fields = b"".join(v.to_bytes(32, "big") for v in (SM2_A, SM2_B, SM2_GX, SM2_GY))
    return sm3(entl + uid + fields + pub_xy)


def sm2_e(pub_xy: bytes, msg: bytes, uid: bytes = DEFAULT_ID) -> bytes:
    return sm3(sm2_z(pub_xy, uid) + msg)


def ec_point_xy(key) -> bytes:
    """X||Y from CKA_EC_POINT (DER OCTET STRING of 04||X||Y)."""
    raw = key[Attribute.EC_POINT]
    assert raw[0] == 0x04
    if raw[1] == 0x81:
        body = raw[3:]
    else:
        body = raw[2:]
    assert body[0] == 0x04
    return bytes(body[1:])


def gmssl_verify(pub_xy: bytes, sig: bytes, msg: bytes, uid: bytes = DEFAULT_ID) -> bool:
    """Verify raw r||s with the pure-Python gmssl package over our own e = SM3(Z||M)."""
    from gmssl import sm2 as gsm2
    c = gsm2.CryptSM2(private_key="", public_key=pub_xy.hex(), asn1=False)
    c.public_key = pub_xy.hex()   # gmssl 3.2.2 does public_key.lstrip("04"): eats X's leading 0/4 digits
    return bool(c.verify(sig.hex(), sm2_e(pub_xy, msg, uid)))


def raw_to_der(sig: bytes) -> bytes:
    n = len(sig) // 2

    def enc_int(v: bytes) -> bytes:
        v = v.lstrip(b"\0") or b"\0"
        if v[0] & 0x80:
            v = b"\0" + v
        return b"\x02" + bytes([len(v)]) + v
    body = enc_int(sig[:n]) + enc_int(sig[n:])
    return b"\x30" + bytes([len(body)]) + body


def sm2_public_template(pub_xy: bytes, label: str = "pub", token: bool = False, key_type=None) -> dict:
    point = b"\x04" + pub_xy
    return {
        Attribute.CLASS: ObjectClass.PUBLIC_KEY,
        Attribute.KEY_TYPE: key_type if key_type is not None else CKK_SM2,
        Attribute.EC_PARAMS: SM2_OID_DER,
        Attribute.EC_POINT: b"\x04" + bytes([len(point)]) + point,
        Attribute.TOKEN: token,
        Attribute.LABEL: label,
        Attribute.VERIFY: True,
        Attribute.ENCRYPT: True,
        Attribute.WRAP: True,
    }


def gen_sm2(session, label: str = "sm2", store: bool = False, extractable: bool = False, id_: bytes = b"\x01"):
    return session.generate_keypair(
        CKK_SM2, 256, mechanism=M.SM2_KEY_PAIR_GEN, label=label, id=id_, store=store,
        capabilities=ALL_CAPS,
        public_template={Attribute.EC_PARAMS: SM2_OID_DER},
        private_template={Attribute.EXTRACTABLE: extractable},
    )


CKR_KEY_FUNCTION_NOT_PERMITTED = 0x68
CKR_ACTION_PROHIBITED = 0x1B
CKR_CURVE_NOT_SUPPORTED = 0x140


class raises_rv:
    """pytest.raises for CKR_ codes python-pkcs11 0.10.1 does not map to an exception class
    (e.g. CKR_KEY_FUNCTION_NOT_PERMITTED arrives as PKCS11Error('Unmapped error code 0x68'))."""

    def __init__(self, rv: int):
        self.rv = rv

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        from pkcs11.exceptions import PKCS11Error
        assert et is not None, f"expected CKR 0x{self.rv:x}"
        if not issubclass(et, PKCS11Error):
            return False
        assert f"0x{self.rv:x}" in str(ev), f"expected CKR 0x{self.rv:x}, got {et.__name__}: {ev}"
        return True
