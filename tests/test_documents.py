"""Documents and photos in: PDF pages, multi-page TIFF, EXIF orientation, big JPEGs,
and the limits on each (imageio.pages, documents, formats).

Every file is made here: PDFs written by hand (a few objects and an xref table,
encrypted with the standard RC4 handler when asked) or by matplotlib, TIFFs by
OpenCV, JPEGs with an EXIF segment put in by hand.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pypdfium2 as pdfium
import pytest
from digitd.formats import ends_early, file_ends_early, header_size, resolution, sniff, tiff_pages
from digitd.imageio import InputError, Page, ample_reduction, decode, pages
from digitd.inbox.names import skip_reason

LETTER = (612, 792)  # points
PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")  # the standard handler's


# ------------------------------------------------------------ making files
def rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out, i, j = bytearray(), 0, 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def make_pdf(page_specs: list[tuple[float, float, bytes]], *, password: str | None = None,
             count: int | None = None) -> bytes:
    """A PDF with one page per (width, height, content stream) in points.

    ``password``: encrypted with the standard security handler (revision 2, RC4
    40-bit), that password needed to open it. ``count``: the page tree's /Count,
    if it should lie about the number of pages."""
    n = len(page_specs)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n)).encode()
    objects: list[tuple[bytes, bytes | None]] = [
        (b"<< /Type /Catalog /Pages 2 0 R >>", None),
        (b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % (n if count is None else count), None),
    ]
    for i, (w, h, content) in enumerate(page_specs):
        objects.append((b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %g %g] /Contents %d 0 R >>"
                        % (w, h, 4 + 2 * i), None))
        objects.append((b"", content))
    trailer = b""
    if password is not None:
        file_id = hashlib.md5(b"digitd test").digest()
        user = (password.encode() + PAD)[:32]
        owner_value = rc4(hashlib.md5((b"owner" + PAD)[:32]).digest()[:5], user)
        key = hashlib.md5(user + owner_value + struct.pack("<i", -4) + file_id).digest()[:5]
        objects.append((b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P -4 /O <%s> /U <%s> >>"
                        % (owner_value.hex().encode(), rc4(key, PAD).hex().encode()), None))
        trailer = b"/Encrypt %d 0 R /ID [<%s> <%s>] " % (len(objects), file_id.hex().encode(), file_id.hex().encode())
    bodies = []
    for number, (head, stream) in enumerate(objects, 1):
        if stream is not None and password is not None:  # each stream with its own object key
            stream = rc4(hashlib.md5(key + number.to_bytes(3, "little") + b"\0\0").digest()[:10], stream)
        bodies.append(head if stream is None else b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return write_pdf(bodies, trailer)


def write_pdf(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of these objects (numbered from 1, the first the catalog), with its xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, trailer, xref)
    return bytes(out)


def square(x: float, y: float, w: float, h: float, colour: str = "0 g") -> bytes:
    """A content stream filling one rectangle (points, from the page's bottom left)."""
    return f"{colour} {x:g} {y:g} {w:g} {h:g} re f".encode()


def dark_box(page: Page) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive of the page's dark pixels."""
    ys, xs = np.nonzero(page.scan.image.mean(axis=2) < 0.5)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def with_exif(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 EXIF segment holding one tag, Orientation, after its SOI."""
    tiff = b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", 274, 3, 1, orientation, 0) + b"\0\0\0\0"
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def encoded(ext: str, img: np.ndarray, params: tuple = ()) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok
    return buf.tobytes()


def three_page_tiff(params: tuple = ()) -> bytes:
    """Pages of 60x40, 60x50 and 60x60 pixels, filled with 40, 80 and 120."""
    imgs = [np.full((40 + 10 * i, 60), 40 * (i + 1), np.uint8) for i in range(3)]
    ok, buf = cv2.imencodemulti(".tif", imgs, list(params))
    assert ok
    return buf.tobytes()


def tiff_entries(data: bytes, page: int) -> dict[int, tuple[int, int, int, int]]:
    """Page ``page``'s (0-based) directory: tag -> (where the entry is, type, count, value)."""
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    for _ in range(page):
        (count,) = struct.unpack(end + "H", data[ifd: ifd + 2])
        (ifd,) = struct.unpack(end + "I", data[ifd + 2 + 12 * count: ifd + 6 + 12 * count])
    (count,) = struct.unpack(end + "H", data[ifd: ifd + 2])
    entries = {}
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag, kind, n, value = struct.unpack(end + "HHII", data[at: at + 12])
        entries[tag] = (at, kind, n, value if kind == 4 else struct.unpack(end + "H", data[at + 8: at + 10])[0])
    return entries


def claiming(data: bytes, page: int, side: int) -> bytes:
    """The TIFF with page ``page``'s (0-based) header claiming ``side`` x ``side`` pixels."""
    out = bytearray(data)
    end = "<" if data[:2] == b"II" else ">"
    for tag in (256, 257):  # ImageWidth, ImageLength
        at, kind, _, _ = tiff_entries(data, page)[tag]
        out[at + 8: at + 12] = struct.pack(end + ("HH" if kind == 3 else "I"), *((side, 0) if kind == 3 else (side,)))
    return bytes(out)


# ------------------------------------------------------------ PDF
def test_a_one_page_pdf_is_drawn_at_the_dpi_with_its_square_in_place():
    data = make_pdf([(*LETTER, square(72, 144, 144, 72))])  # 1 in from the left, 2 in up, 2 x 1 in
    got = list(pages(data, 40_000_000, dpi=100))
    assert [(p.number, p.dpi, p.reason) for p in got] == [(1, 100, None)]
    scan = got[0].scan
    assert (scan.width, scan.height) == (850, 1100)  # 8.5 x 11 in at 100 dpi
    assert dark_box(got[0]) == (100, 800, 299, 899)  # top = 1100 - (2 + 1) * 100
    assert scan.gray is not None  # black on white: one grey plane


def test_colours_come_out_as_rgb():
    data = make_pdf([(144, 144, square(36, 36, 72, 72, "0 0 1 rg"))])  # blue
    (page,) = pages(data, 40_000_000, dpi=72)
    assert (page.scan.width, page.scan.height, page.scan.mode) == (144, 144, "uint8 RGB")
    assert page.scan.image[72, 72].tolist() == [0.0, 0.0, 1.0]
    assert page.scan.image[10, 10].tolist() == [1.0, 1.0, 1.0]


def test_a_grey_page_is_drawn_grey_and_a_hairline_of_colour_keeps_it_colour():
    """A page drawn without colour is read as one grey plane; a hairline of colour keeps it colour."""
    grey = make_pdf([(*LETTER, square(72, 144, 144, 72, "0.5 g"))])
    (page,) = pages(grey, 40_000_000, dpi=100)
    assert page.scan.mode == "uint8 gray" and round(float(page.scan.gray[850, 200]) * 255) == 128
    hairline = make_pdf([(*LETTER, b"0 0 1 RG 0.1 w 100 100 m 300 400 l S")])  # 0.1 pt wide
    (page,) = pages(hairline, 40_000_000, dpi=100)
    assert page.scan.mode == "uint8 RGB"


def test_a_three_page_pdf_from_matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for k in range(3):  # a 4 x 3 in page; a 1 x 0.5 in square, 1 in further right on each page
            fig = Figure(figsize=(4, 3))
            fig.add_artist(Rectangle((0.125 + 0.25 * k, 0.5), 0.25, 1 / 6, transform=fig.transFigure,
                                     facecolor="black", edgecolor="none"))
            pdf.savefig(fig)
    got = list(pages(buf.getvalue(), 40_000_000, dpi=150))
    assert [(p.number, p.dpi, p.scan.width, p.scan.height) for p in got] == [
        (1, 150, 600, 450), (2, 150, 600, 450), (3, 150, 600, 450)]
    for k, page in enumerate(got):  # x from 0.5 + k in, y from the top 3 - 1.5 - 0.5 = 1 in
        x0, y0, x1, y1 = dark_box(page)
        assert abs(x0 - (75 + 150 * k)) <= 1 and abs(x1 - (224 + 150 * k)) <= 1
        assert abs(y0 - 150) <= 1 and abs(y1 - 224) <= 1


def test_a_page_too_large_at_the_dpi_is_drawn_at_a_lower_dpi():
    data = make_pdf([(*LETTER, square(72, 144, 144, 72))])
    (page,) = pages(data, 1_000_000, dpi=200)  # 1700 x 2200 at 200 dpi: 3.7 MP
    assert page.dpi == 103.3
    assert (page.scan.width, page.scan.height) == (879, 1137)
    assert page.scan.width * page.scan.height <= 1_000_000


def test_a_page_too_large_even_at_a_quarter_of_the_dpi_is_refused_alone():
    data = make_pdf([(*LETTER, b""), (72, 72, square(0, 0, 36, 36))])
    got = list(pages(data, 200_000, dpi=200))  # letter at 50 dpi: 425 x 550 = 233750 pixels
    assert got[0] == Page(number=1, reason="page too large: 8x11 inches, 1700x2200 = 3740000 pixels at 200 dpi "
                                           "> limit 200000 (max_image_pixels), even at 50 dpi")
    assert (got[1].number, got[1].scan.width, got[1].scan.height) == (2, 200, 200)


CHILD = """
import json, sys, time
from digitd.imageio import pages
data = open(sys.argv[1], "rb").read()
start = time.monotonic()
got = [(p.number, p.reason, p.scan and (p.scan.width, p.scan.height), p.scan and float(p.scan.image.max()))
       for p in pages(data, 40_000_000, dpi=float(sys.argv[2]))]
seconds = time.monotonic() - start
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))  # this program's own peak
print(json.dumps({"pages": got, "seconds": seconds, "max_rss_mb": int(peak.split()[1]) / 1024}))
"""


def read_in_a_child(path, dpi: float = 200.0) -> dict:
    """imageio.pages over the file in a Python of its own: its pages (number,
    reason, size, brightest value), seconds and peak memory."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(dpi)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_hostile_huge_page_is_refused_before_it_is_drawn(tmp_path):
    """A 100000 x 100000 point page (77 gigapixels at 200 dpi), then a small one:
    in a process of its own, the first refused at once, the second read."""
    path = tmp_path / "huge.pdf"
    path.write_bytes(make_pdf([(100_000, 100_000, square(0, 0, 72, 72)), (72, 72, square(0, 0, 36, 36))]))
    report = read_in_a_child(path)
    assert report["pages"] == [
        [1, "page too large: 1389x1389 inches, 277778x277778 = 77160617284 pixels at 200 dpi "
            "> limit 40000000 (max_image_pixels), even at 50 dpi", None, None],
        [2, None, [200, 200], 1.0],
    ]
    assert report["seconds"] < 2.0
    assert report["max_rss_mb"] < 200  # the interpreter, numpy, OpenCV and PDFium (about 65 MB): no raster


def deflated(size: int, fill: bytes) -> bytes:
    """``size`` bytes of ``fill`` (one byte), deflated a piece at a time."""
    pack, piece, out = zlib.compressobj(1), fill * (1 << 22), []
    for start in range(0, size, len(piece)):
        out.append(pack.compress(piece[: min(len(piece), size - start)]))
    return b"".join(out) + pack.flush()


def test_a_decompression_bomb_is_refused_before_pdfium_reads_it():
    """A page whose drawing is 20 MB of spaces in a Flate stream of about 100 kB."""
    bomb = deflated(20 << 20, b" ")
    data = write_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                      b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
                      b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(bomb) + bomb + b"\nendstream"])
    assert len(data) < 1 << 20
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        next(pages(data, 40_000_000))
    assert err.value.reason == "PDF decompression bomb: a stream inflates to more than 16 MB"
    assert time.monotonic() - start < 2.0


def test_a_large_font_is_no_bomb():
    """An embedded font file (marked by its /Length1) may inflate to 64 MB; here 20 MB."""
    font = deflated(20 << 20, b"\0")
    draw = square(0, 0, 36, 36)
    data = write_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                      b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] /Contents 4 0 R >>",
                      b"<< /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream",
                      b"<< /Length %d /Length1 %d /Filter /FlateDecode >>\nstream\n" % (len(font), 20 << 20)
                      + font + b"\nendstream"])
    assert [(p.number, p.reason) for p in pages(data, 40_000_000)] == [(1, None)]


def test_an_image_bomb_is_drawn_reduced_by_pdfium(tmp_path):
    """A 16000 x 16000 pixel image (256 MP: 6.4 times the limit) on a 2 in page is
    decoded by PDFium only at the size drawn: read, the page all black."""
    side = 16_000
    image = deflated(side * side, b"\0")
    draw = b"q 144 0 0 144 0 0 cm /Im0 Do Q"
    data = write_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 144 144] /Resources << /XObject << /Im0 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % (side, side, len(image)) + image + b"\nendstream"])
    path = tmp_path / "image-bomb.pdf"
    path.write_bytes(data)
    report = read_in_a_child(path, dpi=100)
    assert report["pages"] == [[1, None, [200, 200], 0.0]]
    assert report["max_rss_mb"] < 200  # decoded whole, the image alone would take 256 MB


def test_a_pdf_with_a_missing_second_page_reads_the_other_two():
    draw = square(0, 0, 36, 36)
    data = write_pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R 99 0 R 5 0 R] /Count 3 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(draw) + draw + b"\nendstream",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 144 72] /Contents 4 0 R >>"])
    got = list(pages(data, 40_000_000))
    assert [(p.number, p.reason, p.scan and (p.scan.width, p.scan.height)) for p in got] == [
        (1, None, (200, 200)), (2, "cannot read the page: it is missing or corrupt", None), (3, None, (400, 200))]


def test_an_empty_pdf_is_refused():
    with pytest.raises(InputError) as err:
        list(pages(make_pdf([]), 40_000_000))
    assert err.value.reason == "empty PDF: it has no pages"


def test_each_pdf_gets_its_own_reason_whatever_came_before():
    """PDFium keeps its last error for the process, and a PDF without pages sets none."""
    locked = make_pdf([(*LETTER, square(72, 144, 144, 72))], password="secret")
    broken = b"%PDF-1.7\nthis is no PDF at all\n%%EOF\n"
    reasons = []
    for data in (locked, make_pdf([]), broken, make_pdf([]), locked):
        with pytest.raises(InputError) as err:
            list(pages(data, 40_000_000))
        reasons.append(err.value.reason.split(":")[0])
    assert reasons == ["password-protected PDF", "empty PDF", "broken PDF", "empty PDF",
                       "password-protected PDF"]


def test_a_password_protected_pdf_is_refused():
    data = make_pdf([(*LETTER, square(72, 144, 144, 72))], password="secret")
    # really encrypted: with its password, PDFium opens it and draws the (decrypted) square
    doc = pdfium.PdfDocument(data, password="secret")
    drawn = doc[0].render(scale=100 / 72).to_numpy()
    assert drawn[850, 200].tolist() == [0, 0, 0] and drawn[700, 200].tolist() == [255, 255, 255]
    doc.close()
    with pytest.raises(InputError) as err:
        list(pages(data, 40_000_000))
    assert err.value.reason == "password-protected PDF: it cannot be opened without its password"


def test_a_truncated_pdf_is_refused():
    data = make_pdf([(*LETTER, square(72, 144, 144, 72))] * 3)
    for cut in (data[: len(data) // 2], data[:-7]):  # half, and all but its %%EOF line
        with pytest.raises(InputError) as err:
            list(pages(cut, 40_000_000))
        assert err.value.reason == "truncated PDF: the file ends before the document does"


def test_a_broken_pdf_is_refused():
    with pytest.raises(InputError) as err:
        list(pages(b"%PDF-1.7\nthis is no PDF at all\n%%EOF\n", 40_000_000))
    assert err.value.reason == "broken PDF: not in PDF format, or corrupted"


def test_too_many_pages_are_refused_before_any_is_drawn():
    data = make_pdf([(72, 72, b"")] * 51)
    with pytest.raises(InputError) as err:
        next(pages(data, 40_000_000, max_pages=50))
    assert err.value.reason == "too many pages: 51 > limit 50 (max_pages)"
    assert len(list(pages(data, 40_000_000, max_pages=51))) == 51
    # a page tree that claims thousands of pages is refused on its word
    with pytest.raises(InputError) as err:
        next(pages(make_pdf([(72, 72, b"")], count=100_000), 40_000_000))
    assert err.value.reason == "too many pages: 100000 > limit 50 (max_pages)"


def test_a_pdf_that_is_really_a_jpeg_is_read_as_the_jpeg_it_is():
    """Formats come from the bytes, never the name: a .pdf holding a JPEG is a JPEG."""
    img = np.full((30, 40), 255, np.uint8)
    img[10:20, 5:15] = 0
    (page,) = pages(encoded(".jpg", img), 40_000_000)
    assert (page.number, page.scan.width, page.scan.height, page.scan.mode) == (1, 40, 30, "uint8 gray")


def test_decode_reads_images_and_sends_documents_to_pages():
    with pytest.raises(InputError) as err:
        decode(make_pdf([(72, 72, b"")]), 40_000_000)
    assert err.value.reason == "a PDF document: its pages are read one by one (imageio.pages)"


def test_the_time_limit_is_checked_before_each_page():
    data = make_pdf([(144, 144, square(0, 0, 72, 72))] * 3)
    assert [p.number for p in pages(data, 40_000_000, seconds=30)] == [1, 2, 3]
    with pytest.raises(InputError) as err:
        next(pages(data, 40_000_000, seconds=0))
    assert err.value.reason == "took longer than 0 s (max_document_seconds)"
    reading = pages(data, 40_000_000, seconds=0.5)
    assert next(reading).number == 1
    time.sleep(0.6)  # the reader spends this long on page 1
    with pytest.raises(InputError) as err:
        next(reading)
    assert err.value.reason == "took longer than 0.5 s (max_document_seconds)"


def test_pages_come_one_at_a_time():
    """A generator: nothing is drawn before it is asked for, page 2 not before page 1 is taken."""
    data = make_pdf([(144, 144, b"")] * 2)
    reading = pages(data, 40_000_000)
    assert next(reading).number == 1
    assert next(reading).number == 2
    assert next(reading, None) is None


# ------------------------------------------------------------ TIFF
def test_every_page_of_a_tiff_is_read_with_its_resolution():
    data = three_page_tiff((cv2.IMWRITE_TIFF_RESUNIT, 2, cv2.IMWRITE_TIFF_XDPI, 300, cv2.IMWRITE_TIFF_YDPI, 300))
    got = list(pages(data, 40_000_000))
    assert [(p.number, p.dpi, p.scan.width, p.scan.height, p.scan.mode) for p in got] == [
        (1, 300.0, 60, 40, "uint8 gray"), (2, 300.0, 60, 50, "uint8 gray"), (3, 300.0, 60, 60, "uint8 gray")]
    assert [round(float(p.scan.image.mean()) * 255) for p in got] == [40, 80, 120]
    assert [p.size for p in tiff_pages(data)] == [(60, 40), (60, 50), (60, 60)]


def test_a_tiff_with_a_corrupt_third_page_reads_the_other_two():
    data = bytearray(three_page_tiff())
    at, _, count, _ = tiff_entries(bytes(data), 2)[273]  # StripOffsets of page 3: past the end of the file
    assert count == 1
    data[at + 8: at + 12] = struct.pack("<I" if data[:2] == b"II" else ">I", len(data) + 1000)
    got = list(pages(bytes(data), 40_000_000))
    assert [(p.number, p.reason) for p in got] == [
        (1, None), (2, None), (3, "cannot decode TIFF: corrupt or unsupported data")]
    assert [(p.scan.width, p.scan.height) for p in got[:2]] == [(60, 40), (60, 50)]


def test_a_tiff_page_too_large_is_refused_alone():
    data = claiming(three_page_tiff(), 1, 60000)
    got = list(pages(data, 40_000_000))
    assert [(p.number, p.reason) for p in got] == [
        (1, None), (2, "image too large: 60000x60000 = 3600000000 pixels > limit 40000000 (max_image_pixels)"),
        (3, None)]


def test_a_first_tiff_page_too_large_is_refused_alone_too():
    data = claiming(three_page_tiff(), 0, 60000)
    got = list(pages(data, 40_000_000))
    assert [(p.number, p.reason) for p in got] == [
        (1, "image too large: 60000x60000 = 3600000000 pixels > limit 40000000 (max_image_pixels)"),
        (2, None), (3, None)]
    with pytest.raises(InputError) as err:  # decode: the first page, the image
        decode(data, 40_000_000)
    assert err.value.reason == "image too large: 60000x60000 = 3600000000 pixels > limit 40000000 (max_image_pixels)"


def test_too_many_tiff_pages_are_refused():
    with pytest.raises(InputError) as err:
        next(pages(three_page_tiff(), 40_000_000, max_pages=2))
    assert err.value.reason == "too many pages: 3 > limit 2 (max_pages)"


def test_a_tiff_whose_directories_loop_is_read_once():
    """A hostile chain: page 3's next directory is page 1 again."""
    data = bytearray(three_page_tiff())
    entries = tiff_entries(bytes(data), 2)
    last = max(at for at, *_ in entries.values()) + 12  # the next-directory offset follows the last entry
    assert data[last: last + 4] == b"\0\0\0\0"  # page 3 was the last
    data[last: last + 4] = data[4:8]
    assert len(tiff_pages(bytes(data))) == 3
    assert [p.number for p in pages(bytes(data), 40_000_000)] == [1, 2, 3]


# ------------------------------------------------------------ JPEG: orientation, size, resolution
@pytest.mark.parametrize(("orientation", "shape", "corner"), [
    (1, (40, 60), "top left"), (3, (40, 60), "bottom right"),
    (6, (60, 40), "top right"), (8, (60, 40), "bottom left"),
])
def test_exif_orientation_is_applied(orientation, shape, corner):
    """A photo stored sideways (a square at its stored top left) reads as a viewer shows it."""
    img = np.full((40, 60), 255, np.uint8)
    img[:10, :10] = 0
    for colour in (False, True):
        stored = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if colour else img
        if colour:
            stored[30:, 50:] = (255, 0, 0)  # some blue, so that the file is really colour
        (page,) = pages(with_exif(encoded(".jpg", stored), orientation), 40_000_000)
        scan = page.scan
        assert (scan.height, scan.width) == shape
        assert scan.mode == ("uint8 RGB" if colour else "uint8 gray")
        ys, xs = np.nonzero(scan.image.sum(axis=2) < 0.5)  # the black square only
        where = (("top" if ys.mean() < shape[0] / 2 else "bottom") + " "
                 + ("left" if xs.mean() < shape[1] / 2 else "right"))
        assert where == corner
        assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (10, 10)


def test_a_48_megapixel_photo_is_read_reduced():
    img = np.full((6000, 8000), 230, np.uint8)
    img[1000:2000, 4000:6000] = 0
    data = encoded(".jpg", img)
    assert header_size(data, "JPEG") == (8000, 6000)
    (page,) = pages(data, 40_000_000)  # under the limit at 1/2, read at 1/4: DECODE_SIDE is ample
    assert (page.scan.width, page.scan.height) == (2000, 1500)
    ys, xs = np.nonzero(page.scan.gray < 0.5)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (250, 499, 1000, 1499)
    small = pages(data, 3_000_000)  # 16 times the limit at most: a quarter
    assert (next(small).scan.width, 0) == (2000, 0)
    with pytest.raises(InputError) as err:
        next(pages(data, 2_999_999))  # more than 16 times
    assert err.value.reason == ("image too large: 8000x6000 = 48000000 pixels > limit 2999999 "
                                "(max_image_pixels), even read at 1/4 size")


def test_a_jpeg_far_larger_than_needed_is_decoded_reduced():
    """A phone photo is decoded at half size, its longer side still DECODE_SIDE or more;
    a 300 dpi A4 scan and any other format whole."""
    assert ample_reduction("JPEG", 4000, 3000) == 2
    assert ample_reduction("JPEG", 3000, 4000) == 2
    assert ample_reduction("JPEG", 2480, 3508) == 1
    assert ample_reduction("PNG", 8000, 6000) == 1
    img = np.full((4000, 3000), 230, np.uint8)
    img[1000:2000, 1000:2000] = 0
    (page,) = pages(encoded(".jpg", img), 40_000_000)
    assert (page.scan.width, page.scan.height) == (1500, 2000)


def test_a_png_over_the_limit_is_still_refused():
    """Only a JPEG can be decoded reduced cheaply; any other format over the limit is refused."""
    data = encoded(".png", np.zeros((100, 100), np.uint8))
    with pytest.raises(InputError) as err:
        next(pages(data, 9_999))
    assert err.value.reason == "image too large: 100x100 = 10000 pixels > limit 9999 (max_image_pixels)"


def test_resolutions_from_the_files():
    from PIL import Image

    gray = Image.fromarray(np.full((80, 100), 200, np.uint8))
    for fmt, dpi in (("PNG", 300), ("JPEG", 300), ("TIFF", 240)):
        buf = io.BytesIO()
        gray.save(buf, format=fmt, dpi=(dpi, dpi))
        assert resolution(buf.getvalue(), fmt) == pytest.approx(dpi, abs=0.01)
        (page,) = pages(buf.getvalue(), 40_000_000)
        assert page.dpi == pytest.approx(dpi, abs=0.01)
    buf = io.BytesIO()
    gray.save(buf, format="JPEG", dpi=(300, 300))
    (page,) = pages(buf.getvalue(), 2_000)  # decoded at half size: half the dpi
    assert (page.scan.width, page.scan.height, page.dpi) == (50, 40, 150)
    assert next(pages(encoded(".png", np.zeros((5, 5), np.uint8)), 100)).dpi is None  # says nothing


# ------------------------------------------------------------ formats and names
def test_formats_know_pdf():
    data = make_pdf([(72, 72, b"")])
    assert sniff(data) == "PDF"
    assert sniff(b"\xef\xbb\xbf\r\n" + data) == "PDF"  # a byte-order mark and a line before it
    assert [p.number for p in pages(b"\xef\xbb\xbf\r\n" + data, 40_000_000)] == [1]
    assert sniff(b"\0" * 1024 + data) is None
    assert header_size(data, "PDF") is None
    assert ends_early(data[:32], data[-1024:], len(data)) is None
    padded = data + b"\n" * 900  # %%EOF need only be in the last 1024 bytes
    assert ends_early(padded[:32], padded[-1024:], len(padded)) is None
    cut = data[:-10]
    assert ends_early(cut[:32], cut[-1024:], len(cut)) == "PDF"


def test_file_ends_early_reads_a_pdf_tail(tmp_path):
    data = make_pdf([(72, 72, b"")] * 40)
    path = tmp_path / "a.pdf"
    path.write_bytes(data[:-6])
    assert file_ends_early(str(path), len(data) - 6) == "PDF"
    path.write_bytes(data)
    assert file_ends_early(str(path), len(data)) is None


@pytest.mark.parametrize(("name", "reason"), [
    ("scan.pdf", None), ("SCAN.PDF", None), ("a.tif", None), ("a.tiff", None),
    ("scan.pdf.part", "temporary name (still being written?)"), ("scan.ps", "not an image type (.ps)"),
])
def test_documents_are_inbox_inputs(name, reason):
    assert skip_reason(name) == reason
