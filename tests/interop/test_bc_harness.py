"""Tests of the Bouncy Castle verifier harness itself.

Every artefact here is made by OpenSSL (or taken from the GB/T 32918 known answer), never by our
code: the harness must accept the good ones and reject (exit 1, not a parse error) tampered ones.
All BC verifications of the module run in one JVM through ``bc_verify_many``.
"""

from __future__ import annotations

import hashlib
import subprocess
import time

import pytest
from asn1crypto import core

from .bouncycastle import (
    _build,
    assert_bc_fails,
    assert_bc_ok,
    bc_verify,
    bc_verify_many,
    require_bc,
)
from .openssl_cli import (
    ReferencePki,
    make_reference_pki,
    pem_to_der,
    require_openssl,
    run_openssl,
    sm2_public_from_private,
    sm2_raw_to_der,
    sm2_spki_der,
)

# GB/T 32918.5 Annex A / GM/T 0003.5 (REFERENCES.md §2)
KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_X = 0x09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020
KAT_Y = 0xCCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13
KAT_R = bytes.fromhex("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3")
KAT_S = bytes.fromhex("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA")
SM2_SM3 = "1.2.156.10197.1.501"


# ------------------------------------------------------------------ DER bits for the seal structures

def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    ln = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(ln)]) + ln + body


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def integer(v: int) -> bytes:
    return core.Integer(v).dump()


def ia5(s: str) -> bytes:
    return tlv(0x16, s.encode("ascii"))


def utf8(s: str) -> bytes:
    return tlv(0x0C, s.encode("utf-8"))


def octets(b: bytes) -> bytes:
    return tlv(0x04, b)


def bits(b: bytes) -> bytes:
    return tlv(0x03, b"\x00" + b)


def gtime(s: str) -> bytes:
    return tlv(0x18, s.encode("ascii"))


def oid(s: str) -> bytes:
    return core.ObjectIdentifier(s).dump()


def openssl_sm2_sign(pki: ReferencePki, key: str, data: bytes, name: str,
                     distid: str | None = "1234567812345678") -> bytes:
    pki.write(name + ".tbs", data)
    idopt = ["-pkeyopt", f"distid:{distid}"] if distid is not None else []
    run_openssl("pkeyutl", "-sign", "-inkey", pki[key], "-rawin", "-digest", "sm3", *idopt,
                "-in", pki[name + ".tbs"], "-out", pki.dir / (name + ".sig"), check=True)
    return (pki.dir / (name + ".sig")).read_bytes()


def make_seal_artefacts(pki: ReferencePki) -> None:
    """A GB/T 38540 SESeal (maker: SM2 root key) and an SES_Signature over it (signer: SM2 leaf),
    each signed by ``openssl pkeyutl``, plus one-bit-tampered copies."""
    maker_cert = pem_to_der(pki["sm2_root.pem"])
    signer_cert = pem_to_der(pki["sm2_leaf.pem"])
    seal_info = seq(
        seq(ia5("ES"), integer(4), ia5("RACTEST")),
        ia5("ES-0001"),
        seq(integer(1), utf8("测试专用章"), integer(1), seq(octets(signer_cert)),
            gtime("20250101000000Z"), gtime("20250101000000Z"), gtime("20350101000000Z")),
        seq(ia5("PNG"), octets(b"\x89PNG\r\n\x1a\n fake picture"), integer(40), integer(40)),
    )
    sig = openssl_sm2_sign(pki, "sm2.key", seal_info, "seal")
    seal = seq(seal_info, octets(maker_cert), oid(SM2_SM3), bits(sig))
    pki.write("seal.der", seal)
    pki.tampered("seal.der", "测试专用章".encode())
    tbs = seq(integer(4), seal, gtime("20250601120000Z"), bits(b"\x11" * 32), ia5("/Doc_0/Signs/Sign_0/Signature.xml"))
    sig2 = openssl_sm2_sign(pki, "sm2_leaf.key", tbs, "ses")
    pki.write("ses_sig.der", seq(tbs, octets(signer_cert), oid(SM2_SM3), bits(sig2)))
    pki.tampered("ses_sig.der", b"Signature.xml")
    # raw r||s in the BIT STRING is tolerated by the harness
    pki.write("seal_raw.der", seq(seal_info, octets(maker_cert), oid(SM2_SM3),
                                  bits(_der_sig_to_raw(sig))))


