"""Token and PIN management (PKCS#11 v2.40 base 5.5/5.6): token info, C_InitToken, C_InitPIN,
C_SetPIN, C_Login/C_Logout for SO and user, wrong PIN, persisted retry counter, lock-out and
unlock by the SO, and re-initialisation wiping the token."""

from __future__ import annotations

import pytest
from pkcs11 import Attribute, ObjectClass, TokenFlag
from pkcs11.exceptions import (NoSuchKey, PinIncorrect, PinLenRange, PinLocked, TokenNotRecognised,
                               UserAlreadyLoggedIn, UserNotLoggedIn)

from conftest import SO_PIN, USER_PIN
from softtoken_helpers import M, Raw, ec_point_xy, gen_sm2, gmssl_verify, init_token, run_py, write_conf


def test_token_info(token, p11):
    assert token.manufacturer_id == "RA Centre"
    assert token.model == "SoftToken-SM2"
    assert token.label == "test"
    assert len(token.serial) == 16
    for f in (TokenFlag.TOKEN_INITIALIZED, TokenFlag.USER_PIN_INITIALIZED, TokenFlag.LOGIN_REQUIRED, TokenFlag.RNG):
        assert f in token.flags
    assert TokenFlag.USER_PIN_LOCKED not in token.flags
    other = p11.get_slots()[1].get_token()
    assert TokenFlag.TOKEN_INITIALIZED not in other.flags
    with pytest.raises(TokenNotRecognised):
        other.open()
    info = p11.get_slots()[0]
    assert info.manufacturer_id == "RA Centre"


def test_login_logout_and_private_objects(token):
    with token.open(rw=True, user_pin=USER_PIN) as s:
        gen_sm2(s, store=True, label="k1")
        assert s.get_key(label="k1", object_class=ObjectClass.PRIVATE_KEY)
    with token.open(rw=True) as s:
        # logged out: the private key is invisible, the public key is not
        with pytest.raises(NoSuchKey):
            s.get_key(label="k1", object_class=ObjectClass.PRIVATE_KEY)
        assert s.get_key(label="k1", object_class=ObjectClass.PUBLIC_KEY)
    with token.open(rw=True, user_pin=USER_PIN) as s:
        with pytest.raises(UserAlreadyLoggedIn):
            with token.open(user_pin=USER_PIN):
                pass


def test_wrong_pin_counts_and_resets(token):
    with pytest.raises(PinIncorrect):
        token.open(rw=True, user_pin="9999")   # python-pkcs11 leaks the session on a failed login
    t = token.slot.get_token()
    assert TokenFlag.USER_PIN_COUNT_LOW in t.flags
    with token.open(user_pin=USER_PIN):
        pass
    assert TokenFlag.USER_PIN_COUNT_LOW not in token.slot.get_token().flags
    with pytest.raises(PinIncorrect):
        token.open(rw=True, so_pin="87654321")
    assert TokenFlag.SO_PIN_COUNT_LOW in token.slot.get_token().flags


def test_lockout_persisted_and_unlocked_by_so(p11, token_dir):
    write_conf(token_dir, max_pin_failures=3)
    p11.reinitialize()
    token = init_token(p11, 0, SO_PIN, USER_PIN, "lock")
    with token.open(rw=True, user_pin=USER_PIN) as s:
        pub, _ = gen_sm2(s, store=True, label="survivor")
        xy = ec_point_xy(pub)
    with pytest.raises(PinIncorrect):
        token.open(rw=True, user_pin="0000")
    assert TokenFlag.USER_PIN_FINAL_TRY not in token.slot.get_token().flags
    with pytest.raises(PinIncorrect):
        token.open(rw=True, user_pin="0000")
    assert TokenFlag.USER_PIN_FINAL_TRY in token.slot.get_token().flags
    with pytest.raises(PinLocked):
        token.open(rw=True, user_pin="0000")
    with pytest.raises(PinLocked):
        token.open(rw=True, user_pin=USER_PIN)   # even the right PIN
    assert TokenFlag.USER_PIN_LOCKED in token.slot.get_token().flags
    # another process sees the lock (counter lives in the token directory)
    r = run_py("t = lib.get_slots()[0].get_token()\n"
               "try:\n    t.open(user_pin='1234')\nexcept pkcs11.exceptions.PinLocked:\n    print('LOCKED')\n",
               token_dir)
    assert "LOCKED" in r.stdout, r.stderr
    # the SO resets the user PIN; objects encrypted under the master key survive
    with token.open(rw=True, so_pin=SO_PIN) as so:
        so.init_pin("4321")
    t = token.slot.get_token()
    assert TokenFlag.USER_PIN_LOCKED not in t.flags and TokenFlag.USER_PIN_COUNT_LOW not in t.flags
    with token.open(user_pin="4321") as s:
        k = s.get_key(label="survivor", object_class=ObjectClass.PRIVATE_KEY)
        assert gmssl_verify(xy, k.sign(b"after unlock", mechanism=M.SM2_SM3), b"after unlock")


def test_set_pin_user_and_so(token):
    with token.open(rw=True, user_pin=USER_PIN) as s:
        pub, _ = gen_sm2(s, store=True, label="pinned")
        xy = ec_point_xy(pub)
        s.set_pin(USER_PIN, "new-user-pin")
    with pytest.raises(PinIncorrect):
        token.open(rw=True, user_pin=USER_PIN)
    with token.open(user_pin="new-user-pin") as s:
        k = s.get_key(label="pinned", object_class=ObjectClass.PRIVATE_KEY)
        assert gmssl_verify(xy, k.sign(b"m", mechanism=M.SM2_SM3), b"m")
    with token.open(rw=True, so_pin=SO_PIN) as so:
        so.set_pin(SO_PIN, "new-so-pin")
        with pytest.raises(PinLenRange):
            so.set_pin("new-so-pin", "1")
    with pytest.raises(PinIncorrect):
        token.open(rw=True, so_pin=SO_PIN)
    with token.open(rw=True, so_pin="new-so-pin") as so:
        so.init_pin("another")
    with token.open(user_pin="another") as s:
        assert s.get_key(label="pinned", object_class=ObjectClass.PRIVATE_KEY)


def test_reinit_wipes_objects(token, p11):
    with token.open(rw=True, user_pin=USER_PIN) as s:
        gen_sm2(s, store=True, label="gone")
        s.create_object({Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.LABEL: "data",
                         Attribute.VALUE: b"payload", Attribute.PRIVATE: False})
    serial = token.serial
    assert Raw().init_token(0, "wrong-so-pin", "again") == 0xA0          # CKR_PIN_INCORRECT
    assert Raw().init_token(0, SO_PIN, "again") == 0
    t = p11.get_slots()[0].get_token()
    assert t.label == "again" and t.serial == serial
    assert TokenFlag.USER_PIN_INITIALIZED not in t.flags
    with t.open(rw=True, so_pin=SO_PIN) as so:
        so.init_pin(USER_PIN)
        assert list(so.get_objects()) == []
    with t.open(user_pin=USER_PIN) as s:
        assert list(s.get_objects()) == []


def test_init_token_refused_with_open_session(token):
    with token.open():
        assert Raw().init_token(0, SO_PIN, "busy") == 0xB6                # CKR_SESSION_EXISTS


def test_user_functions_need_login(token):
    with token.open(rw=True) as s:
        with pytest.raises(UserNotLoggedIn):
            gen_sm2(s, store=True)      # private key objects need the user
