"""Worker processes (reading, segmenting, drawing) never outlive the process that started them, even after kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

SCRIPT = """
import os, sys, time
from digitd.pool import Pool
pool = Pool(2)
pids = sorted({pool.submit(os.getpid).result() for _ in range(20)})
print(" ".join(map(str, pids)), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_workers_end_when_their_parent_is_killed():
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert len(workers) >= 1 and all(alive(p) for p in workers), line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if alive(p)], "picture workers outlived their parent"
    finally:
        proc.kill()


def test_close_without_wait_kills_busy_workers_at_once():
    """A stop that cannot wait for a stuck task: close(wait=False) ends the workers
    now, and the task's caller learns it from its future."""
    from concurrent.futures.process import BrokenProcessPool

    from digitd.pool import Pool

    pool = Pool(2)
    try:
        busy = pool.submit(time.sleep, 600)
        workers = pool.pids()
        assert len(workers) == 2 and all(alive(p) for p in workers)
        started = time.monotonic()
        pool.close(wait=False)
        closed = time.monotonic() - started
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if alive(p)]
        assert closed < 5
        with pytest.raises(BrokenProcessPool):
            busy.result(timeout=10)
    finally:
        pool.close(wait=False)


def test_wait_started_waits_for_the_workers_imports(tmp_path):
    """READY waits for the workers: wait_started is False while their start-up
    (the initializer) is under way, True once it is done; a pool without workers
    is started at once."""
    from digitd.pool import Pool
    from worker_faults import start_when

    gate = tmp_path / "go"
    pool = Pool(2, initializer=start_when, initargs=(str(gate),))
    try:
        assert pool.wait_started(0.5) is False
        gate.touch()
        assert pool.wait_started(60) is True
        assert pool.submit(os.getpid).result(timeout=10) in pool.pids()
    finally:
        pool.close(wait=False)
    assert Pool(0).wait_started(0) is True
