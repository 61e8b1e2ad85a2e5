"""What outside verifiers say about the artefacts of `racentre demo --out DIR` (every issue's list):
Bouncy Castle for every SM2 artefact, OpenSSL for the ECDSA ones and for SM2 CSRs/raw signatures with
the default ID, independent SM2/SM4 code (tests/unit/kms/subscriber.py) for the key envelopes; the
GmSSL 3 rules (real GmSSL where installed, and the independent checker) and pkilint on the certificate of
every profile, the CRLs and the OCSP responses (``check_profiles``)."""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from asn1crypto import keys, ocsp, pem, x509
from pkilint.validation import ValidationFindingSeverity

from pkicore.envelope import parse_sm2_enveloped_key
from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_verify_many, require_bc
from tests.interop.gmssl_rules import GMSSL_KIND, GMSSL_TYPES, GmSSL, as_gmssl_sees, rule_violations
from tests.interop.pkilint_lint import SM2_ENCRYPTION_KEY_USAGE, lint_certificate, lint_crl, lint_ocsp_response
from tests.interop.openssl_cli import (crl_verify, ocsp_verify, req_verify, sm2_verify, ts_verify,
                                       verify_chain)
from ca_bridge.cmp import asn1 as cmp_asn1
from tests.interop.stock_pyhanko import check_pdf_seal_with_openssl, stock_pyhanko_validate
from tests.unit.kms.subscriber import mul, public_point, sm2_decrypt, sm4_ecb_decrypt

HIERARCHY = ("root-ca.pem", "issuing-ca.pem", "civil-servant-sign.pem", "civil-servant-enc.pem", "unit.pem",
             "server.pem", "server.csr", "revoked.pem", "crl.der", "ocsp-request.der", "ocsp-response.der")
EXPECTED = (("hsm-sm2-pub.pem", "hsm-sm2-msg.bin", "hsm-sm2-sig.der") + HIERARCHY
            + tuple(f"ecdsa/{n}" for n in HIERARCHY)
            + ("subscriber-sign-key.pem", "enc-envelope.der", "enc-envelope-signed.der", "kmc.pem",
               "recovered-envelope.der", "tsa.pem", "tsa-data.bin", "tsq.der", "tsr.der", "ecdsa/tsq.der",
               "ecdsa/tsr.der", "ecdsa/sealed.pdf", "seal.esl", "seal-maker.pem", "unsealed.pdf", "sealed.pdf",
               "sealed.ofd", "sealed-verify.json", "verify-report.json", "audit-export.json", "audit-export.json.sig",
               "audit-public-key.pem", "trust/app-signed.p7s", "trust/app-signed-detached.p7s",
               "trust/app-signed-content.bin", "trust/app.pem", "trust/verify-report.json", "trust/login-challenge.json",
               "trust/login-result.json", "trust/login-replay.json", "trust/evidence.der", "trust/evidence.json",
               "trust/app-enc.pem", "trust/evidence-signer.pem", "trust/envelope.der",
               "cmp/ir.der", "cmp/ip.der", "cmp/certconf.der", "cmp/pkiconf.der", "cmp/rr.der", "cmp/rp.der",
               "cmp/cert.pem",
               "screenshots/01-submit-unit-by-zhao.png", "screenshots/index.html", "console-day/day.json"))


