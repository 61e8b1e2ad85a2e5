"""KMC artefacts checked by outside tools: Bouncy Castle verifies the KMC's SignerInfo signature over
the exact signed bytes (BcVerify sm2-sig; its `cms` subcommand reads SignedData only), the GM/T 0014
message signatures and the KMC certificate; OpenSSL decrypts the envelope's SM2Cipher with the
subscriber key it made itself, and the SM4-ECB(d) opens to d with d·G = Q."""
from __future__ import annotations

import datetime as dt
import secrets
import subprocess

import pytest
from asn1crypto import pem

from gmt0014 import messages as m
from gmt0014.client import InProcessTransport, KmcClient
from kms.endpoint import Gmt0014Endpoint
from kms.identity import self_signed_certificate
from pkicore.envelope import parse_signed_and_enveloped, parse_sm2_enveloped_key, signed_content
from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_verify_many, require_bc
from tests.unit.kms.helpers import escrow_one, make_escrow, wipe
from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm4_ecb_decrypt


@pytest.fixture
def kmc(softtoken_km, db):
    wipe(db)
    return make_escrow(softtoken_km, db)


def test_envelope_opens_with_openssl(kmc, tmp_path):
    d_sub, spki_sub = openssl_sm2_key(tmp_path / "sub.pem")
    delivery = escrow_one(kmc, spki_sub)
    env = parse_sm2_enveloped_key(delivery.enveloped_key)
    (tmp_path / "c").write_bytes(env.sym_encrypted_key)
    sm4_key = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", str(tmp_path / "sub.pem"),
                              "-in", str(tmp_path / "c")], check=True, capture_output=True).stdout
    d = int.from_bytes(sm4_ecb_decrypt(sm4_key, env.encrypted_private_key), "big")
    assert mul(d) == public_point(delivery.public_key_info)
    # a flipped bit in C2 is refused by OpenSSL (C3 check)
    bad = bytearray(env.sym_encrypted_key)
    bad[-1] ^= 1
    (tmp_path / "bad").write_bytes(bytes(bad))
    assert subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", str(tmp_path / "sub.pem"),
                           "-in", str(tmp_path / "bad")], capture_output=True).returncode != 0


def test_bouncy_castle_verifies_kmc_signatures(kmc, softtoken_km, tmp_path):
    require_bc()
    _, spki_sub = openssl_sm2_key(tmp_path / "sub.pem")
    ca_label = f"ca-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(ca_label, "sm2")
    ca_cert = self_signed_certificate(softtoken_km, ca_label, (("common_name", "Interop CA"),))
    service = Gmt0014Endpoint(kmc, [ca_cert])
    client = KmcClient(InProcessTransport(service), ca_certificate=ca_cert,
                       sign=lambda d: softtoken_km.sign(ca_label, d), kmc_certificate=kmc.certificate)
    now = dt.datetime.now(dt.timezone.utc)
    req = client.build_request([m.ApplyKey(secrets.randbits(64), spki_sub, now, now + dt.timedelta(days=30))],
                               task_no=31337)
    resp = service.handle(req)
    [ret] = client.parse_response(resp, 31337)
    sed = parse_signed_and_enveloped(ret.signed_and_enveloped)

    files = {
        "kmc.pem": pem.armor("CERTIFICATE", kmc.certificate), "ca.pem": pem.armor("CERTIFICATE", ca_cert),
        "sed-signed.bin": signed_content(sed), "sed-sig.der": sed.signature,
        "ks-request.der": m.CARequest.load(req)["ks_request"].dump(),
        "ca-sig.der": m.CARequest.load(req)["signature_value"].native,
        "ks-respond.der": m.KMRespond.load(resp)["ks_respond"].dump(),
        "kmc-sig.der": m.KMRespond.load(resp)["signature_value"].native,
        "tampered.bin": bytes([signed_content(sed)[0] ^ 1]) + signed_content(sed)[1:],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    p = lambda n: str(tmp_path / n)  # noqa: E731
    results = bc_verify_many([
        ["cert", p("kmc.pem"), p("kmc.pem")],
        ["sm2-sig", p("kmc.pem"), p("sed-signed.bin"), p("sed-sig.der")],
        ["sm2-sig", p("ca.pem"), p("ks-request.der"), p("ca-sig.der")],
        ["sm2-sig", p("kmc.pem"), p("ks-respond.der"), p("kmc-sig.der")],
        ["sm2-sig", p("kmc.pem"), p("tampered.bin"), p("sed-sig.der")],
    ])
    for r in results[:4]:
        assert_bc_ok(r)
    assert_bc_fails(results[4])
