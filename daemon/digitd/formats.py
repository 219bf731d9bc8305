"""Image formats from their bytes: which format, its size from the header, and
whether the file ends where the format says it should. Pure, no decoders, so
the inbox can ask "is this file complete?" without loading OpenCV.
"""

from __future__ import annotations

import struct

TAIL = 64  # bytes at the end of a file that :func:`ends_early` looks at


def sniff(data: bytes) -> str | None:
    """The image format the bytes hold, from their magic number, or None."""
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
            end = "<" if data[:2] == b"II" else ">"
            (ifd,) = struct.unpack(end + "I", data[4:8])
            (count,) = struct.unpack(end + "H", data[ifd : ifd + 2])
            dims = {}
            for k in range(count):
                tag, kind, _, raw = struct.unpack(end + "HHI4s", data[ifd + 2 + 12 * k : ifd + 14 + 12 * k])
                if tag in (256, 257):
                    dims[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), raw[: 2 if kind == 3 else 4])[0]
            return (dims[256], dims[257]) if len(dims) == 2 else None
        if fmt == "JPEG":
            i = 2
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
                    return w, h
                i += 2 + length
    except struct.error:
        return None
    return None


def ends_early(head: bytes, tail: bytes, size: int) -> str | None:
    """The format, if a file that starts with ``head`` and ends with ``tail`` (its
    last :data:`TAIL` bytes) is ``size`` bytes long and so ends before the image
    does: a PNG without its IEND chunk, a JPEG without its end marker, a BMP or
    WebP shorter than its header says. None if complete, or not known to be short."""
    fmt = sniff(head)
    if fmt == "PNG" and b"IEND" not in tail[-32:]:
        return fmt
    if fmt == "JPEG" and b"\xff\xd9" not in tail:
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
