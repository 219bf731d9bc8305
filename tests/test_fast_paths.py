"""The cheap paths of decoding and segmentation give exactly what the general ones give.

Grey content is decoded as one plane (``Scan.gray``, ``Scan.image`` its
read-only RGB view) and segmented on that plane; order statistics, the
Gaussian, the labelling and large elliptical dilations are computed in cheaper
ways. Each is checked here against the general path or the plain OpenCV/NumPy
call, on real image files written into tmp_path: same values, bit for bit.
"""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest
from digitd.imageio import InputError, composite, decode, read_bytes, to_scan, unit
from digitd.preprocess import dilate_ellipse, to_mnist_form
from digitd.records import Scan
from digitd.segment import (
    find_digits,
    find_digits_scan,
    gray_plane,
    ink_map,
    is_gray,
    median,
    median_and_tails,
    pieces,
)


def written(tmp_path, name: str, img: np.ndarray, *params: int) -> Scan:
    """img written by cv2 as a real file, read back and decoded as the service does."""
    path = tmp_path / name
    assert cv2.imwrite(str(path), img, list(params))
    return decode(read_bytes(path, 1 << 26), 10**8)


def digits_page(h: int = 140, w: int = 200, text: str = "47", seed: int = 0) -> np.ndarray:
    """A uint8 grey page, dark digits on light noisy paper with a shadow."""
    rng = np.random.default_rng(seed)
    page = np.full((h, w), 225, np.float32) * np.linspace(0.8, 1.0, w, dtype=np.float32)[None, :]
    ink = np.zeros((h, w), np.uint8)
    cv2.putText(ink, text, (w // 10, int(h * 0.75)), cv2.FONT_HERSHEY_SIMPLEX, h / 50, 255,
                max(2, h // 25), cv2.LINE_AA)
    page = page - (page - 30) * (ink / 255.0) + rng.normal(0, 4, (h, w))
    return np.clip(page, 0, 255).astype(np.uint8)


def same_marks(a, b) -> None:
    (ma, pa), (mb, pb) = a, b
    assert pa == pb
    assert [m.box for m in ma] == [m.box for m in mb]
    for x, y in zip(ma, mb):
        assert x.pixels.dtype == y.pixels.dtype == np.float32
        assert np.array_equal(x.pixels, y.pixels)


def general(scan: Scan):
    """find_digits on a plain contiguous copy of the RGB image: the general path."""
    rgb = np.array(scan.image)
    assert rgb.flags.c_contiguous and rgb.strides[2] == 4 and gray_plane(rgb) is None
    return find_digits(rgb)


# ------------------------------------------------------------ grey scans
def test_grey_png_is_one_plane_and_reads_as_its_rgb_twins(tmp_path):
    g = digits_page()
    grey = written(tmp_path, "g.png", g)
    rgb = written(tmp_path, "rgb.png", cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    rgba = written(tmp_path, "rgba.png", cv2.cvtColor(g, cv2.COLOR_GRAY2BGRA))  # opaque
    assert (grey.mode, rgb.mode, rgba.mode) == ("uint8 gray", "uint8 RGB", "uint8 RGBA")
    for s in (grey, rgb, rgba):
        assert s.gray is not None and s.gray.shape == (140, 200) and s.gray.dtype == np.float32
        assert s.image.shape == (140, 200, 3) and s.image.dtype == np.float32
        assert s.image.strides[2] == 0 and not s.image.flags.writeable
        assert np.array_equal(s.image, np.repeat((g.astype(np.float32) / 255.0)[..., None], 3, axis=2))
    reference = general(grey)
    assert len(reference[0]) == 2
    for s in (grey, rgb, rgba):
        same_marks(find_digits(s.image), reference)
        same_marks(find_digits_scan(s), reference)
        same_marks(find_digits(s.gray), reference)  # a 2-D plane is grey too


def test_colour_png_keeps_the_general_path(tmp_path):
    g = digits_page(seed=1)
    bgr = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    bgr[..., 0] = np.clip(bgr[..., 0].astype(int) - 40, 0, 255)  # yellowish paper
    s = written(tmp_path, "c.png", bgr)
    assert s.gray is None and s.image.flags.c_contiguous and s.mode == "uint8 RGB"
    assert np.array_equal(s.image, bgr[..., ::-1].astype(np.float32) / 255.0)
    assert not is_gray(s.image)
    same_marks(find_digits_scan(s), general(s))
    assert len(find_digits(s.image)[0]) == 2


def test_sixteen_bit_grey_and_grey_rgb_match_eight_bit(tmp_path):
    g = digits_page(seed=2)
    s8 = written(tmp_path, "g8.png", g)
    s16 = written(tmp_path, "g16.png", g.astype(np.uint16) * 257)
    s16rgb = written(tmp_path, "g16rgb.png", cv2.cvtColor(g.astype(np.uint16) * 257, cv2.COLOR_GRAY2BGR))
    assert (s16.mode, s16rgb.mode) == ("uint16 gray", "uint16 RGB")
    assert s16.gray is not None and s16rgb.gray is not None
    assert np.array_equal(s16.image, s16rgb.image)
    assert np.abs(s8.image - s16.image).max() < 1e-6
    assert np.array_equal(s16.gray, (g.astype(np.float32) * 257) / 65535.0)
    same_marks(find_digits(s16.image), general(s16))
    same_marks(find_digits(s16rgb.image), find_digits(s16.image))


@pytest.mark.parametrize("dark_ink", [True, False])
def test_grey_with_alpha_composited_as_three_equal_channels(tmp_path, dark_ink):
    """Ink opaque on a transparent canvas (RGBA with equal channels): the same
    backdrop and values as compositing the three channels."""
    g = digits_page(seed=3)
    alpha = np.where(g < 128, 255, 0).astype(np.uint8)
    alpha[:, :20] = 128  # some half-transparent paper
    grey = g if dark_ink else 255 - g
    s = written(tmp_path, "ga.png", np.dstack([cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR), alpha]))
    assert s.mode == "uint8 RGBA" and s.gray is not None
    rgb = np.repeat((grey.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    expected = composite(rgb, alpha.astype(np.float32) / 255.0)
    assert np.array_equal(s.image, expected)
    same_marks(find_digits(s.image), general(s))
    assert len(find_digits(s.image)[0]) == 2


def test_grey_plus_alpha_and_grey_palette_png(tmp_path):
    from PIL import Image

    g = digits_page(seed=4)
    alpha = np.where(g < 128, 255, 60).astype(np.uint8)
    Image.fromarray(np.dstack([g, alpha]), "LA").save(tmp_path / "la.png")
    la = decode((tmp_path / "la.png").read_bytes(), 10**8)
    assert la.mode == "uint8 RGBA" and la.gray is not None  # OpenCV decodes grey+alpha as BGRA
    rgb = np.repeat((g.astype(np.float32) / 255.0)[..., None], 3, axis=2)
    expected = composite(rgb, alpha.astype(np.float32) / 255.0)
    assert np.array_equal(la.image, expected)
    same_marks(find_digits(la.image), general(la))
    two = to_scan(np.dstack([g, alpha]))  # a two-channel array, as other decoders give
    assert two.mode == "uint8 gray+alpha" and two.gray is not None and np.array_equal(two.image, expected)

    pal = Image.fromarray(g, "P")
    pal.putpalette([c for v in range(256) for c in (v, v, v)])
    pal.save(tmp_path / "p.png")
    p = decode((tmp_path / "p.png").read_bytes(), 10**8)
    assert p.mode == "uint8 palette" and p.gray is not None
    grey = written(tmp_path, "g.png", g)
    assert np.array_equal(p.image, grey.image)
    same_marks(find_digits(p.image), find_digits(grey.image))


@pytest.mark.parametrize("shape", [(28, 28), (40, 700), (60, 2048), (1100, 2048), (2100, 1300)])
def test_grey_scans_resized_to_working_scale_as_rgb_ones(tmp_path, shape):
    """Small scans are enlarged (bicubic, as three channels), large ones shrunk
    (area; exactly half size has its own arithmetic): the same marks as RGB."""
    h, w = shape
    s = written(tmp_path, "g.png", digits_page(h, w, "3", seed=h))
    assert s.gray is not None
    same_marks(find_digits(s.image), general(s))


def test_grey_scan_pickles_as_one_plane():
    g = np.random.default_rng(5).random((30, 40), dtype=np.float32)
    s = Scan.of_gray(g, "uint8 gray")
    back = pickle.loads(pickle.dumps(s))
    assert (back.width, back.height, back.mode) == (40, 30, "uint8 gray")
    assert back.image.strides[2] == 0 and np.array_equal(back.image, s.image)
    assert len(pickle.dumps(s)) < g.nbytes * 1.5
    rgb = Scan(image=np.zeros((2, 3, 3), np.float32), width=3, height=2, mode="uint8 RGB")
    assert pickle.loads(pickle.dumps(rgb)).gray is None


# ------------------------------------------------------------ the pieces
def test_order_statistics_are_numpys_bit_for_bit():
    rng = np.random.default_rng(6)
    for n in list(range(1, 70)) + [3136, 8191, 8192, 40000]:
        for x in (rng.random(n, dtype=np.float32), (rng.integers(0, 4, n) / 255).astype(np.float32),
                  rng.normal(0, 1e-3, n).astype(np.float32)):
            lo, hi = np.percentile(x, [0.5, 99.5])
            assert median_and_tails(x.copy()) == (float(np.median(x)), float(lo), float(hi))
            assert median(x.copy()) == float(np.median(x))


def test_unit_of_bytes_is_the_division_bit_for_bit():
    """imageio.unit looks bytes up (cv2.LUT) where it can: the values of dividing by 255."""
    rng = np.random.default_rng(8)
    for shape in [(5,), (7, 9), (7, 9, 1), (7, 9, 2), (7, 9, 3), (7, 9, 4), (0, 5), (301, 200, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        for y in (x, x[::2]):
            u = unit(y)
            assert u.dtype == np.float32
            assert np.array_equal(u, np.true_divide(y, 255.0, dtype=np.float32)) and u.shape == y.shape


def test_dilate_ellipse_is_cv2_dilate():
    rng = np.random.default_rng(7)
    for n in range(1, 61):
        h, w = (int(v) for v in rng.integers(1, 90, 2))
        a = (rng.random((h, w), dtype=np.float32) * (rng.random((h, w)) > 0.85)).astype(np.float32)
        expected = cv2.dilate(a, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (n, n)))
        got = dilate_ellipse(a, n)
        assert got.dtype == np.float32 and np.array_equal(got, expected), n


def test_thin_pen_on_a_big_canvas_thickened_as_before():
    """to_mnist_form's large dilation (the fast path) on a 2-px pen over 700 px."""
    canvas = np.zeros((700, 520), np.float32)
    cv2.ellipse(canvas, (260, 350), (220, 320), 0, 0, 360, 1.0, 2, cv2.LINE_AA)
    out = to_mnist_form(canvas)
    assert out.max() == pytest.approx(1.0) and (out > 0.5).sum() > 40
    # the same as with OpenCV's own dilation
    import digitd.preprocess as P

    fast = P.dilate_ellipse
    try:
        P.dilate_ellipse = lambda x, k: cv2.dilate(x, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        slow = to_mnist_form(canvas)
    finally:
        P.dilate_ellipse = fast
    assert np.array_equal(out, slow)


@pytest.mark.parametrize("specks", [0, 3, 40])
def test_pieces_match_whole_mask_labelling(specks):
    rng = np.random.default_rng(specks)
    mask = np.zeros((120, 160), np.uint8)
    cv2.putText(mask, "58", (20, 95), cv2.FONT_HERSHEY_SIMPLEX, 3.0, 1, 8)
    for _ in range(specks):
        y, x = (int(v) for v in rng.integers(0, 118, 2))
        mask[y : y + 2, x : x + 2] = 1
    labels, found = pieces(mask)
    n, full, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    everything = {tuple(s) for s in stats[1:].tolist()}
    assert {(p.x, p.y, p.w, p.h, p.area) for p in found} <= everything
    for p in found:  # each piece's own pixels, labelled as OpenCV labels the whole mask
        own = labels == p.label
        assert own.sum() == p.area
        assert len(np.unique(full[own])) == 1
    assert not pieces(np.zeros((5, 5), np.uint8))[1]


def test_ink_map_on_plane_view_and_copy_agree():
    g = digits_page(seed=8).astype(np.float32) / 255.0
    view = Scan.of_gray(g, "uint8 gray").image
    for a, b in ((ink_map(view), ink_map(np.repeat(g[..., None], 3, axis=2))), (ink_map(g), ink_map(view))):
        assert (a.polarity, a.level, a.scale) == (b.polarity, b.level, b.scale)
        assert np.array_equal(a.contrast, b.contrast)


def test_read_bytes_reads_the_whole_file_and_refuses_large_ones(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)
    assert read_bytes(tmp_path / "f.bin", len(data)) == data
    (tmp_path / "empty").write_bytes(b"")
    assert read_bytes(tmp_path / "empty", 10) == b""
    with pytest.raises(InputError, match="file too large"):
        read_bytes(tmp_path / "f.bin", len(data) - 1)


@pytest.mark.parametrize("across", [True, False])
@pytest.mark.parametrize("op", [cv2.MORPH_OPEN, cv2.MORPH_CLOSE])
def test_line_morph_is_cv2s(across, op):
    """Openings and closings by a long line, done by doubling, are cv2's pixel for pixel,
    at the border too, on masks of any size (a line longer than the image included)."""
    from digitd.segment import line_morph

    rng = np.random.default_rng(3)
    for _ in range(12):
        h, w = (int(v) for v in rng.integers(1, 160, 2))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        for length in (3, 31, 33, 61, 147, 513):
            kernel = np.ones((1, length) if across else (length, 1), np.uint8)
            assert np.array_equal(line_morph(mask, op, length, across), cv2.morphologyEx(mask, op, kernel))


def test_keep_strokes_reach_is_row_by_row():
    """keep_strokes' ink within ``reach`` rows above and below, found by two dilations,
    is what shifting the rows one by one finds."""
    from digitd.page import keep_strokes

    def by_rows(mask, core, drop, reach=4):
        fringe = cv2.bitwise_and(drop, core ^ 1)
        kept = cv2.bitwise_and(mask, drop ^ 1)
        for _ in range(2):
            kept = cv2.bitwise_or(kept, cv2.bitwise_and(cv2.dilate(kept, np.ones((3, 1), np.uint8)), fringe))
        drop = cv2.bitwise_and(drop, kept ^ 1)
        wide = cv2.dilate(kept, np.ones((1, 3), np.uint8))
        above, below = np.zeros_like(drop), np.zeros_like(drop)
        for i in range(1, reach + 1):
            above[i:] |= wide[:-i]
            below[:-i] |= wide[i:]
        return cv2.bitwise_and(drop, (above & below) ^ 1)

    rng = np.random.default_rng(4)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        mask = (rng.random((h, w)) < 0.4).astype(np.uint8)
        core = mask & (rng.random((h, w)) < 0.3).astype(np.uint8)
        drop = mask & (core | (rng.random((h, w)) < 0.3).astype(np.uint8))
        for reach in (1, 4, 7):
            assert np.array_equal(keep_strokes(mask, core, drop, reach), by_rows(mask, core, drop, reach))
