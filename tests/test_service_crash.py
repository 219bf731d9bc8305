"""Exactly once under ``kill -9`` and with several instances on one inbox: the real
``digitd run`` as subprocesses, checked file by file."""

from __future__ import annotations

import os
import random
import time

import pytest
from service_support import (
    Digitd,
    assert_exactly_once,
    csv_rows,
    done_count,
    finish_all,
    inbox_files,
    make_setup,
    result_files,
    sha,
    unique_png,
    wait_until,
    work_files,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("DIGITD_TEST_SEED", "0")) or random.randrange(1, 10**6)


def _inputs(setup, n_good: int, n_bad: int, tag: str):
    good, bad = {}, {}
    for i in range(n_good):
        name = f"{tag}-{i:03d}.png"
        data = unique_png(i % 10, f"{tag}{i}")
        (setup.inbox / name).write_bytes(data)
        good[name] = sha(data)
    for i in range(n_bad):
        name = f"{tag}-bad-{i:02d}.png"
        data = unique_png(i % 10, f"{tag}bad{i}")[:-40]  # truncated: a permanent failure
        (setup.inbox / name).write_bytes(data)
        bad[name] = sha(data)
    return good, bad


def _csv_size(outbox) -> int:
    try:
        return os.stat(outbox / "results.csv").st_size
    except FileNotFoundError:
        return 0


def _json_count(outbox) -> int:
    try:
        return len(os.listdir(outbox / "results"))
    except FileNotFoundError:
        return 0


def test_kill_9_at_random_moments_each_input_exactly_once(tmp_path, small_model, digitd_exe):
    """300 inputs (290 good, 10 truncated); the service is killed with SIGKILL at a
    random moment five times, restarted each time, then left to finish."""
    rng = random.Random(SEED)
    print(f"seed {SEED} (set DIGITD_TEST_SEED to repeat)")
    setup = make_setup(tmp_path, small_model, batch_max=16, batch_wait_ms=10,
                       retry_backoff_seconds=0.1)
    good, bad = _inputs(setup, 290, 10, "k")
    total = len(good) + len(bad)
    log_path = tmp_path / "digitd.log"
    kills, moments = [], []
    for _round in range(6):
        svc = Digitd(exe=digitd_exe, config=setup.config, log_path=log_path).start()
        try:
            before = done_count(setup.outbox)
            if before >= total:
                break
            # some progress first (so each round crosses files), then a random moment:
            # after a random number of further inputs plus a few ms, or the instant
            # results.csv or results/ grows (a kill between an input's CSV row, its
            # JSON and the move of its original). Measured in inputs, not seconds, so
            # that a faster service still leaves work for every round.
            wait_until(lambda: done_count(setup.outbox) > before or not svc.alive(), 60,
                       "progress", interval=0.01, on_fail=svc.tail)
            how = rng.choice(["delay", "csv", "json"])
            if how == "delay":
                more = done_count(setup.outbox) + rng.randint(0, 15)
                wait_until(lambda: done_count(setup.outbox) >= min(more, total)
                           or not svc.alive(), 60, "more progress", interval=0.005)
                time.sleep(rng.uniform(0.0, 0.02))
            else:
                probe = _csv_size if how == "csv" else _json_count
                start = probe(setup.outbox)
                deadline = time.monotonic() + 10
                while probe(setup.outbox) == start and time.monotonic() < deadline:
                    pass
            moments.append(how)
        finally:
            svc.kill()
        kills.append(done_count(setup.outbox))
    print(f"killed ({', '.join(moments)}) with {kills} of {total} done")
    assert len([k for k in kills if k < total]) >= 4, "the kills did not fall during the run"

    finish_all(digitd_exe, setup, log_path, total)
    assert inbox_files(setup.inbox) == []
    assert work_files(setup.inbox) == []
    assert_exactly_once(setup.outbox, good, bad)
    # for the record: how many inputs were redone after their CSV row was written
    rows = {r["result"]: r["processed_at"] for r in csv_rows(setup.outbox)}
    redone = sum(1 for r in result_files(setup.outbox)
                 if rows[f"results/{r['_file']}"] != r["processed_at"])
    print(f"{redone} input(s) redone after a kill between their CSV row and their JSON")


def test_three_instances_on_one_inbox_600_files(tmp_path, small_model, digitd_exe):
    setup = make_setup(tmp_path, small_model, annotate=False, batch_max=32)
    half = 300
    good, _ = _inputs(setup, half, 0, "before")  # a backlog all three race for
    instances = [Digitd(exe=digitd_exe, config=setup.config,
                        log_path=tmp_path / f"digitd-{i}.log").start() for i in range(3)]
    try:
        for svc in instances:
            svc.wait_ready(timeout=120)
        for i in range(half):  # and files dropped while all three run
            name = f"during-{i:03d}.png"
            data = unique_png(i % 10, f"during{i}")
            (setup.inbox / name).write_bytes(data)
            good[name] = sha(data)
        wait_until(lambda: done_count(setup.outbox) >= 2 * half, 240, "600 inputs finished",
                   interval=0.5, on_fail=lambda: "\n".join(s.tail(10) for s in instances))
        assert all(svc.alive() for svc in instances)
        for svc in instances:
            assert svc.terminate() == 0
    finally:
        for svc in instances:
            svc.kill()
    assert inbox_files(setup.inbox) == [] and work_files(setup.inbox) == []
    assert_exactly_once(setup.outbox, good, {})
    per_instance = [svc.log().count(".png -> ") for svc in instances]
    assert sum(per_instance) == 2 * half, per_instance
    assert sum(1 for n in per_instance if n > 0) >= 2, f"work was not shared: {per_instance}"
