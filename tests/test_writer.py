"""The one result writer: group commit, CSV de-duplication, durability, quarantine."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
from pathlib import Path

import pytest
from digitd.outbox import Outbox
from digitd.results import CSV_COLUMNS, csv_row
from digitd.writer import Record, Writer

WHEN = "2024-05-01T12:34:56.789Z"


def result(source: str, number: str = "42") -> dict:
    return {"source": source, "status": "ok", "number": number, "digits": [],
            "confidence": 0.75, "model": "m1", "sha256": "ab" * 32, "processed_at": WHEN,
            "elapsed_ms": 3.0, "annotated": None, "error": None}


def rows(box: Outbox) -> list[list[str]]:
    with open(box.csv_path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def row_of(name: str, res: dict) -> list[str]:
    row = csv_row(res, f"results/{name}.json")
    return [row[c] for c in CSV_COLUMNS]


def reserved(box: Outbox, *stems: str) -> list[str]:
    return [box.claim_name(s) for s in stems]


@pytest.fixture
def box(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


class WatchedOutbox(Outbox):
    """Notes, when the CSV rows are appended, which JSONs are already visible."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.appends: list[list[dict]] = []
        self.visible_at_append: list[str] = []

    def append_rows(self, rows, forms, *, fsync):
        self.appends.append(list(rows))
        self.visible_at_append = sorted(p.name for p in (self.root / "results").glob("*.json"))
        return super().append_rows(rows, forms, fsync=fsync)


class FullFor(Outbox):
    """stage_json fails with ENOSPC for one NAME."""

    def __init__(self, root: Path, bad: str) -> None:
        super().__init__(root)
        self.bad = bad

    def stage_json(self, name, obj, *, fsync=False):
        if name == self.bad:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().stage_json(name, obj, fsync=fsync)


def test_a_batch_is_invisible_until_commit_then_all_there(tmp_path):
    box = WatchedOutbox(tmp_path / "outbox")
    names = reserved(box, "a", "b", "c")
    results = [result(f"{n}.png", str(i)) for i, n in enumerate(names)]
    errors = Writer(box, durable=False).commit(
        [Record(n, r) for n, r in zip(names, results, strict=True)])
    assert errors == [None, None, None]
    assert box.visible_at_append == []  # the rows go before any JSON is published
    assert sorted(os.listdir(box.root / "results")) == ["a.json", "b.json", "c.json"]
    for name, res in zip(names, results, strict=True):
        assert json.loads(Path(box.result_path(name)).read_text()) == res
    assert len(box.appends) == 1  # one write for the batch, in order
    assert rows(box) == [list(CSV_COLUMNS)] + [row_of(n, r) for n, r in zip(names, results,
                                                                             strict=True)]


def test_a_second_batch_appends_without_a_second_header(box):
    writer = Writer(box, durable=False)
    (a,) = reserved(box, "a")
    writer.commit([Record(a, result("a.png", "1"))])
    (b,) = reserved(box, "b")
    writer.commit([Record(b, result("b.png", "2"))])
    assert rows(box) == [list(CSV_COLUMNS), row_of("a", result("a.png", "1")),
                         row_of("b", result("b.png", "2"))]


def test_row_may_exist_writes_a_row_only_if_results_csv_lacks_it(box):
    writer = Writer(box, durable=False)
    a, b = reserved(box, "a", "b")
    writer.commit([Record(a, result("a.png", "1"))])
    # both redone after a crash: a's row is in results.csv, b's is not
    errors = writer.commit([Record(a, result("a.png", "1"), row_may_exist=True),
                            Record(b, result("b.png", "2"), row_may_exist=True)])
    assert errors == [None, None]
    assert rows(box) == [list(CSV_COLUMNS), row_of("a", result("a.png", "1")),
                         row_of("b", result("b.png", "2"))]


def test_without_row_may_exist_the_row_is_written_again(box):
    writer = Writer(box, durable=False)
    (a,) = reserved(box, "a")
    writer.commit([Record(a, result("a.png", "1"))])
    writer.commit([Record(a, result("a.png", "1"))])
    assert rows(box) == [list(CSV_COLUMNS)] + [row_of("a", result("a.png", "1"))] * 2


def test_a_record_that_cannot_be_staged_is_left_out(tmp_path):
    box = FullFor(tmp_path / "outbox", bad="b")
    names = reserved(box, "a", "b", "c")
    errors = Writer(box, durable=True).commit(
        [Record(n, result(f"{n}.png"), picture=b"PNG" + n.encode()) for n in names])
    assert errors[0] is None and errors[2] is None
    assert isinstance(errors[1], OSError) and errors[1].errno == errno.ENOSPC
    assert sorted(os.listdir(box.root / "results")) == [".b.reserve", "a.json", "c.json"]
    assert rows(box) == [list(CSV_COLUMNS), row_of("a", result("a.png")),
                         row_of("c", result("c.png"))]


