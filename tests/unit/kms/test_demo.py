"""kms.demo writes its artefacts; the subscriber (OpenSSL key) opens the envelope to d with d·G = Q."""
from __future__ import annotations

import subprocess

from asn1crypto import pem

from kms.demo import write_demo_artefacts
from kms.endpoint import Gmt0014Endpoint
from kms.recovery import ApprovalBook
from kms.services import KmsParts
from pkicore.envelope import parse_sm2_enveloped_key
from tests.unit.kms.subscriber import mul, sm2_decrypt, sm4_ecb_decrypt
from asn1crypto import keys


def test_demo_artefacts(escrow, tmp_path):
    kmc = KmsParts(escrow, ApprovalBook(escrow.db, escrow.config), Gmt0014Endpoint(escrow))
    written = write_demo_artefacts(None, tmp_path, kmc=kmc)
    for name in ("subscriber-sign-key.pem", "enc-envelope.der", "enc-envelope-signed.der", "kmc.pem",
                 "recovered-envelope.der"):
        assert name in written and (tmp_path / name).stat().st_size > 0
    der = subprocess.run(["openssl", "pkey", "-in", str(tmp_path / "subscriber-sign-key.pem"), "-outform", "DER"],
                         check=True, capture_output=True).stdout
    d_sub = keys.ECPrivateKey.load(der)["private_key"].native
    env = parse_sm2_enveloped_key((tmp_path / "enc-envelope.der").read_bytes())
    d = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, env.sym_encrypted_key), env.encrypted_private_key), "big")
    pub = pem.unarmor((tmp_path / "enc-public-key.pem").read_bytes())[2]
    point = keys.PublicKeyInfo.load(pub)["public_key"].native
    assert mul(d) == (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))
    assert parse_sm2_enveloped_key((tmp_path / "recovered-envelope.der").read_bytes()).public_point == point
