"""Power cuts: the outbox (and, in the second case, the inbox too) on crashfs, the
FUSE file system that forgets all that was not fsynced. The real service is
killed mid-burst and what was not durable dropped, three times; at each cut
every original in originals/ has its JSON and CSV row, no row is torn and no
input is lost; after the last restart each input is there exactly once."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from digitd.results import CSV_COLUMNS
from service_support import (
    Digitd,
    assert_exactly_once,
    done_count,
    finish_all,
    make_setup,
    sha,
    unique_png,
    wait_until,
    work_files,
)

pytestmark = pytest.mark.slow

N = 150
CUTS = 3


def fsync_path(path, folder: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if folder else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_folder(path: Path) -> Path:
    path.mkdir()
    fsync_path(path.parent, folder=True)
    return path


def shas_in(folder: Path) -> Counter:
    out: Counter = Counter()
    if folder.is_dir():
        for p in folder.rglob("*"):
            if p.is_file() and not p.is_symlink() and not p.name.endswith(".json") \
                    and not p.name.startswith(".") and not p.name.endswith(".lock"):
                out[sha(p.read_bytes())] += 1
    return out


def check_after_cut(setup, inputs: dict[str, str]) -> dict[str, int]:
    """The state a power cut left, before any restart."""
    out = setup.outbox
    rows, torn = [], 0
    csv_path = out / "results.csv"
    if csv_path.exists():
        data = csv_path.read_bytes()
        assert data == b"" or data.endswith(b"\n"), "results.csv ends inside a row"
        parsed = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        torn = sum(1 for r in parsed if len(r) != len(CSV_COLUMNS))
        rows = parsed[1:]
    assert torn == 0, f"{torn} torn rows"
    row_results = Counter(r[7] for r in rows)
    results = {}
    folder = out / "results"
    if folder.is_dir():
        for p in folder.glob("*.json"):
            results[p.name] = json.loads(p.read_bytes())  # a visible JSON is complete
    by_sha = {r["sha256"]: name for name, r in results.items()}
    originals = out / "originals"
    archived = 0
    if originals.is_dir():
        for p in originals.iterdir():
            if p.name.startswith("."):
                continue
            digest = sha(p.read_bytes())
            assert digest in inputs.values(), f"originals/{p.name}: not an input's bytes (empty?)"
            name = by_sha.get(digest)
            assert name is not None, f"originals/{p.name} has no result JSON"
            assert row_results[f"results/{name}"] >= 1, f"originals/{p.name} has no CSV row"
            archived += 1
    # no input lost: each is in the inbox, claimed in a work folder, or archived
    found = shas_in(setup.inbox) + shas_in(originals)
    lost = [n for n, d in inputs.items() if found[d] == 0]
    assert lost == [], f"{len(lost)} lost at the cut: {lost[:5]}"
    doubled = [n for n, d in inputs.items() if shas_in(originals)[d] > 1]
    assert doubled == []
    return {"archived": archived, "results": len(results), "rows": len(rows)}


def power_cuts(tmp_path, setup, digitd_exe, crashfs, inputs) -> list[dict]:
    log_path = tmp_path / "digitd.log"
    cuts = []
    for cut in range(CUTS):
        svc = Digitd(exe=digitd_exe, config=setup.config, log_path=log_path).start()
        try:
            svc.wait_ready()
            before = done_count(setup.outbox)
            target = before + max(5, (N - before) // (CUTS + 1 - cut))
            wait_until(lambda: done_count(setup.outbox) >= target or not work_files(
                setup.inbox) and done_count(setup.outbox) >= N, 120, "progress",
                interval=0.01, on_fail=svc.tail)
        finally:
            svc.kill()  # the cut: nothing more is written ...
        dropped = crashfs.drop()  # ... and what was not durable is gone
        state = check_after_cut(setup, inputs)
        cuts.append({"done before": target, **state, "dropped": dropped})
    finish_all(digitd_exe, setup, log_path, N, timeout=180)
    return cuts


def write_inputs(inbox: Path, durable: bool) -> dict[str, str]:
    inputs = {}
    for i in range(N):
        name = f"cut-{i:03d}.png"
        data = unique_png(i % 10, f"cut{i}")
        with open(inbox / name, "wb") as f:
            f.write(data)
            if durable:  # a careful writer: the bytes, then (below) the name
                f.flush()
                os.fsync(f.fileno())
        inputs[name] = sha(data)
    if durable:
        fsync_path(inbox, folder=True)
    return inputs


@pytest.mark.parametrize("batch_max", [16, 1])
def test_power_cuts_with_the_outbox_on_crashfs(tmp_path, small_model, digitd_exe, crashfs,
                                               batch_max):
    """The inbox on disk: every original crosses file systems (copied, then linked);
    batch_max 1 is the issue's case (b), each commit a single file."""
    outbox = durable_folder(Path(crashfs.folder) / "outbox")
    setup = make_setup(tmp_path, small_model, outbox=str(outbox), batch_max=batch_max,
                       batch_wait_ms=10, settle_seconds=0.2)
    setup.outbox = outbox
    inputs = write_inputs(setup.inbox, durable=False)
    t0 = time.monotonic()
    cuts = power_cuts(tmp_path, setup, digitd_exe, crashfs, inputs)
    print(f"outbox on crashfs, batch_max {batch_max}: {cuts}; {time.monotonic() - t0:.0f} s")
    assert sum(1 for c in cuts if c["dropped"]["drops"]) == CUTS
    assert_exactly_once(setup.outbox, inputs, {})


def test_power_cuts_with_inbox_and_outbox_on_crashfs(tmp_path, small_model, digitd_exe,
                                                     crashfs):
    outbox = durable_folder(Path(crashfs.folder) / "outbox")
    inbox = durable_folder(Path(crashfs.folder) / "inbox")
    setup = make_setup(tmp_path, small_model, inbox=str(inbox), outbox=str(outbox),
                       batch_max=16, batch_wait_ms=10, settle_seconds=0.2)
    setup.outbox, setup.inbox = outbox, inbox
    inputs = write_inputs(inbox, durable=True)
    t0 = time.monotonic()
    cuts = power_cuts(tmp_path, setup, digitd_exe, crashfs, inputs)
    print(f"inbox and outbox on crashfs: {cuts}; {time.monotonic() - t0:.0f} s")
    assert_exactly_once(setup.outbox, inputs, {})
