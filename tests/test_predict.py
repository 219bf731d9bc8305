"""`digitd predict` end to end: the real console script over real files on tmp_path.

Each run is a real process, so one run covers many inputs: every
kind of bad input next to good ones, every image format. The tiny model
trained by the ``small_model`` fixture serves for files and formats; the
shipped model (skipped when absent) for exact digits.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import clean_env, draw_digits, find_digitd_exe
from digitd.results import CSV_COLUMNS, RESULT_KEYS
from PIL import Image

pytestmark = pytest.mark.slow

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# --- helpers ------------------------------------------------------------------------------


def write_config(folder: Path, model: Path, **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"model: {model}", f"inbox: {folder / 'inbox'}", f"outbox: {folder / 'outbox'}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    path = folder / "config.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def predict(config: Path, *args, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    exe = find_digitd_exe()
    assert exe is not None, f"no digitd console script next to {sys.executable}"
    return subprocess.run([str(exe), "predict", "--config", str(config), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          cwd=cwd or config.parent, env=clean_env())


def json_lines(proc: subprocess.CompletedProcess) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def pil_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def digit_gray(d: str = "3") -> np.ndarray:
    return draw_digits(d, height=200, thickness=18)


def rgba_on_transparent(light_ink: bool) -> np.ndarray:
    """A digit on a fully transparent canvas whose hidden colour is the ink's own
    colour's opposite of what a naive reader assumes (black behind dark ink)."""
    mask = 255 - digit_gray("5")  # ink = 255
    ink = 255 if light_ink else 0
    hidden = 255 if light_ink else 0  # transparent pixels hold the same colour as the ink
    bgra = np.zeros((*mask.shape, 4), np.uint8)
    bgra[..., :3] = np.where(mask[..., None] > 0, ink, hidden)
    bgra[..., 3] = mask
    return bgra


# Inputs that must be read (not failed), with what the result must say.
GOOD: dict[str, tuple[Callable[[], bytes], str | None]] = {
    "digit.png": (lambda: png_bytes(digit_gray("3")), None),
    "tiny-1x1.png": (lambda: png_bytes(np.zeros((1, 1), np.uint8)), None),
    "white.png": (lambda: png_bytes(np.full((300, 300), 255, np.uint8)), "blank"),
    "gray16.png": (lambda: png_bytes(digit_gray("3").astype(np.uint16) * 257), None),
    "palette.png": (lambda: pil_bytes(Image.fromarray(digit_gray("3")).convert("RGB").quantize(8)), None),
    "rgba-dark.png": (lambda: png_bytes(rgba_on_transparent(light_ink=False)), None),
    "rgba-light.png": (lambda: png_bytes(rgba_on_transparent(light_ink=True)), None),
    "photo.jpg": (lambda: cv2.imencode(".jpg", digit_gray("3"))[1].tobytes(), None),
    "scan.tif": (lambda: cv2.imencode(".tif", digit_gray("3"))[1].tobytes(), None),
    "paint.bmp": (lambda: cv2.imencode(".bmp", digit_gray("3"))[1].tobytes(), None),
    "web.webp": (lambda: cv2.imencode(".webp", digit_gray("3"))[1].tobytes(), None),
}

