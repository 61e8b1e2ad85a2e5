"""Where seals sit on a page, for the officers' preview before sealing and on the verification report:
page sizes, the boxes of the seals a document already carries, and a PNG sketch of a page with them.

Coordinates here are millimetres from the page's top-left corner (OFD's own page system, GB/T 33190;
PDF's lower-left user space, ISO 32000-1 §8.3.2.3, is turned over with the page's MediaBox height).
No page content is rendered (no PDF rasteriser is kept): the sketch shows the page outline, the OFD text
objects' boundaries as grey bars, and each seal's picture or box at its place.
"""
from __future__ import annotations

import io
import posixpath
from dataclasses import dataclass

from PIL import Image, ImageDraw

from seal import ofd, pdf
from seal.errors import BadDocument
from seal.verify import document_type

A4 = (210.0, 297.0)
MAX_PAGES = 10000


@dataclass(frozen=True)
class Box:
    """A rectangle on a page (0-based page index), in mm from the top-left corner."""

    page: int
    x: float
    y: float
    width: float
    height: float
    label: str = ""


def _pdf_page_box(reader, index: int) -> tuple[float, float, float, float]:
    page_ref, _ = reader.find_page_for_modification(index)
    node = page_ref.get_object()
    for _ in range(64):                                   # /MediaBox is inheritable (ISO 32000-1 §7.7.3.4)
        box = node.get("/MediaBox")
        if box is not None:
            x0, y0, x1, y1 = (float(v) for v in box)
            return x0, y0, x1, y1
        parent = node.get("/Parent")
        if parent is None:
            break
        node = parent.get_object() if hasattr(parent, "get_object") else parent
    return 0.0, 0.0, A4[0] * pdf.MM, A4[1] * pdf.MM


def _pdf_pages(data: bytes) -> tuple[object, int]:
    reader = pdf.reader(data)
    try:
        return reader, min(int(reader.root["/Pages"]["/Count"]), MAX_PAGES)
    except (KeyError, TypeError, ValueError) as exc:
        raise BadDocument(f"PDF unreadable: {exc}") from exc


def _ofd_doc(data: bytes):
    pkg = ofd.read_package(data)
    paths = ofd.doc_paths(pkg)
    return pkg, paths, ofd.parse_xml(pkg.read(paths.doc_root), paths.doc_root)


def _ofd_box(text: str | None) -> tuple[float, float, float, float] | None:
    try:
        values = [float(v) for v in (text or "").split()]
    except ValueError:
        return None
    return tuple(values) if len(values) == 4 else None


def page_count(data: bytes) -> int:
    kind = document_type(data)
    if kind == "pdf":
        return _pdf_pages(data)[1]
    if kind == "ofd":
        return len(_ofd_doc(data)[2].findall(f"{ofd._Q}Pages/{ofd._Q}Page"))
    raise BadDocument("the document is neither a PDF nor an OFD package")


def page_size(data: bytes, page: int) -> tuple[float, float]:
    """(width, height) in mm of page ``page`` (0-based; negative counts from the end)."""
    kind = document_type(data)
    if kind == "pdf":
        reader, count = _pdf_pages(data)
        index = page % count if count and page < 0 else page
        if not 0 <= index < count:
            raise BadDocument(f"the document has no page {page + 1}")
        x0, y0, x1, y1 = _pdf_page_box(reader, index)
        return abs(x1 - x0) / pdf.MM, abs(y1 - y0) / pdf.MM
    if kind != "ofd":
        raise BadDocument("the document is neither a PDF nor an OFD package")
    pkg, paths, doc = _ofd_doc(data)
    pages = doc.findall(f"{ofd._Q}Pages/{ofd._Q}Page")
    index = page % len(pages) if pages and page < 0 else page
    if not 0 <= index < len(pages):
        raise BadDocument(f"the document has no page {page + 1}")
    box = _ofd_box(doc.findtext(f"{ofd._Q}CommonData/{ofd._Q}PageArea/{ofd._Q}PhysicalBox"))
    loc = pages[index].get("BaseLoc")
    if loc:
        path = ofd._resolve(posixpath.dirname(paths.doc_root), loc)
        if path in pkg.files:
            own = ofd.parse_xml(pkg.read(path), path).findtext(f"{ofd._Q}Area/{ofd._Q}PhysicalBox")
            box = _ofd_box(own) or box
    return (box[2], box[3]) if box else A4


