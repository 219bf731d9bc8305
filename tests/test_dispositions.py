"""Dispositions of claimed inputs with a real outbox and work folder, a fake clock."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import re
from pathlib import Path

import pytest
from digitd.dispositions import Dispositions, Ledger, linked_copy
from digitd.jobs import Job, JobQueue, Journal, RetryPolicy
from digitd.outbox import Outbox
from digitd.results import CSV_COLUMNS, csv_row
from digitd.workdir import State, WorkArea
from digitd.writer import Record, Writer

WHEN = "2024-05-01T12:34:56.789Z"
SHA = "ab" * 32
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Counters:
    def __init__(self) -> None:
        self.processed = 0
        self.failed = 0
        self.errors: list[str] = []

    def add(self, *, processed: int = 0, failed: int = 0, error: str | None = None) -> None:
        self.processed += processed
        self.failed += failed
        if error is not None:
            self.errors.append(error)


class QuarantineFailsOnce(Outbox):
    """The move into failed/ fails once with EIO (a fault through the same interface)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.faults = 1

    def quarantine(self, *args, **kwargs):
        if self.faults:
            self.faults -= 1
            raise OSError(errno.EIO, "Input/output error")
        return super().quarantine(*args, **kwargs)


class World:
    def __init__(self, tmp_path: Path, on_success: str = "archive", box: Outbox | None = None):
        self.work = WorkArea(tmp_path / "inbox", instance_id="me")
        self.work.open()
        self.box = box or Outbox(tmp_path / "outbox")
        self.writer = Writer(self.box, durable=True)
        self.clock = Clock()
        self.queue = JobQueue(self.clock)
        self.policy = RetryPolicy(backoff_seconds=1.0, max_attempts=3, max_backoff=60.0)
        self.finished: list[Path] = []
        self.ledger = Ledger(self.finished.append)
        self.counters = Counters()
        self.disp = Dispositions(self.writer, self.queue, self.policy, self.ledger,
                                 self.counters, on_success=on_success,
                                 model_name=lambda: "m1")

    def claim(self, rel: str, data: bytes = b"scan", name: str | None = None) -> Job:
        src = self.work.inbox / rel
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(data)
        path = self.work.claim(src, rel)
        if name is not None:
            name = self.box.claim_name(name)
        return Job(path=path, folder=self.work.folder,
                   state=State(source=rel, name=name, sha256=SHA))

    def commit(self, job: Job, result: dict) -> None:
        assert self.writer.commit([Record(job.state.name, result)]) == [None]

    def ls(self, sub: str) -> list[str]:
        try:
            return sorted(os.listdir(self.box.root / sub))
        except FileNotFoundError:
            return []

    def work_files(self) -> list[str]:
        return sorted(os.listdir(self.work.folder))

    def csv(self) -> list[dict[str, str]]:
        with open(self.box.csv_path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))

    def json(self, rel: str) -> dict:
        return json.loads((self.box.root / rel).read_text(encoding="utf-8"))


def ok(source: str) -> dict:
    return {"source": source, "status": "ok", "number": "7", "digits": [], "confidence": 0.9,
            "model": "m1", "sha256": SHA, "processed_at": WHEN, "elapsed_ms": 4.0,
            "annotated": None, "error": None}


@pytest.fixture
def world(tmp_path):
    w = World(tmp_path)
    yield w
    w.work.close()


def test_finish_ok_archives_the_original(world):
    job = world.claim("sub/a.png", b"A", name="a")
    world.commit(job, ok("sub/a.png"))
    world.disp.finish(job, ok("sub/a.png"))
    assert world.ls("originals") == ["a.png"]
    assert (world.box.root / "originals" / "a.png").read_bytes() == b"A"
    assert world.work_files() == []
    assert world.ls("results") == ["a.json"]
    assert (world.counters.processed, world.counters.failed, world.counters.errors) == (1, 0,
                                                                                      [])
    assert job.finished and world.queue.retrying == 0


def test_finish_ok_with_on_success_delete_deletes_it(tmp_path):
    w = World(tmp_path, on_success="delete")
    try:
        job = w.claim("a.png", name="a")
        w.commit(job, ok("a.png"))
        w.disp.finish(job, ok("a.png"))
        assert w.work_files() == [] and w.ls("originals") == []
        assert w.ls("results") == ["a.json"] and w.counters.processed == 1
    finally:
        w.work.close()


def test_finish_of_a_failed_result_quarantines(world):
    job = world.claim("sub/a.png", b"A", name="a")
    failed = dict(ok("sub/a.png"), status="failed", number=None, confidence=None,
                  error="cannot decode: truncated PNG")
    world.commit(job, failed)
    world.disp.finish(job, failed)
    assert world.ls("failed") == ["a.error.json", "a.png"]
    assert (world.box.root / "failed" / "a.png").read_bytes() == b"A"
    record = world.json("failed/a.error.json")
    assert TIME.fullmatch(record.pop("time"))
    assert record == {"source": "a.png", "reason": "cannot decode: truncated PNG",
                      "attempts": 1, "sha256": SHA, "file": "failed/a.png"}
    assert world.work_files() == []  # the original and the state record
    assert world.ls("originals") == [] and world.ls("results") == ["a.json"]
    assert (world.counters.processed, world.counters.failed) == (0, 1)
    assert world.counters.errors == ["sub/a.png: cannot decode: truncated PNG"]