# Inputs that must fail, with a word their reason must contain.
BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty.png": (lambda: b"", "empty file"),
    "truncated.png": (lambda: (lambda b: b[: len(b) // 2])(png_bytes(digit_gray("3"))), "truncated PNG"),
    "text.png": (lambda: b"hello, I am not a picture\n", "not an image"),
    "garbage.jpg": (lambda: b"\x00\x01\x02" * 100, "not a supported image"),
}


@pytest.fixture(scope="module")
def mixed_run(small_model, tmp_path_factory):
    """One --json run over every good and bad input, a missing file, and two inputs
    with the same stem in different folders."""
    root = tmp_path_factory.mktemp("mixed")
    inputs = root / "inputs"
    inputs.mkdir()
    for name, (make, _) in {**GOOD, **BAD}.items():
        (inputs / name).write_bytes(make())
    (inputs / ".hidden.png").write_bytes(b"")
    (inputs / "copying.png.part").write_bytes(b"")
    (inputs / "notes.txt").write_text("x")
    (inputs / "sub").mkdir()
    (inputs / "sub" / "digit.png").write_bytes(png_bytes(digit_gray("8")))
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in inputs.rglob("*") if p.is_file()}
    config = write_config(root, small_model)
    proc = predict(config, "--json", inputs, inputs / "sub" / "digit.png", root / "missing.png")
    return {"root": root, "inputs": inputs, "proc": proc, "outbox": root / "outbox", "before": before}


# --- the mixed run ----------------------------------------------------------------------


def test_bad_inputs_fail_with_exit_1_while_good_ones_succeed(mixed_run):
    proc = mixed_run["proc"]
    assert proc.returncode == 1, proc.stderr
    results = {(r["source"], r["sha256"]): r for r in json_lines(proc)}
    by_source = {}
    for r in json_lines(proc):
        by_source.setdefault(r["source"], []).append(r)
    assert len(by_source.pop("digit.png")) == 2  # inputs/digit.png and inputs/sub/digit.png
    by_source["digit.png"] = [json_lines(proc)[sorted({**GOOD, **BAD}).index("digit.png")]]
    for name, (_make, expected) in GOOD.items():
        (r,) = by_source[name]
        assert r["status"] in ("ok", "uncertain", "blank"), (name, r)
        assert r["error"] is None
        if expected:
            assert r["status"] == expected, (name, r)
    for name in ("digit.png", "gray16.png", "palette.png", "rgba-dark.png", "rgba-light.png",
                 "photo.jpg", "scan.tif", "paint.bmp", "web.webp"):
        (r,) = by_source[name]
        assert r["number"] is not None and len(r["number"]) == 1, (name, r)  # one digit found
    for name, (_make, words) in BAD.items():
        (r,) = by_source[name]
        assert r["status"] == "failed" and words in r["error"], (name, r)
        assert (r["number"], r["digits"], r["confidence"], r["annotated"]) == (None, [], None, None)
    (missing,) = by_source["missing.png"]
    assert missing["status"] == "failed" and missing["error"] == "cannot read: no such file"
    assert missing["sha256"] is None
    assert len(results) == len(json_lines(proc))


def test_json_lines_come_in_input_order_and_match_the_files(mixed_run):
    lines = json_lines(mixed_run["proc"])
    expected_order = sorted(n for n in {**GOOD, **BAD}) + ["digit.png", "missing.png"]
    assert [r["source"] for r in lines] == expected_order
    outbox = mixed_run["outbox"]
    rows = read_csv(outbox / "results.csv")
    assert [r["source"] for r in rows] == expected_order
    for line, row in zip(lines, rows, strict=True):
        assert list(line)[: len(RESULT_KEYS)] == list(RESULT_KEYS)
        stored = json.loads((outbox / row["result"]).read_text(encoding="utf-8"))
        assert stored == line
        assert ISO_Z.match(line["processed_at"])
        assert isinstance(line["elapsed_ms"], float) and line["elapsed_ms"] >= 0
        assert line["model"] == "tiny-test-mlp"
        for d in line["digits"]:
            assert list(d) == ["digit", "confidence", "box", "probabilities"]
            assert len(d["box"]) == 4 and len(d["probabilities"]) == 10
            assert abs(sum(d["probabilities"]) - 1) < 1e-3
        # The CSV row says the same as the JSON.
        assert row == {
            "processed_at": line["processed_at"], "source": line["source"], "status": line["status"],
            "number": line["number"] or "",
            "confidence": "" if line["confidence"] is None else f"{line['confidence']:.6f}",
            "model": line["model"], "sha256": line["sha256"] or "", "result": row["result"],
            "error": line["error"] or "",
            **({"page": "1", "index": "1",
                "box": " ".join(map(str, line["pages"][0]["numbers"][0]["box"]))}
               if line["numbers"] else {"page": "", "index": "", "box": ""}),
        }
        if line["annotated"]:
            assert (outbox / line["annotated"]).read_bytes()[:4] == b"\x89PNG"


def test_csv_header_once(mixed_run):
    text = (mixed_run["outbox"] / "results.csv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    assert text.count("processed_at,") == 1


def test_same_stem_in_two_folders_gives_two_results(mixed_run):
    outbox = mixed_run["outbox"]
    rows = [r for r in read_csv(outbox / "results.csv") if r["source"] == "digit.png"]
    assert [r["result"] for r in rows] == ["results/digit.json", "results/digit-1.json"]
    first, second = (json.loads((outbox / r["result"]).read_text()) for r in rows)
    assert first["sha256"] != second["sha256"]
    assert second["annotated"] == "annotated/digit-1.png"
    assert (outbox / "annotated" / "digit.png").is_file()


def test_sha256_is_of_the_input_bytes(mixed_run):
    inputs = mixed_run["inputs"]
    lines = json_lines(mixed_run["proc"])
    paths = [inputs / r["source"] for r in lines[:-2]] + [inputs / "sub" / "digit.png"]
    for r, path in zip(lines, paths):  # the last line (missing.png) has no bytes
        assert r["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), r["source"]


def test_inputs_are_left_alone_and_skipped_names_untouched(mixed_run):
    for path, (mtime, data) in mixed_run["before"].items():
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == data
    outbox = mixed_run["outbox"]
    assert not (outbox / "originals").exists() and not (outbox / "failed").exists()
    sources = {r["source"] for r in json_lines(mixed_run["proc"])}
    assert not sources & {".hidden.png", "copying.png.part", "notes.txt"}
    assert "skipped" in mixed_run["proc"].stderr and "notes.txt" in mixed_run["proc"].stderr


def test_no_reservations_or_temp_files_left(mixed_run):
    outbox = mixed_run["outbox"]
    leftovers = [p for p in outbox.rglob(".*")]
    assert leftovers == []


def test_annotated_pictures_for_read_inputs_only(mixed_run):
    outbox = mixed_run["outbox"]
    lines = json_lines(mixed_run["proc"])
    pictured = {r["annotated"] for r in lines if r["annotated"]}
    assert len(pictured) == sum(r["status"] != "failed" for r in lines)
    assert {f"annotated/{p.name}" for p in (outbox / "annotated").iterdir()} == pictured


# --- other runs ----------------------------------------------------------------------------


def test_human_lines_and_exit_0(small_model, tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(digit_gray("3")))
    (tmp_path / "w.png").write_bytes(png_bytes(np.full((50, 50), 255, np.uint8)))
    config = write_config(tmp_path / "cfg", small_model)
    proc = predict(config, tmp_path / "a.png", tmp_path / "w.png")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert re.search(r"a\.png -> \d\?? \(\d\.\d\d\)( uncertain)? \d+ ms\n", proc.stderr), proc.stderr
    assert re.search(r"w\.png -> blank \(no digits found\) \d+ ms\n", proc.stderr), proc.stderr
    assert re.search(r"digitd: 2 input\(s\): .* in [\d.]+ s", proc.stderr)


def test_a_name_the_font_cannot_draw_still_gives_one_line(small_model, tmp_path):
    """CJK in a file name: placeholder boxes in the picture, no multi-line glyph warnings in the log."""
    name = "数字 ٣.png"
    (tmp_path / name).write_bytes(png_bytes(digit_gray("5")))
    config = write_config(tmp_path / "cfg", small_model)
    proc = predict(config, tmp_path / name, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert [line for line in lines if "->" in line] == [line for line in lines if name in line]
    assert len(lines) == 3, lines  # model loaded, the file's line, the summary
    assert (tmp_path / "out" / "annotated" / "数字 ٣.png").is_file()


def test_out_and_no_annotate(small_model, tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(digit_gray("3")))
    config = write_config(tmp_path / "cfg", small_model)
    proc = predict(config, "--no-annotate", "--json", "--out", tmp_path / "elsewhere", tmp_path / "a.png")
    assert proc.returncode == 0, proc.stderr
    (line,) = json_lines(proc)
    assert line["annotated"] is None
    assert (tmp_path / "elsewhere" / "results" / "a.json").is_file()
    assert not (tmp_path / "elsewhere" / "annotated").exists()
    assert not (tmp_path / "cfg" / "outbox").exists()


def test_annotate_false_in_config(small_model, tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(digit_gray("3")))
    config = write_config(tmp_path / "cfg", small_model, annotate="false")
    proc = predict(config, "--json", tmp_path / "a.png")
    assert proc.returncode == 0, proc.stderr
    assert json_lines(proc)[0]["annotated"] is None


def test_a_second_run_into_the_same_outbox_overwrites_nothing(small_model, tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(digit_gray("3")))
    config = write_config(tmp_path / "cfg", small_model)
    for _ in range(2):
        assert predict(config, tmp_path / "a.png").returncode == 0
    outbox = tmp_path / "cfg" / "outbox"
    assert sorted(p.name for p in (outbox / "results").iterdir()) == ["a-1.json", "a.json"]
    assert sorted(p.name for p in (outbox / "annotated").iterdir()) == ["a-1.png", "a.png"]
    rows = read_csv(outbox / "results.csv")
    assert [r["result"] for r in rows] == ["results/a.json", "results/a-1.json"]


def test_many_inputs_in_several_batches_with_picture_workers(small_model, tmp_path):
    """More inputs than MIN_FOR_WORKERS, batches of 16: pictures drawn in worker
    processes while the next batch is recognised; order and files still exact."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(45):
        (folder / f"n{i:03d}.png").write_bytes(png_bytes(digit_gray(str(i % 10))))
    (folder / "n020.png").write_bytes(b"broken")
    config = write_config(tmp_path / "cfg", small_model, batch_max=16)
    proc = predict(config, "--json", folder)
    assert proc.returncode == 1, proc.stderr
    lines = json_lines(proc)
    assert [r["source"] for r in lines] == [f"n{i:03d}.png" for i in range(45)]
    assert lines[20]["status"] == "failed"
    outbox = tmp_path / "cfg" / "outbox"
    assert len(list((outbox / "annotated").iterdir())) == 44
    assert len(read_csv(outbox / "results.csv")) == 45


def test_an_empty_folder_is_an_error(small_model, tmp_path):
    (tmp_path / "empty").mkdir()
    config = write_config(tmp_path / "cfg", small_model)
    proc = predict(config, "--json", tmp_path / "empty")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "no image files in this folder" in proc.stderr
    assert proc.stderr.splitlines()[-1] == f"digitd: error: no image files to read in {tmp_path / 'empty'}"


# --- errors that stop the command -----------------------------------------------------------


def only_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("digitd:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_missing_model_is_exit_3_with_one_line(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(digit_gray("3")))
    config = write_config(tmp_path / "cfg", tmp_path / "nope.keras")
    proc = predict(config, tmp_path / "a.png")
    assert proc.returncode == 3
    assert only_error_line(proc) == f"digitd: error: model {tmp_path / 'nope.keras'}: no such file"
    assert not (tmp_path / "cfg" / "outbox" / "results").exists()


def test_corrupt_model_is_exit_3_with_one_line(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes(digit_gray("3")))
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"PK\x03\x04 this is no model")
    config = write_config(tmp_path / "cfg", bad)
    proc = predict(config, tmp_path / "a.png")
    assert proc.returncode == 3
    assert only_error_line(proc).startswith(f"digitd: error: model {bad}: cannot be loaded")


def test_bad_config_is_exit_2(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("batch_max: lots\n")
    proc = predict(config, tmp_path / "a.png")
    assert proc.returncode == 2
    assert only_error_line(proc) == (
        f"digitd: error: {config}: key 'batch_max': expected an integer >= 1, got 'lots'")


# --- exact digits with the shipped model ----------------------------------------------------


def test_clear_digits_are_read_right(shipped_model, tmp_path):
    folder = tmp_path / "digits"
    folder.mkdir()
    for d in range(10):
        (folder / f"d{d}.png").write_bytes(png_bytes(cv2.resize(draw_digits(str(d), height=200, thickness=22), (280, 280))))
    (folder / "number.png").write_bytes(png_bytes(draw_digits("2024", height=160, thickness=16)))
    inv = 255 - draw_digits("7", height=200, thickness=22)  # light ink on dark
    (folder / "inverse.png").write_bytes(png_bytes(inv))
    config = write_config(tmp_path / "cfg", shipped_model)
    proc = predict(config, "--json", folder)
    assert proc.returncode == 0, proc.stderr
    got = {r["source"]: r for r in json_lines(proc)}
    for d in range(10):
        r = got[f"d{d}.png"]
        assert (r["number"], r["status"]) == (str(d), "ok"), r
    assert got["number.png"]["number"] == "2024"
    assert got["inverse.png"]["number"] == "7"
    assert got["inverse.png"]["polarity"] == "light_on_dark"


@pytest.mark.parametrize("many", [False, True], ids=["read here", "read by workers"])
def test_a_named_pipe_or_device_fails_instead_of_blocking(small_model, tmp_path, many):
    """open() on a pipe nobody writes to would block forever, a device never ends:
    both are failed with their kind, and the other inputs are read."""
    folder = tmp_path / "in"
    folder.mkdir()
    n = 40 if many else 1
    for i in range(n):
        (folder / f"d{i:02d}.png").write_bytes(png_bytes(digit_gray(str(i % 10))))
    os.mkfifo(folder / "pipe.png")
    config = write_config(tmp_path / "cfg", small_model)
    proc = predict(config, "--json", folder, "/dev/null", timeout=120)
    assert proc.returncode == 1, proc.stderr
    by_source = {r["source"]: r for r in json_lines(proc)}
    assert len(by_source) == n + 2
    assert by_source["pipe.png"]["error"] == "not a regular file (a named pipe)"
    assert by_source["null"]["error"] == "not a regular file (a character device)"
    assert sum(r["status"] != "failed" for r in by_source.values()) == n
    assert re.search(r"\d+ worker processes" if many else "no workers", proc.stderr), proc.stderr


def test_a_multi_page_tiff_prints_a_line_per_number(shipped_model, tmp_path):
    """Runs once ``imageio.pages`` reads every page of a TIFF (the decoding branch)."""
    from digitd.imageio import pages

    pages_in = [draw_digits("12", height=60), draw_digits("345", height=60)]
    data = cv2.imencodemulti(".tiff", pages_in)[1].tobytes()
    if len(list(pages(data, 10**8))) < 2:
        pytest.skip("imageio.pages reads page 1 of a TIFF only (the decoding branch adds the rest)")
    (tmp_path / "scan.tiff").write_bytes(data)
    config = write_config(tmp_path / "cfg", shipped_model)
    proc = predict(config, "--verbose", tmp_path / "scan.tiff")
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if " -> " in ln]
    assert [re.sub(r" \(\d\.\d\d\)$", "", ln) for ln in lines] == [
        f"{tmp_path / 'scan.tiff'} p1 #1 -> 12", f"{tmp_path / 'scan.tiff'} p2 #1 -> 345"]
    proc = predict(config, "--json", tmp_path / "scan.tiff")
    (result,) = json_lines(proc)
    assert (result["numbers"], result["number"]) == (["12", "345"], None)
    out = tmp_path / "cfg" / "outbox"
    assert sorted(p.name for p in (out / "annotated").iterdir()) == [
        "scan-1.p1.png", "scan-1.p2.png", "scan.p1.png", "scan.p2.png"]
    assert [(r["number"], r["page"], r["index"]) for r in read_csv(out / "results.csv")] == [
        ("12", "1", "1"), ("345", "2", "1")] * 2


def test_a_single_number_keeps_its_one_line_and_gains_pages(shipped_model, tmp_path):
    (tmp_path / "year.png").write_bytes(png_bytes(draw_digits("2024", height=60)))
    config = write_config(tmp_path / "cfg", shipped_model)
    proc = predict(config, "--verbose", tmp_path / "year.png")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^{re.escape(str(tmp_path / 'year.png'))} -> 2024 \(1\.00\) \d+ ms$",
                     proc.stderr, re.M), proc.stderr
    proc = predict(config, "--json", tmp_path / "year.png")
    (result,) = json_lines(proc)
    assert (result["number"], result["numbers"], len(result["pages"])) == ("2024", ["2024"], 1)
    assert result["pages"][0]["numbers"][0]["digits"] == result["digits"]
