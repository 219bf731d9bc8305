"""Reading an input file: bytes in once, checked, decoded into Scans, page by page.

Everything that can be wrong with an input's bytes is an :class:`InputError`
with a reason a person understands; the file is then quarantined. Sizes are
checked from the header before any pixel is decoded, so a decompression bomb
never reaches the decoder. A JPEG (a phone photo) is turned upright by its EXIF
orientation and, up to 16 times the pixel limit, decoded reduced to fit it; a
JPEG far larger than the reading needs (a phone photo) is decoded reduced too.
A PDF's pages (:mod:`digitd.documents`) and a TIFF's come one at a time.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

# OpenCV's own backstop against huge images, read when cv2 first decodes; the
# header checks below refuse them earlier with a clearer reason.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from . import documents  # noqa: E402
from .formats import (MAX_TIFF_PAGES, REDUCE_MAX, TAIL, InputError, ends_early,  # noqa: E402
                      header_size, jpeg_frame, resolution, sniff, tiff_pages)
from .records import Scan  # noqa: E402

__all__ = ["InputError", "Page", "decode", "pages", "read_bytes", "sha256", "to_scan"]

_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def read_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The file's bytes, read once. Too large, or not a regular file (a pipe would
    block the reader forever, a device never end) -> InputError; a folder ->
    IsADirectoryError; other OSErrors pass through."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
        if not stat.S_ISREG(st.st_mode):
            kind = next((word for test, word in _KINDS if test(st.st_mode)), "not a plain file")
            raise InputError(f"not a regular file ({kind})")
        size = st.st_size
        if size > max_bytes:
            raise InputError(f"file too large: {size} bytes > limit {max_bytes} (max_file_mb)")
        # Read what fstat says is there, plus one byte to notice a file still
        # growing (read(max_bytes + 1) would allocate the whole limit each time).
        data = f.read(size + 1)
        if len(data) > size:
            data += f.read(max_bytes + 1 - len(data))
    if len(data) > max_bytes:
        raise InputError(f"file too large: more than {max_bytes} bytes (max_file_mb)")
    return data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Page:
    """One page of an input: its 1-based ``number`` and its ``scan``, or the
    ``reason`` it could not be read (the other pages still are)."""

    number: int
    scan: Scan | None = None
    dpi: float | None = None  # the resolution it was rasterised or scanned at, if known
    reason: str | None = None


def pages(data: bytes, max_pixels: int, *, dpi: float = 200.0, max_pages: int = 50,
          seconds: float | None = None) -> Iterator[Page]:
    """An input's pages one at a time (a document's pages are never all in memory).

    Raises InputError when the input as a whole cannot be read (not an image,
    a broken or encrypted document, too many pages, past ``seconds``); a page
    that alone cannot be read comes as a Page with a ``reason``. A plain image
    is one page; a PDF's pages are drawn at ``dpi`` (lower for a page too large
    for ``max_pixels``). ``seconds``: the document's time limit
    (``max_document_seconds``), checked before each page.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    fmt = check(data, max_pixels)
    if fmt == "PDF":
        with documents.open_pdf(data, max_pages) as doc:
            for index in range(documents.page_count(doc)):
                _check_time(deadline, seconds)
                try:
                    pixels, at = documents.render_page(doc, index, dpi, max_pixels)
                except InputError as exc:
                    yield Page(number=index + 1, reason=exc.reason)
                    continue
                plane = _equal_channels(pixels)  # a grey page: its mode says so
                yield Page(number=index + 1, scan=to_scan(pixels if plane is None else plane), dpi=at)
    elif fmt == "TIFF" and len(found := tiff_pages(data)) > 1:
        if len(found) > max_pages:
            more = "or more " if len(found) >= MAX_TIFF_PAGES else ""
            raise InputError(f"too many pages: {len(found)} {more}> limit {max_pages} (max_pages)")
        for index, tiff_page in enumerate(found):
            _check_time(deadline, seconds)
            try:
                scan = _tiff_page(data, index, tiff_page.size, max_pixels)
            except InputError as exc:
                yield Page(number=index + 1, reason=exc.reason)
                continue
            yield Page(number=index + 1, scan=scan, dpi=tiff_page.dpi)
    else:
        scan, factor = _image(data, fmt, max_pixels)
        res = resolution(data, fmt)
        yield Page(number=1, scan=scan, dpi=res / factor if res else None)


