#!/usr/bin/env python3
"""Measure recognition where it matters: real handwriting, MNIST as files, whole numbers.

    python scripts/accuracy.py [--data ../shared/data/mnist.npz] [--real ../shared/data/real-dev]
                               [--model models/NAME.keras] [--mnist-count 10000] [--numbers 500]

Every figure goes through the real `digitd predict --json` (a subprocess, as a
user runs it) over image files this script writes into a temporary folder:

1. real single digits (`real-dev/labels.csv`, ambiguous ones left out), by kind;
2. the real multi-digit images in `real-dev/numbers/`, read exactly;
3. MNIST test digits written as PNG files, dark ink on light paper;
4. numbers of 2-5 MNIST test digits composed on a page (random sizes, gaps,
   baseline jitter, paper tint and noise), read exactly;
5. low resolution: MNIST test digits shrunk to 8x8, 12x12, 16x16 and back;
   not a digit: held-out marks of scripts/glyphs.py read ``ok`` (target none),
   and real digits rejected (read ``blank``).

Prints a markdown table; `--direct` calls the recognizer in-process instead
(quicker while developing, same pipeline from decode on).

`--pages DIR [--json FILE]` measures a page set made by scripts/pages.py instead:
handwritten numbers found and read exactly (in order), missed, extra; separators
kept or flagged; non-digit, blank and ruled inputs read `ok`; pages per second.

`--forms DIR [--via predict|library]` measures a forms set (scripts/pages.py
--set forms) with its templates (DIR/forms/): filled fields read exactly, empty
ones read `blank`, silent errors, pages matched to the right template, pages per
second; through `digitd predict` or `digitd.formread.read_form` in-process.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))


def default_mnist() -> Path:
    env = os.environ.get("DIGITD_MNIST")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "mnist.npz"


def predict(files: list[Path], model: Path, direct: bool) -> dict[str, dict]:
    """source file name -> result dict, via the real CLI (or in-process with --direct)."""
    if direct:
        from digitd.imageio import decode
        from digitd.recognize import Recognizer

        rec = Recognizer(model)
        out = {}
        for i in range(0, len(files), 256):
            chunk = files[i : i + 256]
            readings = rec.read([decode(f.read_bytes(), 10**9) for f in chunk])
            for f, r in zip(chunk, readings):
                out[f.name] = {"number": r.number, "status": r.status, "confidence": r.confidence}
        return out
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "inputs"
        listing.mkdir()
        for f in files:  # one folder argument, not thousands of paths on the command line
            os.symlink(f, listing / f.name)
        cmd = [sys.executable, "-m", "digitd", "predict", "--config", str(ROOT / "config.yaml"), "--model", str(model),
               "--out", str(Path(tmp) / "out"), "--no-annotate", "--json", str(listing)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode not in (0, 1):
            sys.exit(f"accuracy.py: digitd predict exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        return {Path(r["source"]).name: r for r in results}


def write_png(path: Path, gray: np.ndarray) -> Path:
    cv2.imwrite(str(path), gray)
    return path


def compose_number(digits: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """MNIST digits (white on black, 28x28) side by side on a light page, as a person writes."""
    height = int(rng.integers(40, 120))
    tiles = []
    for d in digits:
        ys, xs = np.nonzero(d > 30)
        crop = d[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        h = int(height * rng.uniform(0.9, 1.1))
        w = max(2, int(round(crop.shape[1] * h / crop.shape[0])))
        tiles.append(cv2.resize(crop, (w, h), interpolation=cv2.INTER_CUBIC))
    gaps = [int(height * rng.uniform(0.12, 0.45)) for _ in tiles]
    margin = height // 2
    width = sum(t.shape[1] for t in tiles) + sum(gaps[:-1]) + 2 * margin
    page = np.zeros((int(height * 1.3) + 2 * margin, width), np.float32)
    x = margin
    for t, gap in zip(tiles, gaps):
        y = margin + int(rng.integers(0, max(1, int(height * 0.3) - (t.shape[0] - height))))
        region = page[y : y + t.shape[0], x : x + t.shape[1]]
        np.maximum(region, t[: region.shape[0], : region.shape[1]], out=region)
        x += t.shape[1] + gap
    paper = rng.uniform(200, 250)
    ink = rng.uniform(10, 70)
    img = paper - (paper - ink) * np.clip(page / 255.0, 0, 1)
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- pages: --pages DIR (a set from scripts/pages.py)

SEPARATOR_CHARS = "/.,-"
MATCH_IOU = 0.3  # a found number is the labelled one when their boxes overlap this much (IoU)
NOT_NUMBERS = ("nondigit", "blank", "ruled")


def predict_documents(files: list[Path], model: Path) -> tuple[dict[str, dict], float]:
    """source name -> result, through `digitd predict --json` with every file named; and its wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "digitd", "predict", "--config", str(ROOT / "config.yaml"), "--model", str(model),
               "--out", str(Path(tmp) / "out"), "--no-annotate", "--json", *map(str, files)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"accuracy.py: digitd predict exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {Path(r["source"]).name: r for r in results}, seconds


