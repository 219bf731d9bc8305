"""scripts/pages.py makes the labelled page set it says, the same for the same seed;
scripts/accuracy.py --pages counts found, exact, missed and extra numbers right."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO_ROOT, find_real_dev

SEED = 78  # its 3 form pages are a PNG and a 2-page TIFF; the other sets add JPEG and PDF


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


pages = load_script("pages")
accuracy = load_script("accuracy")


def make_set(out: Path, mnist: Path, which: str, count: int, seed: int = SEED) -> dict:
    """A set made by scripts/pages.py, with real-dev's digits wherever this checkout is."""
    real = find_real_dev()
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "pages.py"), "--out", str(out),
                           "--pages", str(count), "--seed", str(seed), "--set", which, "--mnist", str(mnist),
                           *(["--real", str(real)] if real else [])],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads((out / "labels.json").read_text())


@pytest.fixture(scope="module")
def full_set(tmp_path_factory, mnist_path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("all")
    return out, make_set(out, mnist_path, "all", 3)


def decoded_pages(path: Path, fmt: str) -> list[np.ndarray]:
    if fmt == "tiff":
        ok, images = cv2.imreadmulti(str(path), flags=cv2.IMREAD_GRAYSCALE)
        assert ok
        return list(images)
    return [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)]


def test_the_sets_hold_what_they_say(full_set):
    out, labels = full_set
    files = labels["files"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*files, "labels.json"])

    def pages_of(prefix):
        return sum(len(f["pages"]) for name, f in files.items() if name.startswith(prefix))

    # --pages 3: 3 form pages, 1 of separator forms, 1 turned, 3 separator crops,
    # 1 non-digit crop, and one page each of words, blank and ruled
    prefixes = ("page-", "sepp-", "turn-", "sepc-", "item-", "word-", "blank-", "ruled-")
    assert [pages_of(p) for p in prefixes] == [3, 1, 1, 3, 1, 1, 1, 1]
    assert {f["format"] for f in files.values()} == {"png", "jpeg", "pdf", "tiff"}
    for name, f in files.items():
        for page in f["pages"]:
            if name.startswith(("page-", "sepp-")):
                assert f["kind"] == "page" and 2 <= len(page["numbers"]) <= 6, name
                assert (page["width"], page["height"]) in ((1654, 2339), (2480, 3508), (3000, 4000))
            elif name.startswith("turn-"):
                assert f["kind"] == "turned" and 2 <= len(page["numbers"]) <= 6, name
                assert page["rotation"] in (90, 180, 270)
                upright = (page["width"], page["height"])[:: 1 if page["rotation"] == 180 else -1]
                assert upright in ((1654, 2339), (2480, 3508), (3000, 4000)), name
            elif name.startswith("sepc-"):
                assert f["kind"] == "separator" and len(page["numbers"]) == 1
                assert re.fullmatch(r"-?\d+([/.,]\d+)*", page["numbers"][0]["text"]), page["numbers"]
                assert re.search(r"[-/.,]", page["numbers"][0]["text"])
            else:
                assert f["kind"] in ("nondigit", "blank", "ruled") and page["numbers"] == [], name
    sepp = [n["text"] for name, f in files.items() if name.startswith("sepp-") for pg in f["pages"] for n in pg["numbers"]]
    assert all(re.search(r"[-/.,]", t) or re.fullmatch(r"\d+", t) for t in sepp)


def test_the_files_are_in_their_formats_with_their_pages(full_set):
    out, labels = full_set
    for name, f in labels["files"].items():
        data = (out / name).read_bytes()
        magic = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff", "pdf": b"%PDF-", "tiff": b"II*\x00"}[f["format"]]
        assert data.startswith(magic), name
        if f["format"] == "pdf":
            assert len(re.findall(rb"/Type /Page ", data)) == len(f["pages"]), name
            assert re.search(rb"/Count (\d+)", data).group(1) == str(len(f["pages"])).encode()
            continue
        images = decoded_pages(out / name, f["format"])
        assert len(images) == len(f["pages"]), name
        for img, page in zip(images, f["pages"]):
            assert img.shape == (page["height"], page["width"]), name
        as_saved = cv2.imreadmulti(str(out / name), flags=cv2.IMREAD_UNCHANGED)[1] if f["format"] == "tiff" \
            else [cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)]
        for img, page in zip(as_saved, f["pages"]):  # the scan's mode is what the file holds
            assert img.ndim == (3 if page["mode"] in ("colour", "photo") else 2), (name, page["mode"])
            if page["mode"] == "bw":
                assert set(np.unique(img)) <= {0, 255}, name


