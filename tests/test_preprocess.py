"""Each preprocessing step on constructed arrays: MNIST form, polarity, ink, marks, decoding."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from digitd.imageio import InputError, decode, to_scan
from digitd.preprocess import BOX, CENTRE, SIZE, stroke_width, to_mnist_form
from digitd.segment import detect_polarity, find_digits, luminance


def page(text: str, h: int = 200, w: int | None = None, thickness: int = 12, scale: float = 5.0,
         ink: float = 0.0, paper: float = 1.0, x: int | None = None) -> np.ndarray:
    """An RGB float page with `text` drawn in the middle (dark ink on white by default)."""
    w = w or int(h * 0.8 * max(1, len(text)))
    mask = np.zeros((h, w), np.uint8)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = (w - tw) // 2 if x is None else x
    cv2.putText(mask, text, (x, (h + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    a = mask.astype(np.float32) / 255.0
    img = paper + (ink - paper) * a
    return np.repeat(img[..., None], 3, axis=2).astype(np.float32)


def com(a: np.ndarray) -> tuple[float, float]:
    m = cv2.moments(a)
    return m["m01"] / m["m00"], m["m10"] / m["m00"]


def bbox(a: np.ndarray, floor: float = 0.05) -> tuple[int, int]:
    rows = np.flatnonzero((a > floor).any(axis=1))
    cols = np.flatnonzero((a > floor).any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


# ------------------------------------------------------------ to_mnist_form
def test_blank_gives_zeros():
    out = to_mnist_form(np.zeros((40, 30)))
    assert out.shape == (SIZE, SIZE) and out.dtype == np.float32 and not out.any()


@pytest.mark.parametrize("h,w", [(100, 50), (50, 100), (7, 3), (900, 900), (20, 20)])
def test_box_scaled_into_20x20_keeping_aspect_and_centred_by_mass(h, w):
    ink = np.zeros((h + 40, w + 60), np.float32)
    ink[17 : 17 + h, 33 : 33 + w] = 1.0  # off-centre, solid block
    out = to_mnist_form(ink)
    oh, ow = bbox(out, 0.5)
    assert max(oh, ow) == BOX
    assert abs(oh / ow - h / w) <= 0.15 * max(h / w, 1)
    cy, cx = com(out)
    assert abs(cy - CENTRE) <= 0.75 and abs(cx - CENTRE) <= 0.75
    assert out.max() == pytest.approx(1.0) and out.min() >= 0.0


def test_thin_strokes_thickened_to_mnist_width():
    canvas = np.zeros((600, 600), np.uint8)
    cv2.circle(canvas, (300, 300), 250, 255, 2)  # a 0 drawn with a 2-px pen on a big canvas
    out = to_mnist_form(canvas)
    assert stroke_width(out > 0.5) >= 1.5
    plain = cv2.resize(canvas.astype(np.float32) / 255, (20, 20), interpolation=cv2.INTER_AREA)
    assert plain.max() < 0.5  # what naive resizing gives: a ghost


def test_nearly_identity_on_an_mnist_like_digit():
    digit = np.zeros((28, 28), np.uint8)
    cv2.putText(digit, "3", (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.85, 255, 2, cv2.LINE_AA)
    once = to_mnist_form(digit)
    assert np.abs(to_mnist_form(once) - once).max() < 0.05  # idempotent


# ------------------------------------------------------------ polarity and ink
@pytest.mark.parametrize("ink,paper,expected", [(0.0, 1.0, "dark_on_light"), (1.0, 0.0, "light_on_dark"),
                                                (0.9, 0.25, "light_on_dark"), (0.05, 0.35, "dark_on_light")])
def test_polarity(ink, paper, expected):
    assert detect_polarity(luminance(page("4", ink=ink, paper=paper))) == expected


def only_mark(rgb: np.ndarray):
    marks, _ = find_digits(rgb)
    assert len(marks) == 1, [m.box for m in marks]
    return marks[0]


def test_inverted_input_gives_the_same_model_input():
    dark = only_mark(page("5"))
    light = only_mark(1.0 - page("5"))
    assert dark.box == light.box
    assert np.abs(dark.pixels - light.pixels).mean() < 0.01


def test_uneven_lighting_and_tinted_paper_are_flattened():
    clean = only_mark(page("2"))
    rgb = page("2")
    h, w = rgb.shape[:2]
    light = np.linspace(0.45, 1.0, w, dtype=np.float32)[None, :, None] * np.linspace(1.0, 0.7, h, dtype=np.float32)[:, None, None]
    tint = np.float32([1.0, 0.93, 0.75])  # yellowish paper
    shaded = rgb * light * tint
    mark = only_mark(shaded)
    assert np.abs(np.array(mark.box) - np.array(clean.box)).max() <= 3
    assert np.abs(mark.pixels - clean.pixels).mean() < 0.05


def test_coloured_ink_on_coloured_paper():
    rgb = page("8")
    blue_ink = np.where(rgb < 0.5, np.float32([0.2, 0.25, 0.6]), np.float32([0.62, 0.6, 0.58]))
    mark = only_mark(blue_ink.astype(np.float32))
    assert np.abs(mark.pixels - only_mark(rgb).pixels).mean() < 0.05


def test_noise_and_specks_are_ignored():
    rng = np.random.default_rng(0)
    rgb = page("7")
    clean = only_mark(rgb)
    noisy = np.clip(rgb + rng.normal(0, 0.04, rgb.shape).astype(np.float32), 0, 1)
    for _ in range(25):  # specks of dirt
        y, x = rng.integers(0, rgb.shape[0] - 3), rng.integers(0, rgb.shape[1] - 3)
        noisy[y : y + 2, x : x + 2] = 0.1
    mark = only_mark(noisy)
    assert np.abs(np.array(mark.box) - np.array(clean.box)).max() <= 3


def test_ruled_line_is_not_a_digit():
    rgb = page("3")
    rgb[185:188, :] = 0.3  # a ruled line near the bottom, across the page
    clean = only_mark(page("3"))
    assert np.abs(np.array(only_mark(rgb).box) - np.array(clean.box)).max() <= 3


def strokes(segments, h=200, w=160, thickness=10) -> np.ndarray:
    img = np.full((h, w), 255, np.uint8)
    for (x0, y0), (x1, y1) in segments:
        cv2.line(img, (x0, y0), (x1, y1), 0, thickness, cv2.LINE_AA)
    return np.repeat(img[..., None], 3, axis=2).astype(np.float32) / 255.0


@pytest.mark.parametrize("name,segments", [
    ("seven with a detached bar", [((30, 30), (130, 30)), ((122, 50), (70, 180))]),
    ("four with an open top", [((40, 20), (25, 110)), ((25, 110), (120, 110)), ((100, 40), (100, 185))]),
    ("five in two strokes", [((50, 30), (130, 30)), ((48, 45), (45, 95)), ((50, 100), (110, 110)),
                             ((110, 110), (110, 160)), ((110, 160), (40, 175))]),
])
def test_broken_strokes_stay_one_digit(name, segments):
    only_mark(strokes(segments))


def test_several_digits_found_left_to_right():
    marks, _ = find_digits(page("2024", h=160, scale=4.0, thickness=10))
    assert len(marks) == 4
    xs = [m.box[0] for m in marks]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert all(m.box[3] > 60 for m in marks)


def test_blank_pages():
    assert find_digits(np.ones((300, 200, 3), np.float32))[0] == []
    rng = np.random.default_rng(1)
    faint = np.clip(0.9 + rng.normal(0, 0.01, (300, 200, 3)), 0, 1).astype(np.float32)
    assert find_digits(faint)[0] == []


def test_tiny_image():
    tiny = cv2.resize(page("1", h=80, w=80), (8, 8), interpolation=cv2.INTER_AREA)
    mark = only_mark(tiny)
    assert mark.pixels.max() == pytest.approx(1.0)
    assert mark.box[0] >= 0 and mark.box[0] + mark.box[2] <= 8


def test_huge_image_box_in_original_pixels():
    big8 = np.full((3000, 4000, 3), 255, np.uint8)
    cv2.putText(big8, "6", (1500, 2000), cv2.FONT_HERSHEY_SIMPLEX, 25.0, (0, 0, 0), 60, cv2.LINE_AA)
    big = big8.astype(np.float32) / 255.0
    mark = only_mark(big)
    x, y, w, h = mark.box
    ys, xs = np.nonzero(big[..., 0] < 0.5)
    assert abs(x - xs.min()) <= 8 and abs(y - ys.min()) <= 8
    assert abs(x + w - xs.max()) <= 10 and abs(y + h - ys.max()) <= 10


# ------------------------------------------------------------ decoding
def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def test_sixteen_bit_matches_eight_bit():
    g8 = (page("9")[..., 0] * 255).astype(np.uint8)
    g16 = g8.astype(np.uint16) * 257
    s8, s16 = decode(png_bytes(g8), 10**8), decode(png_bytes(g16), 10**8)
    assert s16.mode == "uint16 gray" and s8.mode == "uint8 gray"
    assert np.abs(s8.image - s16.image).max() < 1e-6


@pytest.mark.parametrize("ink_rgb,hidden_rgb", [(0, 0), (0, 255), (255, 255), (255, 0)])
def test_transparent_background_composited(ink_rgb, hidden_rgb):
    """Ink drawn opaque on a transparent canvas, whatever colour the hidden pixels hold."""
    alpha = ((1.0 - page("4")[..., 0]) * 255).astype(np.uint8)  # opaque where the ink is
    bgra = np.zeros(alpha.shape + (4,), np.uint8)
    bgra[..., :3] = np.where(alpha[..., None] > 0, ink_rgb, hidden_rgb)
    bgra[..., 3] = alpha
    scan = decode(png_bytes(bgra), 10**8)
    assert scan.mode == "uint8 RGBA"
    mark = only_mark(scan.image)
    assert np.abs(mark.pixels - only_mark(page("4")).pixels).mean() < 0.03


def test_palette_png():
    import io

    from PIL import Image

    g = (page("1")[..., 0] * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(g).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(buf, format="PNG")
    scan = decode(buf.getvalue(), 10**8)
    assert scan.mode.startswith("uint8 palette")
    assert only_mark(scan.image).box == only_mark(page("1")).box


@pytest.mark.parametrize("ext", [".jpg", ".tif", ".bmp", ".webp"])
def test_other_formats(ext):
    g = (page("0")[..., 0] * 255).astype(np.uint8)
    ok, buf = cv2.imencode(ext, cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    assert ok
    scan = decode(buf.tobytes(), 10**8)
    assert (scan.width, scan.height) == (g.shape[1], g.shape[0])
    assert np.abs(np.array(only_mark(scan.image).box) - np.array(only_mark(page("0")).box)).max() <= 2


def test_one_pixel_image_is_blank():
    scan = decode(png_bytes(np.zeros((1, 1), np.uint8)), 10**8)
    assert (scan.width, scan.height) == (1, 1)
    assert find_digits(scan.image)[0] == []


@pytest.mark.parametrize("data,reason", [
    (b"", "empty file (0 bytes)"),
    (b"hello, this is not a picture\n", "not an image: the file holds text"),
    (b"\x00\x01\x02\x03\xfe\xff\x10\x11junk", "not a supported image (unknown format, starts with 00 01 02 03 fe ff 10 11)"),
])
def test_bad_bytes(data, reason):
    with pytest.raises(InputError) as err:
        decode(data, 10**8)
    assert err.value.reason == reason


def test_truncated_png_and_jpeg():
    g = (page("3")[..., 0] * 255).astype(np.uint8)
    data = png_bytes(g)
    with pytest.raises(InputError, match=r"^truncated PNG: the file ends before the image does$"):
        decode(data[: len(data) // 2], 10**8)
    ok, jpg = cv2.imencode(".jpg", g)
    with pytest.raises(InputError, match=r"^truncated JPEG"):
        decode(jpg.tobytes()[:-300], 10**8)


def test_decompression_bomb_refused_from_the_header():
    """A PNG whose header claims 100000 x 100000 pixels is refused before any decoding."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    with pytest.raises(InputError) as err:
        decode(data, 40_000_000)
    assert err.value.reason == "image too large: 100000x100000 = 10000000000 pixels > limit 40000000 (max_image_pixels)"


