"""The batch stage with fake recognizers plugged in through the real interface
(``.name``, ``.read(scans)``): what is written, in which order, and what a bad
input, a missing file, a crashing recognizer or a redo lead to."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from digitd.annotate import Pictures
from digitd.pipeline import Item, finish, os_reason, prepare, process_batch
from digitd.records import DigitReading, Reading
from digitd.results import Outbox

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 10**7}


class InkCounter:
    """Reads every scan as one digit: the number of dark pixels mod 10."""

    name = "fake-ink-counter"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def read(self, scans):
        self.calls.append(len(scans))
        out = []
        for s in scans:
            dark = int((s.image.mean(axis=2) < 0.5).sum())
            if dark == 0:
                out.append(Reading("blank", None, (), None, polarity="dark_on_light"))
                continue
            d = dark % 10
            probs = tuple(0.91 if i == d else 0.01 for i in range(10))
            digit = DigitReading(d, 0.91, (0, 0, s.width, s.height), probs,
                                 np.zeros((28, 28), np.float32))
            out.append(Reading("ok", str(d), (digit,), 0.91, polarity="dark_on_light"))
        return out


class Crashes(InkCounter):
    """Raises on any batch holding a scan wider than 10 pixels."""

    def read(self, scans):
        if any(s.width > 10 for s in scans):
            raise RuntimeError("model exploded")
        return super().read(scans)


def png(dark: int, width: int = 8) -> bytes:
    img = np.full((4, width), 255, np.uint8)
    img.flat[:dark] = 0
    return cv2.imencode(".png", img)[1].tobytes()


def files(folder: Path, contents: dict[str, bytes]) -> list[Item]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [Item.of(folder / name) for name in contents]


def rows(outbox: Path) -> list[dict[str, str]]:
    with open(outbox / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_one_model_call_per_batch_and_results_in_order(tmp_path):
    items = files(tmp_path / "in", {"a.png": png(3), "b.png": png(0), "bad.png": b"nope",
                                    "c.png": png(7)})
    rec = InkCounter()
    outcomes = process_batch(items, rec, Outbox(tmp_path / "out"), **LIMITS)
    assert rec.calls == [3]  # the three decodable scans, together
    assert [o.status for o in outcomes] == ["ok", "blank", "failed", "ok"]
    assert [o.result["number"] for o in outcomes] == ["3", None, None, "7"]
    assert outcomes[2].result["error"] == "not an image: the file holds text"
    assert [r["source"] for r in rows(tmp_path / "out")] == ["a.png", "b.png", "bad.png", "c.png"]
    for o in outcomes:
        stored = json.loads((tmp_path / "out" / "results" / f"{o.name}.json").read_text())
        assert stored == o.result
        assert o.result["model"] == "fake-ink-counter"
    assert not (tmp_path / "out" / "annotated").exists()  # no pictures asked for


def test_pictures_are_written_before_the_row_and_the_json(tmp_path):
    items = files(tmp_path / "in", {"a.png": png(3)})
    box = Outbox(tmp_path / "out")
    order = []
    for method in ("write_annotated", "append_csv", "write_json"):
        real = getattr(box, method)
        setattr(box, method, lambda *a, real=real, method=method: order.append(method) or real(*a))
    with Pictures(0) as pictures:
        (outcome,) = process_batch(items, InkCounter(), box, pictures, **LIMITS)
    assert order == ["write_annotated", "append_csv", "write_json"]
    assert outcome.result["annotated"] == "annotated/a.png"
    assert (tmp_path / "out" / "annotated" / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missing_file_fails_or_is_left_for_a_retry(tmp_path):
    item = Item.of(tmp_path / "gone.png")
    (failed,) = process_batch([item], InkCounter(), Outbox(tmp_path / "a"), **LIMITS)
    assert failed.result["error"] == "cannot read: no such file"
    prepared = prepare([item], InkCounter(), read_errors="retry", **LIMITS)
    (retry,) = finish(prepared, Outbox(tmp_path / "b"))
    assert retry.result is None and isinstance(retry.error, FileNotFoundError)
    assert not (tmp_path / "b").exists()  # nothing written for it


def test_a_crashing_recognizer_fails_only_the_input_it_crashes_on(tmp_path):
    items = files(tmp_path / "in", {"a.png": png(3), "wide.png": png(3, width=40), "c.png": png(5)})
    with pytest.raises(RuntimeError):
        prepare(items, Crashes(), **LIMITS)
    prepared = prepare(items, Crashes(), recognize_errors="isolate", **LIMITS)
    outcomes = finish(prepared, Outbox(tmp_path / "out"))
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    assert outcomes[1].result["error"] == "recognition failed: RuntimeError: model exploded"
    assert outcomes[1].result["image"]["width"] == 40


def test_a_reserved_name_is_used_and_a_redo_does_not_add_a_second_row(tmp_path):
    box = Outbox(tmp_path / "out")
    name = box.claim_name("scan")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x1").write_bytes(png(3))
    item = Item(path=tmp_path / "in" / "x1", source="scan.png", name=name)
    (first,) = process_batch([item], InkCounter(), box, **LIMITS)
    assert first.name == "scan"
    redo = Item(path=item.path, source="scan.png", name=name, redo=True)
    (second,) = process_batch([redo], InkCounter(), box, **LIMITS)
    assert second.name == "scan"
    assert [r["result"] for r in rows(tmp_path / "out")] == ["results/scan.json"]
    assert sorted(p.name for p in (tmp_path / "out" / "results").iterdir()) == ["scan.json"]


def test_os_errors_in_words():
    assert os_reason(PermissionError(13, "Permission denied")) == "cannot read: permission denied"
    assert os_reason(IsADirectoryError(21, "Is a directory")) == "cannot read: is a folder, not a file"
    assert os_reason(OSError(5, "Input/output error")) == "cannot read: input/output error"