def test_a_batch_that_cannot_be_staged_at_all_writes_nothing(tmp_path):
    box = FullFor(tmp_path / "outbox", bad="a")
    (a,) = reserved(box, "a")
    (error,) = Writer(box, durable=True).commit([Record(a, result("a.png"))])
    assert error is not None and error.errno == errno.ENOSPC
    assert not box.csv_path.exists()
    assert os.listdir(box.root / "results") == [".a.reserve"]


@pytest.fixture
def fsynced(monkeypatch) -> list[str]:
    """The paths os.fsync is called on (the real fsync still runs)."""
    calls: list[str] = []
    real = os.fsync

    def fsync(fd):
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return calls


def test_durable_commit_fsyncs_every_staged_file_rows_and_results(box, fsynced, tmp_path):
    names = reserved(box, "a", "b")
    journal = tmp_path / "journal.json"
    journal.write_text("{}")
    errors = Writer(box, durable=True).commit(
        [Record(n, result(f"{n}.png")) for n in names],
        sync_paths=[os.fspath(journal), os.fspath(tmp_path / "removed-by-hand.json")])
    assert errors == [None, None]
    res = os.fspath(box.root / "results")
    assert sorted(fsynced[:4]) == sorted([f"{res}/.a.reserve", f"{res}/.b.reserve",
                                          os.fspath(journal), os.fspath(box.csv_path)])
    # then the folders of the names just made: the journal's, and results.csv's (new)
    assert fsynced[4:6] == [os.fspath(tmp_path), os.fspath(box.root)]
    assert fsynced[-1] == res  # after the renames
    assert len(fsynced) == 7


def test_durable_commit_of_only_rows_already_there_does_not_sync_the_csv(box, fsynced):
    writer = Writer(box, durable=False)
    (a,) = reserved(box, "a")
    writer.commit([Record(a, result("a.png"))])
    assert fsynced == []
    Writer(box, durable=True).commit([Record(a, result("a.png"), row_may_exist=True)])
    res = os.fspath(box.root / "results")
    # the JSON's temp is gone once published: fsynced before that, by name
    assert fsynced == [f"{res}/.a.reserve", res]


def test_durable_commit_fsyncs_the_originals_best_effort(box, fsynced, tmp_path):
    """The inputs' own bytes are made durable before their results are published (a
    user's copy may never have been synced); a link, a FIFO (never opened: that
    would block), a file that may not be opened or one gone meanwhile are passed
    over without failing the batch."""
    originals = tmp_path / "work"
    originals.mkdir()
    (originals / "a.png").write_bytes(b"a")
    os.symlink(originals / "a.png", originals / "link.png")
    os.mkfifo(originals / "fifo.png")
    names = reserved(box, "a", "link", "fifo")  # few: each file fsynced (no syncfs)
    errors = Writer(box, durable=True).commit(
        [Record(n, result(f"{n}.png")) for n in names],
        originals=[os.fspath(originals / f"{n}.png") for n in (*names, "gone")])
    assert errors == [None] * 3
    assert [p for p in fsynced if p.startswith(os.fspath(originals))] == [
        os.fspath(originals / "a.png")]
    assert sorted(os.listdir(box.root / "results")) == ["a.json", "fifo.json", "link.json"]


def test_not_durable_no_fsync(box, fsynced):
    names = reserved(box, "a", "b")
    Writer(box, durable=False).commit([Record(n, result(f"{n}.png"), picture=b"P")
                                       for n in names])
    assert fsynced == []
    assert sorted(os.listdir(box.root / "results")) == ["a.json", "b.json"]


def test_pictures_land_in_annotated(box):
    names = reserved(box, "a", "b")
    Writer(box, durable=False).commit([Record(names[0], result("a.png"), picture=b"PNG-a"),
                                       Record(names[1], result("b.png"))])
    assert os.listdir(box.root / "annotated") == ["a.png"]
    assert (box.root / "annotated" / "a.png").read_bytes() == b"PNG-a"


def test_quarantine_writes_the_error_record(box, tmp_path, fsynced):
    original = tmp_path / "tok_scan.png"
    original.write_bytes(b"x")
    (name,) = reserved(box, "scan")
    moved = Writer(box, durable=True).quarantine(original, name, "cannot decode", 2,
                                                 source="scan.png", sha256="cd" * 32)
    assert moved == box.root / "failed" / "scan.png"
    assert not original.exists() and moved.read_bytes() == b"x"
    record = json.loads((box.root / "failed" / "scan.error.json").read_text())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record.pop("time"))
    assert record == {"source": "scan.png", "reason": "cannot decode", "attempts": 2,
                      "sha256": "cd" * 32, "file": "failed/scan.png"}
    # failed/ new: the outbox (its name); the error record; failed/ (the link, before
    # the unlink)
    assert fsynced[0] == os.fspath(box.root)
    assert os.path.basename(fsynced[1]).startswith(".scan.error.json")
    assert fsynced[2:] == [os.fspath(box.root / "failed")]
    assert sorted(os.listdir(box.root / "failed")) == ["scan.error.json", "scan.png"]


