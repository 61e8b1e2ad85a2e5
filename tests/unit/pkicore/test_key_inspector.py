"""One key inspector (issue 16 §2): ``pkicore.keys.inspect_key`` says what a SubjectPublicKeyInfo is and
whether it is well formed, and every place that asks — the CA (``inspect_public_key``), the RA
(``check_public_key``), the KMC (envelope recipients) and the key manager (``wrap_to``/``encrypt_to``) —
gets its verdict from it: a valid key of each kind, and a failing twin for each way a key can be wrong."""
from __future__ import annotations

import pytest
from asn1crypto import core, keys as asn1_keys
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ca_bridge.certbuilder import inspect_public_key
from ca_bridge.errors import BadEncoding, UnsupportedKey
from hsm.errors import MechanismUnsupported
from hsm.keymanager import KeyManager
from kms.errors import EscrowError
from kms.escrow import _sm2_spki
from pkicore.errors import ErrorCode
from pkicore.keys import KeyProblem, inspect_key, point_from_public_key_info
from ra.csr import check_public_key
from ra.errors import CsrError
from tests.unit.ra.csr_tools import ec_key, rsa_key, spki_der, tongsuo_sm2_key, tongsuo_spki

SM2 = tongsuo_spki(tongsuo_sm2_key())
P256 = spki_der(ec_key())
P384 = spki_der(ec_key(ec.SECP384R1()))
RSA = spki_der(rsa_key(2048))


def _with(spki: bytes, *, point: bytes | None = None, params=None, algorithm: str | None = None) -> bytes:
    info = asn1_keys.PublicKeyInfo.load(spki)
    alg = {"algorithm": algorithm or info["algorithm"]["algorithm"].dotted,
           "parameters": params if params is not None else info["algorithm"]["parameters"]}
    return asn1_keys.PublicKeyInfo({"algorithm": alg, "public_key": point or info["public_key"].native}).dump()


def _sm2_point() -> bytes:
    return asn1_keys.PublicKeyInfo.load(SM2)["public_key"].native


@pytest.mark.parametrize("spki, family, curve, bits, name", [
    (SM2, "sm2", "sm2p256v1", 256, "sm2"), (P256, "ec", "secp256r1", 256, "ec-p256"),
    (P384, "ec", "secp384r1", 384, "ec-p384"), (RSA, "rsa", None, 2048, "rsa-2048"),
], ids=["sm2", "ec-p256", "ec-p384", "rsa-2048"])     # ids, not the generated keys: the same in every process
def test_valid_keys(spki, family, curve, bits, name):
    key = inspect_key(spki)
    assert (key.family, key.curve, key.bits, key.profile_name, key.spki) == (family, curve, bits, name, spki)
    assert inspect_public_key(spki).algorithm == name and inspect_public_key(spki).key_id == key.key_id
    assert check_public_key(spki).key_type == family
    if family != "rsa":
        assert point_from_public_key_info(spki) == (curve, key.point)


def _twins():
    point = _sm2_point()
    off_curve = point[:-1] + bytes([point[-1] ^ 1])
    compressed = bytes([2 + (point[-1] & 1)]) + point[1:33]
    body = SM2[2:]
    return [
        ("trailing data", SM2 + b"\x00", "encoding"),
        ("BER length", b"\x30\x81" + bytes([len(body)]) + body, "encoding"),
        ("not a SEQUENCE", b"\x04\x03abc", "encoding"),
        ("non-zero unused-bits count", SM2[:-66] + b"\x01" + point[:-1] + bytes([point[-1] & 0xFE]), "encoding"),
        ("SM2 point off the curve", _with(SM2, point=off_curve), "point"),
        ("SM2 point compressed", _with(SM2, point=compressed), "point"),
        ("P-256 point off the curve", _with(P256, point=b"\x04" + b"\x01" * 64), "point"),
        ("explicit curve parameters", _with(P256, params=asn1_keys.ECDomainParameters(
            name="implicit_ca", value=core.Null())), "unsupported"),
        ("secp521r1", spki_der(ec_key(ec.SECP521R1())), "unsupported"),
        ("SM2 OID as key algorithm", _with(SM2, algorithm="1.2.156.10197.1.301", params=core.Null()), "unsupported"),
        ("Ed25519", spki_der(ed25519.Ed25519PrivateKey.generate()), "unsupported"),
    ]


@pytest.mark.parametrize("what, spki, kind", _twins(), ids=[t[0] for t in _twins()])
def test_failing_twins_are_refused_the_same_way_everywhere(what, spki, kind):
    with pytest.raises(KeyProblem) as problem:
        inspect_key(spki)
    assert problem.value.kind == kind, str(problem.value)
    with pytest.raises(BadEncoding if kind == "encoding" else UnsupportedKey):
        inspect_public_key(spki)
    with pytest.raises(CsrError) as refused:
        check_public_key(spki)
    assert refused.value.code == (ErrorCode.UNSUPPORTED_ALGORITHM if kind == "unsupported" else ErrorCode.BAD_ENCODING)
    with pytest.raises(EscrowError):
        _sm2_spki(spki)
    with pytest.raises(MechanismUnsupported):
        KeyManager._outside_sm2_point(spki)


def test_sm2_only_places_refuse_other_valid_keys():
    for spki in (P256, RSA):
        with pytest.raises(EscrowError, match="must be an SM2 key"):
            _sm2_spki(spki)
        with pytest.raises(MechanismUnsupported, match="not an SM2 key"):
            KeyManager._outside_sm2_point(spki)
    assert _sm2_spki(SM2) == ("sm2p256v1", _sm2_point())
    assert KeyManager._outside_sm2_point(SM2) == _sm2_point()
