"""Seals against Bouncy Castle: the outside testdata (ofdrw v4 seal, a commercial product's SES_Signature)
is accepted by BC as by us, and so are the seal and the OFD SES_Signature we make; one changed byte is
refused by both. (PDF CMS with BC and pyHanko: tests/unit/seal/test_pdf.py.)"""
from __future__ import annotations

import zipfile

from seal import ofd, ses
from seal.samplepdf import make_ofd
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
