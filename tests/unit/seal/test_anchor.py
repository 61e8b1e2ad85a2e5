"""Seals anchored to a text (the unit's name on the signature line): the content-stream reader finds
Latin-1 and ToUnicode-mapped CJK text, through Tm/Td/cm/TJ/'; REST ``anchor=`` centres the seal over it
in PDF and OFD, and a text that is not there is a 400."""
from __future__ import annotations

import io
import zipfile
import xml.etree.ElementTree as ET

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from seal import anchor, ofd, pdf
from racentre.demo.samples import make_ofd, make_pdf
from tests.unit.seal.test_views import _make, client  # noqa: F401 - the /seal app fixture

UNIT = "杭州市财政局"


def _page_pdf(content: bytes) -> bytes:
    """A one-page PDF around a raw content stream (Helvetica as /F1)."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
            b"/Contents 4 0 R >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.7\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _find(content: bytes, text: str):
    return anchor.find_in_pdf(pdf.reader(_page_pdf(content)), text)


def test_content_stream_reader_positions():
    # Td inside BT, 10 pt Helvetica: "Unit" starts 5 glyphs (0.5 em each) after x=100
    f = _find(b"BT /F1 10 Tf 100 200 Td (Dear Unit) Tj ET", "Unit")
    assert (f.page, f.cx, f.cy) == (0, 100 + 25 + 10, 200 + 3.5)
    # Tm with scale 2 and a cm translation; TJ array with kerning numbers; escaped parentheses
    f = _find(b"q 1 0 0 1 50 60 cm BT /F1 10 Tf 2 0 0 2 100 200 Tm [(Fin) -120 (ance \\(HZ\\))] TJ ET Q",
              "Finance(HZ)")
    assert f.cx == pytest.approx(150 + 11 * 0.5 * 20 / 2) and f.cy == pytest.approx(260 + 0.35 * 20)
    # ' moves to the next line by the leading first
    f = _find(b"BT /F1 12 Tf 14 TL 72 700 Td (first line) Tj (Bureau) ' ET", "Bureau")
    assert f.cy == pytest.approx(700 - 14 + 0.35 * 12)
    # hex strings and octal escapes decode as Latin-1 in a simple font
    assert _find(b"BT /F1 10 Tf 0 0 Td <48616E677A686F75> Tj ET", "Hangzhou").cx == pytest.approx(20)
    assert _find(b"BT /F1 10 Tf 0 0 Td (\\110angzhou) Tj ET", "Hangzhou").cx == pytest.approx(20)
    with pytest.raises(anchor.AnchorNotFound, match="not found"):
        _find(b"BT /F1 10 Tf 0 0 Td (Dear Unit) Tj ET", "Bureau")
    with pytest.raises(anchor.AnchorNotFound):
        _find(b"0 0 m 10 10 l S", "Bureau")          # no text at all


def test_cjk_unit_name_through_to_unicode():
    doc = make_pdf(2, signature_line=UNIT, signature_at=(380, 160))
    f = anchor.find_in_pdf(pdf.reader(doc), UNIT)
    assert (f.page, f.cx, f.cy) == (1, 380 + 6 * 16 / 2, pytest.approx(160 + 0.35 * 16))
    assert anchor.find_in_pdf(pdf.reader(doc), "财政").cx == 380 + 3 * 16 + 16
    with pytest.raises(anchor.AnchorNotFound, match="page 1"):
        anchor.find_in_pdf(pdf.reader(doc), UNIT, page=0)


def _widget_centre(data: bytes, index: int = -1):
    reader = PdfFileReader(io.BytesIO(data))
    field = reader.embedded_signatures[index].sig_field
    x0, y0, x1, y1 = (float(v) for v in field["/Rect"])
    page_ref = field.raw_get("/P")
    pages = [p.idnum for p in reader.root["/Pages"].raw_get("/Kids")]
    return pages.index(page_ref.idnum), (x0 + x1) / 2, (y0 + y1) / 2


def test_rest_pdf_seal_centred_over_the_unit_name(client, seal_pki, stamp_png):  # noqa: F811
    seal = _make(client, seal_pki, stamp_png)
    doc = make_pdf(2, signature_line=UNIT, signature_at=(380, 160))
    r = client.post(f"/seal/seals/{seal['id']}/sign", query_string={"anchor": UNIT},
                    headers=client.tokens["clerk"], data=doc, content_type="application/pdf")
    assert r.status_code == 200, r.json
    page, cx, cy = _widget_centre(r.data)
    assert page == 1 and cx == pytest.approx(428, abs=1.5) and cy == pytest.approx(165.6, abs=1.5)
    v = client.post("/seal/verify", headers=client.tokens["clerk"], data=r.data)
    assert v.json["ok"], v.json
    # a second seal anchored on the same text of the sealed document (incremental update)
    r2 = client.post(f"/seal/seals/{seal['id']}/sign", query_string={"anchor": "RA Centre document - page 1"},
                     headers=client.tokens["clerk"], data=r.data, content_type="application/pdf")
    assert r2.status_code == 200 and _widget_centre(r2.data)[0] == 0
    assert client.post("/seal/verify", headers=client.tokens["clerk"], data=r2.data).json["ok"]


def test_rest_anchor_not_found_is_400(client, seal_pki, stamp_png):  # noqa: F811
    seal = _make(client, seal_pki, stamp_png)
    doc = make_pdf(2, signature_line=UNIT)
    for query in ({"anchor": "上海市财政局"}, {"anchor": UNIT, "page": "1"}):
        r = client.post(f"/seal/seals/{seal['id']}/sign", query_string=query, headers=client.tokens["clerk"],
                        data=doc, content_type="application/pdf")
        assert r.status_code == 400 and "not found" in r.get_data(as_text=True), (query, r.get_data(as_text=True))
    r = client.post(f"/seal/seals/{seal['id']}/sign", query_string={"anchor": "上海市财政局"},
                    headers=client.tokens["clerk"], data=make_ofd("RA Centre 杭州市财政局"),
                    content_type="application/ofd")
    assert r.status_code == 400 and "not found" in r.get_data(as_text=True)


def test_rest_ofd_stamp_centred_over_the_unit_name(client, seal_pki, stamp_png):  # noqa: F811
    seal = _make(client, seal_pki, stamp_png)          # 42 x 42 mm
    doc = make_ofd("发文单位 " + UNIT)                   # TextObject Boundary 20 20, Size 5, TextCode X 0 Y 5
    r = client.post(f"/seal/seals/{seal['id']}/sign", query_string={"anchor": UNIT},
                    headers=client.tokens["clerk"], data=doc, content_type="application/ofd")
    assert r.status_code == 200, r.get_data(as_text=True)
    with zipfile.ZipFile(io.BytesIO(r.data)) as z:
        sig = ET.fromstring(z.read("Doc_0/Signs/Sign_0/Signature.xml"))
    annot = sig.find(f".//{{{ofd.NS}}}StampAnnot")
    x, y, w, h = (float(v) for v in annot.get("Boundary").split())
    # "发文单位 " then the name: 4 CJK glyphs (5 mm each) and a space (0.5 em) before it
    assert x + w / 2 == pytest.approx(20 + 4 * 5 + 6 * 5 / 2 + 0.5 * 5, abs=0.01)
    assert y + h / 2 == pytest.approx(20 + 5 - 0.35 * 5, abs=0.01)
    assert client.post("/seal/verify", headers=client.tokens["clerk"], data=r.data).json["ok"]