def union_box(boxes: list) -> list[int] | None:
    boxes = [b for b in boxes if b]
    if not boxes:
        return None
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return [x0, y0, x1 - x0, y1 - y0]


def predicted_pages(result: dict) -> list[dict]:
    """A result's pages: [{page, width, height, numbers: [{number, status, box, printed}]}].

    A result without `pages` (before issue 11) is one page holding its
    top-level number, boxed by the union of its digits' boxes."""
    if result.get("pages") is not None:
        out = []
        for pg in result["pages"]:
            numbers = [{"number": n.get("number"), "status": n.get("status", result.get("status")),
                        "box": n.get("box"), "printed": bool(n.get("printed"))} for n in pg.get("numbers") or []]
            out.append({"page": pg.get("page"), "width": pg.get("width"), "height": pg.get("height"), "numbers": numbers})
        return out
    image = result.get("image") or {}
    numbers = []
    if result.get("number"):
        numbers.append({"number": result["number"], "status": result.get("status"),
                        "box": union_box([d.get("box") for d in result.get("digits") or []]), "printed": False})
    return [{"page": 1, "width": image.get("width"), "height": image.get("height"), "numbers": numbers}]


def iou(a: list, b: list | None) -> float:
    if not b:
        return 0.0
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def scaled(box: list, sx: float, sy: float) -> list[float]:
    return [box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy]


def match_numbers(labelled: list[list], found: list[list | None]) -> dict[int, int]:
    """Labelled index -> found index, greedily by box overlap (IoU >= MATCH_IOU), each used once."""
    pairs = sorted(((iou(lb, fb), i, j) for i, lb in enumerate(labelled) for j, fb in enumerate(found)), reverse=True)
    taken_l, taken_f, out = set(), set(), {}
    for score, i, j in pairs:
        if score < MATCH_IOU:
            break
        if i not in taken_l and j not in taken_f:
            out[i] = j
            taken_l.add(i)
            taken_f.add(j)
    return out


def longest_increasing(seq: list[int]) -> int:
    tails: list[int] = []
    for v in seq:
        k = next((i for i, t in enumerate(tails) if t >= v), len(tails))
        tails[k:k + 1] = [v]
    return len(tails)


def separators_of(text: str | None) -> str:
    return "".join(c for c in text or "" if c in SEPARATOR_CHARS)


def read_page(label: dict, page: dict | None) -> tuple[list[dict], dict[int, int], list[int], float, float]:
    """A labelled page against the page found there (None: no such page in the result): the
    handwritten numbers found, labelled index -> found index, the labelled indexes read
    exactly, and the scale from the label's pixels to the result's."""
    found = [n for n in (page or {}).get("numbers", []) if not n["printed"]]
    sx = sy = 1.0
    if (page or {}).get("width") and label.get("width"):
        sx, sy = page["width"] / label["width"], page["height"] / label["height"]
    truth = label["numbers"]
    match = match_numbers([scaled(n["box"], sx, sy) for n in truth], [n["box"] for n in found])
    exact = [i for i in range(len(truth)) if i in match and found[match[i]]["number"] == truth[i]["text"]]
    return found, match, exact, sx, sy


def score_page(label: dict, page: dict | None) -> dict:
    """Counts for one labelled page against the page found there (None: no such page in the result)."""
    found, match, exact, sx, sy = read_page(label, page)
    truth = label["numbers"]
    c = {"labelled": len(truth), "found": len(match), "exact": len(exact),
         "exact_ok": sum(found[match[i]]["status"] == "ok" for i in exact),
         "wrong_ok": sum(found[j]["status"] == "ok" for i, j in match.items() if i not in exact),
         "exact_in_order": longest_increasing([match[i] for i in exact]),
         "missed": len(truth) - len(match), "extra": len(found) - len(match),
         "extra_ok": sum(n["status"] == "ok" for j, n in enumerate(found) if j not in match.values()),
         "extra_on_printed": 0, "pages_right": int(len(exact) == len(truth) == len(found)),
         "sep_labelled": 0, "sep_kept": 0, "sep_flagged": 0, "sep_dropped": 0, "sep_missed": 0}
    printed = [scaled(p["box"], sx, sy) for p in label.get("printed", [])]
    for j, n in enumerate(found):
        if j not in match.values() and any(iou(p, n["box"]) > 0.1 for p in printed):
            c["extra_on_printed"] += 1
    for i, n in enumerate(truth):
        if not separators_of(n["text"]):
            continue
        c["sep_labelled"] += 1
        if i not in match:
            c["sep_missed"] += 1
        elif separators_of(found[match[i]]["number"]) == separators_of(n["text"]):
            c["sep_kept"] += 1
        elif found[match[i]]["status"] != "ok":
            c["sep_flagged"] += 1
        else:
            c["sep_dropped"] += 1
    return c