def _cert(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return x509.Certificate.load(pem.unarmor(data)[2] if pem.detect(data) else data)


def _private_d(path: Path) -> int:
    der = pem.unarmor(path.read_bytes())[2]
    info = keys.PrivateKeyInfo.load(der)
    return info["private_key"].parsed["private_key"].native


def _open(d: int, enveloped_key_der: bytes) -> int:
    env = parse_sm2_enveloped_key(enveloped_key_der)
    sm4_key = sm2_decrypt(d, env.sym_encrypted_key)
    return int.from_bytes(sm4_ecb_decrypt(sm4_key, env.encrypted_private_key), "big")


def check_demo_artefacts(out: Path) -> None:
    missing = [n for n in EXPECTED if not (out / n).is_file() or not (out / n).stat().st_size]
    assert not missing, f"demo artefacts missing: {missing}"
    warnings = check_profiles(out)          # GmSSL 3 rules and pkilint: no ERROR (but GM/T 0015's)
    assert warnings == {}, warnings         # and no pkilint WARNING either
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in (out / "screenshots").glob("*.png"))

    # ECDSA hierarchy: OpenSSL 3.0 end to end
    e = out / "ecdsa"
    for name in ("civil-servant-sign.pem", "civil-servant-enc.pem", "unit.pem", "server.pem"):
        assert verify_chain(e / name, e / "root-ca.pem", untrusted=[e / "issuing-ca.pem"]).ok, name
    assert not verify_chain(e / "revoked.pem", e / "root-ca.pem", untrusted=[e / "issuing-ca.pem"],
                            crls=[_crl_pem(e)]).ok
    assert verify_chain(e / "server.pem", e / "root-ca.pem", untrusted=[e / "issuing-ca.pem"], crls=[_crl_pem(e)]).ok
    assert crl_verify(e / "crl.der", e / "issuing-ca.pem").ok
    status = ocsp_verify(e / "ocsp-response.der", e / "issuing-ca.pem", e / "root-ca.pem",
                         serial=_cert(e / "revoked.pem").serial_number, verify_other=e / "issuing-ca.pem")
    assert status.ok and status.status == "revoked", status.stdout + status.stderr
    assert req_verify(e / "server.csr", distid=None).ok
    tsa_chain = out / "ecdsa-tsa-ca.pem"
    tsa_chain.write_bytes((e / "root-ca.pem").read_bytes())
    assert ts_verify(e / "tsr.der", tsa_chain, queryfile=e / "tsq.der", untrusted=e / "tsa.pem").ok
    # the ECDSA seal: stock pyHanko (its own process, no SM2 code) with the ECDSA root alone; OpenSSL for
    # its timestamp token and its CMS
    stock = stock_pyhanko_validate(e / "sealed.pdf", e / "root-ca.pem")
    assert stock.returncode == 0 and ":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>" in stock.stdout, \
        stock.stdout + stock.stderr
    check_pdf_seal_with_openssl(e / "sealed.pdf", e / "root-ca.pem", Path(tempfile.mkdtemp(prefix="racentre-e-")))

    # SM2: OpenSSL only where it can take the default ID (raw signatures, CSRs)
    assert sm2_verify(out / "hsm-sm2-pub.pem", out / "hsm-sm2-msg.bin", out / "hsm-sm2-sig.der").ok
    assert req_verify(out / "server.csr").ok
    assert sm2_verify(out / "audit-public-key.pem", out / "audit-export.json", out / "audit-export.json.sig").ok

    # SM2: Bouncy Castle for every certificate, path, CRL, OCSP answer, token and seal
    require_bc()
    root, issuing = out / "root-ca.pem", out / "issuing-ca.pem"
    serial = format(_cert(out / "revoked.pem").serial_number, "x")
    leaves = ("civil-servant-sign.pem", "civil-servant-enc.pem", "unit.pem", "server.pem", "kmc.pem",
              "seal-maker.pem")
    argvs = [["sm2-sig", out / "hsm-sm2-pub.pem", out / "hsm-sm2-msg.bin", out / "hsm-sm2-sig.der"],
             ["csr", out / "server.csr"],
             ["cert", issuing, root], ["crl", out / "crl.der", issuing],
             ["ocsp", out / "ocsp-response.der", issuing, "--serial", serial],
             ["cert-path", out / "server.pem", root, issuing, "--crl", out / "crl.der", "--crl", out / "root-crl.der"],
             ["cert-path", out / "revoked.pem", root, issuing, "--crl", out / "crl.der", "--crl", out / "root-crl.der"],
             ["tsp", out / "tsr.der", "--data", out / "tsa-data.bin"],
             ["seal", out / "seal.esl"],
             ["sm2-sig", out / "audit-public-key.pem", out / "audit-export.json", out / "audit-export.json.sig"],
             # issue 18: the application's SignedData (attached, timestamped; detached) and the evidence record
             ["cms", out / "trust/app-signed.p7s", "--ca", issuing, "--ess"],
             ["cms", out / "trust/app-signed-detached.p7s", "--content", out / "trust/app-signed-content.bin",
              "--ca", issuing, "--ess"],
             ["cms", out / "trust/evidence.der", "--ca", issuing, "--ess"]]
    argvs += [["cert-path", out / name, root, issuing] for name in leaves]
    # the KMC's envelopes: BC's SM2Engine and SM4 open them with the recipient's key, d*G is the
    # encryption certificate's key, and the signed one carries a valid KMC signature
    enc_cert, sub_key, court_key = out / "civil-servant-enc.pem", out / "subscriber-sign-key.pem", \
        out / "recovery-recipient-key.pem"
    tampered = Path(tempfile.mkdtemp(prefix="racentre-demo-check-")) / "tampered-envelope.der"
    signed = bytearray((out / "enc-envelope-signed.der").read_bytes())
    signed[-10] ^= 0x01                          # inside s of the KMC signature (the last field)
    tampered.write_bytes(bytes(signed))
    must_fail = [["sm2-envelope", sub_key, tampered, enc_cert, "--signer", out / "kmc.pem"],
                 ["sm2-envelope", court_key, out / "enc-envelope.der", enc_cert]]       # not the court's envelope
    argvs += [["sm2-envelope", sub_key, out / "enc-envelope.der", enc_cert],
              ["sm2-envelope", sub_key, out / "enc-envelope-signed.der", enc_cert, "--signer", out / "kmc.pem"],
              ["sm2-envelope", court_key, out / "recovered-envelope.der", enc_cert]] + must_fail
    results = bc_verify_many(argvs)
    for argv, result in zip(argvs, results):
        if argv[1] == out / "revoked.pem":
            assert "revocation" in assert_bc_fails(result).stderr.lower()
        elif argv in must_fail:
            assert_bc_fails(result)
        else:
            assert_bc_ok(result)
    assert results[4].stdout.split()[0] == "revoked"

    # KMC: the subscriber opens its envelopes with its own key; the recovered one opens with the court's
    d_sub = _private_d(out / "subscriber-sign-key.pem")
    enc = _cert(out / "civil-servant-enc.pem")
    assert mul(_open(d_sub, (out / "enc-envelope.der").read_bytes())) == public_point(enc.public_key.dump())
    assert mul(d_sub) == public_point(_cert(out / "civil-servant-sign.pem").public_key.dump())
    d_court = _private_d(out / "recovery-recipient-key.pem")
    assert mul(_open(d_court, (out / "recovered-envelope.der").read_bytes())) == public_point(enc.public_key.dump())
    assert _cert(out / "kmc.pem").issuer == _cert(issuing).subject

    # seals: our verifier's report says every seal of both documents is valid
    report = json.loads((out / "sealed-verify.json").read_text())
    assert report["sealed.pdf"]["verdict"] == "valid" and len(report["sealed.pdf"]["seals"]) == 2
    # PAdES B-LT: our CA's CRLs in the /DSS, and pyHanko's LT validation (nothing fetched) passes on them
    for seal in report["sealed.pdf"]["seals"]:
        ltv = seal["details"]["ltv"]
        assert ltv["dss"] and ltv["crls"] >= 2 and ltv["validated"], ltv
    assert report["sealed.ofd"]["verdict"] == "valid"
    # issue 13: every sealed artefact TOTAL_PASSED with its timestamp as proof of time; the altered copy fails
    verdicts = json.loads((out / "verify-report.json").read_text())
    for name in ("seal.esl", "sealed.pdf", "sealed.ofd", "ecdsa/sealed.pdf"):
        assert verdicts[name]["indication"] == "TOTAL_PASSED", (name, verdicts[name]["seals"])
        assert all(s["signature_intact"] for s in verdicts[name]["seals"])
    assert all(s["time_proven"] for s in verdicts["sealed.pdf"]["seals"] + verdicts["sealed.ofd"]["seals"]
               + verdicts["ecdsa/sealed.pdf"]["seals"])
    altered = verdicts["sealed.ofd, page changed after sealing"]
    assert (altered["indication"], altered["sub_indication"]) == ("TOTAL_FAILED", "HASH_FAILURE"), altered["seals"]

    # trust services (issue 18): our verdicts, the certificate login and its refused replay, the evidence
    trust = json.loads((out / "trust/verify-report.json").read_text())
    good = trust["trust/app-signed.p7s"]
    assert good["valid"] and good["certificate_code"] == 1 and good["signers"][0]["timestamp"]["proven"]
    assert trust["trust/app-signed-detached.p7s over altered content"]["sub_indication"] == "HASH_FAILURE"
    login = json.loads((out / "trust/login-result.json").read_text())
    assert login["authenticated"] and login["identity"]["name"] == "张三" and "*" in login["identity"]["id_number"]
    assert json.loads((out / "trust/login-replay.json").read_text())["refusal"] == "replay"
    record = json.loads((out / "trust/evidence.json").read_text())
    assert record["signature_valid"] and record["record"]["kind"] == "login"
    assert record["record"]["id"] == login["evidence_id"]

    # audit: the export covers what the demo did (issuance, KMC recovery, sealing) and checks out
    actions = {row["action"] for row in json.loads((out / "audit-export.json").read_text())["rows"]}
    assert {"ra.request.approve", "ca.certificate.issue", "ca.escrow.reserve", "seal.make"} <= actions, actions
    check_cmp_artefacts(out / "cmp")