def test_quarantine_not_durable_does_not_fsync(box, tmp_path, fsynced):
    original = tmp_path / "tok_scan.png"
    original.write_bytes(b"x")
    Writer(box, durable=False).quarantine(original, "scan", "bad", 1, source="scan.png",
                                          sha256=None)
    assert fsynced == []
    record = json.loads((box.root / "failed" / "scan.error.json").read_text())
    assert "sha256" not in record and record["attempts"] == 1


# --- several numbers per input: one row each, each exactly once --------------------------------


def doc_result(source: str, pages: list[list[str]]) -> dict:
    """A real result dict of a document whose page k holds the numbers ``pages[k]``."""
    import datetime as dt

    from digitd.records import Reading
    from digitd.results import NumberRead, PageRead, result_dict, summary

    read = tuple(PageRead(page=k, width=1000, height=1400, numbers=tuple(
        NumberRead(Reading("ok", n, (), 0.9), (10 * i, 100 * k + i, 50, 30))
        for i, n in enumerate(numbers))) for k, numbers in enumerate(pages, 1))
    return result_dict(source, summary(read), sha256="ab" * 32, model="m1",
                       processed_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC), elapsed_ms=3.0,
                       annotated=None, pages=read)


def numbers_in(box: Outbox) -> list[tuple[str, str, str, str]]:
    at = [CSV_COLUMNS.index(c) for c in ("result", "page", "index", "number")]
    return [tuple(r[i] for i in at) for r in rows(box)[1:]]


def test_one_row_per_number_and_a_picture_per_page_in_one_commit(tmp_path):
    box = WatchedOutbox(tmp_path / "outbox")
    a, b = reserved(box, "a", "b")
    errors = Writer(box, durable=True).commit([
        Record(a, doc_result("a.pdf", [["12", "3.75"], [], ["-42"]]),
               page_pictures=((1, b"P1"), (3, b"P3"))),
        Record(b, doc_result("b.png", [[]]))])
    assert errors == [None, None]
    assert len(box.appends) == 1
    assert numbers_in(box) == [("results/a.json", "1", "1", "12"),
                               ("results/a.json", "1", "2", "3.75"),
                               ("results/a.json", "3", "1", "-42"),
                               ("results/b.json", "", "", "")]
    assert (box.root / "annotated" / "a.p1.png").read_bytes() == b"P1"
    assert sorted(os.listdir(box.root / "annotated")) == ["a.p1.png", "a.p3.png"]


def test_a_redo_after_a_write_cut_short_adds_only_the_rows_it_lacks(box):
    """kill -9 can cut one write of several rows (the kernel stops a write between
    pages for a fatal signal): the whole rows kept stay, the torn line goes, and
    the redo appends the rest - every number exactly once."""
    writer = Writer(box, durable=False)
    (a,) = reserved(box, "a")
    res = doc_result("a.pdf", [["12", "3.75"], ["-42", "7"]])
    writer.commit([Record(a, res)])
    data = box.csv_path.read_bytes()
    lines = data.splitlines(keepends=True)
    box.csv_path.write_bytes(b"".join(lines[:3]) + lines[3][:20])  # header, 2 rows, a torn one
    writer.commit([Record(a, res, row_may_exist=True)])
    assert box.csv_path.read_bytes() == data
    writer.commit([Record(a, res, row_may_exist=True)])  # redone again: nothing more
    assert box.csv_path.read_bytes() == data


def test_a_redo_never_adds_an_own_row_beside_number_rows_or_the_reverse(box):
    writer = Writer(box, durable=False)
    a, b = reserved(box, "a", "b")
    writer.commit([Record(a, doc_result("a.pdf", [["12"]])), Record(b, doc_result("b.pdf", [[]]))])
    before = numbers_in(box)
    assert before == [("results/a.json", "1", "1", "12"), ("results/b.json", "", "", "")]
    # the redo reads differently (a reloaded model): a finds nothing, b finds two numbers
    writer.commit([Record(a, doc_result("a.pdf", [[]]), row_may_exist=True),
                   Record(b, doc_result("b.pdf", [["5", "6"]]), row_may_exist=True)])
    assert numbers_in(box) == before