def test_every_labelled_number_lies_on_its_page_in_ink(full_set):
    out, labels = full_set
    checked = 0
    for name, f in labels["files"].items():
        if f["format"] == "pdf":
            continue  # rasterising needs a PDF reader; pdf_bytes is checked on its own below
        for img, page in zip(decoded_pages(out / name, f["format"]), f["pages"]):
            for n in page["numbers"]:
                assert boxed_in_ink(img, n["box"]), (name, n)
                checked += 1
    assert checked >= 8


def boxed_in_ink(gray: np.ndarray, box: list[int]) -> bool:
    """The box lies on the image and holds ink: pixels well darker than the paper around them."""
    x, y, w, h = box
    if not (0 <= x and 0 <= y and x + w <= gray.shape[1] and y + h <= gray.shape[0]):
        return False
    inside = gray[y : y + h, x : x + w].astype(int)
    paper = int(np.percentile(gray[max(0, y - h) : y + 2 * h, max(0, x - h) : x + w + h], 75))
    return int((inside < paper - 60).sum()) >= max(20, 0.01 * w * h)


def test_the_same_seed_makes_the_same_bytes(full_set, tmp_path, mnist_path):
    out, labels = full_set
    again = make_set(tmp_path / "again", mnist_path, "pages", 3)
    forms = {name: f for name, f in labels["files"].items() if name.startswith("page-")}
    assert again["files"] == forms
    assert [f["format"] for f in forms.values()] == ["png", "tiff"]
    for name in forms:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name
    other = make_set(tmp_path / "other", mnist_path, "pages", 1, seed=SEED + 1)
    first = next(iter(other["files"]))
    assert other["files"][first]["pages"] != forms["page-0000.png"]["pages"]


def test_pdf_bytes_hold_one_page_per_image_at_the_dpi():
    grey = np.full((330, 234), 200, np.uint8)
    grey[100:150, 50:120] = 20
    colour = np.dstack([grey, grey, np.full_like(grey, 90)])
    bw = np.where(grey > 128, 255, 0).astype(np.uint8)
    data = pages.pdf_bytes([grey, colour, bw], 40)
    assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
    assert re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data) == [(b"421.20", b"594.00")] * 3
    assert re.findall(rb"/Filter (/\w+)", data) == [b"/DCTDecode", b"/DCTDecode", b"/FlateDecode"]
    assert re.findall(rb"/ColorSpace (/\w+)", data) == [b"/DeviceGray", b"/DeviceRGB", b"/DeviceGray"]
    start = int(re.search(rb"startxref\n(\d+)", data).group(1))
    assert data[start:].startswith(b"xref\n0 12\n")  # entry 0, catalog, pages, 3 x (page, content, image)
    try:
        import pypdfium2
    except ImportError:
        return
    doc = pypdfium2.PdfDocument(data)
    assert len(doc) == 3
    page = doc[2].render(scale=40 / 72, grayscale=True).to_numpy()
    assert page.shape[0] == 330 and abs(page.shape[1] - 234) <= 1
    assert page[120, 80] < 60 and page[10, 10] > 200


@pytest.fixture(scope="module")
def bank(mnist_path):
    return pages.load_bank(mnist_path, find_real_dev() or REPO_ROOT.parent / "shared" / "data" / "real-dev")