def check_cmp_artefacts(folder: Path) -> None:
    """What ``openssl cmp`` exchanged with the CA (issue 19): each message of the expected type, the ir
    MAC-protected (PasswordBasedMac), the certificate one OpenSSL verifies up to our root."""
    bodies = {"ir.der": "ir", "ip.der": "ip", "certconf.der": "cert_conf", "pkiconf.der": "pkiconf", "rr.der": "rr",
              "rp.der": "rp"}
    for name, body in bodies.items():
        message = cmp_asn1.PKIMessage.load((folder / name).read_bytes())
        assert message["body"].name == body, (name, message["body"].name)
    ir = cmp_asn1.PKIMessage.load((folder / "ir.der").read_bytes())
    assert ir["header"]["protection_alg"]["algorithm"].dotted == "1.2.840.113533.7.66.13"
    ip = cmp_asn1.PKIMessage.load((folder / "ip.der").read_bytes())
    assert ip["body"].chosen["response"][0]["status"]["status"].native == 0
    rp = cmp_asn1.PKIMessage.load((folder / "rp.der").read_bytes())
    assert rp["body"].chosen["status"][0]["status"].native == 0
    proc = subprocess.run(["openssl", "verify", "-CAfile", folder / "roots.pem", "-untrusted", folder / "ip-chain.pem",
                           folder / "cert.pem"], capture_output=True, text=True)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


