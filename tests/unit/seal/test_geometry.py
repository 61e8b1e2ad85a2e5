"""seal.geometry: page sizes, the boxes of the seals a PDF or OFD carries (from the top-left, in mm), and the
sketch the console shows, against documents sealed at known places."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from seal import geometry, ofd
from seal.errors import BadDocument
from racentre.demo.samples import make_ofd, make_pdf


def test_page_sizes_of_pdf_and_ofd():
    doc = make_pdf(3)
    assert geometry.page_count(doc) == 3
    width, height = geometry.page_size(doc, 2)
    assert round(width) == 210 and round(height) == 297          # 595 x 842 pt
    assert geometry.page_size(doc, -1) == (width, height)
    with pytest.raises(BadDocument):
        geometry.page_size(doc, 3)
    package = make_ofd("甲方签章处")
    assert geometry.page_count(package) == 1 and geometry.page_size(package, 0) == (210.0, 297.0)
    assert geometry.text_boxes(package, 0)                          # the text object's boundary
    with pytest.raises(BadDocument):
        geometry.page_size(b"not a document", 0)


def test_ofd_seal_boxes_of_a_third_party_document():
    """The StampAnnot of a seal another producer wrote (v4signed.ofd) comes back as its Boundary on the page its
    PageRef names, numbered 1 as the verification report numbers it. (PDF widget boxes are checked through
    the console's sealing test, against the place the seal was put.)"""
    import re

    from tests.unit.seal.sealpki import TESTDATA
    signed = (TESTDATA / "v4signed.ofd").read_bytes()
    pkg = ofd.read_package(signed)
    xml = next(v for k, v in pkg.files.items() if k.endswith("Signature.xml")).decode("utf-8")
    boundary = [float(v) for v in re.search(r'Boundary="([^"]+)"', xml).group(1).split()]
    [box] = geometry.seal_boxes(signed)
    assert (box.page, box.label) == (0, "1") and [box.x, box.y, box.width, box.height] == boundary


def test_sketch_draws_the_box_at_its_place():
    png = geometry.sketch((210, 297), [geometry.Box(0, 105, 148.5, 42, 42, "1")], width_px=210)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (210, 297)
    assert image.getpixel((125, 148)) == (200, 0, 0)                 # the box's top edge at y = 148.5 mm
    assert image.getpixel((50, 50)) == (255, 255, 255)
