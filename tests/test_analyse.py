"""The one reader (digitd.analyse) on the generic pool (digitd.pool): in worker
processes it gives exactly what it gives in this process, and a worker that dies
loses no input."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import draw_digits
from digitd.analyse import CRASH_REASON, Analysis, analyse, analyse_all
from digitd.pool import Pool
from worker_faults import dies_on_poison

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


def marks(a: Analysis) -> list:
    """Every mark of every number of every page, in order."""
    return [m for p in a.pages if p.found is not None for n in p.found.numbers for m in n.marks]


def same(a: Analysis, b: Analysis) -> None:
    assert (a.sha256, a.info, a.reason) == (b.sha256, b.info, b.reason)
    assert [(p.number, p.info, p.dpi, p.reason) for p in a.pages] == \
        [(p.number, p.info, p.dpi, p.reason) for p in b.pages]
    assert [p.found.polarity for p in a.pages] == [p.found.polarity for p in b.pages]
    assert (a.error is None) == (b.error is None)
    if a.error is not None:
        assert (type(a.error), a.error.errno) == (type(b.error), b.error.errno)
    assert [m.box for m in marks(a)] == [m.box for m in marks(b)]
    for ma, mb in zip(marks(a), marks(b), strict=True):
        np.testing.assert_array_equal(ma.pixels, mb.pixels)


def test_workers_give_exactly_what_this_process_gives(tmp_path):
    paths = inputs(tmp_path)
    here = [analyse(p, **OPTIONS) for p in paths]
    with Pool(2) as pool:
        there = analyse_all(pool, paths, **OPTIONS).result()
    assert len(there) == len(paths)
    for a, b in zip(there, here, strict=True):
        same(a, b)
    # what the inputs are, so the comparison above is not between two empty lists
    assert [len(marks(a)) for a in here[:4]] == [2, 1, 1, 1]
    assert [len(a.pages) for a in here[:13]] == [1] * 13
    blank = here[12].pages[0]
    assert blank.found.numbers == () and here[12].reason is None and blank.info is not None
    assert here[13].reason == "empty file (0 bytes)"
    assert here[14].reason is not None and here[15].reason is not None
    assert isinstance(here[16].error, FileNotFoundError)


def test_a_worker_killed_by_a_file_loses_no_other_file(tmp_path, caplog):
    paths = inputs(tmp_path / "in", n=8)[:8]
    poison = tmp_path / "in" / "poison.png"
    poison.write_bytes(paths[0].read_bytes())
    batch = [*paths[:4], poison, *paths[4:]]
    caplog.set_level(logging.WARNING, logger="digitd.pool")
    with Pool(2) as pool:
        before = set(pool.pids())
        got = analyse_all(pool, batch, analyse=dies_on_poison, **OPTIONS).result()
        assert len(got) == 9
        assert got[4].reason == CRASH_REASON and got[4].pages == ()
        for a, path in zip(got[:4] + got[5:], paths, strict=True):
            same(a, analyse(path, **OPTIONS))
        # the workers were replaced and still work
        again = analyse_all(pool, paths[:2], **OPTIONS).result()
        same(again[1], analyse(paths[1], **OPTIONS))
        after = set(pool.pids())
    assert before and after and not before & after
    assert any("a worker process died" in r.message for r in caplog.records)


def test_no_processes_means_the_same_function_here(tmp_path):
    paths = inputs(tmp_path, n=3)
    with Pool(0) as pool:
        assert pool.pids() == []
        got = analyse_all(pool, paths, **OPTIONS).result()
    for a, p in zip(got, paths, strict=True):
        same(a, analyse(p, **OPTIONS))


def test_bytes_are_read_as_the_file_would_be(tmp_path):
    (path,) = inputs(tmp_path, n=1)[:1]
    same(analyse(path.read_bytes(), **OPTIONS), analyse(path, **OPTIONS))


def test_a_segmentation_bug_and_out_of_memory_fail_that_input_only(tmp_path, monkeypatch):
    import digitd.analyse as reader

    (path,) = inputs(tmp_path, n=1)[:1]

    def raises(exc):
        def find(*_args, **_kwargs):
            raise exc
        return find

    monkeypatch.setattr(reader, "find_numbers", raises(ValueError("odd shape")))
    assert analyse(path, **OPTIONS).reason == "recognition failed: ValueError: odd shape"
    monkeypatch.setattr(reader, "find_numbers", raises(MemoryError()))
    assert analyse(path, **OPTIONS).reason == "image too large to process (out of memory)"


def test_workers_end_when_closed(tmp_path):
    pool = Pool(2)
    pids = set(pool.pids())
    assert len(pids) == 2
    pool.close()
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


def test_a_page_that_breaks_the_reader_fails_alone_and_a_document_error_fails_all(
        tmp_path, monkeypatch):
    """Pages come one by one (imageio.pages): a bug on one page fails that page;
    the document itself failing part-way (too many pages, its time limit) fails
    the input. Three real decoded pages stand in for a document's."""
    import digitd.analyse as reader
    from digitd.imageio import InputError, Page, decode
    from digitd.page import find_numbers

    texts = ["12", "345", "6"]
    scans = [decode(cv2.imencode(".png", draw_digits(t, height=60))[1].tobytes(), 10**7)
             for t in texts]

    def three_pages(data, max_pixels, **_options):
        for n, scan in enumerate(scans, 1):
            yield Page(number=n, scan=scan, dpi=150.0)

    def breaks_on_wide(scan, max_digits=12):
        if scan.width > 100:
            raise ValueError("odd page")
        return find_numbers(scan, max_digits)

    monkeypatch.setattr(reader, "pages", three_pages)
    monkeypatch.setattr(reader, "find_numbers", breaks_on_wide)
    a = analyse(b"a document", **OPTIONS)
    assert a.reason is None and a.info == reader.ImageInfo(scans[0].width, scans[0].height,
                                                           scans[0].mode)
    assert [(p.number, p.dpi, p.reason) for p in a.pages] == [
        (1, 150.0, None), (2, 150.0, "recognition failed: ValueError: odd page"), (3, 150.0, None)]
    assert [len(p.found.numbers[0].marks) for p in (a.pages[0], a.pages[2])] == [2, 1]
    assert a.pages[1].found is None and a.pages[1].info is None

    def too_long(data, max_pixels, **_options):
        yield Page(number=1, scan=scans[0])
        raise InputError("too many pages: more than 1 (max_pages)")

    monkeypatch.setattr(reader, "pages", too_long)
    a = analyse(b"a document", **OPTIONS)
    assert (a.reason, a.pages) == ("too many pages: more than 1 (max_pages)", ())


def test_the_document_options_reach_the_pages(tmp_path, monkeypatch):
    import digitd.analyse as reader

    seen = []

    def record(data, max_pixels, **options):
        seen.append((max_pixels, options))
        return iter(())

    monkeypatch.setattr(reader, "pages", record)
    a = analyse(b"x", **OPTIONS, dpi=300.0, max_pages=7, seconds=9.5)
    assert seen == [(10**7, {"dpi": 300.0, "max_pages": 7, "seconds": 9.5})]
    assert a.reason == "no pages"