def text_boxes(data: bytes, page: int) -> list[Box]:
    """The boundaries of an OFD page's text objects (the sketch's grey bars); none for PDFs."""
    if document_type(data) != "ofd":
        return []
    out = []
    for index, root in ofd.page_contents(data):
        if index != page:
            continue
        for text in root.iter(f"{ofd._Q}TextObject"):
            b = _ofd_box(text.get("Boundary"))
            if b:
                out.append(Box(index, *b))
    return out[:500]


def seal_boxes(data: bytes) -> list[Box]:
    """The seals a PDF or OFD already carries, in signature order: PDF signature widgets (/Rect on their
    page) and OFD StampAnnot boundaries; labelled 1, 2, ... as the verification report numbers them."""
    kind = document_type(data)
    if kind == "pdf":
        return _pdf_seal_boxes(data)
    if kind == "ofd":
        return _ofd_seal_boxes(data)
    return []


def _pdf_seal_boxes(data: bytes) -> list[Box]:
    reader, count = _pdf_pages(data)
    pages = {}
    for i in range(min(count, 500)):
        ref, _ = reader.find_page_for_modification(i)
        pages[(ref.idnum, ref.generation)] = i
    boxes = []
    for number, emb in enumerate(reader.embedded_signatures, start=1):
        field = emb.sig_field
        rect, page_ref = field.get("/Rect"), field.raw_get("/P") if "/P" in field else None
        if rect is None:
            kids = field.get("/Kids") or []
            if kids:
                widget = kids[0].get_object()
                rect, page_ref = widget.get("/Rect"), widget.raw_get("/P") if "/P" in widget else None
        if rect is None or page_ref is None:
            continue
        page = pages.get((getattr(page_ref, "idnum", None), getattr(page_ref, "generation", None)))
        if page is None:
            continue
        x0, y0, x1, y1 = (float(v) for v in rect)
        if x1 == x0 or y1 == y0:
            continue                                     # an invisible signature
        bx0, by0, bx1, by1 = _pdf_page_box(reader, page)
        height = abs(by1 - by0)
        boxes.append(Box(page, (min(x0, x1) - bx0) / pdf.MM, (height - (max(y0, y1) - by0)) / pdf.MM,
                         abs(x1 - x0) / pdf.MM, abs(y1 - y0) / pdf.MM, str(number)))
    return boxes


def _ofd_seal_boxes(data: bytes) -> list[Box]:
    pkg, paths, doc = _ofd_doc(data)
    if not paths.signatures or paths.signatures not in pkg.files:
        return []
    ids = [p.get("ID") for p in doc.findall(f"{ofd._Q}Pages/{ofd._Q}Page")]
    listing = ofd.parse_xml(pkg.read(paths.signatures), paths.signatures)
    boxes = []
    for number, entry in enumerate(listing.findall(f"{ofd._Q}Signature"), start=1):
        try:
            path = ofd._resolve(posixpath.dirname(paths.signatures), entry.get("BaseLoc") or "")
        except BadDocument:
            continue
        if path not in pkg.files:
            continue
        for annot in ofd.parse_xml(pkg.read(path), path).iter(f"{ofd._Q}StampAnnot"):
            b = _ofd_box(annot.get("Boundary"))
            if b and annot.get("PageRef") in ids:
                boxes.append(Box(ids.index(annot.get("PageRef")), *b, label=str(number)))
    return boxes


def sketch(page_mm: tuple[float, float], boxes: list[Box], *, picture: bytes | None = None,
           text: list[Box] = (), width_px: int = 360) -> bytes:
    """A PNG of one page: white page, grey text bars, each box outlined (red) with ``picture`` drawn in it
    when given. Scale: ``width_px`` pixels for the page's width."""
    scale = width_px / max(page_mm[0], 1.0)
    size = (width_px, max(1, min(4000, round(page_mm[1] * scale))))
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, size[0] - 1, size[1] - 1], outline=(120, 120, 120))
    for t in text:
        draw.rectangle([t.x * scale, t.y * scale, (t.x + t.width) * scale, (t.y + t.height) * scale],
                       fill=(215, 215, 215))
    stamp = None
    if picture:
        try:
            stamp = Image.open(io.BytesIO(picture)).convert("RGBA")
        except (OSError, ValueError):
            stamp = None
    for b in boxes:
        left, top = round(b.x * scale), round(b.y * scale)
        right, bottom = round((b.x + b.width) * scale), round((b.y + b.height) * scale)
        if stamp is not None and right > left and bottom > top:
            fitted = stamp.resize((right - left, bottom - top))
            image.paste(fitted, (left, top), fitted)
        draw.rectangle([left, top, right, bottom], outline=(200, 0, 0), width=2)
        if b.label:
            draw.text((left + 3, top + 2), b.label, fill=(200, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
