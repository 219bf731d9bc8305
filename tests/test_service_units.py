"""The service's units alone, without threads, TensorFlow or a subprocess: the job
queue and retry policy, recovery triage of every crash state, model reload, and
the writer's CSV de-duplication."""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest
from digitd.jobs import Job, JobQueue, Permanent, RetryPolicy
from digitd.outbox import Outbox
from digitd.recovery import Phase, folder_jobs, triage
from digitd.reload import CHECK_SECONDS, ModelReloader
from digitd.results import failed_result
from digitd.workdir import State, WorkArea, write_journal
from digitd.writer import Record, Writer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def job(path: Path, **state) -> Job:
    return Job(path=path, folder=path.parent, state=State(source=path.name, **state))


# -- retry policy and queue -----------------------------------------------------------


def test_retry_delays_double_up_to_the_cap_and_give_up_at_the_limit():
    policy = RetryPolicy(backoff_seconds=2.0, max_attempts=5, max_backoff=30.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 10**6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert [policy.gives_up(n) for n in (4, 5, 6)] == [False, True, True]


def test_queue_gives_recovered_jobs_first_then_retries_when_due(tmp_path):
    clock = Clock()
    queue = JobQueue(clock)
    a, b, c, d = (job(tmp_path / f"{x}.png") for x in "abcd")
    queue.schedule(c, 5.0)
    queue.schedule(d, 5.0)  # same due time: in scheduling order
    queue.recover([a, b])
    assert (queue.recovered, queue.retrying, queue.next_due_in()) == (2, 2, 5.0)
    assert queue.take(1) == [a]
    assert queue.take(10) == [b]  # c and d are not due yet
    clock.now += 5.0
    assert queue.next_due_in() == 0.0
    assert queue.take(10) == [c, d]
    assert not c.scheduled and not d.scheduled
    assert (queue.recovered, queue.retrying, queue.next_due_in()) == (0, 0, None)


# -- recovery -------------------------------------------------------------------------


@pytest.fixture
def box(tmp_path) -> Outbox:
    return Outbox(tmp_path / "out")


def test_triage_of_every_crash_state(tmp_path, box):
    work = tmp_path / "work"
    work.mkdir()
    claimed = work / "t1_a.png"
    claimed.write_bytes(b"png")
    assert triage(job(work / "t0_gone.png", name="gone"), box) is Phase.GONE
    assert triage(job(claimed, phase="quarantine", reason="bad"), box) is Phase.QUARANTINE
    assert triage(job(claimed), box) is Phase.FRESH  # no NAME yet
    name = box.claim_name("a")
    assert triage(job(claimed, name=name), box) is Phase.FRESH  # only its reservation
    box.stage_json(name, {"status": "ok"})
    assert triage(job(claimed, name=name), box) is Phase.FRESH  # staged, not published
    box.publish_json(name)
    assert triage(job(claimed, name=name), box) is Phase.WRITTEN
    link = work / "t2_link.png"
    os.symlink("/etc/passwd", link)
    with pytest.raises(Permanent, match=r"^a symbolic link \(to /etc/passwd\); links are not"):
        triage(job(link), box)
    fifo = work / "t3_pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(Permanent) as info:
        triage(job(fifo), box)
    assert info.value.reason == "not a regular file (a named pipe)"


def test_an_adopted_folder_gives_back_its_jobs_and_tidies_the_rest(tmp_path, box):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    work = WorkArea(inbox, "me")
    work.open()
    dead = inbox / ".digitd" / "work" / "dead"
    dead.mkdir()
    for name in ("t1_a.png", "t2_b.png", "t3_c.png"):
        (dead / name).write_bytes(b"png")
    write_journal(dead, {"t1_a.png": State(source="a.png", name=box.claim_name("a")),
                         "t9_gone.png": State(source="gone.png", name=box.claim_name("gone"))})
    State(source="b.png", name=box.claim_name("b"), attempts=2).save(dead / "t2_b.png.state.json")
    jobs = {j.source: j for j in folder_jobs(work, dead, box)}
    assert sorted(jobs) == ["a.png", "b.png", "c.png"]
    a, b, c = jobs["a.png"], jobs["b.png"], jobs["c.png"]
    assert (a.state.name, a.resumed, a.row_may_exist, a.record) == ("a", True, True, False)
    assert a.journal is not None and a.journal.pending == 1
    assert (b.state.name, b.state.attempts, b.record, b.journal) == ("b", 2, True, None)
    assert (c.state.name, c.row_may_exist, c.record, c.journal) == (None, False, False, None)
    # the finished input's reservation is released
    assert not os.path.exists(box.reserve_path("gone"))
    work.close()


# -- model reload ---------------------------------------------------------------------


class Loaded:
    def __init__(self, name: str) -> None:
        self.name = name


def test_a_replaced_model_is_loaded_once_it_stays_put_and_a_bad_one_is_not_retried(tmp_path):
    clock = Clock()
    key = {"k": (1, 1, 1)}
    loads, errors = [], []

    def load():
        loads.append(key["k"])
        if key["k"] == (3, 3, 3):
            raise RuntimeError("corrupt model")
        return Loaded(f"m{key['k'][0]}")

    reloader = ModelReloader(tmp_path / "m.keras", load, clock=clock, key=lambda _p: key["k"],
                             on_error=errors.append)
    assert reloader.poll("m1") is None
    key["k"] = (2, 2, 2)
    clock.now += CHECK_SECONDS
    assert reloader.poll("m1") is None  # changed: wait one check
    clock.now += CHECK_SECONDS / 2
    assert reloader.poll("m1") is None and loads == []  # not checked again so soon
    clock.now += CHECK_SECONDS
    assert reloader.poll("m1").name == "m2"
    key["k"] = (3, 3, 3)
    for _ in range(4):
        clock.now += CHECK_SECONDS
        assert reloader.poll("m2") is None
    assert loads == [(2, 2, 2), (3, 3, 3)]  # the bad file loaded once
    assert errors == ["model: RuntimeError: corrupt model"]


# -- the writer -----------------------------------------------------------------------


def rows(root: Path) -> list[dict[str, str]]:
    with open(root / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def result(source: str) -> dict:
    return failed_result(source, "x", model="m")


def test_the_writer_never_writes_a_row_twice(tmp_path):
    box = Outbox(tmp_path)
    writer = Writer(box, durable=True)
    names = [box.claim_name(s) for s in ("a", "b")]
    assert writer.commit([Record(n, result(f"{n}.png")) for n in names]) == [None, None]
    # a redo of "a" (its row is there) and a new input "c" that says it may have one
    c = box.claim_name("c")
    box.release("a")
    errors = writer.commit([Record("a", result("a.png"), row_may_exist=True),
                            Record(c, result("c.png"), row_may_exist=True)])
    assert errors == [None, None]
    assert [r["result"] for r in rows(tmp_path)] == \
        ["results/a.json", "results/b.json", "results/c.json"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == \
        ["a.json", "b.json", "c.json"]


class FullFor(Outbox):
    def __init__(self, root, full: str) -> None:
        super().__init__(root)
        self.full = full

    def stage_json(self, name, obj, **kwargs):
        if name == self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().stage_json(name, obj, **kwargs)


def test_a_record_that_cannot_be_staged_leaves_out_its_row_only(tmp_path):
    box = FullFor(tmp_path, "b")
    names = [box.claim_name(s) for s in ("a", "b", "c")]
    errors = Writer(box, durable=False).commit([Record(n, result(f"{n}.png")) for n in names],
                                               sync_paths=[str(tmp_path / "no-journal")])
    assert [e is None for e in errors] == [True, False, True]
    assert errors[1].errno == errno.ENOSPC
    assert [r["source"] for r in rows(tmp_path)] == ["a.png", "c.png"]
    assert json.loads((tmp_path / "results" / "c.json").read_text())["source"] == "c.png"
    assert os.path.exists(box.reserve_path("b"))  # kept for the retry
