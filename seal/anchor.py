"""Seal placement anchored to a text on the page (e.g. the unit's name above the signature line): where
a text is drawn in a PDF page (ISO 32000-1 §9.4 text objects) or an OFD page (GB/T 33190 §11.2
TextObject/TextCode), so the seal can be centred over it.

PDF: a pragmatic reader of the page content streams, not a text extractor. It follows q/Q/cm, BT/ET,
Tf, TL, Td/TD/Tm/T*, and the text-showing operators Tj, TJ, ' and " with literal and hex strings, and
decodes the shown bytes through the font's /ToUnicode CMap (bfchar/bfrange, 1- or 2-byte codes) when
there is one, else as Latin-1 (simple fonts with a standard encoding). Limits: no font metrics (a glyph
is taken as 0.5 em wide, CJK glyphs 1 em; TJ kerning and Tc/Tw spacing ignored), no Form XObjects or
annotations, text split across BT blocks is not joined, and text drawn as paths or images is not found.
The tokenizer is ours because pyHanko 0.38's content-stream parser
(``pyhanko.pdf_utils.content_stream_parser.parse_content_stream``) refuses the ' and " text operators
(ISO 32000-1 §9.4.3, Table 109) and any inline image (§8.9.7); tests/unit/test_library_contracts.py
fails when a pyHanko upgrade reads them, and then this should use it.
The text is found within one BT block (the strings of its show operators joined in order; the seal is
centred from the position of the string where the text starts).

OFD: TextCode elements with their explicit X/Y inside the TextObject's Boundary (mm, y downwards);
DeltaX/CTM are ignored (glyph width as above from the TextObject's Size).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfError

from seal.errors import SealError

MM = 72 / 25.4
_MAX_CONTENT = 8 * 1024 * 1024


class AnchorNotFound(SealError):
    """The anchor text is not on the page(s) searched."""


@dataclass(frozen=True)
class Found:
    """Where the anchor text is: page index (0-based) and its centre; PDF: points from the lower-left
    corner; OFD: mm from the top-left corner."""

    page: int
    cx: float
    cy: float


def _glyph_em(ch: str) -> float:
    return 1.0 if ord(ch) >= 0x2E80 else 0.5


# ------------------------------------------------------------------ PDF

_TOKEN = re.compile(rb"\s*(?:(\()|(<<|>>)|<([0-9A-Fa-f\s]*)>|(\[)|(\])|(/[^\s/\[\]()<>{}%]*)|"
                    rb"([+-]?(?:\d+\.?\d*|\.\d+))|([A-Za-z'\"*][A-Za-z0-9'\"*]*)|(%[^\r\n]*)|([{}]))")
_ESC = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"(": b"(", b")": b")", b"\\": b"\\"}


def _literal(data: bytes, i: int) -> tuple[bytes, int]:
    """A literal string starting after its '(' at ``i``: (bytes, index after the closing ')')."""
    out, depth = bytearray(), 1
    while i < len(data):
        c = data[i:i + 1]
        if c == b"\\":
            nxt = data[i + 1:i + 2]
            if nxt in _ESC:
                out += _ESC[nxt]
                i += 2
            elif nxt.isdigit():
                m = re.match(rb"[0-7]{1,3}", data[i + 1:i + 4])
                out.append(int(m.group(0), 8) & 0xFF)
                i += 1 + len(m.group(0))
            elif nxt in (b"\r", b"\n"):
                i += 2 + (nxt == b"\r" and data[i + 2:i + 3] == b"\n")
            else:
                i += 1
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
        out += c
        i += 1
    return bytes(out), i


def _tokens(data: bytes):
    """Operands and operators of a content stream: ("op", name) or ("val", value)."""
    i = 0
    while i < len(data):
        m = _TOKEN.match(data, i)
        if m is None:
            i += 1
            continue
        i = m.end()
        if m.group(1):
            s, i = _literal(data, i)
            yield "val", s
        elif m.group(3) is not None:
            hexs = re.sub(rb"\s", b"", m.group(3))
            yield "val", bytes.fromhex((hexs + b"0" * (len(hexs) % 2)).decode())
        elif m.group(4):
            yield "val", "["
        elif m.group(5):
            yield "val", "]"
        elif m.group(6):
            yield "val", m.group(6).decode("latin-1")
        elif m.group(7):
            yield "val", float(m.group(7))
        elif m.group(8):
            op = m.group(8).decode("latin-1")
            if op == "BI":              # inline image: skip to EI
                end = data.find(b"EI", i)
                i = len(data) if end < 0 else end + 2
                continue
            yield "op", op
        elif m.group(2):
            yield "val", m.group(2).decode()


def _mul(a, b):
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
            a[2] * b[1] + a[3] * b[3], a[4] * b[0] + a[5] * b[2] + b[4], a[4] * b[1] + a[5] * b[3] + b[5])


class _Font:
    """Decodes shown bytes: /ToUnicode bfchar/bfrange when present, else Latin-1."""

    def __init__(self, font):
        self.map: dict[bytes, str] = {}
        self.width = 1
        try:
            cmap = font.get("/ToUnicode") if font is not None else None
            if cmap is not None:
                self._parse(cmap.get_object().data)
        except (PdfError, KeyError, TypeError, ValueError, AttributeError):
            self.map = {}

    def _parse(self, data: bytes) -> None:
        def uni(h: bytes) -> str:
            return bytes.fromhex(h.decode()).decode("utf-16-be", "replace")
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
            for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                self.map[bytes.fromhex(src.decode())] = uni(dst)
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
            for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                a, b, n = int(lo, 16), int(hi, 16), len(lo) // 2
                base = bytes.fromhex(dst.decode()).decode("utf-16-be", "replace")
                for k in range(min(b - a + 1, 65536)):
                    self.map[(a + k).to_bytes(n, "big")] = base[:-1] + chr(ord(base[-1]) + k) if base else ""
        if self.map:
            self.width = max(len(k) for k in self.map)

    def decode(self, raw: bytes) -> str:
        if not self.map:
            return raw.decode("latin-1")
        return "".join(self.map.get(raw[i:i + self.width], "\ufffd") for i in range(0, len(raw), self.width))


Segment = tuple[str, float, float, float]     # shown text, x, y of its first glyph (default user space), size


def _page_text_runs(page) -> list[list[Segment]]:
    """Per BT block, the segments its show operators draw."""
    contents = page.get("/Contents")
    if contents is None:
        return []
    contents = contents.get_object()
    parts = contents if isinstance(contents, generic.ArrayObject) else [contents]
    data = b"\n".join(p.get_object().data for p in parts)
    if len(data) > _MAX_CONTENT:
        raise SealError("the page content is too large to search for the anchor text")
    fonts_dict = page.get("/Resources", generic.DictionaryObject()).get_object().get("/Font",
                                                                                     generic.DictionaryObject())
    fonts: dict[str, _Font] = {}
    ident = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    ctm, stack = ident, []
    tm = tlm = ident
    size, leading, font = 12.0, 0.0, _Font(None)
    runs: list[list[Segment]] = []
    block: list[Segment] = []
    operands: list = []

    def show(raw: bytes):
        nonlocal tm
        text = font.decode(raw)
        m = _mul(tm, ctm)
        block.append((text, m[4], m[5], size * (abs(m[3]) or abs(m[0]) or 1.0)))
        tm = (tm[0], tm[1], tm[2], tm[3], tm[4] + sum(_glyph_em(c) for c in text) * size * tm[0], tm[5])

    def nums(k):
        vals = [v for v in operands if isinstance(v, float)]
        return vals[-k:] if len(vals) >= k else None

    for kind, value in _tokens(data):
        if kind == "val":
            operands.append(value)
            continue
        op = value
        if op == "q":
            stack.append(ctm)
        elif op == "Q":
            ctm = stack.pop() if stack else ident
        elif op == "cm" and (v := nums(6)):
            ctm = _mul(tuple(v), ctm)
        elif op == "BT":
            tm = tlm = ident
            block = []
        elif op == "ET":
            if block:
                runs.append(block)
            block = []
        elif op == "Tf" and (v := nums(1)):
            name = next((o for o in reversed(operands) if isinstance(o, str) and o.startswith("/")), None)
            size = v[0]
            if name not in fonts:
                try:
                    fonts[name] = _Font(fonts_dict.get_object().get(name).get_object() if name else None)
                except (PdfError, KeyError, TypeError, AttributeError):
                    fonts[name] = _Font(None)
            font = fonts[name]
        elif op == "TL" and (v := nums(1)):
            leading = v[0]
        elif op in ("Td", "TD") and (v := nums(2)):
            if op == "TD":
                leading = -v[1]
            tlm = _mul((1.0, 0.0, 0.0, 1.0, v[0], v[1]), tlm)
            tm = tlm
        elif op == "Tm" and (v := nums(6)):
            tm = tlm = tuple(v)
        elif op in ("T*", "'", '"'):
            tlm = _mul((1.0, 0.0, 0.0, 1.0, 0.0, -leading), tlm)
            tm = tlm
            if op != "T*" and operands and isinstance(operands[-1], bytes):
                show(operands[-1])
        elif op == "Tj" and operands and isinstance(operands[-1], bytes):
            show(operands[-1])
        elif op == "TJ":
            for o in operands:
                if isinstance(o, bytes):
                    show(o)
        operands = []
    return runs


def find_in_pdf(reader, text: str, page: int | None = None) -> Found:
    """The first place ``text`` is shown (on ``page``, or on any page from the first)."""
    if not text.strip():
        raise SealError("the anchor text is empty")
    try:
        pages = list(_pages(reader.root["/Pages"]))
    except (PdfError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise SealError(f"the PDF pages cannot be read: {exc}") from exc
    if page is not None and page < 0:
        page += len(pages)
    indices = [page] if page is not None else range(len(pages))
    needle = _norm(text)
    for i in indices:
        if not 0 <= i < len(pages):
            raise SealError(f"the PDF has no page {i + 1}")
        try:
            runs = _page_text_runs(pages[i])
        except (PdfError, KeyError, TypeError, ValueError, AttributeError, RecursionError):
            continue
        for segments in runs:
            hit = _locate(segments, text, needle)
            if hit is not None:
                return Found(i, *hit)
    where = f"page {page + 1}" if page is not None else "any page"
    raise AnchorNotFound(f"the anchor text {text!r} was not found on {where} of the PDF")


def _locate(segments: list[Segment], text: str, needle: str) -> tuple[float, float] | None:
    """Centre of ``text`` in one BT block's segments (joined; without whitespace if need be): from the
    segment where it starts, at that segment's size."""
    for squeeze in (False, True):
        texts = [_norm(t) if squeeze else t for t, *_ in segments]
        at = "".join(texts).find(needle if squeeze else text)
        if at < 0:
            continue
        for shown, (_, x, y, size) in zip(texts, segments):
            if at < len(shown):
                before = sum(_glyph_em(c) for c in shown[:at]) * size
                width = sum(_glyph_em(c) for c in (needle if squeeze else text)) * size
                return x + before + width / 2, y + 0.35 * size
            at -= len(shown)
    return None