def make_sm2_cms(pki: ReferencePki, name: str, content: bytes, sig_alg: str, gm_types: bool,
                 distid: str | None = "1234567812345678") -> None:
    """An SM2 CMS SignedData assembled by hand (signed attributes signed by ``openssl pkeyutl``),
    in the PKCS#7 or the GM/T 0010 content-type flavour, with ``sig_alg`` as signatureAlgorithm."""
    from asn1crypto import x509

    cert_der = pem_to_der(pki["sm2_leaf.pem"])
    cert = x509.Certificate.load(cert_der)
    data_oid = "1.2.156.10197.6.1.4.2.1" if gm_types else "1.2.840.113549.1.7.1"
    signed_oid = "1.2.156.10197.6.1.4.2.2" if gm_types else "1.2.840.113549.1.7.2"
    sm3 = seq(oid("1.2.156.10197.1.401"))
    attrs = (seq(oid("1.2.840.113549.1.9.3"), tlv(0x31, oid(data_oid)))
             + seq(oid("1.2.840.113549.1.9.4"), tlv(0x31, octets(hashlib.new("sm3", content).digest()))))
    sig = openssl_sm2_sign(pki, "sm2_leaf.key", tlv(0x31, attrs), name, distid)
    signer_info = seq(integer(1), seq(cert.issuer.dump(), integer(cert.serial_number)), sm3,
                      tlv(0xA0, attrs), seq(oid(sig_alg)), octets(sig))
    signed_data = seq(integer(1), tlv(0x31, sm3), seq(oid(data_oid), tlv(0xA0, octets(content))),
                      tlv(0xA0, cert_der), tlv(0x31, signer_info))
    pki.write(name, seq(oid(signed_oid), tlv(0xA0, signed_data)))
    pki.tampered(name, content[:12])


def _der_sig_to_raw(der: bytes) -> bytes:
    from .openssl_cli import sm2_der_to_raw

    return sm2_der_to_raw(der)


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> ReferencePki:
    require_bc()
    require_openssl()
    p = make_reference_pki(tmp_path_factory.mktemp("openssl-pki"))
    # tampered copies: one bit inside the signed part, structure left parseable
    p.tampered("sm2.sig")                                   # last byte of s
    p.tampered("sm2.sig.raw")
    p.write("msg.flip", bytes([p["msg"].read_bytes()[0] ^ 1]) + p["msg"].read_bytes()[1:])
    p.tampered("sm2.csr", b"FlipTarget")
    p.tampered("ec.csr", b"FlipTarget")
    p.tampered("sm2_root.pem", b"FlipTarget", occurrence=-1)   # subject (issuer left intact)
    p.tampered("leaf.pem", b"FlipTarget")
    p.tampered("rsa_self.pem", b"Interop RSA Self", occurrence=-1)
    p.tampered("int.crl", bytes.fromhex("02045EED0001"))    # serial of the revoked entry
    p.tampered("ocsp.resp", bytes.fromhex("02041234ABCD"))  # CertID serial of the good leaf
    p.tampered("ocsp_ca.resp", bytes.fromhex("02041234ABCD"))
    p.tampered("cms.der", b"CMS content")                  # encapsulated content
    p.write("content.flip", p["content"].read_bytes().replace(b"FlipTarget", b"FlipTargeu"))
    p.tampered("ts.tsr", p.values["ts.sha256"])             # message imprint inside TSTInfo
    p.tampered("ts.token", p.values["ts.sha256"])
    p.write("ts.data.flip", p["ts.data"].read_bytes() + b"x")
    # GB/T 32918 known answer
    x, y = sm2_public_from_private(KAT_D)
    p.values["kat.xy"] = x.to_bytes(32, "big") + y.to_bytes(32, "big")
    p.write("kat.pub.der", sm2_spki_der(x, y))
    p.write("kat.msg", b"message digest")
    p.write("kat.sig", sm2_raw_to_der(KAT_R + KAT_S))
    p.write("kat.sig.raw", KAT_R + KAT_S)
    p.write("kat.sig.flip", sm2_raw_to_der(KAT_R[:-1] + bytes([KAT_R[-1] ^ 1]) + KAT_S))
    make_seal_artefacts(p)
    make_sm2_cms(p, "sm2_cms_501.der", b"SM2 CMS, PKCS#7 types, sm2-with-sm3\n", SM2_SM3, gm_types=False)
    make_sm2_cms(p, "sm2_cms_gm.der", b"SM2 CMS, GM/T 0010 types, sm2-1\n", "1.2.156.10197.1.301.1", gm_types=True)
    make_sm2_cms(p, "sm2_cms_emptyid.der", b"SM2 CMS signed with the empty ID\n", SM2_SM3, gm_types=False,
                 distid=None)
    return p