def test_finish_after_a_restart_reads_the_written_result(world):
    job = world.claim("a.png", name="a")
    world.commit(job, ok("a.png"))
    job.resumed = True
    world.disp.finish(job, None)
    assert world.ls("originals") == ["a.png"] and world.counters.processed == 1


def test_a_move_cut_short_is_finished_by_unlinking_only(world):
    job = world.claim("a.png", b"A", name="a")
    world.commit(job, ok("a.png"))
    os.link(job.path, world.box.folder("originals") / "a.png")  # the crash: linked, not unlinked
    job.resumed = True
    assert linked_copy(job.path, world.box.root / "originals") == \
        world.box.root / "originals" / "a.png"
    world.disp.finish(job, None)
    assert world.ls("originals") == ["a.png"]
    assert world.work_files() == []
    assert linked_copy(world.box.root / "originals" / "a.png", world.box.root / "failed") is None


def test_a_quarantine_cut_short_is_finished_by_unlinking_only(world):
    job = world.claim("a.png", b"A", name="a")
    world.writer.quarantine(Path(os.fspath(job.path)), "a", "bad", 1, source="a.png", sha256=SHA)
    assert world.ls("failed") == ["a.error.json", "a.png"]
    os.link(world.box.root / "failed" / "a.png", job.path)  # as if the unlink never happened
    job.resumed = True
    world.disp.quarantine(job, "bad")
    assert world.ls("failed") == ["a.error.json", "a.png"]
    assert world.work_files() == []


def test_fail_writes_the_failed_result_and_quarantines(world):
    job = world.claim("sub/b.png", b"B")
    world.disp.fail(job, "not an image")
    assert world.ls("results") == ["b.json"]
    result = world.json("results/b.json")
    assert (result["source"], result["status"], result["number"], result["digits"],
            result["confidence"], result["model"], result["sha256"], result["error"],
            result["elapsed_ms"], result["annotated"]) == (
        "sub/b.png", "failed", None, [], None, "m1", SHA, "not an image", 0.0, None)
    assert world.csv() == [csv_row(result, "results/b.json")]
    assert world.ls("failed") == ["b.error.json", "b.png"]
    assert world.json("failed/b.error.json")["reason"] == "not an image"
    assert world.work_files() == []
    assert world.counters.failed == 1


def test_fail_twice_writes_one_json_and_one_row(tmp_path):
    w = World(tmp_path, box=QuarantineFailsOnce(tmp_path / "outbox"))
    try:
        job = w.claim("b.png", b"B")
        w.disp.fail(job, "not an image")  # the result is written, the move fails
        assert w.ls("results") == ["b.json"] and len(w.csv()) == 1
        assert job.row_may_exist and job.scheduled and w.queue.next_due_in() == 1.0
        assert sorted(w.work_files()) == sorted([job.path.name, job.path.name + ".state.json"])
        assert (job.state.phase, job.state.reason, job.state.attempts, job.state.last_error) == (
            "quarantine", "not an image", 1, "input/output error")
        w.clock.now += 1.0
        assert w.queue.take(8) == [job]
        w.disp.fail(job, "not an image")
        assert w.ls("results") == ["b.json"]
        assert [row["result"] for row in w.csv()] == ["results/b.json"]
        assert w.ls("failed") == ["b.error.json", "b.png"]
        assert w.json("failed/b.error.json")["attempts"] == 2
        assert w.work_files() == []
        assert w.counters.failed == 1
        assert w.counters.errors == ["b.png: input/output error", "b.png: not an image"]
    finally:
        w.work.close()


def test_a_fail_redone_after_a_crash_writes_no_second_row(world):
    job = world.claim("b.png", b"B", name="b")
    job.row_may_exist = True
    world.disp.fail(job, "not an image")
    # the same input again, found after a crash (its row and JSON are there)
    again = Job(path=job.path, folder=job.folder, state=State(source="b.png", name="b"),
                resumed=True, row_may_exist=True)
    world.disp.fail(again, "not an image")
    assert world.ls("results") == ["b.json"]
    assert [row["result"] for row in world.csv()] == ["results/b.json"]
    assert [row[c] for row in world.csv() for c in ("source", "status", "error")] == [
        "b.png", "failed", "not an image"]
    assert list(world.csv()[0]) == list(CSV_COLUMNS)


def test_transient_schedules_with_the_policy_delay_and_saves_the_state(world):
    job = world.claim("c.png", b"C")
    world.disp.transient(job, OSError(errno.EIO, "Input/output error"))
    assert job.scheduled and world.queue.retrying == 1
    assert world.queue.next_due_in() == 1.0
    saved = json.loads(job.state_file.read_text())
    assert (saved["attempts"], saved["last_error"], saved["name"]) == (1, "input/output error", None)
    assert job.record and not job.row_may_exist
    assert world.counters.errors == ["c.png: input/output error"]
    world.clock.now += 1.0
    assert world.queue.take(8) == [job]
    world.disp.transient(job, OSError(errno.EIO, "Input/output error"))
    assert world.queue.next_due_in() == 2.0
    assert json.loads(job.state_file.read_text())["attempts"] == 2
    assert world.ls("failed") == [] and (world.counters.processed, world.counters.failed) == (
        0, 0)