def _pages(node, depth: int = 0):
    node = node.get_object()
    if depth > 32:
        raise ValueError("page tree too deep")
    if node.get("/Type") == "/Pages" or "/Kids" in node:
        for kid in node["/Kids"]:
            yield from _pages(kid, depth + 1)
    else:
        yield node


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s)


# ------------------------------------------------------------------ OFD

def find_in_ofd(pages: list[tuple[int, "object"]], text: str, ns: str) -> Found:
    """``pages``: (page index, parsed page Content.xml root). Centre of ``text`` in the first TextCode
    holding it (text split over several TextCodes is not joined), in mm from the page's top-left."""
    if not text.strip():
        raise SealError("the anchor text is empty")
    needle = _norm(text)
    for index, root in pages:
        for obj in root.iter(f"{ns}TextObject"):
            try:
                bx, by, _, _ = (float(v) for v in (obj.get("Boundary") or "").split())
                size = float(obj.get("Size") or 0)
            except ValueError:
                continue
            for code in obj.findall(f"{ns}TextCode"):
                shown = code.text or ""
                at = shown.find(text)
                if at < 0:
                    shown = _norm(shown)
                    at = shown.find(needle)
                if at >= 0:
                    x = bx + float(code.get("X") or 0) + sum(_glyph_em(c) for c in shown[:at]) * size
                    width = sum(_glyph_em(c) for c in (text if text in (code.text or "") else needle)) * size
                    baseline = by + float(code.get("Y") or 0)
                    return Found(index, x + width / 2, baseline - 0.35 * size)
    raise AnchorNotFound(f"the anchor text {text!r} was not found in the OFD document")
