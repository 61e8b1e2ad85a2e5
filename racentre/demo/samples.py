"""A small, valid PDF 1.7 writer for demos, tests and the benchmark (ISO 32000-1 §7.5: header, objects,
cross-reference table, trailer): text pages, optionally padded to a size with an unused image XObject,
optionally with a signature line (the issuing unit's name, e.g. 杭州市财政局, where the seal goes) on the last
page: Latin-1 text in Helvetica, other text in the Adobe CJK font STSong-Light (UniGB-UCS2-H, §9.7.5.2,
no embedding needed) with a /ToUnicode CMap."""
from __future__ import annotations

import os


def _cjk_font(first_id: int, text: str) -> list[bytes]:
    """Type0 STSong-Light font (first_id), its CIDFont (+1) and a ToUnicode CMap for ``text`` (+2)."""
    pairs = "".join(f"<{ord(c):04X}> <{ord(c):04X}>\n" for c in dict.fromkeys(text))
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /RaCentre-UCS2 def "
            "/CMapType 2 def 1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
            f"{len(dict.fromkeys(text))} beginbfchar\n{pairs}endbfchar\n"
            "endcmap CMapName currentdict /CMap defineresource pop end end").encode()
    return [b"<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H "
            b"/DescendantFonts [%d 0 R] /ToUnicode %d 0 R >>" % (first_id + 1, first_id + 2),
            b"<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) "
            b"/Ordering (GB1) /Supplement 2 >> /FontDescriptor << /Type /FontDescriptor /FontName /STSong-Light "
            b"/Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 "
            b"/StemV 93 >> /DW 1000 >>",
            b"<< /Length %d >>\nstream\n" % len(cmap) + cmap + b"\nendstream"]


def make_pdf(pages: int = 1, *, title: str = "RA Centre document", pad_to: int = 0,
             signature_line: str | None = None, signature_at: tuple[float, float] = (380, 160)) -> bytes:
    """``signature_line``: a text drawn at ``signature_at`` (points) on the last page, 16 pt."""
    objs: list[bytes] = []
    n_pages = max(1, pages)
    # 1 catalog, 2 pages, 3 font, then per page: page + content, then optional filler, then the CJK font
    page_ids = [4 + 2 * i for i in range(n_pages)]
    filler_id = 4 + 2 * n_pages
    cjk_id = filler_id + (1 if pad_to else 0)
    latin = signature_line is None or all(ord(c) < 256 for c in signature_line)
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % p for p in page_ids) + b"] /Count %d >>" % n_pages)
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    xobj = b" /XObject << /Pad %d 0 R >>" % filler_id if pad_to else b""
    cjk = b"" if latin else b" /F2 %d 0 R" % cjk_id
    for i in range(n_pages):
        text = f"BT /F1 18 Tf 72 760 Td ({title} - page {i + 1}) Tj ET\nBT /F1 11 Tf 72 730 Td " \
               f"(Sealed by the RA Centre electronic seal service.) Tj ET".encode("latin-1")
        if signature_line is not None and i == n_pages - 1:
            x, y = signature_at
            if latin:
                shown = b"/F1 16 Tf (" + signature_line.encode("latin-1").replace(b"\\", b"\\\\") \
                    .replace(b"(", b"\\(").replace(b")", b"\\)") + b") Tj"
            else:
                shown = b"/F2 16 Tf <" + signature_line.encode("utf-16-be").hex().upper().encode() + b"> Tj"
            text += b"\nq 1 0 0 1 %.2f %.2f cm BT 0 0 Td " % (x, y) + shown + b" ET Q"
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R"
                    + cjk + b" >>" + xobj + b" >> /Contents %d 0 R >>" % (page_ids[i] + 1))
        objs.append(b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream")
    if pad_to:
        size = max(0, pad_to - 2048)
        side = max(1, int((size / 3) ** 0.5))
        body = os.urandom(side * side * 3)
        objs.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                    b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(body)) + body + b"\nendstream")
    if not latin:
        objs += _cjk_font(cjk_id, signature_line)
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /ID [<%s> <%s>] >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objs) + 1, os.urandom(16).hex().encode(), os.urandom(16).hex().encode(), xref)
    return bytes(out)


def make_ofd(text: str = "RA Centre demo document") -> bytes:
    """A one-page OFD package (GB/T 33190: OFD.xml, Document.xml, PublicRes.xml, a page with one text)."""
    import io as _io
    import zipfile
    from xml.sax.saxutils import escape

    ns = 'xmlns:ofd="http://www.ofdspec.org/2016"'
    files = {
        "OFD.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:OFD {ns} Version="1.0" DocType="OFD"><ofd:DocBody>'
                   f"<ofd:DocInfo><ofd:DocID>{os.urandom(16).hex()}</ofd:DocID><ofd:Creator>RA Centre</ofd:Creator>"
                   "</ofd:DocInfo><ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>",
        "Doc_0/Document.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Document {ns}><ofd:CommonData>'
                              "<ofd:MaxUnitID>4</ofd:MaxUnitID><ofd:PageArea><ofd:PhysicalBox>0 0 210 297"
                              "</ofd:PhysicalBox></ofd:PageArea><ofd:PublicRes>PublicRes.xml</ofd:PublicRes>"
                              '</ofd:CommonData><ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/>'
                              "</ofd:Pages></ofd:Document>",
        "Doc_0/PublicRes.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Res {ns} BaseLoc="Res"><ofd:Fonts>'
                               '<ofd:Font ID="2" FontName="SimSun" FamilyName="SimSun"/></ofd:Fonts></ofd:Res>',
        "Doc_0/Pages/Page_0/Content.xml": f'<?xml version="1.0" encoding="UTF-8"?><ofd:Page {ns}><ofd:Content>'
                                          '<ofd:Layer ID="3"><ofd:TextObject ID="4" Boundary="20 20 170 10" Font="2"'
                                          f' Size="5"><ofd:TextCode X="0" Y="5">{escape(text)}</ofd:TextCode>'
                                          "</ofd:TextObject></ofd:Layer></ofd:Content></ofd:Page>",
    }
    out = _io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, content in files.items():
            z.writestr(name, content.encode("utf-8"))
    return out.getvalue()
