"""PDF seals through pyHanko over the HSM: SM2 seals validate with pyHanko (our SM2 validator loaded) and
the CMS inside with Bouncy Castle; RSA seals validate with stock pyHanko; several seals by incremental
updates; timestamps from our TSA; tampering after sealing is found with the reason."""
from __future__ import annotations

import io

import pytest
from asn1crypto import x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from seal.validation import SealPolicy
from seal import pdf
from seal.errors import BadDocument, SealError
from tests.localca import LocalIssuer, make_signer
from racentre.demo.samples import make_pdf


@pytest.fixture(scope="module")
def sm2(seal_pki):
    u = seal_pki["unit"]
    return pdf.HsmSigner(seal_pki["km"], u.label, u.certificate, u.alg, chain=[seal_pki["ca"].certificate])


def _seal(signer, stamp_png, doc, **kw):
    return pdf.seal_pdf(doc, signer=signer, picture=stamp_png, width_mm=40, height_mm=40, **kw)


def test_sm2_seal_validates_with_pyhanko_and_our_report(sm2, seal_pki, stamp_png):
    sealed = _seal(sm2, stamp_png, make_pdf(2), seal_name="单位公章")
    emb = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0]
    vc = ValidationContext(trust_roots=[x509.Certificate.load(seal_pki["ca"].certificate)],
                           signature_validator=pdf.Sm2SignatureValidator())
    status = validate_pdf_signature(emb, signer_validation_context=vc)
    assert status.intact and status.valid and status.trusted and status.md_algorithm == "sm3"
    report = pdf.verify_pdf(sealed, SealPolicy.anchored([seal_pki["ca"].certificate]))
    assert report.ok, report.to_text()
    assert report.seals[0].seal_name == "单位公章" and "Unit A" in report.seals[0].signer
    # without our validator pyHanko cannot check SM2: the extension is what makes it work
    from cryptography.exceptions import UnsupportedAlgorithm
    with pytest.raises(UnsupportedAlgorithm):
        validate_pdf_signature(emb, signer_validation_context=ValidationContext(
            trust_roots=[x509.Certificate.load(seal_pki["ca"].certificate)]))


def test_untrusted_chain_reported(sm2, stamp_png, seal_pki, softtoken_km):
    other_ca = LocalIssuer.create(softtoken_km, "seal-other-ca-" + __import__("secrets").token_hex(3))
    report = pdf.verify_pdf(_seal(sm2, stamp_png, make_pdf()), SealPolicy.anchored([other_ca.certificate]))
    assert not report.ok and any("trusted" in r for r in report.seals[0].reasons)


def test_bouncy_castle_verifies_the_cms(sm2, stamp_png, seal_pki, tmp_path):
    from tests.interop.bouncycastle import bc_verify_many, require_bc
    require_bc()
    sealed = _seal(sm2, stamp_png, make_pdf())
    cms_der, signed = pdf.cms_and_signed_bytes(sealed)
    (tmp_path / "sig.p7s").write_bytes(cms_der)
    (tmp_path / "content.bin").write_bytes(signed)
    (tmp_path / "wrong.bin").write_bytes(signed[:-1] + bytes([signed[-1] ^ 1]))
    (tmp_path / "ca.pem").write_bytes(seal_pki["ca"].certificate)
    ok, bad = bc_verify_many([
        ["cms", str(tmp_path / "sig.p7s"), "--content", str(tmp_path / "content.bin"), "--ca", str(tmp_path / "ca.pem")],
        ["cms", str(tmp_path / "sig.p7s"), "--content", str(tmp_path / "wrong.bin")]])
    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 1


def test_two_seals_and_timestamps(sm2, seal_pki, stamp_png, tsa):
    stamper = pdf.InProcessTimeStamper(tsa.respond)
    once = _seal(sm2, stamp_png, make_pdf(2), timestamper=stamper)
    u2 = seal_pki["unit2"]
    second = pdf.HsmSigner(seal_pki["km"], u2.label, u2.certificate, u2.alg)
    twice = _seal(second, stamp_png, once, timestamper=stamper, placement=pdf.Placement(page=-1, x_mm=20, y_mm=20))
    report = pdf.verify_pdf(twice, SealPolicy.anchored([seal_pki["ca"].certificate]))
    assert report.ok, report.to_text()
    assert len(report.seals) == 2 and all(s.timestamp_time for s in report.seals)
    assert report.seals[0].details["coverage"] == "ENTIRE_REVISION"
    assert report.seals[1].details["coverage"] == "ENTIRE_FILE"