# the demo's certificates by profile; the OCSP signer's comes in the OCSP response
DEMO_PROFILES = {"root-ca.pem": "root-ca", "issuing-ca.pem": "issuing-ca",
                 "civil-servant-sign.pem": "civil-servant-sign", "civil-servant-enc.pem": "civil-servant-enc",
                 "unit.pem": "unit", "server.pem": "server", "revoked.pem": "server", "tsa.pem": "tsa"}
SM2_ONLY = {"kmc.pem": "kmc", "seal-maker.pem": "seal-maker", "trust/app-enc.pem": "app-encryption",
            "trust/evidence-signer.pem": "trust-evidence"}


def _responder(folder: Path) -> bytes:
    """The delegated OCSP responder's certificate, as the demo's OCSP response carries it."""
    basic = ocsp.OCSPResponse.load((folder / "ocsp-response.der").read_bytes()).basic_ocsp_response
    (responder,) = [c.dump() for c in basic["certs"]
                    if c.extended_key_usage_value is not None and "ocsp_signing" in c.extended_key_usage_value.native]
    return responder


def check_profiles(out: Path) -> dict[str, list]:
    """The GmSSL 3 rules (REFERENCES §10) and pkilint (§11) on the demo's certificate of every profile, in
    the SM2 and the ECDSA hierarchy, its CRLs and OCSP responses. Returns the pkilint WARNING findings."""
    gmssl = GmSSL.load()
    warnings = {}
    for folder, family in ((out, "sm2"), (out / "ecdsa", "ecdsa")):
        certs = {(folder / n, profile): _cert(folder / n).dump() for n, profile in DEMO_PROFILES.items()}
        certs[folder / "ocsp-response.der", "ocsp-signer"] = _responder(folder)
        if family == "sm2":
            certs.update({(folder / n, profile): _cert(folder / n).dump() for n, profile in SM2_ONLY.items()})
        sm2_only = {"kmc", "seal-maker", "app-encryption", "trust-evidence"}
        assert {p for _, p in certs} >= set(GMSSL_KIND) - (sm2_only if family == "ecdsa" else set())
        issuing, root = _cert(folder / "issuing-ca.pem").dump(), _cert(folder / "root-ca.pem").dump()
        for (path, profile), der in certs.items():
            assert rule_violations(der, GMSSL_KIND[profile]) == [], (path, profile)
            if family == "sm2" and gmssl is not None:
                for kind in GMSSL_TYPES.get(profile, ()):
                    assert gmssl.cert_check(as_gmssl_sees(profile, der), kind), (path, profile, kind)
                if profile in ("civil-servant-sign", "unit", "server"):
                    assert gmssl.certs_verify([der, issuing], root, "server" if profile == "server" else "client")
            errors = lint_certificate(der, ValidationFindingSeverity.ERROR)
            expected = [SM2_ENCRYPTION_KEY_USAGE] if family == "sm2" and profile in ("civil-servant-enc",
                                                                                     "app-encryption") else []
            assert [f.code for f in errors] == expected, (path, profile, errors)
            warnings[f"{path.relative_to(out)}:{profile}"] = [f for f in lint_certificate(der)
                                                              if f.severity == "WARNING"]
        for name, lint in (("crl.der", lint_crl), ("root-crl.der", lint_crl),
                           ("ocsp-response.der", lint_ocsp_response)):
            findings = lint((folder / name).read_bytes())
            assert not [f for f in findings if f.severity in ("FATAL", "ERROR")], (folder / name, findings)
            warnings[str((folder / name).relative_to(out))] = [f for f in findings if f.severity == "WARNING"]
    return {name: found for name, found in warnings.items() if found}


def _crl_pem(folder: Path) -> Path:
    path = folder.parent / f"{folder.name}-crl.pem"
    path.write_bytes(pem.armor("X509 CRL", (folder / "crl.der").read_bytes()))
    return path
