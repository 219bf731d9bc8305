"""The outbox folder: NAME reservations, the CSV append, moves that never replace."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from digitd.outbox import Outbox, make_durable
from digitd.results import CSV_COLUMNS

WHEN = dt.datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=dt.UTC)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_json(box: Outbox, name: str, obj) -> str:
    box.stage_json(name, obj)
    return box.publish_json(name)


def append(box: Outbox, row: dict) -> None:
    box.append_csv_rows([row], fsync=False)


# --- names ------------------------------------------------------------------------------


def test_claim_name_suffixes_a_stem_already_used_anywhere(tmp_path):
    box = Outbox(tmp_path)
    assert box.claim_name("scan") == "scan"
    write_json(box, "scan", {})
    box.release("scan")
    assert box.claim_name("scan") == "scan-1"  # results/scan.json exists
    (box.folder("annotated") / "scan-2.png").write_bytes(b"x")
    (box.folder("failed") / "scan-3.error.json").write_text("{}")
    assert box.claim_name("scan") == "scan-4"  # -1 reserved, -2 and -3 used elsewhere


def test_a_reservation_is_exclusive_until_released(tmp_path):
    box = Outbox(tmp_path)
    first = box.claim_name("x")
    assert box.claim_name("x") == "x-1"
    box.release(first)
    assert box.claim_name("x") == "x"  # released without a result: free again


def test_the_reservation_becomes_the_json(tmp_path):
    """The JSON is written into the reservation file and renamed: no marker is
    left to remove, and at every moment one of the two holds the name."""
    box = Outbox(tmp_path)
    name = box.claim_name("scan")
    assert (tmp_path / "results" / ".scan.reserve").exists()
    write_json(box, name, {"n": 1})
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["scan.json"]
    assert box.claim_name("scan") == "scan-1"


def test_a_staged_json_overwrites_what_an_earlier_attempt_left(tmp_path):
    box = Outbox(tmp_path)
    name = box.claim_name("x")
    box.stage_json(name, {"long": "y" * 500})  # an attempt cut short before the rename
    box.stage_json(name, {"short": 1})
    box.publish_json(name)
    assert json.loads((tmp_path / "results" / "x.json").read_text()) == {"short": 1}


def test_claims_of_one_stem_go_on_from_the_last_one(tmp_path):
    box = Outbox(tmp_path)
    for i in range(50):
        write_json(box, box.claim_name("scan"), {"i": i})
    calls = []
    real = box.taken
    box.taken = lambda name: calls.append(name) or real(name)
    assert box.claim_name("scan") == "scan-50"
    assert len(calls) <= 4  # the stem, the last one used, the next: no search


def test_claim_name_stays_fast_after_many_inputs_of_one_stem(tmp_path):
    box = Outbox(tmp_path)
    results = box.folder("results")
    for i in range(3000):
        (results / (f"scan-{i}.json" if i else "scan.json")).write_text("{}")
    calls = []
    real = box.taken
    box.taken = lambda name: calls.append(name) or real(name)
    assert box.claim_name("scan") == "scan-3000"
    assert len(calls) < 60  # galloping search, not 3000 look-ups


@pytest.mark.parametrize("stem,expected", [("a/b", "a_b"), ("..x", "x"), ("", "input"), ("a\nb", "a_b")])
def test_odd_stems_become_safe_names(tmp_path, stem, expected):
    assert Outbox(tmp_path).claim_name(stem) == expected


# --- writing ---------------------------------------------------------------------------


def test_write_json_is_complete_and_leaves_no_temp(tmp_path):
    box = Outbox(tmp_path / "out")
    path = Path(write_json(box, "n", {"a": [1, 2], "é": None}))
    assert path == tmp_path / "out" / "results" / "n.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": [1, 2], "é": None}
    assert sorted(p.name for p in path.parent.iterdir()) == ["n.json"]


def test_write_annotated_is_atomic(tmp_path):
    box = Outbox(tmp_path)
    assert box.write_annotated("n", b"png") == "annotated/n.png"
    assert box.write_annotated("n", b"png2") == "annotated/n.png"
    assert sorted(p.name for p in (tmp_path / "annotated").iterdir()) == ["n.png"]
    assert (tmp_path / "annotated" / "n.png").read_bytes() == b"png2"


def row(i: int) -> dict[str, str]:
    return {"processed_at": "t", "source": f"s{i},x.png", "status": "ok", "number": str(i),
            "confidence": "1.000000", "model": "m", "sha256": "h", "result": f"results/s{i}.json",
            "error": 'say "hi"\nthere', "page": "1", "index": str(i), "box": f"{i} 2 3 4"}


def test_csv_header_once_and_rows_exact(tmp_path):
    box = Outbox(tmp_path)
    append(box, row(1))
    append(box, row(2))
    text = (tmp_path / "results.csv").read_text(encoding="utf-8")
    assert text.startswith(",".join(CSV_COLUMNS) + "\n")
    assert text.count("processed_at") == 1
    assert read_csv(tmp_path / "results.csv") == [row(1), row(2)]


def test_csv_header_written_when_the_file_exists_but_is_empty(tmp_path):
    (tmp_path / "results.csv").write_text("")
    append(Outbox(tmp_path), row(1))
    assert read_csv(tmp_path / "results.csv") == [row(1)]


def test_csv_row_after_a_cut_line_starts_on_its_own_line(tmp_path):
    box = Outbox(tmp_path)
    append(box, row(1))
    with open(tmp_path / "results.csv", "a") as f:
        f.write("2024,half a ro")  # an earlier writer died mid-row
    append(box, row(2))
    rows = read_csv(tmp_path / "results.csv")
    assert rows[0] == row(1) and rows[-1] == row(2)


def test_csv_results_are_each_results_page_and_index(tmp_path):
    box = Outbox(tmp_path)
    assert box.csv_results() == {}
    append(box, row(1))
    append(box, row(2))
    append(box, {**row(2), "index": "5"})
    append(box, {**row(3), "page": "", "index": "", "box": ""})  # an input's own row
    assert box.csv_results() == {"results/s1.json": {("1", "1")},
                                 "results/s2.json": {("1", "2"), ("1", "5")},
                                 "results/s3.json": {("", "")}}


def test_csv_results_read_a_file_begun_by_an_older_version(tmp_path):
    """Its header lacks page, index and box: its rows are inputs' own rows; rows
    appended since carry the three at the end, read by position."""
    old = CSV_COLUMNS[: CSV_COLUMNS.index("error") + 1]
    (tmp_path / "results.csv").write_text(",".join(old) + "\nt,a.png,ok,7,0.9,m,h,results/a.json,\n")
    box = Outbox(tmp_path)
    append(box, row(1))
    assert box.csv_results() == {"results/a.json": {("", "")}, "results/s1.json": {("1", "1")}}


WORKER = textwrap.dedent("""
    import sys
    from digitd.outbox import Outbox
    box = Outbox(sys.argv[1])
    tag = sys.argv[2]
    for i in range(int(sys.argv[3])):
        name = box.claim_name("same")
        box.append_csv_rows([{"source": tag, "number": str(i), "result": f"results/{name}.json",
                              "error": "x" * 3000}], fsync=False)
        box.stage_json(name, {"by": tag, "i": i})
        box.publish_json(name)
        box.release(name)