def format_of(name: str) -> str:
    suffix = Path(name).suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "tif": "tiff"}.get(suffix, suffix)


def add_counts(total: dict, part: dict) -> None:
    for k, v in part.items():
        total[k] = total.get(k, 0) + v


def measure_pages(labels: dict, results: dict[str, dict], seconds: float) -> dict:
    """The figures of a page set: labels (labels.json) against results (source name -> result)."""
    kinds: dict[str, dict] = {}
    formats: dict[str, dict] = {}
    fields: dict[str, dict] = {}  # how each labelled number was written (box, comb, ...) and scanned
    not_numbers: dict[str, dict] = {}
    failed: list[str] = []
    errors: list[str] = []  # every number not read exactly, every extra one, every non-number read
    pages = 0
    for name, entry in labels["files"].items():
        result = results.get(name) or {"status": "failed", "error": "no result", "number": None}
        if result.get("status") == "failed":
            failed.append(f"{name}: {result.get('error')}")
        found = predicted_pages(result)
        by_number = {pg.get("page"): pg for pg in found}
        pages += len(entry["pages"])
        kind = entry.get("kind", "page")
        fmt = formats.setdefault(entry.get("format") or format_of(name), {"files": 0, "pages": 0})
        fmt["files"] += 1
        fmt["pages"] += len(entry["pages"])
        if kind in NOT_NUMBERS:  # per page: any number read there, and whether one is `ok`
            k = not_numbers.setdefault(kind, {"files": 0, "pages": 0, "read_ok": 0, "numbers_reported": 0})
            k["files"] += 1
            for i, label in enumerate(entry["pages"], 1):
                read = [n for n in by_number.get(label.get("page", i), {}).get("numbers", []) if not n["printed"]]
                k["pages"] += 1
                k["read_ok"] += any(n["status"] == "ok" for n in read)
                k["numbers_reported"] += len(read)
                what = f"{kind}: {entry['item']}" if entry.get("item") else kind
                errors += [f"{name} p{label.get('page', i)} ({what}): read {n['number']} ({n['status']})" for n in read]
            continue
        for i, label in enumerate(entry["pages"], 1):
            page = by_number.get(label.get("page", i))
            counts = score_page(label, page)
            add_counts(kinds.setdefault(kind, {"pages": 0}), counts | {"pages": 1})
            exact = read_page(label, page)[2]
            for j, n in enumerate(label["numbers"]):
                for key in (f"{kind}, field {n.get('field', '?')}", f"{kind}, scan {label.get('mode', '?')}"):
                    add_counts(fields.setdefault(key, {}), {"labelled": 1, "exact": int(j in exact)})
            errors += page_errors(f"{name} p{label.get('page', i)}", label, page)
            add_counts(fmt, {k: counts[k] for k in ("labelled", "exact", "extra")})
    every: dict[str, int] = {}
    for counts in kinds.values():
        add_counts(every, counts)
    return {"files": len(labels["files"]), "pages": pages, "seconds": round(seconds, 2),
            "pages_per_second": round(pages / seconds, 2) if seconds > 0 else None,
            "handwritten": kinds, "all": every, "not_numbers": not_numbers, "by_format": formats, "by_field": fields,
            "failed": failed, "errors": errors}


def page_errors(where: str, label: dict, page: dict | None) -> list[str]:
    """One line per labelled number not read exactly and per extra number on a page."""
    found, match, exact, _, _ = read_page(label, page)
    lines = []
    for i, n in enumerate(label["numbers"]):
        if i not in exact:
            got = found[match[i]] if i in match else None
            read = f"read {got['number']} ({got['status']})" if got else "missed"
            lines.append(f"{where} ({n.get('field', '?')}): {n['text']} {read}")
    lines += [f"{where}: extra {n['number']} ({n['status']}) at {n['box']}"
              for j, n in enumerate(found) if j not in match.values()]
    return lines


def percent(a: int, b: int) -> str:
    return f"{a / b:.1%}" if b else "-"


