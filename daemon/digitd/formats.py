"""Input formats from their bytes: which format (an image, or a PDF document), its
size and resolution from the header, a TIFF's pages, and whether the file ends
where the format says it should. Pure, no decoders, so the inbox can ask "is
this file complete?" without loading OpenCV.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

TAIL = 1024  # bytes at the end of a file that :func:`ends_early` looks at (a PDF's %%EOF may be anywhere in them)
MAX_TIFF_PAGES = 10_000  # directories :func:`tiff_pages` walks at most
# An input up to REDUCE_MAX² times the pixel limit is read smaller to fit it (a
# JPEG decoded at 1/2 or 1/4 of its size, a PDF page drawn at down to a quarter
# of the dpi); larger, it is refused.
REDUCE_MAX = 4


class InputError(Exception):
    """The input cannot be recognised, and retrying will not help (quarantine it)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def sniff(data: bytes) -> str | None:
    """The format the bytes hold, from their magic number, or None."""
    if data.startswith(b"%PDF-"):
        return "PDF"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data.startswith(b"BM"):
        return "BMP"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if b"%PDF-" in data[:1024]:  # after a few bytes of something else, as PDF readers allow
        return "PDF"
    return None


def header_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """(width, height) read from the header without decoding, where the format allows."""
    try:
        if fmt == "PNG" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "BMP":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if fmt == "WebP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                w = int.from_bytes(data[24:27], "little") + 1
                h = int.from_bytes(data[27:30], "little") + 1
                return w, h
            if chunk == b"VP8L":
                b = int.from_bytes(data[21:25], "little")
                return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
        if fmt == "TIFF":
            first = tiff_pages(data, most=1)
            return first[0].size if first else None
        if fmt == "JPEG":
            frame = jpeg_frame(data)
            return frame[:2] if frame else None
    except struct.error:
        return None
    return None


def jpeg_frame(data: bytes) -> tuple[int, int, int] | None:
    """A JPEG's (width, height, components) from its frame header, or None."""
    i = 2
    try:
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            length = struct.unpack(">H", data[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return w, h, data[i + 9]
            i += 2 + length
    except (struct.error, IndexError):
        return None
    return None


@dataclass(frozen=True)
class TiffPage:
    """One directory of a TIFF: its pixel size and resolution, as its tags say."""

    width: int | None
    height: int | None
    dpi: float | None

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self.width is None or self.height is None else (self.width, self.height)


_TIFF_SIZES = {1: 1, 3: 2, 4: 4, 5: 8}  # BYTE, SHORT, LONG, RATIONAL: bytes per value


def tiff_pages(data: bytes, most: int = MAX_TIFF_PAGES) -> list[TiffPage]:
    """A TIFF's pages (its chain of directories) as their tags describe them, at
    most ``most``; the walk stops at a loop or an offset outside the file."""
    end = "<" if data[:2] == b"II" else ">"
    found: list[TiffPage] = []
    seen: set[int] = set()
    try:
        (ifd,) = struct.unpack(end + "I", data[4:8])
        while ifd and ifd not in seen and len(found) < most and ifd + 2 <= len(data):
            seen.add(ifd)
            (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
            tags: dict[int, object] = {}
            for k in range(count):
                at = ifd + 2 + 12 * k
                tag, kind, n, raw = struct.unpack(end + "HHI4s", data[at : at + 12])
                if tag in (256, 257, 296) and kind in (3, 4) and n >= 1:
                    tags[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), raw[: _TIFF_SIZES[kind]])[0]
                elif tag == 282 and kind == 5:  # XResolution: a RATIONAL stored at an offset
                    (where,) = struct.unpack(end + "I", raw)
                    if where + 8 <= len(data):
                        num, den = struct.unpack(end + "II", data[where : where + 8])
                        tags[tag] = num / den if den else None
            unit = {2: 1.0, 3: 2.54}.get(tags.get(296, 2))  # ResolutionUnit: inch (the default) or cm
            res = tags.get(282)
            found.append(TiffPage(tags.get(256), tags.get(257), res * unit if res and unit else None))
            (ifd,) = struct.unpack(end + "I", data[ifd + 2 + 12 * count : ifd + 6 + 12 * count])
    except struct.error:
        pass
    return found


def resolution(data: bytes, fmt: str) -> float | None:
    """The dpi a PNG (pHYs), JPEG (JFIF density) or TIFF (first page) says it was
    scanned at, or None when it does not say."""
    try:
        if fmt == "PNG":
            i = 8
            while i + 8 <= len(data):
                length, kind = struct.unpack(">I4s", data[i : i + 8])
                if kind == b"pHYs":
                    x, _, unit = struct.unpack(">IIB", data[i + 8 : i + 17])
                    return x * 0.0254 if unit == 1 and x else None
                if kind in (b"IDAT", b"IEND"):
                    return None
                i += 12 + length
        if fmt == "JPEG" and data[2:4] == b"\xff\xe0" and data[6:11] == b"JFIF\x00":
            unit, x = data[13], struct.unpack(">H", data[14:16])[0]
            return {1: 1.0, 2: 2.54}[unit] * x if unit in (1, 2) and x else None
        if fmt == "TIFF":
            first = tiff_pages(data, most=1)
            return first[0].dpi if first else None
    except struct.error:
        return None
    return None


def ends_early(head: bytes, tail: bytes, size: int) -> str | None:
    """The format, if a file that starts with ``head`` and ends with ``tail`` (its
    last :data:`TAIL` bytes) is ``size`` bytes long and so ends before the image
    does: a PNG without its IEND chunk, a JPEG without its end marker, a PDF
    without ``%%EOF`` in its last 1024 bytes (where readers look for it), a BMP
    or WebP shorter than its header says. None if complete, or not known to be short."""
    fmt = sniff(head)
    if fmt == "PNG" and b"IEND" not in tail[-32:]:
        return fmt
    if fmt == "JPEG" and b"\xff\xd9" not in tail[-64:]:
        return fmt
    if fmt == "PDF" and b"%%EOF" not in tail[-1024:]:
        return fmt
    if fmt == "BMP" and len(head) >= 6 and struct.unpack("<I", head[2:6])[0] > size:
        return fmt
    if fmt == "WebP" and struct.unpack("<I", head[4:8])[0] + 8 > size:
        return fmt
    return None


def file_ends_early(path: str, size: int) -> str | None:
    """:func:`ends_early` of the file at ``path`` (``size`` bytes, from its stat);
    None too when it cannot be read (the reader will say why)."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
            f.seek(max(0, size - TAIL))
            tail = f.read(TAIL)
    except OSError:
        return None
    return ends_early(head, tail, size)
