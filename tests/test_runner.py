"""The one batch runner with fake recognizers plugged in through the real interface
(``.name``, ``.classify(found)``): what is written, in which order, and what a bad
input, a missing file, a crashing recognizer or a redo lead to - the same with
the inputs analysed here and in worker processes."""

from __future__ import annotations

import csv
import errno
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import draw_digits
from digitd.analyse import init_worker
from digitd.annotate import Pictures
from digitd.outbox import Outbox
from digitd.pool import Pool
from digitd.records import DigitReading, Reading
from digitd.runner import Input, Limits, RecognitionFailed, Runner
from digitd.writer import Writer

LIMITS = Limits(max_bytes=1 << 20, max_pixels=10**7)


class MarkCounter:
    """Reads every input as one digit: how many marks were found on it."""

    name = "fake-mark-counter"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def classify(self, found):
        self.calls.append(len(found))
        out = []
        for marks, polarity in found:
            if not marks:
                out.append(Reading("blank", None, (), None, polarity=polarity))
                continue
            d = len(marks) % 10
            probs = tuple(0.91 if i == d else 0.01 for i in range(10))
            digit = DigitReading(d, 0.91, marks[0].box, probs, np.zeros((28, 28), np.float32))
            out.append(Reading("ok", str(d), (digit,), 0.91, polarity=polarity))
        return out


class Crashes(MarkCounter):
    """Raises on any batch holding an input with more than ``limit`` marks (or always)."""

    def __init__(self, limit: int = 2, always: bool = False) -> None:
        super().__init__()
        self.limit, self.always = limit, always

    def classify(self, found):
        if self.always or any(len(marks) > self.limit for marks, _ in found):
            raise RuntimeError("model exploded")
        return super().classify(found)