def _h(n: int) -> str:
    return f"{n:x}"


# name -> (argv builder, expected exit code, text expected in stdout (for 0) or stderr (for 1/2))
CASES = {
    # raw SM2 signatures made by openssl pkeyutl with distid
    "sm2_sig_ok": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig"]], 0, 'id="1234567812345678"'),
    "sm2_sig_der_key": (lambda p: ["sm2-sig", p["sm2.pub.der"], p["msg"], p["sm2.sig"]], 0, "OK"),
    "sm2_sig_raw": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig.raw"], "--raw"], 0, "OK"),
    "sm2_sig_flipped": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig.flip"]], 1, "invalid"),
    "sm2_sig_raw_flipped": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig.raw.flip"], "--raw"], 1, "invalid"),
    "sm2_sig_msg_flipped": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg.flip"], p["sm2.sig"]], 1, "invalid"),
    "sm2_sig_wrong_id": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig"], "--id", "1234567812345679"], 1, "invalid"),
    "sm2_sig_empty_id": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig"], "--id-hex", ""], 1, "invalid"),
    "sm2_sig_other_id_ok": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig.alice"], "--id", "ALICE123@YAHOO.COM"], 0, "ALICE"),
    "sm2_sig_other_id_default": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig.alice"]], 1, "invalid"),
    "sm2_sig_key_from_cert": (lambda p: ["sm2-sig", p["sm2_root.pem"], p["msg"], p["sm2.sig"]], 0, "OK"),
    "sm2_sig_p256_key": (lambda p: ["sm2-sig", p["leaf.pem"], p["msg"], p["sm2.sig"]], 1, "not an SM2 key"),
    "sm2_sig_wrong_key": (lambda p: ["sm2-sig", p["kat.pub.der"], p["msg"], p["sm2.sig"]], 1, "invalid"),
    # GB/T 32918 known answer
    "kat": (lambda p: ["sm2-sig", p["kat.pub.der"], p["kat.msg"], p["kat.sig"]], 0, "OK"),
    "kat_raw": (lambda p: ["sm2-sig", p["kat.pub.der"], p["kat.msg"], p["kat.sig.raw"], "--raw"], 0, "OK"),
    "kat_flipped": (lambda p: ["sm2-sig", p["kat.pub.der"], p["kat.msg"], p["kat.sig.flip"]], 1, "invalid"),
    "kat_wrong_msg": (lambda p: ["sm2-sig", p["kat.pub.der"], p["msg"], p["kat.sig"]], 1, "invalid"),
    # CSRs
    "csr_sm2": (lambda p: ["csr", p["sm2.csr"]], 0, "SM3withSM2"),
    "csr_sm2_empty_id": (lambda p: ["csr", p["sm2_emptyid.csr"]], 1, "invalid"),
    "csr_sm2_flipped": (lambda p: ["csr", p["sm2.csr.flip"]], 1, "invalid"),
    "csr_ecdsa": (lambda p: ["csr", p["ec.csr"]], 0, "SHA256WITHECDSA"),
    "csr_ecdsa_flipped": (lambda p: ["csr", p["ec.csr.flip"]], 1, "invalid"),
    # certificates
    "cert_sm2_self": (lambda p: ["cert", p["sm2_root.pem"], p["sm2_root.pem"]], 0, "SM3WITHSM2"),
    "cert_sm2_self_flipped": (lambda p: ["cert", p["sm2_root.pem.flip"], p["sm2_root.pem"]], 1, "signature"),
    "cert_sm2_leaf": (lambda p: ["cert", p["sm2_leaf.pem"], p["sm2_root.pem"]], 0, "SM2 Leaf"),
    "cert_sm2_leaf_empty_id": (lambda p: ["cert", p["sm2_leaf_emptyid.pem"], p["sm2_root.pem"]], 1, "signature"),
    "cert_sm2_expired": (lambda p: ["cert", p["sm2_leaf.pem"], p["sm2_root.pem"], "--at", "20200101000000Z"], 1, "not valid"),
    "cert_ecdsa": (lambda p: ["cert", p["leaf.pem"], p["int.pem"]], 0, "SHA256WITHECDSA"),
    "cert_ecdsa_p384_issuer": (lambda p: ["cert", p["int.pem"], p["root.pem"]], 0, "SHA384WITHECDSA"),
    "cert_ecdsa_flipped": (lambda p: ["cert", p["leaf.pem.flip"], p["int.pem"]], 1, "signature"),
    "cert_ecdsa_wrong_issuer": (lambda p: ["cert", p["leaf.pem"], p["root.pem"]], 1, "issuer name"),
    "cert_rsa_leaf": (lambda p: ["cert", p["leaf_rsa.pem"], p["int.pem"]], 0, "OK"),
    "cert_rsa_self": (lambda p: ["cert", p["rsa_self.pem"], p["rsa_self.pem"]], 0, "SHA256WITHRSA"),
    "cert_rsa_self_flipped": (lambda p: ["cert", p["rsa_self.pem.flip"], p["rsa_self.pem"]], 1, "signature"),
    # PKIX paths
    "path_ecdsa": (lambda p: ["cert-path", p["leaf.pem"], p["root.pem"], p["int.pem"]], 0, "length=2"),
    "path_ecdsa_crl_good": (lambda p: ["cert-path", p["leaf.pem"], p["root.pem"], p["int.pem"],
                                       "--crl", p["int.crl"], "--crl", p["root.crl.pem"]], 0, "revocation=true"),
    "path_rsa_revoked": (lambda p: ["cert-path", p["leaf_rsa.pem"], p["root.pem"], p["int.pem"],
                                    "--crl", p["int.crl"], "--crl", p["root.crl"]], 1, "revocation"),
    "path_rsa_no_crl": (lambda p: ["cert-path", p["leaf_rsa.pem"], p["root.pem"], p["int.pem"]], 0, "revocation=false"),
    "path_missing_intermediate": (lambda p: ["cert-path", p["leaf.pem"], p["root.pem"]], 1, "path validation failed"),
    "path_wrong_anchor": (lambda p: ["cert-path", p["leaf.pem"], p["sm2_root.pem"], p["int.pem"]], 1, "Trust anchor"),
    "path_anchor_bundle": (lambda p: ["cert-path", p["leaf.pem"], p["chain.pem"]], 0, "anchor=CN=Interop ECDSA Intermediate"),
    "path_intermediate_bundle": (lambda p: ["cert-path", p["leaf.pem"], p["root.pem"], p["chain.pem"]], 0, "length=2"),
    "path_sm2": (lambda p: ["cert-path", p["sm2_leaf.pem"], p["sm2_root.pem"]], 0, "length=1"),
    "path_sm2_empty_id": (lambda p: ["cert-path", p["sm2_leaf_emptyid.pem"], p["sm2_root.pem"]], 1, "path validation failed"),
    "path_future": (lambda p: ["cert-path", p["leaf.pem"], p["root.pem"], p["int.pem"], "--at", "20990101000000Z"], 1, "expired"),
    # CRLs
    "crl_ok": (lambda p: ["crl", p["int.crl"], p["int.pem"]], 0, "revoked=1"),
    "crl_pem_ok": (lambda p: ["crl", p["int.crl.pem"], p["int.pem"]], 0, "revoked=1"),
    "crl_root_empty": (lambda p: ["crl", p["root.crl"], p["root.pem"]], 0, "revoked=0"),
    "crl_flipped": (lambda p: ["crl", p["int.crl.flip"], p["int.pem"]], 1, "signature"),
    "crl_wrong_issuer": (lambda p: ["crl", p["int.crl"], p["root.pem"]], 1, "CRL issuer"),
    # OCSP
    "ocsp_good": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"]], 0, "good serial=" + _h(0x1234ABCD)),
    "ocsp_good_serial": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"], "--serial", "1234ABCD"], 0, "good"),
    "ocsp_revoked": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"], "--serial", "5EED0001"], 0, "revoked"),
    "ocsp_unknown": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"], "--serial", "777777"], 0, "unknown"),
    "ocsp_nonce": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"], "--nonce", p.values["ocsp_nonce"].hex()], 0, "good"),
    "ocsp_wrong_nonce": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"], "--nonce", "00" * 16], 1, "nonce"),
    "ocsp_ca_signed": (lambda p: ["ocsp", p["ocsp_ca.resp"], p["int.pem"], "--serial", "5EED0001"], 0, "revoked"),
    "ocsp_flipped": (lambda p: ["ocsp", p["ocsp.resp.flip"], p["int.pem"], "--serial", "5EED0001"], 1, "signature"),
    "ocsp_ca_flipped": (lambda p: ["ocsp", p["ocsp_ca.resp.flip"], p["int.pem"], "--serial", "5EED0001"], 1, "signature"),
    "ocsp_wrong_issuer": (lambda p: ["ocsp", p["ocsp.resp"], p["root.pem"]], 1, "responder certificate not signed"),
    "ocsp_no_such_serial": (lambda p: ["ocsp", p["ocsp.resp"], p["int.pem"], "--serial", "99"], 1, "no SingleResponse"),
    # CMS
    "cms_attached": (lambda p: ["cms", p["cms.der"]], 0, "signers=1"),
    "cms_attached_flipped": (lambda p: ["cms", p["cms.der.flip"]], 1, "message-digest"),
    "cms_detached": (lambda p: ["cms", p["cms_detached.pem"], "--content", p["content"]], 0, "signers=1"),
    "cms_detached_wrong_content": (lambda p: ["cms", p["cms_detached.pem"], "--content", p["content.flip"]], 1, "message-digest"),
    "cms_ca": (lambda p: ["cms", p["cms.der"], "--ca", p["int.pem"]], 0, "signers=1"),
    "cms_wrong_ca": (lambda p: ["cms", p["cms.der"], "--ca", p["root.pem"]], 1, "CA subject"),
    "cms_detached_no_content": (lambda p: ["cms", p["cms_detached.pem"]], 2, "--content"),
    # SM2 CMS assembled by hand, signed by openssl (BC itself names only 1.2.156.10197.1.501)
    "cms_sm2": (lambda p: ["cms", p["sm2_cms_501.der"]], 0, "sigAlg=1.2.156.10197.1.501"),
    "cms_sm2_flipped": (lambda p: ["cms", p["sm2_cms_501.der.flip"]], 1, "message-digest"),
    "cms_sm2_gm0010": (lambda p: ["cms", p["sm2_cms_gm.der"]], 0, "contentType=1.2.156.10197.6.1.4.2.1"),
    "cms_sm2_gm0010_flipped": (lambda p: ["cms", p["sm2_cms_gm.der.flip"]], 1, "message-digest"),
    "cms_sm2_empty_id": (lambda p: ["cms", p["sm2_cms_emptyid.der"]], 1, "signature invalid"),
    # RFC 3161
    "tsp_reply": (lambda p: ["tsp", p["ts.tsr"], "--data", p["ts.data"]], 0, "genTime="),
    "tsp_token": (lambda p: ["tsp", p["ts.token"], "--data", p["ts.data"]], 0, "policy=1.2.3.4.1"),
    "tsp_reply_no_data": (lambda p: ["tsp", p["ts.tsr"]], 0, "serial="),
    "tsp_wrong_data": (lambda p: ["tsp", p["ts.tsr"], "--data", p["ts.data.flip"]], 1, "imprint"),
    "tsp_flipped": (lambda p: ["tsp", p["ts.tsr.flip"]], 1, "message-digest"),
    "tsp_token_flipped": (lambda p: ["tsp", p["ts.token.flip"]], 1, "message-digest"),
    "tsp_ca": (lambda p: ["tsp", p["ts.tsr"], "--ca", p["root.pem"]], 0, "genTime="),
    "tsp_wrong_ca": (lambda p: ["tsp", p["ts.tsr"], "--ca", p["int.pem"]], 1, "CA subject"),
    "tsp_nocert": (lambda p: ["tsp", p["ts_nocert.tsr"]], 1, "--cert"),
    "tsp_nocert_given": (lambda p: ["tsp", p["ts_nocert.tsr"], "--cert", p["tsa.pem"], "--data", p["ts.data"]], 0, "genTime="),
    "tsp_wrong_cert": (lambda p: ["tsp", p["ts_nocert.tsr"], "--cert", p["leaf.pem"]], 1, "certID"),
    # GB/T 38540 structures signed by openssl
    "seal": (lambda p: ["seal", p["seal.der"]], 0, "SM2 Root"),
    "seal_raw_sig": (lambda p: ["seal", p["seal_raw.der"]], 0, "OK"),
    "seal_flipped": (lambda p: ["seal", p["seal.der.flip"]], 1, "invalid"),
    "ses_sig": (lambda p: ["ses-sig", p["ses_sig.der"]], 0, "SM2 Leaf"),
    "ses_sig_flipped": (lambda p: ["ses-sig", p["ses_sig.der.flip"]], 1, "invalid"),
    # usage and parse errors are 2, never 0 or 1
    "usage_unknown": (lambda p: ["no-such-subcommand"], 2, "unknown subcommand"),
    "usage_missing_args": (lambda p: ["cert", p["leaf.pem"]], 2, "cert <cert>"),
    "parse_missing_file": (lambda p: ["csr", p.dir / "does-not-exist"], 2, "cannot read"),
    "parse_garbage_csr": (lambda p: ["csr", p["msg"]], 2, "cannot parse"),
    "parse_bad_option": (lambda p: ["sm2-sig", p["sm2.pub"], p["msg"], p["sm2.sig"], "--id"], 2, "needs a value"),
}


