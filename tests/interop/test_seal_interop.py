"""Seals against Bouncy Castle: the outside testdata (ofdrw v4 seal, a commercial product's SES_Signature)
is accepted by BC as by us, and so are the seal and the OFD SES_Signature we make; one changed byte is
refused by both. (PDF CMS with BC and pyHanko: tests/unit/seal/test_pdf.py.)"""
from __future__ import annotations

import zipfile

import pytest
from asn1crypto import cms

from seal import ofd, pdf, ses, timestamps
from tests.localca import make_signer
from racentre.demo.samples import make_ofd, make_pdf
from seal.timestamps import SealTimestamps
from tests.interop.bouncycastle import bc_verify_many, require_bc
from tests.unit.seal.sealpki import TESTDATA, ecdsa_pki, seal_pki, stamp_png, tsa  # noqa: F401
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


@pytest.mark.parametrize("family", ["sm2", "ec"])
def test_bc_verifies_our_pdf_seal_cms_and_its_timestamp(seal_pki, ecdsa_pki, stamp_png, tmp_path, family):
    """Each seal with a timestamp from a TSA unit of its own family (seal.timestamps); BC also matches the
    signing-certificate-v2 attribute: SM3 in the SM2 family, the DEFAULT SHA-256 otherwise."""
    require_bc()
    km = seal_pki["km"]
    ca, u = (seal_pki["ca"], seal_pki["unit"]) if family == "sm2" else (ecdsa_pki["ca"], ecdsa_pki["unit"])
    signer = pdf.HsmSigner(km, u.label, u.certificate, u.alg, chain=[ca.certificate])
    unit = SealTimestamps.of_authority(ecdsa_pki["tsa_units"]).unit_for(family)
    stamper = pdf.InProcessTimeStamper(unit.respond)
    once = pdf.seal_pdf(make_pdf(2), signer=signer, picture=stamp_png, width_mm=40, height_mm=40)
    twice = pdf.seal_pdf(once, signer=signer, picture=stamp_png, width_mm=40, height_mm=40, timestamper=stamper,
                         placement=pdf.Placement(page=1))
    (tmp_path / "ca.pem").write_bytes(ca.certificate)
    (tmp_path / "tsa-ca.pem").write_bytes(ca.certificate if family == "ec" else seal_pki["ca"].certificate)
    argv, expect = [], []
    for index in (0, 1):
        cms_der, signed = pdf.cms_and_signed_bytes(twice, index)
        sig, content, wrong = (tmp_path / f"{index}-{n}" for n in ("sig.p7s", "content.bin", "wrong.bin"))
        sig.write_bytes(cms_der)
        content.write_bytes(signed)
        wrong.write_bytes(signed[:100] + bytes([signed[100] ^ 1]) + signed[101:])
        argv += [["cms", str(sig), "--content", str(content), "--ca", str(tmp_path / "ca.pem"), "--ess"],
                 ["cms", str(sig), "--content", str(wrong)]]
        expect += [0, 1]
    si = cms.ContentInfo.load(pdf.cms_and_signed_bytes(twice, 1)[0])["content"]["signer_infos"][0]
    (tmp_path / "token.der").write_bytes(si["unsigned_attrs"][0]["values"][0].dump())
    (tmp_path / "signature.bin").write_bytes(si["signature"].native)
    signature = si["signature"].native
    (tmp_path / "other.bin").write_bytes(signature[:-1] + bytes([signature[-1] ^ 1]))
    argv += [["tsp", str(tmp_path / "token.der"), "--data", str(tmp_path / "signature.bin"),
              "--ca", str(tmp_path / "tsa-ca.pem")],
             ["tsp", str(tmp_path / "token.der"), "--data", str(tmp_path / "other.bin")]]
    expect += [0, 1]
    results = bc_verify_many(argv)
    assert [r.returncode for r in results] == expect, [(a, r.stderr) for a, r in zip(argv, results)]
    ess = {"sm2": "1.2.156.10197.1.401", "ec": "2.16.840.1.101.3.4.2.1"}[family]
    assert all(f"ess={ess}" in results[i].stdout for i in (0, 2)), [results[i].stdout for i in (0, 2)]
    token = cms.ContentInfo.load((tmp_path / "token.der").read_bytes())
    assert timestamps.token_family(token) == family
    imprint = token["content"]["encap_content_info"]["content"].parsed["message_imprint"]
    assert imprint["hash_algorithm"]["algorithm"].native == ("sm3" if family == "sm2" else "sha256")