def test_transient_after_max_attempts_fails_the_file(world):
    job = world.claim("c.png", b"C")
    for _ in range(3):
        world.disp.transient(job, OSError(errno.EIO, "Input/output error"))
        world.clock.now += 100.0
        world.queue.take(8)
    reason = "gave up after 3 attempts: input/output error"
    assert world.queue.retrying == 0 and not job.scheduled
    assert world.json("results/c.json")["error"] == reason
    assert [row["error"] for row in world.csv()] == [reason]
    record = world.json("failed/c.error.json")
    assert (record["reason"], record["attempts"], record["file"]) == (reason, 4, "failed/c.png")
    assert world.ls("failed") == ["c.error.json", "c.png"]
    assert world.work_files() == []
    assert world.counters.failed == 1 and world.counters.errors[-1] == f"c.png: {reason}"


def test_a_full_outbox_is_waited_for_without_limit_and_never_fails_the_file(world, caplog):
    caplog.set_level(logging.DEBUG)
    job = world.claim("c.png", b"C", name="c")
    for _ in range(12):  # far past max_attempts (3)
        world.disp.transient(job, OSError(errno.ENOSPC, "No space left on device"))
        assert job.scheduled and world.queue.retrying == 1
        assert world.counters.waiting_for_space == 1
        world.clock.now += 100.0
        assert world.queue.take(8) == [job]
    saved = json.loads(job.state_file.read_text())
    assert (saved["attempts"], saved["waits"], saved["last_error"]) == (0, 12, "disk full")
    assert job.row_may_exist
    assert job.redone  # anything may be written already
    assert world.ls("failed") == [] and world.counters.failed == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "outbox full (disk full): 1 file(s) waiting" in \
        warnings[0].getMessage()
    assert world.counters.errors[-1] == "outbox full: disk full"
    world.disp.finish(job, {"status": "ok", "source": "c.png", "number": "1",
                            "confidence": 1.0, "elapsed_ms": 1.0})
    assert world.counters.waiting_for_space == 0 and world.counters.processed == 1
    assert "the outbox has room again" in caplog.text


def test_transient_of_a_named_job_marks_its_row_as_maybe_written(world):
    job = world.claim("d.png", name="d")
    world.disp.transient(job, OSError(errno.EIO, "Input/output error"))
    assert job.row_may_exist


# -- the ledger ----------------------------------------------------------------


def test_the_last_job_of_a_journal_removes_it(world, tmp_path):
    path = tmp_path / "x.batch.json"
    path.write_text("{}")
    journal = Journal(path, pending=2)
    a, b = world.claim("a.png"), world.claim("b.png")
    a.journal = b.journal = journal
    world.ledger.done(a)
    assert path.exists() and journal.pending == 1 and a.journal is None
    world.ledger.done(b)
    assert not path.exists() and journal.pending == 0
    assert world.finished == []


def test_saving_a_state_record_unjournals_the_job(world, tmp_path):
    path = tmp_path / "x.batch.json"
    path.write_text("{}")
    a = world.claim("a.png")
    a.journal = Journal(path, pending=1)
    world.disp.save_state(a)
    assert not path.exists() and a.record and a.state_file.exists()


def test_an_adopted_folder_is_finished_with_once(world, tmp_path):
    folder = tmp_path / "inbox" / ".digitd" / "work" / "dead-1"
    jobs = [Job(path=folder / f"t_{i}.png", folder=folder, state=State(source=f"{i}.png"))
            for i in range(2)]
    world.ledger.expect(folder, 2)
    world.ledger.done(jobs[0])
    assert world.finished == []
    world.ledger.done(jobs[1])
    assert world.finished == [folder]
    world.ledger.done(world.claim("own.png"))
    assert world.finished == [folder]


def test_an_adopted_folder_without_jobs_is_finished_with_at_once(world, tmp_path):
    folder = tmp_path / "dead-2"
    world.ledger.expect(folder, 0)
    assert world.finished == [folder]


def test_a_move_across_file_systems_cut_before_the_unlink_is_not_copied_twice(world):
    """A copy (another inode) of the original is already in originals/ - a cross-
    device move killed between the copy and the unlink: the redo only unlinks."""
    import hashlib

    data = b"the scanned bytes"
    job = world.claim("x.png", data, name="x")
    job.resumed = True
    result = dict(ok("x.png"), sha256=hashlib.sha256(data).hexdigest())
    world.commit(job, result)
    originals = world.box.folder("originals")
    (originals / "x.png").write_bytes(data)  # the copy: same bytes, its own inode
    (originals / "x-1.png").write_bytes(b"another input's bytes")
    world.disp.finish(job, None)
    assert world.ls("originals") == ["x-1.png", "x.png"]
    assert world.work_files() == [] and world.counters.processed == 1