def test_numbers_on_ruled_paper_and_in_a_phone_photo_are_boxed_in_ink(bank):
    rng = np.random.default_rng(4)
    notes = pages.notes_page(bank, 200, rng)
    img, m = pages.render(notes, "grey", rng)
    labels = pages.number_labels(notes, m, (img.shape[1], img.shape[0]))
    assert 2 <= len(labels) <= 6 and {n["field"] for n in labels} == {"ruled"}
    assert all(boxed_in_ink(img, n["box"]) for n in labels), labels
    step = pages.Page(200, rng).mm(6.5)  # less than any line spacing
    spots = [(n["points"][:, 1].max(), n["points"][:, 0].min()) for n in notes.numbers]  # before the rotation
    for (bottom_a, left_a), (bottom_b, left_b) in zip(spots, spots[1:]):  # reading order: line by line, left to right
        assert bottom_b - bottom_a > step / 2 or (abs(bottom_b - bottom_a) < step / 2 and left_b > left_a)

    form = pages.form_page(bank, 200, rng)
    photo, m = pages.render(form, "photo", rng)
    assert photo.shape == (4000, 3000, 3)
    labels = pages.number_labels(form, m, (3000, 4000))
    assert [n["text"] for n in labels] == [n["text"] for n in form.numbers]
    grey = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    assert all(boxed_in_ink(grey, n["box"]) for n in labels), labels


