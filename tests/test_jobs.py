"""Jobs, the retry policy and the job queue, with a fake clock (no threads)."""

from __future__ import annotations

from pathlib import Path

import pytest
from digitd.jobs import Job, JobQueue, RetryPolicy
from digitd.workdir import State


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job(name: str) -> Job:
    return Job(path=Path("/work") / name, folder=Path("/work"), state=State(source=name))


def names(jobs: list[Job]) -> list[str]:
    return [j.source for j in jobs]


def test_delay_doubles_from_the_backoff_and_is_capped():
    policy = RetryPolicy(backoff_seconds=1.5, max_attempts=5, max_backoff=20.0)
    assert [policy.delay(n) for n in range(1, 7)] == [1.5, 3.0, 6.0, 12.0, 20.0, 20.0]


def test_delay_of_a_huge_attempt_count_is_the_cap():
    policy = RetryPolicy(backoff_seconds=2.0, max_attempts=3, max_backoff=300.0)
    assert policy.delay(10**9) == 300.0
    assert RetryPolicy(backoff_seconds=2.0, max_attempts=3).delay(5000) == 300.0


def test_gives_up_at_max_attempts():
    policy = RetryPolicy(backoff_seconds=1.0, max_attempts=3)
    assert [policy.gives_up(n) for n in range(5)] == [False, False, False, True, True]


def test_redone_after_a_crash_or_a_failed_attempt():
    fresh, crashed, retried = job("a"), job("b"), job("c")
    crashed.resumed = True
    retried.state.attempts = 1
    assert (fresh.redone, crashed.redone, retried.redone) == (False, True, True)
    assert crashed.state_file == Path("/work/b.state.json")


def test_recovered_jobs_come_first_and_in_order():
    clock = Clock()
    queue = JobQueue(clock)
    queue.schedule(job("retry"), 0.0)
    queue.recover([job("r1"), job("r2")])
    queue.recover([job("r3")])
    assert (queue.recovered, queue.retrying) == (3, 1)
    assert names(queue.take(10)) == ["r1", "r2", "r3", "retry"]
    assert (queue.recovered, queue.retrying) == (0, 0)
    assert queue.take(10) == []


def test_take_respects_the_limit():
    queue = JobQueue(Clock())
    queue.recover([job(f"r{i}") for i in range(3)])
    queue.schedule(job("x"), 0.0)
    queue.schedule(job("y"), 0.0)
    assert names(queue.take(2)) == ["r0", "r1"]
    assert names(queue.take(2)) == ["r2", "x"]
    assert (queue.recovered, queue.retrying) == (0, 1)
    assert names(queue.take(2)) == ["y"]
    assert queue.take(0) == []


def test_retries_only_when_due_in_due_order_ties_by_scheduling_order():
    clock = Clock()
    queue = JobQueue(clock)
    late, early, tie1, tie2 = job("late"), job("early"), job("tie1"), job("tie2")
    queue.schedule(late, 10.0)
    queue.schedule(tie1, 5.0)
    queue.schedule(early, 2.0)
    queue.schedule(tie2, 5.0)
    assert all(j.scheduled for j in (late, early, tie1, tie2))
    assert queue.take(10) == []
    clock.now += 1.999
    assert queue.take(10) == []
    clock.now += 0.001
    assert names(queue.take(10)) == ["early"]
    assert early.scheduled is False and tie1.scheduled is True
    clock.now += 3.0
    assert names(queue.take(10)) == ["tie1", "tie2"]
    assert (tie1.scheduled, tie2.scheduled, late.scheduled) == (False, False, True)
    assert queue.retrying == 1
    clock.now += 100.0
    assert names(queue.take(10)) == ["late"]
    assert late.scheduled is False


def test_next_due_in():
    clock = Clock()
    queue = JobQueue(clock)
    assert queue.next_due_in() is None
    queue.schedule(job("a"), 7.5)
    queue.schedule(job("b"), 3.0)
    assert queue.next_due_in() == pytest.approx(3.0)
    clock.now += 1.0
    assert queue.next_due_in() == pytest.approx(2.0)
    clock.now += 10.0
    assert queue.next_due_in() == 0.0
    assert names(queue.take(1)) == ["b"]
    assert queue.next_due_in() == 0.0
    queue.take(1)
    assert queue.next_due_in() is None


def test_recovered_jobs_do_not_count_as_due():
    queue = JobQueue(Clock())
    queue.recover([job("r")])
    assert queue.next_due_in() is None
    assert (queue.recovered, queue.retrying) == (1, 0)
