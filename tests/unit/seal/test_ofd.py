"""OFD sealing and verification (GB/T 38540 on GB/T 33190): the commercial sample verifies and each change
fails with the reason; our seals round-trip (two seals, the first stays valid) and Bouncy Castle checks the
SES_Signature; unsafe packages are refused cleanly."""
from __future__ import annotations

import datetime as dt
import io
import warnings
import zipfile

import pytest

from seal import ofd, ses
from seal.errors import BadDocument
from seal.validation import SealPolicy
from tests.unit.seal.sealpki import TESTDATA, rezip as _rezip




def test_commercial_sample_intact_but_not_trusted():
    """Its signatures verify, but its roots are nobody we trust: INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND,
    never valid (issue 13 §1)."""
    report = ofd.verify_ofd((TESTDATA / "v4signed.ofd").read_bytes(),
                            at=dt.datetime(2021, 6, 1, tzinfo=dt.timezone.utc))
    (seal,) = report.seals
    assert seal.signature_intact is True and not report.ok, report.to_text()
    assert (seal.indication.value, seal.sub_indication.value) == ("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND")
    assert report.indication.value == "INDETERMINATE"
    assert seal.details["references"] == 13 and seal.seal_name.startswith("测试全国统一发票监制章")


def _flip(content: bytes, pos: int) -> bytes:
    b = bytearray(content)
    b[pos] ^= 0x01
    return bytes(b)


@pytest.mark.parametrize("path,why", [
    ("Doc_0/Pages/Page_0/Content.xml", "protected file /Doc_0/Pages/Page_0/Content.xml was changed"),
    ("Doc_0/Res/qr.png", "protected file /Doc_0/Res/qr.png was changed"),
    ("Doc_0/Signs/Sign_0/Signature.xml", "dataHash does not match"),
    ("Doc_0/Signs/Sign_0/SignedValue.dat", "document signature invalid"),
])
def test_commercial_sample_one_byte_changes_fail(path, why):
    data = (TESTDATA / "v4signed.ofd").read_bytes()
    original = zipfile.ZipFile(io.BytesIO(data)).read(path)
    pos = len(original) // 2 if not path.endswith(".dat") else len(original) - 1
    if path.endswith("Signature.xml"):
        pos = original.index(b'Company="BW"') + 9        # a byte of an attribute value, still well-formed
    report = ofd.verify_ofd(_rezip(data, {path: _flip(original, pos)}))
    assert report.indication.value == "TOTAL_FAILED"
    assert any(why in r for r in report.seals[0].reasons), report.to_text()


def test_commercial_sample_added_page_or_removed_file_fail():
    data = (TESTDATA / "v4signed.ofd").read_bytes()
    """An extra file is reported as not protected (a warning: nothing proves when it was added); a
    protected file that is gone means the signed data cannot be found."""
    added = ofd.verify_ofd(_rezip(data, add={"Doc_0/Pages/Page_1/Content.xml": b"<x/>"}))
    assert any("not protected by this seal: /Doc_0/Pages/Page_1/Content.xml" in w for w in added.seals[0].warnings)
    assert not any("added after" in r for r in added.seals[0].reasons + added.seals[0].warnings)
    removed = ofd.verify_ofd(_rezip(data, {"Doc_0/Res/qr.png": None}))
    assert not removed.ok and any("missing" in r for r in removed.seals[0].reasons)
    assert any(f.sub_indication.value == "SIGNED_DATA_NOT_FOUND" for f in removed.seals[0].findings)


def _seal(seal_pki, stamp_png, data, **kw):
    km, maker, unit = seal_pki["km"], seal_pki["maker"], seal_pki["unit"]
    now = dt.datetime.now(dt.timezone.utc)
    info = ses.build_seal_info(vid="RACENTRE", es_id="1", seal_type=1, name="单位公章", certs=[unit.certificate],
                               create_date=now, valid_start=now - dt.timedelta(days=1),
                               valid_end=now + dt.timedelta(days=30), picture_type="PNG", picture=stamp_png,
                               width_mm=40, height_mm=40)
    seal_der = ses.make_seal(info, maker.certificate, lambda d: km.sign(maker.label, d), maker.alg)
    return ofd.seal_ofd(data, seal_der=seal_der, signer_cert=unit.certificate,
                        sign=lambda d: km.sign(unit.label, d), alg=unit.alg, **kw)