def print_pages(fig: dict) -> None:
    print(f"\n{fig['files']} files, {fig['pages']} pages, digitd predict {fig['seconds']} s: "
          f"{fig['pages_per_second']} pages/s\n")
    print("| measure | count | of | share | bar |")
    print("|---|---:|---:|---:|---:|")
    for kind, c in sorted(fig["handwritten"].items()):
        n = c["labelled"]
        print(f"| {kind}: handwritten numbers read exactly | {c['exact']} | {n} | {percent(c['exact'], n)} | 95% |")
        print(f"| {kind}: &nbsp; of them `ok` | {c['exact_ok']} | {n} | {percent(c['exact_ok'], n)} | |")
        print(f"| {kind}: &nbsp; exact and in reading order | {c['exact_in_order']} | {n} | {percent(c['exact_in_order'], n)} | |")
        print(f"| {kind}: &nbsp; read wrong under `ok` (silent errors) | {c['wrong_ok']} | {n} | {percent(c['wrong_ok'], n)} | |")
        print(f"| {kind}: numbers found (box matched) | {c['found']} | {n} | {percent(c['found'], n)} | |")
        print(f"| {kind}: numbers missed | {c['missed']} | {n} | {percent(c['missed'], n)} | |")
        print(f"| {kind}: extra numbers (not marked printed) | {c['extra']} | {c['pages']} pages | "
              f"{c['extra'] * 20 / max(c['pages'], 1):.2f} per 20 pages | 1 per 20 pages |")
        print(f"| {kind}: &nbsp; of them `ok` / on printed digits | {c['extra_ok']} / {c['extra_on_printed']} | {c['extra']} | | |")
        print(f"| {kind}: pages read entirely right | {c['pages_right']} | {c['pages']} | {percent(c['pages_right'], c['pages'])} | |")
        s = c["sep_labelled"]
        if s:
            kept = c["sep_kept"] + c["sep_flagged"]
            print(f"| {kind}: separators kept / flagged (dropped {c['sep_dropped']}, missed {c['sep_missed']}) | "
                  f"{c['sep_kept']} / {c['sep_flagged']} | {s} | {percent(kept, s)} | 100% |")
    if len(fig["handwritten"]) > 1:
        c = fig["all"]
        n = c["labelled"]
        print(f"| all kinds: handwritten numbers read exactly | {c['exact']} | {n} | {percent(c['exact'], n)} | 95% |")
        print(f"| all kinds: &nbsp; read wrong under `ok` (silent errors) | {c['wrong_ok']} | {n} | {percent(c['wrong_ok'], n)} | |")
        s = c["sep_labelled"]
        print(f"| all kinds: separators kept / flagged | {c['sep_kept']} / {c['sep_flagged']} | {s} | "
              f"{percent(c['sep_kept'] + c['sep_flagged'], s)} | 100% |")
    for kind, k in sorted(fig["not_numbers"].items()):
        print(f"| {kind}: pages with a number read `ok` ({k['numbers_reported']} numbers reported) | "
              f"{k['read_ok']} | {k['pages']} | {percent(k['read_ok'], k['pages'])} | 0 |")
    print("\n| format | files | pages | handwritten numbers | read exactly | extra |")
    print("|---|---:|---:|---:|---:|---:|")
    for fmt, f in sorted(fig["by_format"].items()):
        print(f"| {fmt} | {f['files']} | {f['pages']} | {f.get('labelled', 0)} | "
              f"{f.get('exact', 0)} ({percent(f.get('exact', 0), f.get('labelled', 0))}) | {f.get('extra', 0)} |")
    print("\n| numbers written / scanned | numbers | read exactly |")
    print("|---|---:|---:|")
    for key, f in sorted(fig["by_field"].items()):
        print(f"| {key} | {f['labelled']} | {f['exact']} ({percent(f['exact'], f['labelled'])}) |")
    if fig["failed"]:
        print(f"\n{len(fig['failed'])} inputs failed:")
        for line in fig["failed"][:20]:
            print(f"  {line}")


def run_pages(folder: Path, model: Path, json_out: Path | None, show_errors: bool) -> int:
    """--pages DIR: every file labels.json names, through digitd predict, measured against its labels."""
    labels_path = folder / "labels.json"
    if not labels_path.is_file():
        sys.exit(f"accuracy.py: --pages {folder}: no labels.json (make a set with scripts/pages.py)")
    labels = json.loads(labels_path.read_text())
    results, seconds = predict_documents([folder / name for name in labels["files"]], model)
    figures = measure_pages(labels, results, seconds)
    if show_errors:
        print("\n".join(figures["errors"]))
    print_pages(figures)
    if json_out:
        json_out.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


# ---------------------------------------------------------------- forms: --forms DIR (scripts/pages.py --set forms)


