"""Seals against Bouncy Castle: the outside testdata (ofdrw v4 seal, a commercial product's SES_Signature)
is accepted by BC as by us, and so are the seal and the OFD SES_Signature we make; one changed byte is
refused by both. (PDF CMS with BC and pyHanko: tests/unit/seal/test_pdf.py.)"""
from __future__ import annotations

import zipfile

import pytest
from asn1crypto import cms

from seal import ofd, pdf, ses
from seal.pki import make_signer
from seal.samplepdf import make_ofd, make_pdf
from tests.interop.bouncycastle import bc_verify_many, require_bc
from tests.unit.seal.sealpki import TESTDATA, seal_pki, stamp_png, tsa  # noqa: F401
from tests.unit.seal.test_ofd import _seal


def test_bc_and_we_agree_on_outside_and_our_artefacts(seal_pki, stamp_png, tmp_path):
    require_bc()
    with zipfile.ZipFile(TESTDATA / "v4signed.ofd") as z:
        commercial = z.read("Doc_0/Signs/Sign_0/SignedValue.dat")
    sealed = _seal(seal_pki, stamp_png, make_ofd("interop"))
    ((_, ours),) = ofd.extract_signed_values(sealed)
    seal_der = ses.parse_signature(ours).seal_der
    cases = {"outside-seal.esl": ((TESTDATA / "UserV4.esl").read_bytes(), "seal"),
             "commercial.dat": (commercial, "ses-sig"), "ours.dat": (ours, "ses-sig"), "ours.esl": (seal_der, "seal")}
    argv, expect = [], []
    for name, (blob, sub) in cases.items():
        (tmp_path / name).write_bytes(blob)
        bad = bytearray(blob)
        bad[-3] ^= 0x01                       # inside the signature value
        (tmp_path / f"bad-{name}").write_bytes(bytes(bad))
        ours_ok = ses.verify_seal(blob).ok if sub == "seal" else ses.verify_ses_signature(blob).ok
        ours_bad = ses.verify_seal(bytes(bad)).ok if sub == "seal" else ses.verify_ses_signature(bytes(bad)).ok
        assert ours_ok and not ours_bad, name
        argv += [[sub, str(tmp_path / name)], [sub, str(tmp_path / f"bad-{name}")]]
        expect += [0, 1]
    results = bc_verify_many(argv)
    assert [r.returncode for r in results] == expect, [(a, r.stderr) for a, r in zip(argv, results)]


@pytest.mark.parametrize("alg_name", ["sm2-sm3", "ecdsa-sha256"])
def test_bc_verifies_our_pdf_seal_cms_and_its_timestamp(seal_pki, stamp_png, tsa, tmp_path, alg_name):
    require_bc()
    km, ca = seal_pki["km"], seal_pki["ca"]
    u = seal_pki["unit"] if alg_name == "sm2-sm3" else make_signer(km, ca, f"bc-pdf-{alg_name}", "Unit E", alg_name)
    signer = pdf.HsmSigner(km, u.label, u.certificate, u.alg, chain=[ca.certificate])
    stamper = pdf.InProcessTimeStamper(tsa.respond)
    once = pdf.seal_pdf(make_pdf(2), signer=signer, picture=stamp_png, width_mm=40, height_mm=40)
    twice = pdf.seal_pdf(once, signer=signer, picture=stamp_png, width_mm=40, height_mm=40, timestamper=stamper,
                         placement=pdf.Placement(page=1))
    (tmp_path / "ca.pem").write_bytes(ca.certificate)
    argv, expect = [], []
    for index in (0, 1):
        cms_der, signed = pdf.cms_and_signed_bytes(twice, index)
        sig, content, wrong = (tmp_path / f"{index}-{n}" for n in ("sig.p7s", "content.bin", "wrong.bin"))
        sig.write_bytes(cms_der)
        content.write_bytes(signed)
        wrong.write_bytes(signed[:100] + bytes([signed[100] ^ 1]) + signed[101:])
        argv += [["cms", str(sig), "--content", str(content), "--ca", str(tmp_path / "ca.pem")],
                 ["cms", str(sig), "--content", str(wrong)]]
        expect += [0, 1]
    si = cms.ContentInfo.load(pdf.cms_and_signed_bytes(twice, 1)[0])["content"]["signer_infos"][0]
    (tmp_path / "token.der").write_bytes(si["unsigned_attrs"][0]["values"][0].dump())
    (tmp_path / "signature.bin").write_bytes(si["signature"].native)
    signature = si["signature"].native
    (tmp_path / "other.bin").write_bytes(signature[:-1] + bytes([signature[-1] ^ 1]))
    argv += [["tsp", str(tmp_path / "token.der"), "--data", str(tmp_path / "signature.bin"),
              "--ca", str(tmp_path / "ca.pem")],
             ["tsp", str(tmp_path / "token.der"), "--data", str(tmp_path / "other.bin")]]
    expect += [0, 1]
    results = bc_verify_many(argv)
    assert [r.returncode for r in results] == expect, [(a, r.stderr) for a, r in zip(argv, results)]
