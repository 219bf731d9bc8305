"""Result records and the outbox files: exact keys, CSV rows, names never reused,
atomic writes, moves that never overwrite, and several processes at once."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from digitd import __version__
from digitd.records import DigitReading, Reading, Scan
from digitd.results import (
    CSV_COLUMNS,
    RESULT_KEYS,
    Batch,
    Outbox,
    csv_row,
    make_durable,
    result_dict,
    utc_timestamp,
)

WHEN = dt.datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=dt.UTC)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def digit(d: int, conf: float, box=(1, 2, 3, 4)) -> DigitReading:
    probs = np.full(10, (1 - conf) / 9, np.float64)
    probs[d] = conf
    return DigitReading(digit=d, confidence=conf, box=box, probabilities=tuple(probs),
                        pixels=np.zeros((28, 28), np.float32))


def reading(*digits: DigitReading, status: str = "ok") -> Reading:
    conf = min(d.confidence for d in digits) if digits else None
    number = "".join(str(d.digit) for d in digits) or None
    return Reading(status=status, number=number, digits=tuple(digits), confidence=conf,
                   polarity="dark_on_light")


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# --- result_dict -----------------------------------------------------------------------


def test_result_dict_has_the_contract_keys_in_order_with_the_right_types():
    scan = Scan(image=np.zeros((5, 7, 3), np.float32), width=7, height=5, mode="uint8 RGB")
    r = reading(digit(2, 0.91234567, (10, 20, 30, 40)), digit(7, 0.99))
    out = result_dict("scan 1.png", r, sha256="ab" * 32, model="cnn-v1", processed_at=WHEN,
                      elapsed_ms=12.345, annotated="annotated/scan 1.png", image=scan)
    assert tuple(out)[: len(RESULT_KEYS)] == RESULT_KEYS
    assert out["source"] == "scan 1.png"
    assert out["status"] == "ok"
    assert out["number"] == "27"
    assert out["confidence"] == 0.912346  # rounded to 6 decimals
    assert out["model"] == "cnn-v1"
    assert out["sha256"] == "ab" * 32
    assert out["processed_at"] == "2024-05-01T12:34:56.789Z"
    assert out["elapsed_ms"] == 12.3
    assert out["annotated"] == "annotated/scan 1.png"
    assert out["error"] is None
    first = out["digits"][0]
    assert list(first) == ["digit", "confidence", "box", "probabilities"]
    assert first["digit"] == 2 and isinstance(first["digit"], int)
    assert first["box"] == [10, 20, 30, 40]
    assert len(first["probabilities"]) == 10
    assert all(isinstance(p, float) for p in first["probabilities"])
    assert out["polarity"] == "dark_on_light"
    assert out["image"] == {"width": 7, "height": 5, "mode": "uint8 RGB"}
    assert out["digitd_version"] == __version__
    json.dumps(out, allow_nan=False)  # plain JSON types only


def test_a_failed_input_has_no_reading_and_says_why():
    out = result_dict("x.png", None, sha256=None, model="m", processed_at=WHEN, elapsed_ms=1,
                      annotated="annotated/x.png", error="empty file (0 bytes)")
    assert (out["status"], out["number"], out["digits"], out["confidence"]) == ("failed", None, [], None)
    assert out["error"] == "empty file (0 bytes)"
    assert out["annotated"] is None  # never a picture for a failed input
    assert out["image"] is None


@pytest.mark.parametrize("status", ["blank", "uncertain"])
def test_blank_and_uncertain_keep_their_status(status):
    r = reading(status="blank") if status == "blank" else reading(digit(4, 0.5), status="uncertain")
    out = result_dict("x.png", r, sha256="0", model="m", processed_at=WHEN, elapsed_ms=1,
                      annotated=None)
    assert out["status"] == status
    assert out["error"] is None


def test_timestamps_are_utc_with_z():
    assert ISO_Z.match(utc_timestamp())
    paris = dt.timezone(dt.timedelta(hours=2))
    assert utc_timestamp(dt.datetime(2024, 5, 1, 14, 0, tzinfo=paris)) == "2024-05-01T12:00:00.000Z"
    with pytest.raises(ValueError):
        utc_timestamp(dt.datetime(2024, 5, 1))


def test_csv_row_columns():
    out = result_dict("a,b.png", reading(digit(0, 0.5)), sha256="f", model="m", processed_at=WHEN,
                      elapsed_ms=1, annotated=None)
    row = csv_row(out, "results/a,b.json")
    assert tuple(row) == CSV_COLUMNS
    assert row["number"] == "0"
    assert row["confidence"] == "0.500000"
    assert row["error"] == ""


# --- names ------------------------------------------------------------------------------


def test_claim_name_suffixes_a_stem_already_used_anywhere(tmp_path):
    box = Outbox(tmp_path)
    assert box.claim_name("scan") == "scan"
    box.write_json("scan", {})
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
    box.write_json(name, {"n": 1})
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
        box.write_json(box.claim_name("scan"), {"i": i})
    calls = []
    real = box._taken
    box._taken = lambda name: calls.append(name) or real(name)
    assert box.claim_name("scan") == "scan-50"
    assert len(calls) <= 4  # the stem, the last one used, the next: no search


def test_claim_name_stays_fast_after_many_inputs_of_one_stem(tmp_path):
    box = Outbox(tmp_path)
    results = box.folder("results")
    for i in range(3000):
        (results / (f"scan-{i}.json" if i else "scan.json")).write_text("{}")
    calls = []
    real = box._taken
    box._taken = lambda name: calls.append(name) or real(name)
    assert box.claim_name("scan") == "scan-3000"
    assert len(calls) < 60  # galloping search, not 3000 look-ups


@pytest.mark.parametrize("stem,expected", [("a/b", "a_b"), ("..x", "x"), ("", "input"), ("a\nb", "a_b")])
def test_odd_stems_become_safe_names(tmp_path, stem, expected):
    assert Outbox(tmp_path).claim_name(stem) == expected


# --- writing ---------------------------------------------------------------------------


def test_write_json_is_complete_and_leaves_no_temp(tmp_path):
    box = Outbox(tmp_path / "out")
    path = box.write_json("n", {"a": [1, 2], "é": None})
    assert path == tmp_path / "out" / "results" / "n.json"
    assert json.loads(path.read_text(encoding="utf-8")) == {"a": [1, 2], "é": None}
    assert sorted(p.name for p in path.parent.iterdir()) == ["n.json"]


def test_write_annotated_failure_leaves_nothing(tmp_path):
    box = Outbox(tmp_path)

    def broken(f):
        f.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        box.write_annotated("n", broken)
    assert list((tmp_path / "annotated").iterdir()) == []
    assert box.write_annotated("n", lambda f: f.write(b"png")) == "annotated/n.png"
    assert (tmp_path / "annotated" / "n.png").read_bytes() == b"png"


def row(i: int) -> dict[str, str]:
    return {"processed_at": "t", "source": f"s{i},x.png", "status": "ok", "number": str(i),
            "confidence": "1.000000", "model": "m", "sha256": "h", "result": f"results/s{i}.json",
            "error": 'say "hi"\nthere'}


def test_csv_header_once_and_rows_exact(tmp_path):
    box = Outbox(tmp_path)
    box.append_csv(row(1))
    box.append_csv(row(2))
    text = (tmp_path / "results.csv").read_text(encoding="utf-8")
    assert text.startswith(",".join(CSV_COLUMNS) + "\n")
    assert text.count("processed_at") == 1
    assert read_csv(tmp_path / "results.csv") == [row(1), row(2)]


def test_csv_header_written_when_the_file_exists_but_is_empty(tmp_path):
    (tmp_path / "results.csv").write_text("")
    Outbox(tmp_path).append_csv(row(1))
    assert read_csv(tmp_path / "results.csv") == [row(1)]


def test_csv_row_after_a_cut_line_starts_on_its_own_line(tmp_path):
    box = Outbox(tmp_path)
    box.append_csv(row(1))
    with open(tmp_path / "results.csv", "a") as f:
        f.write("2024,half a ro")  # an earlier writer died mid-row
    box.append_csv(row(2))
    rows = read_csv(tmp_path / "results.csv")
    assert rows[0] == row(1) and rows[-1] == row(2)


def test_csv_has_row(tmp_path):
    box = Outbox(tmp_path)
    assert not box.csv_has_row("results/s1.json")
    box.append_csv(row(1))
    assert box.csv_has_row("results/s1.json")
    assert not box.csv_has_row("results/s2.json")


WORKER = textwrap.dedent("""
    import sys
    from digitd.results import Outbox
    box = Outbox(sys.argv[1])
    tag = sys.argv[2]
    for i in range(int(sys.argv[3])):
        name = box.claim_name("same")
        box.append_csv({"source": tag, "number": str(i), "result": f"results/{name}.json",
                        "error": "x" * 3000})
        box.write_json(name, {"by": tag, "i": i})
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
    box.append_csv_rows([row(1), row(2), row(3)])
    box.append_csv_rows([])
    assert len(writes) == 1
    assert read_csv(tmp_path / "results.csv") == [row(1), row(2), row(3)]