@pytest.fixture(scope="module")
def bc_results(pki) -> dict[str, subprocess.CompletedProcess]:
    names = list(CASES)
    results = bc_verify_many([CASES[n][0](pki) for n in names])
    return dict(zip(names, results))


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("name", list(CASES))
def test_case(name: str, bc_results) -> None:
    _, rc, text = CASES[name]
    r = bc_results[name]
    assert r.returncode == rc, f"{name}: rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}"
    if rc == 0:
        assert r.stderr == ""
        assert text in r.stdout
    else:
        assert r.stdout == ""
        assert text in r.stderr
        assert r.stderr.count("\n") == 1, "the reason must be one line"


def test_kat_public_key_matches_standard(pki) -> None:
    # d*G computed here equals the public key printed in GB/T 32918.5 Annex A
    assert pki.values["kat.xy"] == KAT_X.to_bytes(32, "big") + KAT_Y.to_bytes(32, "big")


def test_ocsp_statuses_are_first_word(bc_results) -> None:
    assert bc_results["ocsp_good"].stdout.split()[0] == "good"
    assert bc_results["ocsp_revoked"].stdout.split()[0] == "revoked"
    assert "reason=1" in bc_results["ocsp_revoked"].stdout  # keyCompromise
    assert bc_results["ocsp_unknown"].stdout.split()[0] == "unknown"


