"""Exactly once under ``kill -9`` for documents: the real ``digitd run`` killed at
random moments while it reads multi-page TIFFs, each page a number; after the
last start every input has one JSON and every number of it exactly one CSV row
(a row is known by its result, page and index), none more.

Runs once ``imageio.pages`` reads every page of a TIFF (the decoding branch).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter

import cv2
import pytest
from conftest import draw_digits
from service_support import (
    Digitd,
    csv_rows,
    done_count,
    finish_all,
    inbox_files,
    make_setup,
    result_files,
    sha,
    wait_until,
    work_files,
)

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("DIGITD_TEST_SEED", "0")) or random.randrange(1, 10**6)


def document(i: int) -> bytes:
    """A TIFF of 1 to 3 pages, page k showing a number; unique bytes per ``i``."""
    images = []
    for k in range(1 + i % 3):
        img = draw_digits(f"{(i + k) % 10}{k}", height=40)
        img[0, 0] = i % 251  # every document its own bytes
        images.append(img)
    ok, buf = cv2.imencodemulti(".tiff", images)
    assert ok
    return buf.tobytes()


def test_kill_9_while_reading_documents_each_number_one_row(tmp_path, small_model, digitd_exe):
    from digitd.imageio import pages

    if len(list(pages(document(1), 10**8))) < 2:
        pytest.skip("imageio.pages reads page 1 of a TIFF only (the decoding branch adds the rest)")
    rng = random.Random(SEED)
    print(f"seed {SEED} (set DIGITD_TEST_SEED to repeat)")
    setup = make_setup(tmp_path, small_model, batch_max=8, batch_wait_ms=10,
                       retry_backoff_seconds=0.1)
    inputs = {}
    for i in range(90):
        data = document(i)
        (setup.inbox / f"doc-{i:03d}.tiff").write_bytes(data)
        inputs[f"doc-{i:03d}.tiff"] = sha(data)
    total = len(inputs)
    log_path = tmp_path / "digitd.log"
    kills = []
    for _round in range(5):
        svc = Digitd(exe=digitd_exe, config=setup.config, log_path=log_path).start()
        try:
            before = done_count(setup.outbox)
            if before >= total:
                break
            wait_until(lambda: done_count(setup.outbox) > before or not svc.alive(), 60,
                       "progress", interval=0.01, on_fail=svc.tail)
            more = done_count(setup.outbox) + rng.randint(0, 10)
            wait_until(lambda: done_count(setup.outbox) >= min(more, total) or not svc.alive(),
                       60, "more progress", interval=0.005)
            time.sleep(rng.uniform(0.0, 0.02))
        finally:
            svc.kill()
        kills.append(done_count(setup.outbox))
    print(f"killed with {kills} of {total} done")
    assert len([k for k in kills if k < total]) >= 3, "the kills did not fall during the run"

    finish_all(digitd_exe, setup, log_path, total)
    assert inbox_files(setup.inbox) == [] and work_files(setup.inbox) == []
    results = result_files(setup.outbox)
    assert Counter(r["sha256"] for r in results) == Counter(inputs.values())
    rows = Counter((r["result"], r["page"], r["index"]) for r in csv_rows(setup.outbox))
    expected = Counter()
    for r in results:
        assert r["status"] != "failed", r
        assert len(r["pages"]) == 1 + int(r["source"][4:7]) % 3
        keys = [(str(p["page"]), str(k)) for p in r["pages"]
                for k, n in enumerate(p["numbers"], 1) if not n["printed"] and n["number"]]
        for page, index in keys or [("", "")]:
            expected[(f"results/{r['_file']}", page, index)] += 1
    assert rows == expected
    assert set(rows.values()) == {1}
    assert sum(rows.values()) == sum(len(r["pages"]) for r in results)  # a number a page
    def pictures(r):
        stem = r["_file"][:-5]
        if len(r["pages"]) == 1:
            return [f"{stem}.png"]
        return [f"{stem}.p{p['page']}.png" for p in r["pages"]]

    names = sorted(p.name for p in (setup.outbox / "annotated").iterdir())
    assert names == sorted(n for r in results for n in pictures(r))
    assert [r["annotated"] for r in results] == [f"annotated/{pictures(r)[0]}" for r in results]
