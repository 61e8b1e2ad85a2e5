"""KeyManager against real tokens: our SM2 software token and SoftHSMv2, for the algorithms both have."""
from __future__ import annotations

import secrets
import threading

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from hsm import HsmError, KeyNotFound, KeyRef, MechanismUnsupported
from pkicore import algorithm, verify_signature
from tests.threads import run_threads


def _label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def test_ecdsa_p256_sign_verified_by_cryptography(any_km):
    info = any_km.generate_key_pair(_label("ec"), "ec-p256")
    assert info.algorithm == "ec-p256" and info.sensitive and not info.extractable
    sig = any_km.sign(info.label, b"payload")
    pub = serialization.load_der_public_key(info.public_key_info)
    pub.verify(sig, b"payload", ec.ECDSA(hashes.SHA256()))
    assert any_km.verify(info.label, b"payload", sig)
    assert not any_km.verify(info.label, b"payloaD", sig)
    assert not any_km.verify(info.label, b"payload", b"\x30\x00")


def test_ecdsa_p384(any_km):
    info = any_km.generate_key_pair(_label("ec384"), "ec-p384")
    sig = any_km.sign(info.label, b"x", "ecdsa-sha384")
    assert verify_signature(info.public_key_info, algorithm("ecdsa-sha384"), b"x", sig)


def test_rsa_pkcs1_and_pss_verified_by_cryptography(any_km):
    info = any_km.generate_key_pair(_label("rsa"), "rsa-2048")
    pub = serialization.load_der_public_key(info.public_key_info)
    assert pub.key_size == 2048
    sig = any_km.sign(info.label, b"doc")
    pub.verify(sig, b"doc", padding.PKCS1v15(), hashes.SHA256())
    pss = any_km.sign(info.label, b"doc", "rsa-pss-sha256")
    pub.verify(pss, b"doc", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    assert any_km.verify(info.label, b"doc", pss, "rsa-pss-sha256")


def test_aes_key_is_sensitive_and_listed(any_km):
    label = _label("kek")
    info = any_km.generate_secret_key(label, "aes-256")
    assert info.algorithm == "aes-256" and info.sensitive and not info.extractable
    assert label in {k.label for k in any_km.list_keys()}


def test_find_by_label_id_and_uri(any_km):
    info = any_km.generate_key_pair(_label("find"), "ec-p256")
    assert any_km.find_key(info.label).key_id == info.key_id
    uri = KeyRef(label=info.label, key_id=info.key_id).uri("racentre-test")
    assert any_km.find_key(uri).label == info.label
    assert any_km.public_key_info(KeyRef(key_id=info.key_id)) == info.public_key_info


def test_missing_key_and_duplicate_label_are_clear_errors(any_km):
    with pytest.raises(KeyNotFound, match="no private key"):
        any_km.sign("no-such-key", b"x")
    info = any_km.generate_key_pair(_label("dup"), "ec-p256")
    with pytest.raises(HsmError, match="already exists"):
        any_km.generate_key_pair(info.label, "ec-p256")
    assert any_km.find_key(info.label).key_id == info.key_id  # the original is untouched


def test_unknown_algorithm_and_mechanism(any_km):
    with pytest.raises(MechanismUnsupported):
        any_km.generate_key_pair("x", "dsa-1024")
    info = any_km.generate_key_pair(_label("mech"), "ec-p256")
    with pytest.raises(MechanismUnsupported):
        any_km.sign(info.label, b"x", "no-such-mechanism")


def test_delete_key(any_km):
    info = any_km.generate_key_pair(_label("del"), "ec-p256")
    any_km.sign(info.label, b"warm the cache")
    any_km.delete_key(info.label)
    with pytest.raises(KeyNotFound):
        any_km.sign(info.label, b"x")


def test_random_is_from_the_token(any_km):
    a, b = any_km.random(32), any_km.random(32)
    assert len(a) == 32 and a != b


def test_concurrent_signing_from_many_threads(any_km):
    info = any_km.generate_key_pair(_label("thr"), "ec-p256")
    pub = serialization.load_der_public_key(info.public_key_info)
    count = [0]
    lock = threading.Lock()

    def worker(n):
        for i in range(25):
            msg = f"{n}-{i}".encode()
            pub.verify(any_km.sign(info.label, msg), msg, ec.ECDSA(hashes.SHA256()))
            with lock:
                count[0] += 1

    assert not run_threads(worker, 8)
    assert count[0] == 200


def test_info_lists_mechanisms(any_km):
    info = any_km.info()
    assert info.token == "racentre-test"
    assert "EC_KEY_PAIR_GEN" in info.mechanisms or "ec-keygen" in info.mechanisms
