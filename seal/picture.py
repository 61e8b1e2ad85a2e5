"""Seal picture checks (GB/T 38540 §7.1.3 SES_ESPictrueInfo: GIF/BMP/JPG/PNG): the type is taken from the
magic bytes, the file must decode completely with Pillow, and size and pixel dimensions are bounded."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from seal.errors import BadPicture

MAX_BYTES = 512 * 1024
MIN_PIXELS = 32
MAX_PIXELS = 2048
MIN_MM, MAX_MM = 10, 100
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG", "PNG"), (b"GIF87a", "GIF", "GIF"), (b"GIF89a", "GIF", "GIF"),
          (b"\xff\xd8\xff", "JPG", "JPEG"))


@dataclass(frozen=True)
class Picture:
    type: str           # PNG | GIF | JPG (the SES_ESPictrueInfo type)
    data: bytes
    width_px: int
    height_px: int


def sniff(data: bytes) -> tuple[str, str] | None:
    for magic, ses_type, pil_format in _MAGIC:
        if data.startswith(magic):
            return ses_type, pil_format
    return None


def validate_picture(data: bytes, *, max_bytes: int = MAX_BYTES) -> Picture:
    """The checked picture, or BadPicture with the reason."""
    if not data:
        raise BadPicture("seal picture is empty")
    if len(data) > max_bytes:
        raise BadPicture(f"seal picture is {len(data)} bytes; at most {max_bytes} are allowed")
    kind = sniff(data)
    if kind is None:
        raise BadPicture("seal picture must be PNG, GIF or JPG (unrecognised file signature)")
    ses_type, pil_format = kind
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[pil_format]) as img:
                width, height = img.size
                if not (MIN_PIXELS <= width <= MAX_PIXELS and MIN_PIXELS <= height <= MAX_PIXELS):
                    raise BadPicture(f"seal picture is {width}x{height} pixels; each side must be "
                                     f"{MIN_PIXELS}..{MAX_PIXELS}")
                img.verify()
            with Image.open(io.BytesIO(data), formats=[pil_format]) as img:
                img.load()          # a full decode: truncated or corrupt data fails here
    except BadPicture:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning, EOFError) as exc:
        raise BadPicture(f"seal picture does not decode as {ses_type}: {exc}") from exc
    return Picture(ses_type, data, width, height)


def check_size_mm(width_mm: int, height_mm: int) -> None:
    for v in (width_mm, height_mm):
        if not isinstance(v, int) or not (MIN_MM <= v <= MAX_MM):
            raise BadPicture(f"seal size must be {MIN_MM}..{MAX_MM} mm on each side (got {width_mm}x{height_mm})")