def test_to_scan_float_and_two_channel():
    s = to_scan(np.full((5, 6), 3.0, np.float32))
    assert s.image.max() <= 1.0 and s.mode == "float32 gray"
    ga = np.zeros((4, 4, 2), np.uint8)
    ga[..., 1] = 255
    assert to_scan(ga).mode == "uint8 gray+alpha"


def test_photographed_page_on_a_dark_desk():
    """Paper fills most of the photo; the desk shows along two sides and must not count as ink."""
    rgb = page("9", h=240, w=240)
    clean = only_mark(rgb)
    desk = rgb.copy()
    desk[:, :45] = 0.15  # desk on the left
    desk[:30, :] = 0.2  # and along the top
    desk[30:, 45:] = desk[30:, 45:] * np.linspace(1.0, 0.75, 195, dtype=np.float32)[None, :, None]  # shade
    assert detect_polarity(luminance(desk)) == "dark_on_light"
    mark = only_mark(desk)
    assert np.abs(np.array(mark.box) - np.array(clean.box)).max() <= 4


@pytest.mark.parametrize("sigma", [0.02, 0.05])
@pytest.mark.parametrize("size", [(60, 50), (300, 200), (1200, 900)])
def test_textured_paper_photo_is_blank(sigma, size):
    """Paper grain, a lighting gradient and JPEG artefacts, but no ink: blank."""
    rng = np.random.default_rng(3)
    paper = np.clip((0.85 + rng.normal(0, sigma, size)) * np.linspace(0.8, 1.0, size[1])[None, :], 0, 1)
    paper = cv2.GaussianBlur(paper, (3, 3), 0)
    ok, jpg = cv2.imencode(".jpg", (paper * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert find_digits(decode(jpg.tobytes(), 10**8).image)[0] == []


def test_faint_ink_under_a_shadow_is_still_found():
    rgb = page("9", h=90, w=70, thickness=5, scale=2.2, ink=0.72, paper=0.86)  # pale pencil
    shaded = rgb * np.linspace(0.55, 1.0, 70, dtype=np.float32)[None, :, None]
    mark = only_mark(shaded)
    assert np.abs(np.array(mark.box) - np.array(only_mark(rgb).box)).max() <= 3


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_bomb_refused_from_the_header(order):
    """A TIFF whose first IFD claims 100000 x 100000 pixels never reaches the decoder."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    entries = [(256, 4, 1, 100000), (257, 4, 1, 100000), (258, 3, 1, 8), (277, 3, 1, 1)]
    ifd = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        raw = struct.pack(order + ("H" if kind == 3 else "I"), value).ljust(4, b"\x00")
        ifd += struct.pack(order + "HHI", tag, kind, count) + raw
    data = magic + struct.pack(order + "I", 8) + ifd + b"\x00\x00\x00\x00" + b"\x00" * 64
    with pytest.raises(InputError) as err:
        decode(data, 40_000_000)
    assert err.value.reason.startswith("image too large: 100000x100000 = 10000000000 pixels")


def test_real_tiff_header_size_matches():
    from digitd.formats import header_size

    g = np.zeros((37, 53), np.uint8)
    for flags in ([], [cv2.IMWRITE_TIFF_COMPRESSION, 1]):
        ok, buf = cv2.imencode(".tif", g, flags)
        assert header_size(buf.tobytes(), "TIFF") == (53, 37)


@pytest.mark.parametrize("ext", [".bmp", ".webp"])
def test_truncated_bmp_and_webp_say_so(ext):
    ok, encoded = cv2.imencode(ext, np.full((30, 30), 128, np.uint8))
    data = encoded.tobytes()
    decode(data, 10**8)  # whole: decodes
    with pytest.raises(InputError, match=rf"^truncated {'BMP' if ext == '.bmp' else 'WebP'}: "):
        decode(data[:-5], 10**8)