def test_black_and_white_tiffs_are_g4(tmp_path):
    from PIL import Image

    a = np.full((300, 200), 255, np.uint8)
    a[50:90, 40:160] = 0
    b = 255 - a
    pages.save(tmp_path / "bw.tif", [a, b], "tiff", 200, np.random.default_rng(0))
    with Image.open(tmp_path / "bw.tif") as im:
        assert (im.info["compression"], im.n_frames) == ("group4", 2)
    ok, read = cv2.imreadmulti(str(tmp_path / "bw.tif"), flags=cv2.IMREAD_GRAYSCALE)
    assert ok and len(read) == 2 and (read[0] == a).all() and (read[1] == b).all()
    pages.save(tmp_path / "grey.tif", [a // 2 + 60, a], "tiff", 200, np.random.default_rng(0))
    with Image.open(tmp_path / "grey.tif") as im:
        assert (im.info["compression"], im.n_frames) == ("tiff_lzw", 2)


# ---------------------------------------------------------------- the matcher of accuracy.py --pages

LABEL = {"page": 1, "width": 1000, "height": 2000, "numbers": [
    {"text": "12/05/2026", "box": [100, 100, 300, 60]},
    {"text": "3.75", "box": [100, 400, 150, 60]},
    {"text": "4711", "box": [600, 400, 200, 60]},
    {"text": "-42", "box": [100, 800, 120, 60]}],
    "printed": [{"text": "2024", "box": [700, 1900, 100, 30]}]}


def found(number, box, status="ok", printed=False):
    return {"number": number, "status": status, "box": box, "printed": printed}


def test_a_page_is_scored_number_by_number():
    page = {"page": 1, "width": 500, "height": 1000, "numbers": [  # read at half the size
        found("1210512026", [52, 48, 148, 32], status="uncertain"),   # separators flagged
        found("4711", [300, 200, 100, 30]),                            # exact, but before 3.75
        found("3.75", [50, 200, 76, 30]),                              # exact, separator kept
        found("42", [49, 402, 62, 28]),                                # separator dropped under ok
        found("7", [600, 600, 20, 20], status="uncertain"),            # extra
        found("2024", [350, 950, 50, 15]),                             # extra, on printed digits
        found("2024", [350, 950, 50, 15], printed=True)]}              # marked printed: not extra
    assert accuracy.score_page(LABEL, page) == {
        "labelled": 4, "found": 4, "exact": 2, "exact_ok": 2, "wrong_ok": 1, "exact_in_order": 1, "missed": 0,
        "extra": 2, "extra_ok": 1, "extra_on_printed": 1, "pages_right": 0,
        "sep_labelled": 3, "sep_kept": 1, "sep_flagged": 1, "sep_dropped": 1, "sep_missed": 0}


def test_a_page_read_right_and_a_page_not_found():
    right = {"page": 1, "width": 1000, "height": 2000,
             "numbers": [found(n["text"], [b + 3 for b in n["box"]]) for n in LABEL["numbers"]]}
    c = accuracy.score_page(LABEL, right)
    assert (c["exact"], c["exact_in_order"], c["missed"], c["extra"], c["pages_right"], c["sep_kept"]) == (4, 4, 0, 0, 1, 3)
    c = accuracy.score_page(LABEL, None)
    assert (c["found"], c["missed"], c["extra"], c["sep_missed"], c["pages_right"]) == (0, 4, 0, 3, 0)


def test_results_before_pages_are_one_number_on_page_one():
    old = {"source": "a.png", "status": "ok", "number": "4711", "image": {"width": 1000, "height": 2000},
           "digits": [{"box": [600, 400, 40, 60]}, {"box": [760, 405, 40, 55]}]}
    assert accuracy.predicted_pages(old) == [{"page": 1, "width": 1000, "height": 2000,
                                              "numbers": [found("4711", [600, 400, 200, 60])]}]
    assert accuracy.predicted_pages({"status": "blank", "number": None, "image": None, "digits": []}) == [
        {"page": 1, "width": None, "height": None, "numbers": []}]
    new = {"status": "ok", "number": None, "pages": [
        {"page": 2, "width": 10, "height": 20, "numbers": [{"number": "5", "confidence": 0.9, "status": "ok",
                                                             "box": [1, 2, 3, 4], "printed": False, "doubts": []}]}]}
    assert accuracy.predicted_pages(new) == [{"page": 2, "width": 10, "height": 20, "numbers": [found("5", [1, 2, 3, 4])]}]


def test_a_set_is_measured_by_kind_and_format():
    labels = {"files": {
        "form.pdf": {"format": "pdf", "kind": "page", "pages": [LABEL, {**LABEL, "page": 2}]},
        "word.png": {"format": "png", "kind": "nondigit", "pages": [{"page": 1, "width": 9, "height": 9, "numbers": [], "printed": []}]},
        "blank.tif": {"format": "tiff", "kind": "blank", "pages": [{"page": i, "width": 9, "height": 9, "numbers": [], "printed": []}
                                                                   for i in (1, 2, 3)]},
        "gone.jpg": {"format": "jpeg", "kind": "page", "pages": [LABEL]}}}
    results = {
        "form.pdf": {"status": "ok", "pages": [{"page": 2, "width": 1000, "height": 2000,
                                                 "numbers": [found("4711", LABEL["numbers"][2]["box"])]}]},
        "word.png": {"status": "ok", "number": "4016", "image": {"width": 9, "height": 9}, "digits": []},
        "blank.tif": {"status": "ok", "number": None, "pages": [
            {"page": 1, "numbers": []}, {"page": 2, "numbers": [found("1", [0, 0, 9, 9], status="uncertain")]},
            {"page": 3, "numbers": [found("1", [0, 0, 9, 9]), found("7", [0, 0, 2, 2], printed=True)]}]}}
    fig = accuracy.measure_pages(labels, results, seconds=2.5)
    assert (fig["files"], fig["pages"], fig["pages_per_second"]) == (4, 7, 2.8)
    page = fig["handwritten"]["page"]
    assert (page["pages"], page["labelled"], page["exact"], page["missed"], page["extra"]) == (3, 12, 1, 11, 0)
    assert fig["not_numbers"] == {"nondigit": {"files": 1, "pages": 1, "read_ok": 1, "numbers_reported": 1},
                                  "blank": {"files": 1, "pages": 3, "read_ok": 1, "numbers_reported": 2}}
    assert fig["by_format"]["pdf"] == {"files": 1, "pages": 2, "labelled": 8, "exact": 1, "extra": 0}
    assert fig["by_format"]["jpeg"] == {"files": 1, "pages": 1, "labelled": 4, "exact": 0, "extra": 0}
    assert fig["failed"] == ["gone.jpg: no result"]
    assert fig["by_field"] == {"page, field ?": {"labelled": 12, "exact": 1}, "page, scan ?": {"labelled": 12, "exact": 1}}
    assert fig["all"] == page  # one kind of page: all kinds are its figures


def test_accuracy_pages_runs_digitd_predict_over_a_set(full_set, tmp_path, digitd_exe):
    out, labels = full_set
    figures = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "accuracy.py"), "--pages", str(out),
                           "--json", str(figures)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "| measure | count | of | share | bar |" in done.stdout
    fig = json.loads(figures.read_text())
    files = labels["files"]
    assert (fig["files"], fig["pages"]) == (len(files), sum(len(f["pages"]) for f in files.values()))

    def numbers(kind):
        return sum(len(pg["numbers"]) for f in files.values() if f["kind"] == kind for pg in f["pages"])

    assert fig["all"]["labelled"] == sum(c["labelled"] for c in fig["handwritten"].values())
    assert fig["all"]["exact"] == sum(c["exact"] for c in fig["handwritten"].values())
    assert "| all kinds: handwritten numbers read exactly |" in done.stdout
    for kind in ("page", "separator"):
        c = fig["handwritten"][kind]
        assert c["labelled"] == numbers(kind) and c["found"] + c["missed"] == c["labelled"]
        assert c["exact_in_order"] <= c["exact"] <= c["found"]
        by_field = {k: v for k, v in fig["by_field"].items() if k.startswith(f"{kind}, field ")}
        assert sum(v["labelled"] for v in by_field.values()) == numbers(kind)
        assert sum(v["exact"] for v in by_field.values()) == c["exact"]
    assert {k: v["pages"] for k, v in fig["not_numbers"].items()} == {"nondigit": 2, "blank": 1, "ruled": 1}
    assert {k: v["files"] for k, v in fig["by_format"].items()} == {
        fmt: sum(f["format"] == fmt for f in files.values()) for fmt in ("png", "jpeg", "pdf", "tiff")}


def test_labels_need_only_pages_numbers_texts_and_boxes():
    labels = {"files": {"scan.TIF": {"pages": [{"numbers": [{"text": "12", "box": [10, 10, 40, 20]}]},
                                               {"numbers": [{"text": "3.5", "box": [10, 10, 40, 20]}]}]}}}
    results = {"scan.TIF": {"status": "ok", "pages": [
        {"page": 1, "numbers": [found("12", [12, 10, 40, 20])]},
        {"page": 2, "numbers": [found("35", [10, 12, 40, 20])]}]}}
    fig = accuracy.measure_pages(labels, results, seconds=1.0)
    c = fig["handwritten"]["page"]
    assert (c["labelled"], c["exact"], c["sep_labelled"], c["sep_dropped"]) == (2, 1, 1, 1)
    assert fig["by_format"] == {"tiff": {"files": 1, "pages": 2, "labelled": 2, "exact": 1, "extra": 0}}
    assert fig["errors"] == ["scan.TIF p2 (?): 3.5 read 35 (ok)"]


def test_the_errors_name_each_number_not_read_and_each_extra():
    page = {"page": 1, "width": 1000, "height": 2000, "numbers": [
        found("12/05/2026", [100, 100, 300, 60]), found("3.76", [100, 400, 150, 60], status="uncertain"),
        found("9", [500, 1500, 30, 40])]}
    assert accuracy.page_errors("f.pdf p1", LABEL, page) == [
        "f.pdf p1 (?): 3.75 read 3.76 (uncertain)", "f.pdf p1 (?): 4711 missed", "f.pdf p1 (?): -42 missed",
        "f.pdf p1: extra 9 (ok) at [500, 1500, 30, 40]"]


def test_without_real_digits_every_number_is_written_with_mnist_ones():
    ink = np.ones((20, 12), np.float32)
    without = pages.Bank({d: [ink] for d in range(10)}, {d: [] for d in range(10)})
    with_real = pages.Bank({d: [ink] for d in range(10)}, {d: [ink] for d in range(10)})
    rng = np.random.default_rng(0)
    assert {without.writer(rng) for _ in range(50)} == {"mnist"}
    assert {with_real.writer(rng) for _ in range(50)} == {"mnist", "real"}


@pytest.mark.parametrize("k", [1, 2, 3])
def test_a_box_turns_with_its_page(k):
    img = np.zeros((30, 50), np.uint8)
    img[5:9, 10:20] = 1
    ys, xs = np.nonzero(np.rot90(img, k))
    expected = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    assert pages.turn_box([10, 5, 10, 4], k, 50, 30) == [int(v) for v in expected]