def forms_config(tmp: Path, forms: Path, model: Path, threshold: float | None = None) -> Path:
    """A config for digitd whose `forms` key names the set's templates (the rest the
    defaults, or `confidence_threshold`)."""
    path = tmp / "config.yaml"
    text = f"forms: {json.dumps(str(forms.resolve()))}\nmodel: {json.dumps(str(model.resolve()))}\n"
    if threshold is not None:
        text += f"confidence_threshold: {threshold}\n"
    path.write_text(text)
    return path


def read_forms_by_predict(files: list[Path], forms: Path, model: Path,
                          threshold: float | None = None) -> tuple[dict[str, dict], float]:
    """source name -> result (its pages carrying `form` and `fields`), through
    `digitd predict --json` with a config naming the templates; and its wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        config = forms_config(Path(tmp), forms, model, threshold)
        cmd = [sys.executable, "-m", "digitd", "predict", "--config", str(config), "--model", str(model),
               "--out", str(Path(tmp) / "out"), "--no-annotate", "--json", *map(str, files)]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"accuracy.py: digitd predict exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {Path(r["source"]).name: r for r in results}, seconds


def read_forms_by_library(files: list[Path], forms: Path, model: Path,
                          threshold: float | None = None) -> tuple[dict[str, dict], float]:
    """The same results as :func:`read_forms_by_predict` (only `source`, `status` and each
    page's `page`, `width`, `height`, `form`, `fields`), read in this process with
    `digitd.formread.read_form` on each decoded page; the time includes loading the model."""
    from digitd import imageio
    from digitd.config import load_config
    from digitd.formread import read_form
    from digitd.recognize import Recognizer

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(forms_config(Path(tmp), forms, model, threshold))
    recognizer = Recognizer.from_config(config, model)
    results = {}
    for path in files:
        pages = []
        try:
            for page in imageio.pages(path.read_bytes(), config.max_image_pixels, dpi=config.pdf_dpi,
                                      max_pages=config.max_pages):
                if page.scan is None:
                    pages.append({"page": page.number, "status": "failed", "error": page.reason, "form": None, "fields": {}})
                    continue
                reading = read_form(page.scan, config.templates, recognizer, config.max_digits)
                pages.append({"page": page.number, "width": page.scan.width, "height": page.scan.height,
                              **form_dicts(reading)})
            results[path.name] = {"source": path.name, "status": "ok", "pages": pages}
        except imageio.InputError as exc:
            results[path.name] = {"source": path.name, "status": "failed", "error": str(exc), "pages": []}
    return results, time.perf_counter() - started


def form_dicts(reading) -> dict:
    """A FormReading (or None) as the result JSON gives it: `form` and `fields`."""
    if reading is None:
        return {"form": None, "fields": {}}
    fields = {name: {"number": f.number, "confidence": f.confidence, "status": f.status, "box": list(f.box),
                     "doubts": list(f.doubts)} for name, f in reading.fields.items()}
    return {"form": {"name": reading.form, "quality": round(reading.quality, 3)}, "fields": fields}


FORM_READERS = {"predict": read_forms_by_predict, "library": read_forms_by_library}


def score_form_page(label: dict, page: dict | None) -> tuple[dict, list[str]]:
    """Counts for one labelled page of the forms set against the page read (None: no such
    page in the result), and a line for each field not read right."""
    want = label.get("form")
    got = ((page or {}).get("form") or {}).get("name")
    c = {"pages": 1, "form_right": int(want == got), "form_missed": int(want is not None and got is None),
         "form_wrong": int(got is not None and want != got), "filled": 0, "exact": 0, "exact_ok": 0,
         "wrong_ok": 0, "wrong_flagged": 0, "filled_blank": 0, "empty": 0, "empty_blank": 0,
         "empty_read_ok": 0, "empty_read_flagged": 0}
    lines = []
    read = (page or {}).get("fields") or {} if want == got else {}
    for name, truth in (label.get("fields") or {}).items():
        f = read.get(name) or {"number": None, "status": "missing"}
        number, status = f.get("number"), f.get("status")
        if truth.get("text"):
            c["filled"] += 1
            if number == truth["text"]:
                c["exact"] += 1
                c["exact_ok"] += status == "ok"
                continue
            key = "wrong_ok" if status == "ok" else "filled_blank" if status in ("blank", "missing") else "wrong_flagged"
            c[key] += 1
            lines.append(f"{name} ({truth.get('writer')}): {truth['text']} read {number} ({status}"
                         + (f": {'; '.join(f['doubts'])}" if f.get("doubts") else "") + ")")
        else:
            c["empty"] += 1
            if status == "blank":
                c["empty_blank"] += 1
                continue
            c["empty_read_ok" if status == "ok" else "empty_read_flagged"] += 1
            lines.append(f"{name}: empty read {number} ({status})")
    return c, lines


def measure_forms(labels: dict, results: dict[str, dict], seconds: float) -> dict:
    """The figures of a forms set: labels (labels.json) against results (source name -> result)."""
    total: dict[str, int] = {}
    by_form: dict[str, dict] = {}
    by_format: dict[str, dict] = {}
    by_writer: dict[str, dict] = {}
    failed, errors = [], []
    for name, entry in labels["files"].items():
        result = results.get(name) or {"status": "failed", "error": "no result"}
        if result.get("status") == "failed":
            failed.append(f"{name}: {result.get('error')}")
        found = {pg.get("page"): pg for pg in result.get("pages") or []}
        fmt = entry.get("format") or format_of(name)
        for i, label in enumerate(entry["pages"], 1):
            number = label.get("page", i)
            counts, lines = score_form_page(label, found.get(number))
            add_counts(total, counts)
            add_counts(by_form.setdefault(label.get("form") or "(none)", {}), counts)
            add_counts(by_format.setdefault(fmt, {}), counts)
            got = ((found.get(number) or {}).get("form") or {}).get("name")
            if got != label.get("form"):
                errors.append(f"{name} p{number}: form {label.get('form')} read as {got}")
            errors += [f"{name} p{number} {label.get('form')}.{line}" for line in lines]
            for field, truth in (label.get("fields") or {}).items():
                if truth.get("text"):
                    f = ((found.get(number) or {}).get("fields") or {}).get(field) or {}
                    right = got == label.get("form") and f.get("number") == truth["text"]
                    add_counts(by_writer.setdefault(truth.get("writer") or "?", {}), {"filled": 1, "exact": int(right)})
    pages = total.get("pages", 0)
    return {"files": len(labels["files"]), "pages": pages, "seconds": round(seconds, 2),
            "pages_per_second": round(pages / seconds, 2) if seconds > 0 else None, "total": total,
            "by_form": by_form, "by_format": by_format, "by_writer": by_writer, "failed": failed, "errors": errors}


def print_forms(fig: dict, via: str) -> None:
    t = fig["total"]
    print(f"\n{fig['files']} files, {fig['pages']} pages, read by {via} in {fig['seconds']} s: "
          f"{fig['pages_per_second']} pages/s\n")
    print("| measure | count | of | share | bar |")
    print("|---|---:|---:|---:|---:|")
    rows = [("filled fields read exactly", t.get("exact", 0), t.get("filled", 0), "97%"),
            ("&nbsp; of them `ok`", t.get("exact_ok", 0), t.get("filled", 0), ""),
            ("filled fields read wrong under `ok` (silent errors)", t.get("wrong_ok", 0), t.get("filled", 0), "0"),
            ("filled fields read wrong, flagged `uncertain`", t.get("wrong_flagged", 0), t.get("filled", 0), ""),
            ("filled fields read `blank`", t.get("filled_blank", 0), t.get("filled", 0), ""),
            ("empty fields reported `blank`", t.get("empty_blank", 0), t.get("empty", 0), "99%"),
            ("empty fields read `ok` (silent errors)", t.get("empty_read_ok", 0), t.get("empty", 0), "0"),
            ("pages matched to the right template (or to none)", t.get("form_right", 0), fig["pages"], "100%"),
            ("&nbsp; a form's page matched to none", t.get("form_missed", 0), fig["pages"], ""),
            ("&nbsp; matched to a wrong template", t.get("form_wrong", 0), fig["pages"], "0")]
    for name, a, b, bar in rows:
        print(f"| {name} | {a} | {b} | {percent(a, b)} | {bar} |")
    for title, table in (("template", fig["by_form"]), ("format", fig["by_format"])):
        print(f"\n| {title} | pages | matched right | filled fields | read exactly | silent errors | empty | blank |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for key, c in sorted(table.items()):
            print(f"| {key} | {c['pages']} | {c['form_right']} | {c['filled']} | {c['exact']} "
                  f"({percent(c['exact'], c['filled'])}) | {c['wrong_ok'] + c['empty_read_ok']} | {c['empty']} | "
                  f"{c['empty_blank']} ({percent(c['empty_blank'], c['empty'])}) |")
    print("\n| written with | filled fields | read exactly |")
    print("|---|---:|---:|")
    for key, c in sorted(fig["by_writer"].items()):
        print(f"| {key} | {c['filled']} | {c['exact']} ({percent(c['exact'], c['filled'])}) |")
    if fig["failed"]:
        print(f"\n{len(fig['failed'])} inputs failed:")
        for line in fig["failed"][:20]:
            print(f"  {line}")


def run_forms(folder: Path, model: Path, via: str, json_out: Path | None, show_errors: bool,
              threshold: float | None = None) -> int:
    """--forms DIR: every file labels.json names, its pages read as forms with the set's
    templates (DIR/forms/), measured against its labels."""
    labels_path = folder / "labels.json"
    if not labels_path.is_file():
        sys.exit(f"accuracy.py: --forms {folder}: no labels.json (make a set with scripts/pages.py --set forms)")
    labels = json.loads(labels_path.read_text())
    forms = folder / labels.get("forms", "forms")
    if not forms.is_dir():
        sys.exit(f"accuracy.py: --forms {folder}: no templates folder {forms}")
    results, seconds = FORM_READERS[via]([folder / name for name in labels["files"]], forms, model, threshold)
    figures = measure_forms(labels, results, seconds)
    if show_errors:
        print("\n".join(figures["errors"]))
    print_forms(figures, "digitd predict" if via == "predict" else "digitd.formread in-process")
    if json_out:
        json_out.write_text(json.dumps(figures | {"via": via, "confidence_threshold": threshold}, indent=1) + "\n")
    return 0


def lowres_rows(x_test, y_test, count: int, model: Path, direct: bool, folder: Path) -> list[tuple]:
    """MNIST test digits shrunk to SxS (as an old scanner or a fax gives them) and
    enlarged back to 28x28, written as dark-on-light PNG files and read."""
    rows = []
    for side in (8, 12, 16):
        files = []
        for i in range(count):
            small = cv2.resize(x_test[i], (side, side), interpolation=cv2.INTER_AREA)
            back = cv2.resize(small, (28, 28), interpolation=cv2.INTER_LINEAR)
            files.append(write_png(folder / f"s{side}-{i:05d}.png", 255 - back))
        got = predict(files, model, direct)
        ok = sum(got[f.name]["number"] == str(y_test[i]) for i, f in enumerate(files))
        rows.append((f"MNIST test digits shrunk to {side}x{side} and back", ok, count, "95%"))
    return rows


def reject_rows(count: int, model: Path, direct: bool, folder: Path, rng: np.random.Generator) -> list[tuple]:
    """Held-out non-digit marks (scripts/glyphs.py, its held-out seed) on paper as
    PNG files: how many are read ``ok`` (the target is none), in all and per kind."""
    import glyphs

    files, kinds = [], {}
    for i, (ink, kind) in enumerate(glyphs.not_digit_inks(count, glyphs.HELD_OUT_SEED)):
        h, w = ink.shape
        m = max(h, w) // 3 + 4
        page = np.zeros((h + 2 * m, w + 2 * m), np.float32)
        page[m : m + h, m : m + w] = ink
        paper, dark = rng.uniform(200, 250), rng.uniform(10, 70)
        img = np.clip(paper - (paper - dark) * page + rng.normal(0, 3, page.shape), 0, 255).astype(np.uint8)
        files.append(write_png(folder / f"g{i:05d}.png", img))
        kinds[files[-1].name] = kind
    got = predict(files, model, direct)
    rows = [("held-out non-digit marks read ok (fewer is better)", sum(got[f.name]["status"] == "ok" for f in files),
             count, "0%")]
    for kind in glyphs.KINDS:
        mine = [f for f in files if kinds[f.name] == kind]
        rows.append((f"  of which {kind}", sum(got[f.name]["status"] == "ok" for f in mine), len(mine), ""))
    return rows


def real_rejected_row(got: dict[str, dict], labelled: list[dict]) -> tuple:
    """Real single digits read ``blank``: rejected as not a digit (or not found)."""
    return ("real-dev single digits read blank (rejected)", sum(got[r["file"]]["status"] == "blank" for r in labelled),
            len(labelled), "0%")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_mnist(), help="MNIST npz (default ../shared/data/mnist.npz or $DIGITD_MNIST)")
    p.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "real-dev", help="real-dev folder")
    p.add_argument("--model", type=Path, default=ROOT / "models" / "digitd-cnn-v8.keras")
    p.add_argument("--mnist-count", type=int, default=10000, help="MNIST test digits written as files (default all 10000)")
    p.add_argument("--numbers", type=int, default=500, help="composed numbers of 2-5 digits (default 500)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--direct", action="store_true", help="call the recognizer in-process instead of digitd predict")
    p.add_argument("--show-errors", action="store_true",
                   help="list every misread real digit (with --pages: every number not read exactly, every extra)")
    p.add_argument("--pages", type=Path, metavar="DIR", help="measure a page set from scripts/pages.py instead")
    p.add_argument("--forms", type=Path, metavar="DIR", help="measure a forms set from scripts/pages.py --set forms instead")
    p.add_argument("--via", choices=sorted(FORM_READERS), default="predict",
                   help="with --forms: read through digitd predict or digitd.formread in-process (default predict)")
    p.add_argument("--confidence-threshold", type=float, metavar="T",
                   help="with --forms: the config's confidence_threshold (default the config's default, 0.8)")
    p.add_argument("--json", type=Path, metavar="FILE", help="with --pages or --forms: write the figures as JSON")
    p.add_argument("--lowres", type=int, default=2000, help="MNIST test digits per low-resolution size (default 2000; 0 skips)")
    p.add_argument("--reject", type=int, default=1000, help="held-out non-digit marks (default 1000; 0 skips)")
    args = p.parse_args(argv)
    if args.forms:
        if args.pages or args.direct:
            p.error("--forms goes alone: not with --pages or --direct")
        return run_forms(args.forms, args.model, args.via, args.json, args.show_errors, args.confidence_threshold)
    if args.pages:
        if args.direct:
            p.error("--direct does not apply to --pages: a page set is read through digitd predict")
        return run_pages(args.pages, args.model, args.json, args.show_errors)
    if args.json:
        p.error("--json goes with --pages or --forms")
    rng = np.random.default_rng(args.seed)
    rows = []
    started = time.time()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        labels_csv = args.real / "labels.csv"
        if labels_csv.is_file():
            labelled = [r for r in csv.DictReader(labels_csv.open()) if r["ambiguous"] == "0"]
            got = predict([args.real / r["file"] for r in labelled], args.model, args.direct)
            kinds: dict[str, list[int]] = {}
            for r in labelled:
                k = kinds.setdefault(r["kind"], [0, 0])
                right = got[r["file"]]["number"] == r["label"]
                k[0] += right
                k[1] += 1
                if not right and args.show_errors:
                    print(f"  {r['file']} ({r['kind']}): {r['label']} read as {got[r['file']]['number']}")
            right = sum(k[0] for k in kinds.values())
            rows.append(("real-dev single digits (not ambiguous)", right, len(labelled), "97%"))
            for kind, (ok, n) in sorted(kinds.items()):
                rows.append((f"  of which {kind}", ok, n, ""))
            rows.append(real_rejected_row(got, labelled))
            numbers = list(csv.DictReader((args.real / "numbers" / "labels.csv").open()))
            got = predict([args.real / "numbers" / n["file"] for n in numbers], args.model, args.direct)
            ok = sum(got[n["file"]]["number"] == n["number"] for n in numbers)
            rows.append(("real-dev numbers, exact", ok, len(numbers), "all"))
            for n in numbers:
                print(f"  {n['file']}: {n['number']} read as {got[n['file']]['number']}")
        else:
            print(f"(no {labels_csv}: real digits skipped)")

        if args.data.is_file():
            with np.load(args.data) as npz:
                x_test, y_test = npz["x_test"], npz["y_test"]
            folder = tmp / "mnist"
            folder.mkdir()
            n = min(args.mnist_count, len(x_test))
            files = [write_png(folder / f"t{i:05d}.png", 255 - x_test[i]) for i in range(n)]
            got = predict(files, args.model, args.direct)
            ok = sum(got[f.name]["number"] == str(y_test[i]) for i, f in enumerate(files))
            rows.append(("MNIST test digits as dark-on-light PNG files", ok, n, "99.4%"))

            folder = tmp / "numbers"
            folder.mkdir()
            truth, files = {}, []
            for i in range(args.numbers):
                length = int(rng.integers(2, 6))
                idx = rng.integers(0, len(x_test), size=length)
                f = write_png(folder / f"n{i:04d}.png", compose_number([x_test[j] for j in idx], rng))
                truth[f.name] = "".join(str(y_test[j]) for j in idx)
                files.append(f)
            got = predict(files, args.model, args.direct)
            ok = sum(got[f.name]["number"] == truth[f.name] for f in files)
            rows.append(("numbers of 2-5 MNIST digits on a page, exact", ok, len(files), "90%"))
            if args.lowres > 0:
                (tmp / "lowres").mkdir()
                rows += lowres_rows(x_test, y_test, min(args.lowres, len(x_test)), args.model, args.direct, tmp / "lowres")
        else:
            print(f"(no {args.data}: MNIST figures skipped)")

        if args.reject > 0:
            (tmp / "glyphs").mkdir()
            rows += reject_rows(args.reject, args.model, args.direct, tmp / "glyphs", rng)

    print(f"\nmodel {args.model.name}, {'in-process' if args.direct else 'digitd predict'}, {time.time() - started:.0f} s\n")
    print("| measure | right | of | accuracy | bar |")
    print("|---|---:|---:|---:|---:|")
    for name, ok, n, bar in rows:
        print(f"| {name} | {ok} | {n} | {ok / max(n, 1):.2%} | {bar} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