def png(text: str) -> bytes:
    """A picture of ``text`` (one mark per digit); "" is a blank page."""
    img = draw_digits(text, height=60) if text else np.full((60, 90), 255, np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


def files(folder: Path, contents: dict[str, bytes]) -> list[Input]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return [Input.of(folder / name) for name in contents]


def rows(outbox: Path) -> list[dict[str, str]]:
    with open(outbox / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def runner(outbox: Path, recognizer, pool=None, **kwargs) -> Runner:
    return Runner(recognizer, Writer(Outbox(outbox), durable=False), pool or Pool(0),
                  limits=LIMITS, **kwargs)


@pytest.fixture(params=[0, 2], ids=["here", "workers"])
def pool(request):
    with Pool(request.param, initializer=init_worker) as p:
        yield p


def test_one_model_call_per_batch_and_results_in_order(tmp_path, pool):
    items = files(tmp_path / "in", {"a.png": png("3"), "b.png": png(""), "bad.png": b"nope",
                                    "c.png": png("75")})
    rec = MarkCounter()
    outcomes = runner(tmp_path / "out", rec, pool).run(items)
    assert rec.calls == [2]  # the numbers of the decodable inputs, together (b is blank)
    assert [o.status for o in outcomes] == ["ok", "blank", "failed", "ok"]
    assert [o.result["number"] for o in outcomes] == ["1", None, None, "2"]
    assert outcomes[2].result["error"] == "not an image: the file holds text"
    assert [r["source"] for r in rows(tmp_path / "out")] == ["a.png", "b.png", "bad.png", "c.png"]
    for o in outcomes:
        stored = json.loads((tmp_path / "out" / "results" / f"{o.input.source[:-4]}.json")
                            .read_text())
        assert stored == o.result
        assert o.result["model"] == "fake-mark-counter"
    assert not (tmp_path / "out" / "annotated").exists()  # no pictures asked for


def test_pictures_are_drawn_and_named_in_the_result(tmp_path, pool):
    items = files(tmp_path / "in", {"a.png": png("3")})
    (outcome,) = runner(tmp_path / "out", MarkCounter(), pool, pictures=Pictures(pool)).run(items)
    assert outcome.result["annotated"] == "annotated/a.png"
    assert (tmp_path / "out" / "annotated" / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missing_file_fails_or_is_left_for_a_retry(tmp_path, pool):
    item = Input.of(tmp_path / "gone.png")
    (failed,) = runner(tmp_path / "a", MarkCounter(), pool).run([item])
    assert failed.result["error"] == "cannot read: no such file"
    (retry,) = runner(tmp_path / "b", MarkCounter(), pool, retry=True).run([item])
    assert retry.result is None and isinstance(retry.error, FileNotFoundError)
    # nothing written but its NAME's reservation, kept for the retry
    assert sorted(p.name for p in (tmp_path / "b").rglob("*")) == [".gone.reserve", "results"]


def test_a_crashing_recognizer_fails_only_the_input_it_crashes_on(tmp_path, pool):
    items = files(tmp_path / "in", {"a.png": png("3"), "wide.png": png("123"), "c.png": png("5")})
    outcomes = runner(tmp_path / "out", Crashes(limit=2), pool).run(items)
    assert [o.status for o in outcomes] == ["ok", "failed", "ok"]
    assert outcomes[1].result["error"] == "recognition failed: RuntimeError: model exploded"
    assert outcomes[1].result["image"]["width"] > 0


def test_a_model_that_fails_on_everything_is_a_retry_not_a_verdict(tmp_path, pool):
    items = files(tmp_path / "in", {"a.png": png("3"), "b.png": png("5")})
    outcomes = runner(tmp_path / "s", Crashes(always=True), pool, retry=True).run(items)
    assert [type(o.error) for o in outcomes] == [RecognitionFailed, RecognitionFailed]
    assert str(outcomes[0].error) == "recognition failed: RuntimeError: model exploded"
    assert not (tmp_path / "s" / "results.csv").exists()
    outcomes = runner(tmp_path / "p", Crashes(always=True), pool).run(items)
    assert [o.result["error"] for o in outcomes] == ["recognition failed: RuntimeError: "
                                                     "model exploded"] * 2


def test_a_reserved_name_is_used_and_a_redo_does_not_add_a_second_row(tmp_path):
    run = runner(tmp_path / "out", MarkCounter())
    name = run.outbox.claim_name("scan")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x1").write_bytes(png("3"))
    item = Input(path=tmp_path / "in" / "x1", source="scan.png", name=name)
    (first,) = run.run([item])
    assert first.input.name == "scan"
    redo = Input(path=item.path, source="scan.png", name=name, redo=True)
    (second,) = run.run([redo])
    assert second.input.name == "scan"
    assert [r["result"] for r in rows(tmp_path / "out")] == ["results/scan.json"]
    assert sorted(p.name for p in (tmp_path / "out" / "results").iterdir()) == ["scan.json"]


class FullDisk(Outbox):
    """An Outbox whose JSON staging fails with ENOSPC for the NAMEs given."""

    def __init__(self, root, full: set[str]) -> None:
        super().__init__(root)
        self.full = full

    def stage_json(self, name, obj, **kwargs):
        if name in self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().stage_json(name, obj, **kwargs)


def test_an_unwritable_result_is_an_error_for_that_input_only(tmp_path):
    items = files(tmp_path / "in", {"a.png": png("3"), "b.png": png("5")})
    box = FullDisk(tmp_path / "out", {"a"})
    outcomes = Runner(MarkCounter(), Writer(box, durable=False), Pool(0), limits=LIMITS).run(items)
    assert isinstance(outcomes[0].error, OSError) and outcomes[0].result is None
    assert outcomes[1].result["number"] == "1"
    assert [r["source"] for r in rows(tmp_path / "out")] == ["b.png"]
    # predict does not retry: the NAME it could not use is free again
    assert sorted(p.name for p in (tmp_path / "out" / "results").iterdir()) == ["b.json"]


def test_batches_run_in_order_with_the_next_ones_analysed_ahead(tmp_path, pool):
    items = files(tmp_path / "in", {f"{i}.png": png("1" * (i % 3 + 1)) for i in range(7)})
    rec = MarkCounter()
    batches = [items[0:3], items[3:6], items[6:7]]
    done = list(runner(tmp_path / "out", rec, pool).run_all(batches, ahead=2))
    assert [[o.input.source for o in b] for b in done] == [[i.source for i in b] for b in batches]
    assert rec.calls == [3, 3, 1]
    assert [o.result["number"] for b in done for o in b] == [str(i % 3 + 1) for i in range(7)]


@pytest.mark.parametrize(("digits", "separators", "number"), [
    ("12052026", ((2, "/"), (4, "/")), "12/05/2026"),
    ("375", ((1, "."),), "3.75"),
    ("42", ((0, "-"),), "-42"),
    ("12500", ((2, ","),), "12,500"),
    ("1", ((0, "-"), (0, "("), (1, ")")), "-(1)"),  # several before one digit keep their order
    ("7", (), "7"),
])
def test_separators_go_before_their_digit(digits, separators, number):
    from digitd.runner import with_separators

    assert with_separators(digits, separators) == number


def test_a_number_with_doubts_is_uncertain_whatever_its_confidence():
    from digitd.records import Found, Mark
    from digitd.runner import read_number

    d = DigitReading(4, 0.99, (0, 0, 5, 5), (0.0,) * 10, np.zeros((28, 28), np.float32))
    reading = Reading("ok", "44", (d, d), 0.99, doubts=("not a digit: 1 mark",))
    mark = Mark((0, 0, 5, 5), np.zeros((28, 28), np.float32))
    found = Found((mark, mark), (0, 0, 20, 5), separators=((1, "."),),
                  doubts=("a mark between digits was not read",))
    n = read_number(reading, found, ("may be rotated", "not a digit: 1 mark"))
    assert (n.reading.number, n.reading.status, n.reading.confidence) == ("4.4", "uncertain", 0.99)
    assert n.reading.doubts == ("not a digit: 1 mark", "a mark between digits was not read",
                                "may be rotated")
    assert (n.box, n.printed) == ((0, 0, 20, 5), False)
    clean = read_number(replace(reading, doubts=()), replace(found, doubts=()), ())
    assert (clean.reading.number, clean.reading.status) == ("4.4", "ok")


def test_a_page_keeps_no_number_that_has_no_digit_unless_it_is_alone():
    """Of a page's marks, a group the model calls all 'not a digit' (a logo, a
    letter) is no number beside real ones; found alone, it stays, blank, with
    its reason."""
    from digitd.analyse import ImageInfo, PageAnalysis
    from digitd.records import Found, Mark, PageFound
    from digitd.runner import read_page

    mark = Mark((0, 0, 5, 5), np.zeros((28, 28), np.float32))
    d = DigitReading(4, 0.99, (0, 0, 5, 5), (0.0,) * 10, np.zeros((28, 28), np.float32))
    ok = Reading("ok", "4", (d,), 0.99)
    logo = Reading("blank", None, (), None, doubts=("no digit: a mark that is not a digit",))
    found = (Found((mark,), (0, 0, 5, 5)), Found((mark,), (0, 50, 5, 5)), Found((mark,), (0, 90, 5, 5)))
    info = ImageInfo(100, 100, "grey")
    page = PageAnalysis(1, info=info, found=PageFound(numbers=found, polarity="dark-on-light"))
    read = read_page(page, [logo, ok, logo])
    assert [(n.reading.number, n.reading.status, n.box) for n in read.numbers] == [("4", "ok", (0, 50, 5, 5))]
    assert [n.reading.status for n in read_page(page, [logo, logo, logo]).numbers] == []
    alone = PageAnalysis(1, info=info, found=PageFound(numbers=found[:1], polarity="dark-on-light"))
    (kept,) = read_page(alone, [logo]).numbers
    assert (kept.reading.status, kept.reading.doubts) == ("blank", ("no digit: a mark that is not a digit",))


def test_limits_carry_the_document_keys(tmp_path):
    from dataclasses import replace as with_values

    from digitd.config import default_config

    config = with_values(default_config(tmp_path), pdf_dpi=300.0, max_pages=7,
                         max_document_seconds=9.5, max_file_mb=2.0)
    assert Limits.from_config(config) == Limits(
        max_bytes=2 * 1024 * 1024, max_pixels=config.max_image_pixels,
        threshold=config.confidence_threshold, dpi=300.0, max_pages=7, seconds=9.5)


def test_the_runner_gives_the_reader_its_limits(tmp_path):
    from digitd.analyse import analyse

    seen = []

    def reader(source, **options):
        seen.append(options)
        return analyse(source, **options)

    items = files(tmp_path / "in", {"a.png": png("3")})
    limits = Limits(max_bytes=1 << 20, max_pixels=10**7, dpi=150.0, max_pages=3, seconds=4.0)
    Runner(MarkCounter(), Writer(Outbox(tmp_path / "out"), durable=False), Pool(0),
           limits=limits, analyse_fn=reader).run(items)
    assert seen == [{"max_bytes": 1 << 20, "max_pixels": 10**7, "max_digits": 12,
                     "picture": False, "dpi": 150.0, "max_pages": 3, "seconds": 4.0}]
