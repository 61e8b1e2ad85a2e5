"""pkicore.keys SPKI helpers: the cached-prefix encoding and the SM2 fast parse give exactly what
asn1crypto gives (build and strict parse), for SM2, P-256 and P-384 points."""
from __future__ import annotations

import pytest
from asn1crypto import keys as asn1_keys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pkicore import keys as pk
from pkicore.sm2 import GX, GY
from tests.unit.kms.subscriber import mul


def _sm2_points(n):
    for k in range(2, 2 + n):
        x, y = mul(k * 7919)
        yield b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def _asn1_parse(der):
    info = asn1_keys.PublicKeyInfo.load(der, strict=True)
    return info["algorithm"]["parameters"].chosen.native, info["public_key"].native


def test_sm2_spki_equals_asn1crypto_and_parses_back():
    g = b"\x04" + GX.to_bytes(32, "big") + GY.to_bytes(32, "big")
    for point in [g, *_sm2_points(4)]:
        der = pk.public_key_info_from_point("sm2p256v1", point)
        assert der == pk._spki_asn1("sm2p256v1", point)
        assert pk.point_from_public_key_info(der) == ("sm2p256v1", point) == _asn1_parse(der)
    with pytest.raises(ValueError):
        pk.public_key_info_from_point("sm2p256v1", g[:-1] + bytes([g[-1] ^ 1]))   # off the curve


@pytest.mark.parametrize("curve, name", [(ec.SECP256R1(), "secp256r1"), (ec.SECP384R1(), "secp384r1")])
def test_nist_spki_equals_asn1crypto_and_openssl(curve, name):
    for _ in range(3):
        pub = ec.generate_private_key(curve).public_key()
        point = pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        der = pk.public_key_info_from_point(name, point)
        assert der == pk._spki_asn1(name, point) == pub.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert pk.point_from_public_key_info(der) == (name, point)


def test_fast_parse_does_not_accept_other_shapes():
    point = next(_sm2_points(1))
    der = pk.public_key_info_from_point("sm2p256v1", point)
    with pytest.raises(ValueError):
        pk.point_from_public_key_info(der + b"\x00")          # trailing garbage: strict parser refuses
    with pytest.raises(ValueError):
        pk.point_from_public_key_info(der[:-1])
