"""GB/T 38540 / GM/T 0031 structures: outside seals and signatures verify; one changed byte fails with a
reason; seals we make round-trip and are checked by Bouncy Castle."""
from __future__ import annotations

import datetime as dt
import zipfile

import pytest

from seal import ses
from seal.validation import SealPolicy, evaluate_seal, evaluate_signature
from tests.unit.seal.sealpki import TESTDATA

SIGNATURE_XML = "Doc_0/Signs/Sign_0/Signature.xml"


def _outside_signature():
    with zipfile.ZipFile(TESTDATA / "v4signed.ofd") as z:
        return z.read("Doc_0/Signs/Sign_0/SignedValue.dat"), z.read(SIGNATURE_XML)


@pytest.mark.parametrize("name,version", [("UserV4.esl", 4), ("UserV1.esl", 1)])
def test_outside_seals_verify(name, version):
    check = ses.verify_seal((TESTDATA / name).read_bytes())
    assert check.ok and check.intact, check.reasons
    assert check.view.version == version and check.view.vid == "OFDR&WTest" and check.view.picture_type == "PNG"


@pytest.mark.parametrize("name", ["UserV4.esl", "UserV1.esl"])
def test_outside_seals_altered_fail(name):
    data = (TESTDATA / name).read_bytes()
    view = ses.parse_seal(data)
    # one byte of the seal name, one of the picture: both covered by the maker's signature
    for needle in (view.name.encode()[:6], view.picture[100:110]):
        pos = data.index(needle) + 2
        bad = bytearray(data)
        bad[pos] ^= 0x01
        check = ses.verify_seal(bytes(bad))
        assert not check.ok
        assert any("seal maker signature invalid" in r for r in check.reasons), check.reasons