def test_tsp_reports_serial_and_gentime(bc_results) -> None:
    out = bc_results["tsp_reply"].stdout.split()
    fields = dict(f.split("=", 1) for f in out)
    assert len(fields["genTime"]) == 15 and fields["genTime"].endswith("Z")
    assert int(fields["serial"], 16) >= 0x2A01  # from the tsaserial file


def test_single_call_matches_batch(pki, bc_results) -> None:
    for name in ("sm2_sig_ok", "sm2_sig_flipped", "csr_sm2_empty_id", "ocsp_revoked", "usage_unknown"):
        argv = CASES[name][0](pki)
        single = bc_verify(*argv)
        batched = bc_results[name]
        assert (single.returncode, single.stdout, single.stderr) == (
            batched.returncode, batched.stdout, batched.stderr), name


def test_assert_helpers(bc_results) -> None:
    assert_bc_ok(bc_results["kat"])
    assert_bc_fails(bc_results["kat_flipped"])
    with pytest.raises(AssertionError):
        assert_bc_ok(bc_results["kat_flipped"])
    with pytest.raises(AssertionError):
        assert_bc_fails(bc_results["parse_garbage_csr"])  # a parse error is not a verification failure


def test_batch_edge_cases(pki) -> None:
    assert bc_verify_many([]) == []
    with pytest.raises(ValueError):
        bc_verify_many([["csr", "a\tb"]])
    r = bc_verify_many([["cert", pki["leaf.pem"], pki["int.pem"]]] * 3)
    assert [x.returncode for x in r] == [0, 0, 0]


def test_build_is_cached(pki) -> None:
    build = _build()
    ready = build / "READY"
    before = ready.stat().st_mtime_ns
    bc_verify("csr", pki["sm2.csr"])
    assert ready.stat().st_mtime_ns == before
    assert (build / "bcverify.jar").is_file()


def test_selftest_subcommand(tmp_path) -> None:
    r = bc_verify("selftest", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "OK selftest" in r.stdout


def test_speed(pki) -> None:
    """Single calls stay well under a second; a batch costs about one JVM start."""
    t0 = time.monotonic()
    assert_bc_ok(bc_verify("cert", pki["sm2_root.pem"], pki["sm2_root.pem"]))
    single = time.monotonic() - t0
    t0 = time.monotonic()
    results = bc_verify_many([["cert", pki["sm2_root.pem"], pki["sm2_root.pem"]]] * 30)
    batch = time.monotonic() - t0
    assert all(r.returncode == 0 for r in results)
    assert single < 3.0 and batch < 6.0, (single, batch)