def test_rsa_seal_validates_with_stock_pyhanko(seal_pki, stamp_png, softtoken_km):
    import secrets
    rsa_ca = LocalIssuer.create(softtoken_km, "seal-rsa-ca-" + secrets.token_hex(3), "rsa-sha256")
    u = make_signer(softtoken_km, rsa_ca, "seal-rsa-" + secrets.token_hex(3), "Unit R", "rsa-sha256")
    signer = pdf.HsmSigner(softtoken_km, u.label, u.certificate, u.alg)
    sealed = _seal(signer, stamp_png, make_pdf())
    emb = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0]
    status = validate_pdf_signature(emb, signer_validation_context=ValidationContext(
        trust_roots=[x509.Certificate.load(rsa_ca.certificate)]))
    assert status.bottom_line, status.pretty_print_details()


@pytest.fixture(scope="module")
def sealed_twice(sm2, stamp_png):
    return _seal(sm2, stamp_png, _seal(sm2, stamp_png, make_pdf(2)), placement=pdf.Placement(1))


def test_byte_changed_after_sealing(sealed_twice, seal_pki):
    pos = sealed_twice.index(b"page 1")
    bad = sealed_twice[:pos] + b"page 7" + sealed_twice[pos + 6:]
    report = pdf.verify_pdf(bad, SealPolicy.anchored([seal_pki["ca"].certificate]))
    assert not report.ok
    assert all(any("signed bytes were changed" in r for r in s.reasons) for s in report.seals), report.to_text()


def _incremental(data: bytes, change) -> bytes:
    w = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
    change(w)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def test_page_added_after_sealing(sealed_twice, seal_pki):
    def add_page(w):
        page = generic.DictionaryObject({generic.pdf_name("/Type"): generic.pdf_name("/Page"),
                                         generic.pdf_name("/MediaBox"): generic.ArrayObject(
                                             [generic.NumberObject(v) for v in (0, 0, 595, 842)])})
        w.insert_page(page)
    report = pdf.verify_pdf(_incremental(sealed_twice, add_page), SealPolicy.anchored([seal_pki["ca"].certificate]))
    assert not report.ok
    assert all(any("changed after this seal" in r for r in s.reasons) for s in report.seals), report.to_text()


def test_seal_picture_replaced_after_sealing(sealed_twice, seal_pki):
    def replace_picture(w):
        field_ref = w.root["/AcroForm"]["/Fields"].raw_get(0)
        field = field_ref.get_object()
        stream = generic.StreamObject({generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
                                       generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
                                       generic.pdf_name("/BBox"): generic.ArrayObject(
                                           [generic.NumberObject(v) for v in (0, 0, 100, 100)])},
                                      stream_data=b"0 0 1 rg 0 0 100 100 re f")
        field["/AP"] = generic.DictionaryObject({generic.pdf_name("/N"): w.add_object(stream)})
        w.update_container(field)
    report = pdf.verify_pdf(_incremental(sealed_twice, replace_picture), SealPolicy.anchored([seal_pki["ca"].certificate]))
    assert not report.ok
    assert any("changed after this seal" in r for r in report.seals[0].reasons), report.to_text()


@pytest.mark.parametrize("blob", [b"", b"%PDF-1.7\n", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>",
                                  b"not a pdf at all", make_pdf()[:400]])
def test_malformed_pdfs(blob, sm2, stamp_png):
    with pytest.raises(BadDocument):
        _seal(sm2, stamp_png, blob)
    assert not pdf.verify_pdf(blob).ok


def test_unsealed_pdf_is_invalid_and_bad_page_refused(sm2, stamp_png):
    assert "no seal" in pdf.verify_pdf(make_pdf()).reasons[0]
    with pytest.raises(SealError, match="no page"):
        _seal(sm2, stamp_png, make_pdf(), placement=pdf.Placement(page=5))