def test_outside_seal_validity_window():
    """Validity is the policy's business (seal.validation): in its window only the maker's chain is
    unknown (INDETERMINATE); after it the seal is expired (TOTAL_FAILED / EXPIRED)."""
    data = (TESTDATA / "UserV4.esl").read_bytes()
    inside = evaluate_seal(data, SealPolicy(), at=dt.datetime(2021, 6, 1, tzinfo=dt.timezone.utc))
    assert [f.sub_indication.value for f in inside.findings] == ["NO_CERTIFICATE_CHAIN_FOUND"]
    late = evaluate_seal(data, SealPolicy(), at=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    assert any(f.sub_indication.value == "EXPIRED" and f.indication.value == "TOTAL_FAILED" for f in late.findings)


def test_commercial_ofd_signature_verifies():
    sig, xml = _outside_signature()
    check = ses.verify_ses_signature(sig, signed_data=xml, property_info="/" + SIGNATURE_XML)
    assert check.ok and check.intact, check.reasons
    assert check.view.version == 4 and check.seal.ok and check.seal.view.vid == "GOMAIN"
    assert check.property_info == "/" + SIGNATURE_XML


def test_commercial_ofd_signature_altered_fail():
    sig, xml = _outside_signature()
    view = ses.parse_signature(sig)
    # a byte in the TBS_Sign time (document signature), in the seal name (seal maker), in the data
    tbs_pos = sig.index(b"20201010071120Z") + 3
    seal_pos = sig.index(view.seal.name.encode()[:6]) + 1
    for pos, why in ((tbs_pos, "document signature invalid"), (seal_pos, "seal: seal maker signature invalid")):
        bad = bytearray(sig)
        bad[pos] ^= 0x01
        check = ses.verify_ses_signature(bytes(bad), signed_data=xml)
        assert not check.ok and why in check.reasons, check.reasons
    bad_xml = xml.replace(b"gomain_eseal", b"gomain_esean")
    check = ses.verify_ses_signature(sig, signed_data=bad_xml)
    assert not check.ok and any("dataHash" in r for r in check.reasons)


@pytest.mark.parametrize("blob", [b"", b"\x30\x00", b"\x30\x03\x02\x01\x04", b"garbage" * 10])
def test_malformed_is_a_verdict(blob):
    assert not ses.verify_seal(blob).ok
    assert not ses.verify_ses_signature(blob).ok


def _make(seal_pki, stamp_png, **over):
    km, maker, unit = seal_pki["km"], seal_pki["maker"], seal_pki["unit"]
    now = dt.datetime.now(dt.timezone.utc)
    args = dict(vid="RACENTRE", es_id="11010000000001", seal_type=ses.SEAL_TYPES["official"], name="测试单位公章",
                certs=[unit.certificate], create_date=now, valid_start=now - dt.timedelta(days=1),
                valid_end=now + dt.timedelta(days=365), picture_type="PNG", picture=stamp_png,
                width_mm=40, height_mm=40)
    args.update(over)
    info = ses.build_seal_info(**args)
    return ses.make_seal(info, maker.certificate, lambda d: km.sign(maker.label, d), maker.alg)


def test_make_and_sign_round_trip(seal_pki, stamp_png):
    km, unit = seal_pki["km"], seal_pki["unit"]
    seal_der = _make(seal_pki, stamp_png)
    check = ses.verify_seal(seal_der)
    assert check.ok and check.view.version == 4 and check.view.name == "测试单位公章"
    view = ses.parse_seal(seal_der)
    assert view.signed_bytes == ses.SESeal.load(seal_der)["e_seal_info"].dump()
    sig = ses.sign_document(seal_der, data=b"<xml/>", property_info="/Doc_0/Signs/Sign_0/Signature.xml",
                            signer_cert=unit.certificate, sign=lambda d: km.sign(unit.label, d), alg=unit.alg)
    good = ses.verify_ses_signature(sig, signed_data=b"<xml/>", property_info="/Doc_0/Signs/Sign_0/Signature.xml")
    assert good.ok, good.reasons
    assert not ses.verify_ses_signature(sig, signed_data=b"<xml />").ok


def test_signer_not_bound_to_seal(seal_pki, stamp_png):
    km, unit2 = seal_pki["km"], seal_pki["unit2"]
    seal_der = _make(seal_pki, stamp_png)
    sig = ses.sign_document(seal_der, data=b"x", property_info="/p", signer_cert=unit2.certificate,
                            sign=lambda d: km.sign(unit2.label, d), alg=unit2.alg)
    check = ses.verify_ses_signature(sig)
    assert not check.ok and any("not bound" in r for r in check.reasons)


def test_signing_outside_seal_validity(seal_pki, stamp_png):
    km, unit = seal_pki["km"], seal_pki["unit"]
    now = dt.datetime.now(dt.timezone.utc)
    seal_der = _make(seal_pki, stamp_png, valid_start=now - dt.timedelta(days=10), valid_end=now - dt.timedelta(days=1))
    sig = ses.sign_document(seal_der, data=b"x", property_info="/p", signer_cert=unit.certificate,
                            sign=lambda d: km.sign(unit.label, d), alg=unit.alg)
    assert ses.verify_ses_signature(sig).ok          # intact: the structure is fine
    ev = evaluate_signature(sig, SealPolicy.anchored([seal_pki["ca"].certificate]))
    # the signer's own timeInfo lies after the seal's validEnd: a failure whatever the proof
    assert any(f.indication.value == "TOTAL_FAILED" and f.sub_indication.value == "EXPIRED" and "seal" in f.message
               for f in ev.findings), ev.findings


def test_bouncy_castle_checks_our_seal_and_signature(seal_pki, stamp_png, tmp_path):
    from tests.interop.bouncycastle import bc_verify_many, require_bc
    require_bc()
    km, unit = seal_pki["km"], seal_pki["unit"]
    seal_der = _make(seal_pki, stamp_png)
    sig = ses.sign_document(seal_der, data=b"doc", property_info="/p", signer_cert=unit.certificate,
                            sign=lambda d: km.sign(unit.label, d), alg=unit.alg)
    (tmp_path / "s.esl").write_bytes(seal_der)
    (tmp_path / "sig.dat").write_bytes(sig)
    bad = bytearray(sig)
    bad[sig.index(b"/p") + 1] ^= 1
    (tmp_path / "bad.dat").write_bytes(bytes(bad))
    ok_seal, ok_sig, bad_sig = bc_verify_many([["seal", str(tmp_path / "s.esl")], ["ses-sig", str(tmp_path / "sig.dat")],
                                              ["ses-sig", str(tmp_path / "bad.dat")]])
    assert ok_seal.returncode == 0, ok_seal.stderr
    assert ok_sig.returncode == 0, ok_sig.stderr
    assert bad_sig.returncode == 1
