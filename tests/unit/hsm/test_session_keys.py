"""Session key pairs (generate_key_pair(token=False)): sensitive, wrappable, never written to the token's
storage, invisible to another process, and gone when the session that made them closes."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from pkcs11 import Attribute, ObjectClass

from hsm import KeyManager, KeyNotFound
from pkicore import point_from_public_key_info

ROOT = Path(__file__).resolve().parents[3]

LOOKUP = """
import sys
from hsm import KeyManager, KeyNotFound
from hsm.config import HsmConfig, SoftTokenConfig
from pkicore.secret import Secret
module, token, pin, tokdir, label = sys.argv[1:6]
km = KeyManager(HsmConfig(module=module, token=token, pin=Secret(pin), softtoken=SoftTokenConfig(dir=tokdir)))
try:
    km.find_key(label)
    print("found")
except KeyNotFound:
    print("absent")
km.close()
"""


def _stored_files(config) -> dict[str, float]:
    root = Path(config.softtoken.dir)
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def _lookup_in_other_process(config, label: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", LOOKUP, config.module, config.token, config.pin.reveal(),
                          config.softtoken.dir, label], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _all_private_labels(km: KeyManager) -> set[str]:
    """Labels of every private key this process can see, session objects included (list_keys shows
    token objects only)."""
    return km.pool.run("listing", lambda pooled: {
        o[Attribute.LABEL] for o in list(pooled.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))})


def test_session_pair_is_sensitive_wrappable_and_not_persisted(softtoken_config, softtoken_km):
    kek = softtoken_km.generate_secret_key(f"sess-kek-{secrets.token_hex(4)}", "sm4")
    label = f"sess-pair-{secrets.token_hex(4)}"
    before = _stored_files(softtoken_config)
    info = softtoken_km.generate_key_pair(label, "sm2", extractable=True, token=False)
    try:
        assert _stored_files(softtoken_config) == before          # nothing written to the token's storage
        assert info.sensitive and info.extractable and info.pair
        assert point_from_public_key_info(info.public_key_info)[0] == "sm2p256v1"
        assert softtoken_km.find_key(label).sensitive
        assert label not in {k.label for k in softtoken_km.list_keys()}   # not a token object
        assert label in _all_private_labels(softtoken_km)
        # the clear value cannot be read, only wrapped under an HSM key
        def read_value(pooled):
            obj = next(iter(pooled.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                         Attribute.LABEL: label})))
            return obj[Attribute.VALUE]
        with pytest.raises(Exception) as exc:
            softtoken_km.pool.run("reading a sensitive value", read_value)
        assert "ensitive" in type(exc.value).__name__ + str(exc.value)
        wrapped = softtoken_km.wrap(kek.label, label, "sm4-ecb")
        assert len(wrapped) == 32
        unwrapped = softtoken_km.unwrap(kek.label, wrapped, "sm4-ecb", label=label + "-u", algorithm="sm2",
                                        token=False)
        assert unwrapped.public_key_info == info.public_key_info
        softtoken_km.delete_key(unwrapped.label)
        assert _lookup_in_other_process(softtoken_config, label) == "absent"
    finally:
        softtoken_km.delete_key(label)
    with pytest.raises(KeyNotFound):
        softtoken_km.find_key(label)
    assert _stored_files(softtoken_config) == before
    softtoken_km.delete_key(kek.label)


def test_token_pair_is_persisted_and_seen_by_another_process(softtoken_config, softtoken_km):
    """The contrast: the default (token=True) writes the pair and another process finds it."""
    label = f"tok-pair-{secrets.token_hex(4)}"
    before = _stored_files(softtoken_config)
    softtoken_km.generate_key_pair(label, "sm2")
    try:
        assert _stored_files(softtoken_config) != before
        assert _lookup_in_other_process(softtoken_config, label) == "found"
    finally:
        softtoken_km.delete_key(label)


def test_session_pair_vanishes_when_its_session_closes(softtoken_config, softtoken_km):
    own = KeyManager(softtoken_config)        # its own pool of sessions in this process
    label = f"sess-close-{secrets.token_hex(4)}"
    own.generate_key_pair(label, "sm2", extractable=True, token=False)
    # session objects are visible to every session of the application (PKCS#11 v2.40 §4.4) ...
    assert softtoken_km.find_key(label).label == label
    own.close()                               # ... and destroyed with the session that made them
    with pytest.raises(KeyNotFound):
        softtoken_km.find_key(label)
    assert label not in _all_private_labels(softtoken_km)


def test_destroying_a_key_forgets_only_its_cached_handles(softtoken_config):
    """delete_key drops the destroyed object's cached handles in every pooled session (whatever
    reference they were found with) and keeps the others', so long-lived keys are not looked up
    again after every temporary key."""
    from hsm import KeyRef
    km = KeyManager(softtoken_config)
    try:
        keep = km.generate_key_pair(f"keep-{secrets.token_hex(4)}", "sm2", extractable=True, token=False)
        temp = km.generate_key_pair(f"temp-{secrets.token_hex(4)}", "sm2", extractable=True, token=False)
        km.sign(keep.label, b"m")
        km.sign(temp.label, b"m")                                  # cached under its label
        km.sign(KeyRef(key_id=temp.key_id), b"m")                  # and under its id
        cached = lambda: {(k[0].label, k[0].key_id) for p in km.pool._all for k in p.objects}  # noqa: E731
        assert (keep.label, None) in cached() and (temp.label, None) in cached()
        assert (None, temp.key_id) in cached()
        km.delete_key(f"pkcs11:id=%{'%'.join(f'{b:02x}' for b in temp.key_id)}")   # destroyed by id
        assert (temp.label, None) not in cached() and (None, temp.key_id) not in cached()
        assert (keep.label, None) in cached()
        with pytest.raises(KeyNotFound):
            km.sign(temp.label, b"m")
        assert km.verify(keep.label, b"m", km.sign(keep.label, b"m"))
        km.delete_key(keep.label)
    finally:
        km.close()


def test_generate_enveloped_pair_leaves_only_wrapped_copies(softtoken_config, softtoken_km, tmp_path):
    """One session: pair + SM4 key made, d wrapped under the KEK and to the recipient, everything
    destroyed. The recipient opens it with independent code (own SM2 decryption, pyca SM4) and finds
    d with d*G = Q; the archive copy unwraps to the same public key; no object and no file is left."""
    from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm2_decrypt, sm4_ecb_decrypt
    d_sub, spki_sub = openssl_sm2_key(tmp_path / "recipient.pem")
    kek = softtoken_km.generate_secret_key(f"env-kek-{secrets.token_hex(4)}", "sm4")
    label = f"env-pair-{secrets.token_hex(4)}"
    before_files, before_keys = _stored_files(softtoken_config), _all_private_labels(softtoken_km)
    made = softtoken_km.generate_enveloped_pair(kek.label, spki_sub, label=label)
    assert _stored_files(softtoken_config) == before_files
    assert _all_private_labels(softtoken_km) == before_keys and label not in before_keys
    with pytest.raises(KeyNotFound):
        softtoken_km.find_key(label)
    sym = sm2_decrypt(d_sub, made.sym_encrypted_key)
    d = int.from_bytes(sm4_ecb_decrypt(sym, made.encrypted_private_key), "big")
    assert 1 <= d and mul(d) == public_point(made.public_key_info)
    back = softtoken_km.unwrap(kek.label, made.archived, "sm4-ecb", label=label + "-u", algorithm="sm2", token=False)
    assert back.public_key_info == made.public_key_info and back.sensitive and not back.extractable
    softtoken_km.delete_key(back.label)
    # two calls never give the same pair or envelope key
    other = softtoken_km.generate_enveloped_pair(kek.label, spki_sub)
    assert other.public_key_info != made.public_key_info and other.archived != made.archived
    softtoken_km.delete_key(kek.label)