def _result(i: int) -> dict:
    return result_dict(f"s{i}.png", reading(digit(i, 0.9)), sha256="h", model="m",
                       processed_at=WHEN, elapsed_ms=1.0, annotated=None)


@pytest.mark.parametrize("n", [2, 9], ids=["fsync each", "syncfs"])
def test_a_batch_shows_nothing_until_its_commit_then_everything(tmp_path, n):
    box = Outbox(tmp_path)
    names = [box.claim_name(f"s{i}") for i in range(n)]
    journal = tmp_path / "journal"
    journal.write_text("{}")
    batch = Batch(box, set(names), sync_paths=[str(journal)])
    for i, name in enumerate(names):
        batch.append_csv(csv_row(_result(i), box.result_rel(name)))
        batch.write_json(name, _result(i))
    batch.release(names[0])  # finish releases every NAME; the batch keeps its own
    assert not (tmp_path / "results.csv").exists()
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == \
        sorted(f".{name}.reserve" for name in names)
    assert batch.commit() == names
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == \
        sorted(f"{name}.json" for name in names)
    assert [r["result"] for r in read_csv(tmp_path / "results.csv")] == \
        [f"results/{name}.json" for name in names]
    for i, name in enumerate(names):
        assert json.loads((tmp_path / "results" / f"{name}.json").read_text()) == _result(i)


def test_a_batch_leaves_out_the_row_of_a_json_not_written_and_rows_already_there(tmp_path):
    box = Outbox(tmp_path)
    names = [box.claim_name(f"s{i}") for i in range(3)]
    box.append_csv(csv_row(_result(2), "results/s2.json"))  # a redo: its row is there
    batch = Batch(box, set(names), rows_written={"results/s2.json"})
    batch.append_csv(csv_row(_result(0), "results/s0.json"))
    batch.write_json("s0", _result(0))
    batch.append_csv(csv_row(_result(1), "results/s1.json"))  # then its JSON fails
    assert batch.csv_has_row("results/s2.json")
    batch.append_csv(csv_row(_result(2), "results/s2.json"))
    batch.write_json("s2", _result(2))
    assert batch.commit() == ["s0", "s2"]
    assert [r["result"] for r in read_csv(tmp_path / "results.csv")] == \
        ["results/s2.json", "results/s0.json"]
    assert (tmp_path / "results" / ".s1.reserve").exists(), "s1 stays reserved for its retry"


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
