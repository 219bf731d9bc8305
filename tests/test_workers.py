"""digitd.workers: reading and segmenting in worker processes gives exactly what the
same work gives in this process, and a worker that dies loses no input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import draw_digits
from worker_faults import dies_on_poison

from digitd.pipeline import Item, prepare
from digitd.workers import CRASH_REASON, Analysis, Workers, analyse_file, pid

OPTIONS = {"max_bytes": 1 << 20, "max_pixels": 10**7, "max_digits": 12}


def inputs(folder: Path, n: int = 12) -> list[Path]:
    """n real digit images (some numbers, one blank page) and four bad inputs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        text = str(i % 10) if i % 4 else f"{i}{i % 7}"
        path = folder / f"img{i:02d}.png"
        cv2.imwrite(str(path), draw_digits(text, height=60 + 10 * i))
        paths.append(path)
    blank = folder / "blank.png"
    cv2.imwrite(str(blank), np.full((50, 70), 255, np.uint8))
    empty = folder / "empty.png"
    empty.write_bytes(b"")
    text = folder / "text.png"
    text.write_text("not an image at all")
    truncated = folder / "cut.png"
    truncated.write_bytes(paths[0].read_bytes()[:60])
    return [*paths, blank, empty, text, truncated, folder / "missing.png"]


def same(a: Analysis, b: Analysis) -> None:
    assert (a.sha256, a.info, a.polarity, a.reason) == (b.sha256, b.info, b.polarity, b.reason)
    assert (a.error is None) == (b.error is None)
    if a.error is not None:
        assert (type(a.error), a.error.errno) == (type(b.error), b.error.errno)
    assert [m.box for m in a.marks] == [m.box for m in b.marks]
    for ma, mb in zip(a.marks, b.marks, strict=True):
        np.testing.assert_array_equal(ma.pixels, mb.pixels)


def test_workers_give_exactly_what_this_process_gives(tmp_path):
    paths = inputs(tmp_path)
    here = [analyse_file(p, **OPTIONS) for p in paths]
    with Workers(2) as workers:
        there = workers.analyse(paths, **OPTIONS).result()
    assert len(there) == len(paths)
    for a, b in zip(there, here, strict=True):
        same(a, b)
    # what the inputs are, so the comparison above is not between two empty lists
    assert [len(a.marks) for a in here[:4]] == [2, 1, 1, 1]
    assert here[12].marks == () and here[12].reason is None and here[12].info is not None
    assert here[13].reason == "empty file (0 bytes)"
    assert here[14].reason is not None and here[15].reason is not None
    assert isinstance(here[16].error, FileNotFoundError)


def test_a_worker_killed_by_a_file_loses_no_other_file(tmp_path, caplog):
    paths = inputs(tmp_path / "in", n=8)[:8]
    poison = tmp_path / "in" / "poison.png"
    poison.write_bytes(paths[0].read_bytes())
    batch = [*paths[:4], poison, *paths[4:]]
    caplog.set_level(logging.WARNING, logger="digitd.workers")
    with Workers(2, analyse=dies_on_poison) as workers:
        before = {workers._pool.submit(pid).result() for _ in range(4)}
        got = workers.analyse(batch, **OPTIONS).result()
        assert len(got) == 9
        assert got[4].reason == CRASH_REASON and got[4].marks == ()
        for a, path in zip(got[:4] + got[5:], paths, strict=True):
            same(a, analyse_file(path, **OPTIONS))
        # the workers were replaced and still work
        again = workers.analyse(paths[:2], **OPTIONS).result()
        same(again[1], analyse_file(paths[1], **OPTIONS))
        after = {workers._pool.submit(pid).result() for _ in range(4)}
    assert not before & after
    assert any("a worker process died" in r.message for r in caplog.records)
    assert any(CRASH_REASON in r.message and "poison.png" in r.message for r in caplog.records)


def test_no_processes_means_the_work_is_done_here(tmp_path):
    paths = inputs(tmp_path, n=3)
    with Workers(0) as workers:
        assert workers._pool is None
        got = workers.analyse(paths, **OPTIONS).result()
    for a, p in zip(got, paths, strict=True):
        same(a, analyse_file(p, **OPTIONS))


def test_the_worker_path_reads_what_the_inline_path_reads(tmp_path, small_model):
    """prepare() with workers (recognizer.classify on the digits found there) and
    without (recognizer.read on scans decoded here): the same readings, through
    the real model."""
    from digitd.recognize import Recognizer

    rec = Recognizer(small_model)
    items = [Item.of(p) for p in inputs(tmp_path)]
    inline = prepare(items, rec, max_bytes=1 << 20, max_pixels=10**7)
    with Workers(2) as workers:
        pooled = prepare(items, rec, analysers=workers, max_bytes=1 << 20, max_pixels=10**7)
    for a, b in zip(inline.work, pooled.work, strict=True):
        assert (a.sha256, a.reason) == (b.sha256, b.reason)
        assert (a.reading is None) == (b.reading is None)
        if a.reading is not None:
            assert (a.reading.status, a.reading.number, a.reading.polarity) == \
                (b.reading.status, b.reading.number, b.reading.polarity)
            assert a.reading.confidence == pytest.approx(b.reading.confidence, abs=1e-6)
            assert (a.scan.width, a.scan.height, a.scan.mode) == \
                (b.scan.width, b.scan.height, b.scan.mode)
    assert sum(w.reading is not None and w.reading.status != "blank" for w in pooled.work) == 12


def test_workers_end_when_closed(tmp_path):
    workers = Workers(2)
    pids = {workers._pool.submit(pid).result() for _ in range(6)}
    workers.close()
    for p in pids:
        with pytest.raises(ProcessLookupError):
            deadline_kill_check(p)


def deadline_kill_check(p: int, seconds: float = 10.0) -> None:
    """Raise ProcessLookupError once process p is gone (within ``seconds``)."""
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        os.kill(p, 0)  # raises ProcessLookupError when it is gone
        try:
            os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