""")


def test_several_processes_never_share_a_name_or_interleave_rows(tmp_path):
    n, procs = 60, 4
    running = [subprocess.Popen([sys.executable, "-c", WORKER, str(tmp_path), f"p{k}", str(n)])
               for k in range(procs)]
    assert [p.wait(timeout=120) for p in running] == [0] * procs
    rows = read_csv(tmp_path / "results.csv")
    assert len(rows) == n * procs
    assert all(r["error"] == "x" * 3000 for r in rows)  # whole rows, none cut
    names = [r["result"] for r in rows]
    assert len(set(names)) == n * procs  # every input its own NAME
    jsons = sorted((tmp_path / "results").glob("*.json"))
    assert len(jsons) == n * procs
    by = {(json.loads(p.read_text())["by"], json.loads(p.read_text())["i"]) for p in jsons}
    assert len(by) == n * procs  # nothing overwritten
    assert not list((tmp_path / "results").glob(".*"))  # no reservations or temps left


def test_append_csv_rows_in_one_write_with_one_header(tmp_path, monkeypatch):
    box = Outbox(tmp_path)
    writes = []
    real_write = os.write
    monkeypatch.setattr(os, "write",
                        lambda fd, data: writes.append(bytes(data)) or real_write(fd, data))
    box.append_csv_rows([row(1), row(2), row(3)], fsync=False)
    box.append_csv_rows([], fsync=False)
    assert len(writes) == 1
    assert read_csv(tmp_path / "results.csv") == [row(1), row(2), row(3)]


def test_make_durable_by_fsync_and_by_syncfs(tmp_path):
    paths = []
    for i in range(10):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x")
        paths.append(str(path))
    make_durable(paths[:2])
    make_durable(paths)
    with pytest.raises(FileNotFoundError):
        make_durable([str(tmp_path / "missing")])


# --- originals -------------------------------------------------------------------------


def test_archive_never_overwrites(tmp_path):
    box = Outbox(tmp_path / "out")
    for content in (b"one", b"two", b"three"):
        src = tmp_path / "scan.png"
        src.write_bytes(content)
        box.archive(src)
        assert not src.exists()
    folder = tmp_path / "out" / "originals"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == {
        "scan.png": b"one", "scan-1.png": b"two", "scan-2.png": b"three"}


def test_archiving_many_files_of_one_name_does_not_try_every_suffix(tmp_path, monkeypatch):
    box = Outbox(tmp_path / "out")
    src = tmp_path / "scan.png"
    for i in range(30):
        src.write_bytes(b"%d" % i)
        box.archive(src)
    links = []
    real_link = os.link
    monkeypatch.setattr(os, "link", lambda *a, **k: links.append(a) or real_link(*a, **k))
    src.write_bytes(b"last")
    assert box.archive(src).name == "scan-30.png"
    assert len(links) == 2  # the name itself, then the suffix after the last one used
    folder = tmp_path / "out" / "originals"
    assert len(list(folder.iterdir())) == 31
    assert (folder / "scan-7.png").read_bytes() == b"7"


def test_quarantine_moves_the_original_and_records_why(tmp_path):
    box = Outbox(tmp_path / "out")
    failed = tmp_path / "out" / "failed"
    for i in range(2):
        src = tmp_path / "bad.png"
        src.write_bytes(b"not a png %d" % i)
        name = box.claim_name("bad")
        moved = box.quarantine(src, name, "not an image: the file holds text", attempts=1 + i,
                               sha256="s", when=WHEN)
        box.release(name)
        assert not src.exists()
        assert moved.read_bytes() == b"not a png %d" % i
    assert sorted(p.name for p in failed.iterdir()) == [
        "bad-1.error.json", "bad-1.png", "bad.error.json", "bad.png"]
    record = json.loads((failed / "bad-1.error.json").read_text())
    assert record == {"source": "bad.png", "reason": "not an image: the file holds text",
                      "time": "2024-05-01T12:34:56.789Z", "attempts": 2, "sha256": "s",
                      "file": "failed/bad-1.png"}


def test_quarantine_a_symlink_moves_the_link_not_its_target(tmp_path):
    target = tmp_path / "target.png"
    target.write_bytes(b"data")
    link = tmp_path / "link.png"
    os.symlink(target, link)
    box = Outbox(tmp_path / "out")
    moved = box.quarantine(link, "link", "symbolic links are not read", attempts=1)
    assert moved.is_symlink() and target.read_bytes() == b"data"


def test_no_name_is_ever_a_page_pictures(tmp_path):
    """Page N of NAME is pictured as annotated/NAME.pN.png: a stem ending in .pN gets
    "_", and a NAME whose page pictures exist is taken."""
    box = Outbox(tmp_path)
    assert box.claim_name("scan.p2") == "scan.p2_"
    assert box.claim_name("scan.p2x") == "scan.p2x"
    assert box.annotated_rel("doc", 3) == "annotated/doc.p3.png"
    assert box.write_annotated("doc", b"P1", 1) == "annotated/doc.p1.png"
    assert (tmp_path / "annotated" / "doc.p1.png").read_bytes() == b"P1"
    assert box.claim_name("doc") == "doc-1"  # doc's pictures are there, its JSON is not yet