def _check_time(deadline: float | None, seconds: float | None) -> None:
    if deadline is not None and time.monotonic() >= deadline:
        raise InputError(f"took longer than {seconds:g} s (max_document_seconds)")


def decode(data: bytes, max_pixels: int) -> Scan:
    """An image's bytes -> Scan (float32 RGB 0-1, transparency composited; a TIFF's
    first page), or InputError. A PDF is read with :func:`pages`."""
    fmt = check(data, max_pixels)
    if fmt == "PDF":
        raise InputError("a PDF document: its pages are read one by one (imageio.pages)")
    return _image(data, fmt, max_pixels)[0]


def check(data: bytes, max_pixels: int) -> str:
    """The format of ``data`` (formats.sniff), once it is known to be one digitd
    reads, whole, and (from its header) not absurdly large; else InputError."""
    if not data:
        raise InputError("empty file (0 bytes)")
    fmt = sniff(data)
    if fmt is None:
        head = data[:64]
        if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
            raise InputError("not an image: the file holds text")
        raise InputError(f"not a supported image (unknown format, starts with {data[:8].hex(' ')})")
    size = header_size(data, fmt) if fmt != "TIFF" else None  # a TIFF's pages are checked one by one
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            raise InputError(f"corrupt {fmt}: header says {w}x{h} pixels")
        if reduction(fmt, w, h, max_pixels) is None:
            raise InputError(f"image too large: {w}x{h} = {w * h} pixels > limit {max_pixels} (max_image_pixels)"
                             + (f", even read at 1/{REDUCE_MAX} size" if fmt == "JPEG" else ""))
    if ends_early(data[:32], data[-TAIL:], len(data)):
        what = "document" if fmt == "PDF" else "image"
        raise InputError(f"truncated {fmt}: the file ends before the {what} does")
    return fmt


_REDUCED = {  # (factor, grey) -> flag; every one applies EXIF orientation, as IMREAD_UNCHANGED does not
    (1, True): cv2.IMREAD_GRAYSCALE, (2, True): cv2.IMREAD_REDUCED_GRAYSCALE_2,
    (4, True): cv2.IMREAD_REDUCED_GRAYSCALE_4, (1, False): cv2.IMREAD_COLOR,
    (2, False): cv2.IMREAD_REDUCED_COLOR_2, (4, False): cv2.IMREAD_REDUCED_COLOR_4,
    (8, True): cv2.IMREAD_REDUCED_GRAYSCALE_8, (8, False): cv2.IMREAD_REDUCED_COLOR_8,
}


_REDUCED_BY = tuple(f for f in (1, 2, 4, 8) if f <= REDUCE_MAX)  # OpenCV's IMREAD_REDUCED_* factors