def test_seal_round_trip_two_seals(seal_pki, stamp_png, tmp_path):
    policy = SealPolicy.anchored([seal_pki["ca"].certificate])
    once = _seal(seal_pki, stamp_png, (TESTDATA / "helloworld.ofd").read_bytes())
    r1 = ofd.verify_ofd(once, policy)
    assert r1.ok, r1.to_text()
    twice = _seal(seal_pki, stamp_png, once, place=ofd.StampPlace(0, 30, 30))
    r2 = ofd.verify_ofd(twice, policy)
    assert r2.ok and len(r2.seals) == 2, r2.to_text()
    names = zipfile.ZipFile(io.BytesIO(twice)).namelist()
    assert "Doc_0/Signs/Sign_1/SignedValue.dat" in names
    assert b"<ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>" in \
        zipfile.ZipFile(io.BytesIO(twice)).read("OFD.xml")
    # changing the page after both seals breaks both; the second seal's files do not break the first
    content = zipfile.ZipFile(io.BytesIO(twice)).read("Doc_0/Pages/Page_0/Content.xml")
    bad = ofd.verify_ofd(_rezip(twice, {"Doc_0/Pages/Page_0/Content.xml": content.replace(b"Reader", b"Leader")}),
                         policy)
    assert bad.indication.value == "TOTAL_FAILED" and all(s.sub_indication.value == "HASH_FAILURE" for s in bad.seals)
    # and the commercial document can be sealed again: its first seal stays intact (and as untrusted as
    # before), ours passes
    again = ofd.verify_ofd(_seal(seal_pki, stamp_png, (TESTDATA / "v4signed.ofd").read_bytes()), policy)
    first, second = again.seals
    assert first.signature_intact and first.sub_indication.value == "NO_CERTIFICATE_CHAIN_FOUND", again.to_text()
    assert second.ok, again.to_text()


def test_bouncy_castle_checks_ofd_signed_value(seal_pki, stamp_png, tmp_path):
    from tests.interop.bouncycastle import bc_verify_many, require_bc
    require_bc()
    sealed = _seal(seal_pki, stamp_png, (TESTDATA / "helloworld.ofd").read_bytes())
    ((path, value),) = ofd.extract_signed_values(sealed)
    assert path == "Doc_0/Signs/Sign_0/Signature.xml"
    (tmp_path / "SignedValue.dat").write_bytes(value)
    (res,) = bc_verify_many([["ses-sig", str(tmp_path / "SignedValue.dat")]])
    assert res.returncode == 0, res.stderr


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for name, content in entries:
                z.writestr(zipfile.ZipInfo(name), content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


OK_OFD = (TESTDATA / "helloworld.ofd").read_bytes()


@pytest.mark.parametrize("data,why", [
    (b"", "not a readable"),
    (b"PK\x03\x04garbage", "not a readable"),
    (OK_OFD[:300], "not a readable"),
    (_zip([("OFD.xml", b"<a/>"), ("../evil.xml", b"x")]), "not allowed"),
    (_zip([("OFD.xml", b"<a/>"), ("/etc/passwd", b"x")]), "not allowed"),
    (_zip([("OFD.xml", b"<a/>"), ("Doc_0\\..\\x", b"x")]), "not allowed"),
    (_zip([("OFD.xml", b"<a/>"), ("OFD.xml", b"<b/>")]), "duplicate"),
    (_zip([("OFD.xml", b"<a/>"), ("Doc_0/A.xml", b"1"), ("doc_0/a.xml", b"2")]), "duplicate"),
    (_zip([("OFD.xml", b"<a/>"), ("bomb.bin", b"\x00" * (20 * 1024 * 1024))]), "zip bomb"),
    (_zip([("Doc_0/Document.xml", b"<a/>")]), "OFD.xml missing"),
])
def test_unsafe_packages_refused(data, why):
    with pytest.raises(BadDocument) as exc:
        ofd.read_package(data)
    assert why in exc.value.public_message
    report = ofd.verify_ofd(data)
    assert not report.ok and why in report.reasons[0]


def test_xml_entities_refused():
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>'
    report = ofd.verify_ofd(_rezip(OK_OFD, {"OFD.xml": bomb}))
    assert not report.ok and "DTD" in report.reasons[0]


def test_unsealed_document_is_invalid():
    report = ofd.verify_ofd(OK_OFD)
    assert not report.ok and "no seal" in report.reasons[0]
