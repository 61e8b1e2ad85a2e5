"""Persistent storage: token objects survive processes, other processes' objects become
visible, concurrent writers lose nothing, key material is encrypted at rest and bound to its
object, and a corrupted file gives a clear error without harming other objects."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import DeviceError, NoSuchKey, TokenNotRecognised

from conftest import USER_PIN
from softtoken_helpers import (CKK_SM2, HELPER_DIR, LIB_PATH, M, SM2_OID_DER, ec_point_xy, gen_sm2, gmssl_verify,
                               run_py)

OBJ_MAGIC = b"RCSTOBJ1"


def obj_files(token_dir):
    return sorted((token_dir / "slot0" / "objects").glob("*.obj"))


def file_with(token_dir, needle: bytes):
    hits = [f for f in obj_files(token_dir) if needle in f.read_bytes()]
    return hits


def split_record(raw: bytes):
    """magic | uid(16) | u32 clear_len | clear | u32 enc_len | enc | sha256"""
    assert raw[:8] == OBJ_MAGIC
    cl = int.from_bytes(raw[24:28], "big")
    clear = raw[28:28 + cl]
    el = int.from_bytes(raw[28 + cl:32 + cl], "big")
    enc = raw[32 + cl:32 + cl + el]
    return raw[:24], clear, enc


def join_record(head, clear, enc):
    import hashlib
    body = head + len(clear).to_bytes(4, "big") + clear + len(enc).to_bytes(4, "big") + enc
    return body + hashlib.sha256(body).digest()


def test_objects_persist_across_processes(session, token_dir):
    pub, _ = gen_sm2(session, store=True, label="persist")
    xy = ec_point_xy(pub)
    r = run_py(
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(user_pin='1234') as s:\n"
        "    k = s.get_key(label='persist', object_class=pkcs11.ObjectClass.PRIVATE_KEY)\n"
        "    print(k.sign(b'from another process', mechanism=M.SM2_SM3).hex())\n", token_dir)
    assert r.returncode == 0, r.stderr
    assert gmssl_verify(xy, bytes.fromhex(r.stdout.strip()), b"from another process")


def test_other_process_objects_become_visible(session, token_dir):
    with pytest.raises(NoSuchKey):
        session.get_key(label="late", object_class=ObjectClass.PRIVATE_KEY)
    r = run_py(
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(rw=True) as s:\n"   # already logged in? no: a new process has its own login state
        "    pass\n"
        "with t.open(rw=True, user_pin='1234') as s:\n"
        "    pub, priv = gen_sm2(s, store=True, label='late')\n"
        "    print(ec_point_xy(pub).hex())\n", token_dir)
    assert r.returncode == 0, r.stderr
    # same session, no re-initialisation: the generation counter tells us to rescan
    k = session.get_key(label="late", object_class=ObjectClass.PRIVATE_KEY)
    xy = bytes.fromhex(r.stdout.strip())
    assert gmssl_verify(xy, k.sign(b"seen", mechanism=M.SM2_SM3), b"seen")
    # and deletions by another process too
    r = run_py(
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(rw=True, user_pin='1234') as s:\n"
        "    for o in s.get_objects({pkcs11.Attribute.LABEL: 'late'}):\n"
        "        o.destroy()\n", token_dir)
    assert r.returncode == 0, r.stderr
    with pytest.raises(NoSuchKey):
        session.get_key(label="late", object_class=ObjectClass.PRIVATE_KEY)


def test_concurrent_writers_lose_nothing(session, token_dir):
    code = (
        "import sys\n"
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(rw=True, user_pin='1234') as s:\n"
        "    for i in range(25):\n"
        "        s.create_object({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.DATA, pkcs11.Attribute.TOKEN: True,\n"
        "                         pkcs11.Attribute.PRIVATE: True, pkcs11.Attribute.LABEL: f'{sys.argv[1]}-{i}',\n"
        "                         pkcs11.Attribute.VALUE: b'v' * i})\n"
        "        if i % 5 == 0:\n"
        "            gen_sm2(s, store=True, label=f'{sys.argv[1]}-key-{i}')\n")
    import os
    env = dict(os.environ, RACENTRE_SOFTTOKEN_DIR=str(token_dir), PYTHONPATH=str(HELPER_DIR))
    prelude = "import pkcs11\nfrom softtoken_helpers import *\nlib = pkcs11.lib(str(LIB_PATH))\n"
    procs = [subprocess.Popen([sys.executable, "-c", prelude + code, name], env=env, stderr=subprocess.PIPE)
             for name in ("a", "b", "c")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    labels = {o[Attribute.LABEL] for o in session.get_objects({Attribute.CLASS: ObjectClass.DATA})}
    assert labels == {f"{n}-{i}" for n in "abc" for i in range(25)}
    keys = list(session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    assert len(keys) == 15
    assert len(obj_files(token_dir)) == 75 + 30


def test_key_material_encrypted_at_rest(session, token_dir):
    d = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
    session.create_object({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: CKK_SM2,
                           Attribute.EC_PARAMS: SM2_OID_DER, Attribute.VALUE: d, Attribute.TOKEN: True,
                           Attribute.LABEL: "at-rest", Attribute.SIGN: True})
    secret = b"\x11" * 15 + b"SECRETVALUE\x22"
    session.create_object({Attribute.CLASS: ObjectClass.SECRET_KEY, Attribute.KEY_TYPE: 0x10,
                           Attribute.VALUE: secret, Attribute.TOKEN: True, Attribute.LABEL: "sec"})
    blob = b"".join(f.read_bytes() for f in (token_dir / "slot0").rglob("*") if f.is_file())
    assert b"at-rest" in blob                     # labels are not secret
    assert d not in blob and secret not in blob   # key values are


def test_swapped_secret_part_is_rejected(session, token_dir):
    gen_sm2(session, store=True, label="first-key")
    gen_sm2(session, store=True, label="second-key")
    # private-key records are the ones with an encrypted part
    p1 = [f for f in file_with(token_dir, b"first-key") if split_record(f.read_bytes())[2]][0]
    p2 = [f for f in file_with(token_dir, b"second-key") if split_record(f.read_bytes())[2]][0]
    h1, c1, e1 = split_record(p1.read_bytes())
    h2, c2, e2 = split_record(p2.read_bytes())
    p1.write_bytes(join_record(h1, c1, e2))        # first key's record with the second key's material
    r = run_py(
        "from pkcs11.exceptions import DeviceError\n"
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(user_pin='1234') as s:\n"
        "    k = s.get_key(label='first-key', object_class=pkcs11.ObjectClass.PRIVATE_KEY)\n"
        "    try:\n        k.sign(b'x', mechanism=M.SM2_SM3)\n    except DeviceError:\n        print('REFUSED')\n"
        "    k2 = s.get_key(label='second-key', object_class=pkcs11.ObjectClass.PRIVATE_KEY)\n"
        "    print(len(k2.sign(b'x', mechanism=M.SM2_SM3)))\n", token_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["REFUSED", "64"]
    assert "failed authentication" in r.stderr


@pytest.mark.parametrize("damage", ["flip_secret", "truncate", "garbage", "empty"])
def test_corrupted_object_file(session, token_dir, damage):
    pub_ok, _ = gen_sm2(session, store=True, label="healthy")
    gen_sm2(session, store=True, label="victim")
    victim = [f for f in file_with(token_dir, b"victim") if split_record(f.read_bytes())[2]][0]
    raw = bytearray(victim.read_bytes())
    if damage == "flip_secret":
        head, clear, enc = split_record(bytes(raw))
        enc = bytearray(enc)
        enc[20] ^= 0x40
        victim.write_bytes(join_record(head, clear, bytes(enc)))   # checksum fixed: only the AEAD notices
    elif damage == "truncate":
        victim.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        raw[40] ^= 0xFF
        victim.write_bytes(bytes(raw))
    else:
        victim.write_bytes(b"")
    r = run_py(
        "from pkcs11.exceptions import DeviceError, NoSuchKey\n"
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(user_pin='1234') as s:\n"
        "    try:\n"
        "        k = s.get_key(label='victim', object_class=pkcs11.ObjectClass.PRIVATE_KEY)\n"
        "        k.sign(b'x', mechanism=M.SM2_SM3)\n"
        "        print('SIGNED')\n"
        "    except DeviceError:\n        print('DEVICE_ERROR')\n"
        "    except NoSuchKey:\n        print('IGNORED')\n"
        "    h = s.get_key(label='healthy', object_class=pkcs11.ObjectClass.PRIVATE_KEY)\n"
        "    print(h.sign(b'still fine', mechanism=M.SM2_SM3).hex())\n", token_dir)
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[0] == ("DEVICE_ERROR" if damage == "flip_secret" else "IGNORED")
    assert gmssl_verify(ec_point_xy(pub_ok), bytes.fromhex(out[1]), b"still fine")
    assert "racentre-softtoken:" in r.stderr     # the damage is reported, with the file name
    assert victim.exists()                        # nothing is deleted behind the operator's back


def test_corrupted_token_file(session, token_dir):
    meta = token_dir / "slot0" / "token.meta"
    raw = bytearray(meta.read_bytes())
    raw[50] ^= 1
    meta.write_bytes(bytes(raw))
    r = run_py(
        "from pkcs11.exceptions import TokenNotRecognised\n"
        "try:\n    lib.get_slots()[0].get_token()\nexcept TokenNotRecognised:\n    print('NOT_RECOGNISED')\n"
        "print(lib.get_slots()[1].get_token().label == '')\n", token_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["NOT_RECOGNISED", "True"]


def test_session_objects_are_not_persisted(session, token_dir):
    before = len(obj_files(token_dir))
    gen_sm2(session, store=False, label="ephemeral")
    assert len(obj_files(token_dir)) == before
    assert TokenNotRecognised and DeviceError and LIB_PATH   # names used by run_py snippets


def test_private_data_object_value_updates_persist_sealed_and_are_seen_by_other_processes(session, token_dir):
    """What the audit anchor needs (racentre.audit): a private CKO_DATA object whose CKA_VALUE is replaced
    by C_SetAttributeValue; the new value is read by another process (C_FindObjectsInit rescans), it is not
    in clear in the object file, and editing the sealed part makes the object unusable, never forged."""
    obj = session.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: True,
                                 Attribute.LABEL: "anchor", Attribute.APPLICATION: "racentre.audit.anchor",
                                 Attribute.VALUE: b"counter=1"})
    obj[Attribute.VALUE] = b"counter=2 and a longer value"
    r = run_py(
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(rw=True, user_pin='1234') as s:\n"
        "    [o] = s.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.DATA, pkcs11.Attribute.LABEL: 'anchor'})\n"
        "    print(bytes(o[pkcs11.Attribute.VALUE]).decode())\n"
        "    o[pkcs11.Attribute.VALUE] = b'counter=3'\n", token_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "counter=2 and a longer value"
    [again] = session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: "anchor"})
    assert bytes(again[Attribute.VALUE]) == b"counter=3"
    [path] = file_with(token_dir, b"anchor")
    raw = path.read_bytes()
    assert b"counter=3" not in raw                          # a private data object's value is sealed at rest
    head, clear, enc = split_record(raw)
    forged = bytearray(enc)
    forged[-1] ^= 1
    path.write_bytes(join_record(head, clear, bytes(forged)))
    r = run_py(
        "t = lib.get_slots()[0].get_token()\n"
        "with t.open(user_pin='1234') as s:\n"
        "    [o] = s.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.DATA, pkcs11.Attribute.LABEL: 'anchor'})\n"
        "    try:\n"
        "        print(bytes(o[pkcs11.Attribute.VALUE]))\n"
        "    except pkcs11.exceptions.DeviceError:\n"
        "        print('unusable')\n", token_dir)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "unusable"
