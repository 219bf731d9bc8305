"""1,000 files through the real ``digitd run``: a backlog present before start,
files dropped while it runs, and files renamed in - each exactly once."""

from __future__ import annotations

import os
import threading

import pytest
from service_support import (
    Digitd,
    assert_exactly_once,
    done_count,
    inbox_files,
    make_setup,
    sha,
    unique_png,
    wait_until,
    work_files,
)

pytestmark = pytest.mark.slow


def test_backlog_plus_running_plus_renamed_in_1000_files(tmp_path, small_model, digitd_exe):
    setup = make_setup(tmp_path, small_model, annotate=False, batch_max=64, rescan_seconds=3.0)
    good: dict[str, str] = {}

    def drop(name: str, data: bytes, via: str | None = None) -> None:
        if via is None:
            (setup.inbox / name).write_bytes(data)
        else:  # written elsewhere (or under a hidden name), then renamed in
            tmp = via / name if via != setup.inbox else setup.inbox / f".{name}.tmp"
            tmp.write_bytes(data)
            os.rename(tmp, setup.inbox / name)
        good[name] = sha(data)

    for i in range(500):  # the backlog
        drop(f"backlog-{i:03d}.png", unique_png(i % 10, f"backlog{i}"))
    svc = Digitd(exe=digitd_exe, config=setup.config, log_path=tmp_path / "digitd.log").start()
    try:
        svc.wait_ready()
        staging = tmp_path / "staging"
        staging.mkdir()

        def writer(kind: str, start: int, n: int) -> None:
            for i in range(start, start + n):
                data = unique_png(i % 10, f"{kind}{i}")
                if kind == "live":
                    drop(f"live-{i:03d}.png", data)
                elif kind == "moved":
                    drop(f"moved-{i:03d}.png", data, via=staging)
                else:
                    drop(f"renamed-{i:03d}.png", data, via=setup.inbox)

        threads = [threading.Thread(target=writer, args=("live", 0, 300)),
                   threading.Thread(target=writer, args=("moved", 0, 100)),
                   threading.Thread(target=writer, args=("renamed", 0, 100))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(good) == 1000
        wait_until(lambda: done_count(setup.outbox) >= 1000, 240, "1,000 inputs finished",
                   interval=0.5, on_fail=svc.tail)
        assert svc.alive()
        assert svc.terminate() == 0
    finally:
        svc.kill()
    assert inbox_files(setup.inbox) == []
    assert work_files(setup.inbox) == []
    assert_exactly_once(setup.outbox, good, {})
    assert "Traceback" not in svc.log()