def reduction(fmt: str, width: int, height: int, max_pixels: int) -> int | None:
    """The factor an image of ``width`` x ``height`` is decoded reduced by to have
    at most ``max_pixels`` (1: not reduced; only a JPEG is), or None: too large."""
    for factor in _REDUCED_BY if fmt == "JPEG" else (1,):
        if -(-width // factor) * -(-height // factor) <= max_pixels:
            return factor
    return None


# A JPEG is decoded reduced while its longer side stays at least this long:
# twice what a page is read at (segment.WORK_MAX) and more than its picture's
# width (annotate.PAGE_W). A phone photo (4000 px) is decoded at half size, a
# 300 dpi A4 scan (3508 px) whole.
DECODE_SIDE = 2000


def ample_reduction(fmt: str, width: int, height: int) -> int:
    """The factor a JPEG far larger than the reading needs is decoded reduced by
    (:data:`DECODE_SIDE`); 1 for a smaller one and for other formats."""
    if fmt != "JPEG":
        return 1
    return max(f for f in _REDUCED_BY if f == 1 or -(-max(width, height) // f) >= DECODE_SIDE)


def _image(data: bytes, fmt: str, max_pixels: int) -> tuple[Scan, int]:
    """A checked image's first page as a Scan, and the factor it was reduced by."""
    size = header_size(data, fmt)
    if fmt == "TIFF":
        return _tiff_page(data, 0, size, max_pixels), 1
    factor = max(reduction(fmt, *size, max_pixels), ample_reduction(fmt, *size)) if size else 1
    if fmt == "JPEG":  # 8-bit, no alpha: decoded as grey or colour, turned upright by EXIF
        frame = jpeg_frame(data)
        flags = _REDUCED[factor, frame is not None and frame[2] == 1]
    else:
        flags = cv2.IMREAD_UNCHANGED  # 16-bit and alpha kept
    img = _decode(data, fmt, flags, max_pixels)
    palette = fmt == "PNG" and len(data) > 25 and data[25] == 3
    return to_scan(img, palette=palette), factor


def _tiff_page(data: bytes, index: int, size: tuple[int, int] | None, max_pixels: int) -> Scan:
    """Page ``index`` (0-based) of a TIFF, its ``size`` checked against the limit first."""
    if size is not None:
        w, h = size
        if w <= 0 or h <= 0:
            raise InputError(f"corrupt TIFF: header says {w}x{h} pixels")
        if w * h > max_pixels:
            raise InputError(f"image too large: {w}x{h} = {w * h} pixels > limit {max_pixels} (max_image_pixels)")
    return to_scan(_decode(data, "TIFF", cv2.IMREAD_UNCHANGED, max_pixels, index))


def _decode(data: bytes, fmt: str, flags: int, max_pixels: int, index: int | None = None) -> np.ndarray:
    """OpenCV's decoding of ``data`` (of a TIFF's page ``index``), checked, the
    limit too (for a header this module cannot read)."""
    buf = np.frombuffer(data, np.uint8)
    try:
        if index is None:
            img = cv2.imdecode(buf, flags)
        else:
            ok, mats = cv2.imdecodemulti(buf, flags, None, (index, index + 1))
            img = mats[0] if ok and mats else None
    except cv2.error as exc:
        raise InputError(f"cannot decode {fmt}: {str(exc).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise InputError(f"cannot decode {fmt}: corrupt or unsupported data")
    if img.shape[0] * img.shape[1] > max_pixels:
        raise InputError(
            f"image too large: {img.shape[1]}x{img.shape[0]} = {img.shape[0] * img.shape[1]} pixels "
            f"> limit {max_pixels} (max_image_pixels)"
        )
    return img


def to_scan(img: np.ndarray, palette: bool = False) -> Scan:
    """An array as OpenCV decodes it (gray, BGR or BGRA; any depth) -> Scan.

    Grey content (one channel, or colour channels that are all equal, checked
    on the decoded integers) gives a Scan of one grey plane (``Scan.of_gray``):
    the same ``image`` values as three equal channels, without making them.
    """
    dtype = img.dtype
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    channels = 1 if img.ndim == 2 else img.shape[2]
    kind = ("gray", "gray+alpha", "RGB", "RGBA")[min(channels, 4) - 1]
    if palette:
        kind = "palette" + ("+alpha" if channels in (2, 4) else "")
    mode = f"{_NAMES.get(dtype) or dtype.name} {kind}"
    if dtype not in _PER_VALUE:  # float and odd integer types: scaled by the whole array's range
        return _to_scan_whole(unit(img), channels, mode)
    gray, colour = (img if channels == 1 else img[..., 0]), None
    if channels >= 3:
        gray = _equal_channels(img)
        if gray is None and dtype == np.uint8:  # BGR(A) -> RGB while still 8-bit
            colour = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if channels == 4 else cv2.COLOR_BGR2RGB)
        elif gray is None:
            colour = img[..., 2::-1]
    alpha = None
    if channels in (2, 4):
        raw = img[..., 1 if channels == 2 else 3]
        if unit(np.array([raw.min()], dtype))[0] < 0.999:  # the min of the 0-1 alpha, as it would be
            alpha = unit(raw)
    if gray is not None:
        g = unit(gray)
        if alpha is not None:  # what composite does to each of three equal channels
            lum = g * LUMA[0]
            lum += g * LUMA[1]
            lum += g * LUMA[2]
            g = g * alpha + _backdrop(lum, alpha) * (1.0 - alpha)
        return Scan.of_gray(g, mode)
    rgb = unit(colour)
    if alpha is not None:
        rgb = composite(rgb, alpha)
    h, w = rgb.shape[:2]
    return Scan(image=np.ascontiguousarray(rgb, dtype=np.float32), width=w, height=h, mode=mode)


_PER_VALUE = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))
_NAMES = {d: d.name for d in _PER_VALUE}  # dtype.name is a slow property


_UNIT8 = np.true_divide(np.arange(256, dtype=np.uint8), 255.0, dtype=np.float32)  # unit() of each byte


def unit(img: np.ndarray) -> np.ndarray:
    """Decoded values -> float32 in 0-1 (value by value for 8/16-bit; float and
    other types by the array's own range)."""
    dtype = img.dtype
    if dtype == np.uint8:  # as img.astype(float32) / 255, in one pass
        if img.size and img.flags.c_contiguous and (img.ndim == 2 or img.ndim == 3 and 2 <= img.shape[2] <= 4):
            return cv2.LUT(img, _UNIT8)  # the same values, looked up: a fifth quicker than dividing
        return np.true_divide(img, 255.0, dtype=np.float32)
    if dtype == np.uint16:
        return np.true_divide(img, 65535.0, dtype=np.float32)
    if dtype == np.int16:
        return (img.astype(np.float32) + 32768.0) / 65535.0
    if np.issubdtype(dtype, np.floating):
        a = np.nan_to_num(img.astype(np.float32))
        top = float(a.max()) if a.size else 0.0
        a = a / top if top > 1.0 else a
        return np.clip(a, 0.0, 1.0)
    a = img.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _equal_channels(img: np.ndarray) -> np.ndarray | None:
    """The first channel of a BGR(A) integer image whose B, G and R are equal everywhere, else None."""
    if img.shape[0] and not (np.array_equal(img[0, :, 0], img[0, :, 1]) and np.array_equal(img[0, :, 1], img[0, :, 2])):
        return None  # a colour image shows it in its first row, mostly
    b, g, r = cv2.split(img)[:3]  # contiguous planes: OpenCV compares them faster than NumPy strided views
    return b if cv2.norm(b, g, cv2.NORM_INF) == 0 and cv2.norm(g, r, cv2.NORM_INF) == 0 else None


def _to_scan_whole(a: np.ndarray, channels: int, mode: str) -> Scan:
    if channels == 1:
        rgb, alpha = np.repeat(a[..., None], 3, axis=2), None
    elif channels == 2:
        rgb, alpha = np.repeat(a[..., :1], 3, axis=2), a[..., 1]
    elif channels == 3:
        rgb, alpha = a[..., ::-1], None
    else:
        rgb, alpha = a[..., 2::-1], a[..., 3]
    if alpha is not None:
        rgb = composite(rgb, alpha)
    h, w = rgb.shape[:2]
    return Scan(image=np.ascontiguousarray(rgb, dtype=np.float32), width=w, height=h, mode=mode)


def composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten transparency onto a backdrop that contrasts with what is drawn.

    Drawings on a transparent canvas carry their ink in the opaque pixels:
    dark ink goes onto white paper, light ink onto black, so the ink stays
    visible whatever colour the transparent pixels happen to hold.
    """
    if float(alpha.min()) >= 0.999:
        return rgb
    backdrop = _backdrop(rgb @ LUMA, alpha)
    return rgb * alpha[..., None] + backdrop * (1.0 - alpha[..., None])


LUMA = np.float32([0.299, 0.587, 0.114])  # luminance weights of R, G, B


def _backdrop(lum: np.ndarray, alpha: np.ndarray) -> float:
    """White (1.0) behind dark content, black (0.0) behind light content."""
    weight = float(alpha.sum())
    content = float((lum * alpha).sum() / weight) if weight > 0 else 0.0
    return 1.0 if content < 0.5 else 0.0
