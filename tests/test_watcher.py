"""The inbox watcher on a real folder with a real observer: names, settle rules, hints.

The settle rules alone, with a fake clock, are in tests/test_settle.py."""

from __future__ import annotations

import os
import threading
import time

import pytest
import cv2
import numpy as np
from digitd.files import file_key
from digitd.imageio import decode
from digitd.inbox.names import IMAGE_EXTENSIONS, skip_reason
from digitd.inbox.watcher import Inbox


@pytest.mark.parametrize("ext", sorted(IMAGE_EXTENSIONS - {".jpe", ".dib"}))
def test_every_watched_extension_is_one_the_reader_decodes(ext):
    """A name the inbox takes is a format the reader decodes (.jpe and .dib are
    JPEG and BMP under other names)."""
    ok, encoded = cv2.imencode(ext, np.full((20, 30), 200, np.uint8))
    assert ok
    scan = decode(encoded.tobytes(), max_pixels=10_000)
    assert (scan.width, scan.height) == (30, 20)


@pytest.mark.parametrize(("name", "reason"), [
    ("scan.png", None), ("SCAN.JPG", None), ("a b ü.tiff", None), ("x.webp", None),
    (".x.png", "hidden name"), (".~lock.scan.png#", "temporary name (lock file)"),
    ("~$scan.png", "temporary name (lock file)"), ("scan.png.part", "temporary name"),
    ("scan.tmp", "temporary name"), ("scan.png~", "temporary name"),
    ("Thumbs.db", "system file"), (".DS_Store", "system file"), ("desktop.ini", "system file"),
    ("notes.txt", "not an image type (.txt)"), ("README", "not an image type (no extension)"),
])
def test_skip_reason(name, reason):
    got = skip_reason(name)
    assert (got is None) if reason is None else got.startswith(reason)


@pytest.fixture
def inbox(tmp_path):
    boxes = []

    def make(root=None, **kwargs):
        box = Inbox(root or tmp_path, **{"settle_seconds": 0.3, "rescan_seconds": 60.0, **kwargs})
        box.start()
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        box.stop()
        assert not box.alive()


def test_backlog_waits_for_the_settle_time_then_is_handed_out_once(tmp_path, inbox):
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    t0 = time.monotonic()
    box = inbox(settle_seconds=0.4)
    got = []
    deadline = t0 + 10
    while len(got) < 3 and time.monotonic() < deadline:
        got += box.take(10, 0.5)
    assert sorted(p.name for p in got) == ["0.png", "1.png", "2.png"]
    assert time.monotonic() - t0 >= 0.4
    box.request_rescan()  # the files are still there (not claimed): queued, not repeated
    assert box.take(10, 0.5) == []


def test_a_file_open_for_writing_is_not_ready_until_closed(tmp_path, inbox):
    box = inbox(settle_seconds=0.2)
    path = tmp_path / "slow.png"
    with open(path, "wb") as f:
        for _ in range(4):
            f.write(b"x" * 1000)
            f.flush()
            assert box.take(1, 0.4) == [], "handed out while still open for writing"
    (got,) = box.take(1, 5)
    assert got == path


def test_closed_after_writing_is_ready_without_the_settle_time(tmp_path, inbox):
    box = inbox(settle_seconds=30)
    t0 = time.monotonic()
    (tmp_path / "quick.png").write_bytes(b"x")
    (got,) = box.take(1, 5)
    assert got.name == "quick.png"
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("origin", ["hidden name", "outside"])
def test_renamed_in_is_ready_at_once(tmp_path, inbox, origin):
    """A file renamed into the inbox (the atomic-publish convention) needs neither
    a close event nor the settle time."""
    root = tmp_path / "in"
    root.mkdir()
    box = inbox(root=root, settle_seconds=30)
    src = root / ".scan.png.part" if origin == "hidden name" else tmp_path / "scan.png"
    src.write_bytes(b"x" * 1000)
    time.sleep(0.2)  # its own write and close events are long gone
    t0 = time.monotonic()
    os.rename(src, root / "scan.png")
    (got,) = box.take(1, 5)
    assert got == root / "scan.png"
    assert time.monotonic() - t0 < 1.0


def test_renamed_in_then_written_again_is_not_taken_half_written(tmp_path, inbox):
    """Written again after it was handed out (renamed in: ready at once): the key
    it was ready with no longer matches, so the worker gives it back (notice());
    while it is still open for writing it then waits for its close."""
    root = tmp_path / "in"
    root.mkdir()
    path = root / "scan.png"
    box = inbox(root=root, settle_seconds=0.2)
    (tmp_path / "scan.png").write_bytes(b"x")
    with open(tmp_path / "scan.png", "ab") as f:
        os.rename(tmp_path / "scan.png", path)
        (early,) = box.take(1, 5)
        f.write(b"y" * 1000)
        f.flush()
        assert box.done(early) != file_key(os.lstat(path))
        box.notice(path)  # what the worker does on a key that no longer matches
        for _ in range(3):  # still open, written again
            f.write(b"y" * 1000)
            f.flush()
            assert box.take(1, 0.35) == [], "handed out while still being written"
    (got,) = box.take(1, 5)
    assert got == path
    assert box.done(got) == file_key(os.lstat(path))


def test_arriving_while_files_keep_coming_not_after(tmp_path, inbox):
    box = inbox(settle_seconds=30)
    assert not box.arriving()
    stop = threading.Event()

    def burst():
        i = 0
        while not stop.is_set():
            (tmp_path / f"b{i}.png").write_bytes(b"x")
            i += 1
            time.sleep(0.001)

    writer = threading.Thread(target=burst)
    writer.start()
    try:
        assert wait_for(box.arriving), "a burst is arriving"
    finally:
        stop.set()
        writer.join()
    time.sleep(0.3)
    assert not box.arriving(), "nothing has come for a while"


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def test_done_before_the_claim_lets_a_new_file_of_the_same_name_in(tmp_path, inbox):
    box = inbox(settle_seconds=30)
    path = tmp_path / "same.png"
    path.write_bytes(b"one")
    (got,) = box.take(1, 5)
    box.done(got)
    os.rename(path, tmp_path / ".claimed")  # what a claim does
    path.write_bytes(b"two")
    (again,) = box.take(1, 5)
    assert again == path


def test_skipped_names_and_folders_are_never_handed_out_and_logged_once(tmp_path, inbox, caplog):
    caplog.set_level("INFO")
    (tmp_path / "folder.png").mkdir()
    box = inbox(settle_seconds=0.1)
    for _ in range(3):
        (tmp_path / "notes.txt").write_bytes(b"x")
        (tmp_path / ".hidden.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.png").write_bytes(b"x")  # not recursive
    (tmp_path / "ok.png").write_bytes(b"x")
    (got,) = box.take(5, 5)
    assert got.name == "ok.png"
    assert box.take(5, 0.5) == []
    assert caplog.text.count("skipped notes.txt: not an image type") == 1
    assert caplog.text.count("skipped folder.png: a folder") == 1
    assert ".hidden.png" in caplog.text  # hidden names are logged (once) too


def test_recursive_sees_subfolders_but_never_the_service_folder(tmp_path, inbox):
    (tmp_path / ".digitd" / "work" / "x").mkdir(parents=True)
    box = inbox(recursive=True, settle_seconds=0.1, ignore=tmp_path / ".digitd")
    (tmp_path / ".digitd" / "work" / "x" / "claimed.png").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "deep.png").write_bytes(b"x")
    (got,) = box.take(5, 5)
    assert got == tmp_path / "sub" / "deep.png"
    assert box.take(5, 0.5) == []


def test_polling_observer_notices_files(tmp_path, inbox):
    box = inbox(polling=True, poll_interval=0.1, settle_seconds=0.2)
    (tmp_path / "polled.png").write_bytes(b"x")
    (got,) = box.take(1, 5)
    assert got.name == "polled.png"
    assert box.polling


def test_no_threads_left_after_stop(tmp_path):
    before = set(threading.enumerate())
    box = Inbox(tmp_path, settle_seconds=0.1)
    box.start()
    assert box.alive()
    box.stop()
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert leaked == []


def test_done_returns_the_key_it_was_ready_with(tmp_path, inbox):
    box = inbox(settle_seconds=30)
    path = tmp_path / "k.png"
    path.write_bytes(b"one")
    (got,) = box.take(1, 5)
    key = box.done(got)
    assert key == file_key(os.lstat(path))
    path.write_bytes(b"two, longer")  # written again before the claim
    assert file_key(os.lstat(path)) != key
    box.notice(path)  # what the worker does then: settle it again
    (again,) = box.take(1, 5)
    assert again == path


def test_an_image_appended_in_pieces_with_closes_between_is_one_input(tmp_path, inbox):
    """Written in 150 ms pieces, each opened for appending and closed: handed out
    once, whole, not as one input per piece."""
    ok, encoded = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (60, 60), np.uint8))
    data = encoded.tobytes()
    box = inbox(settle_seconds=0.5)
    path = tmp_path / "pieces.png"
    pieces = [data[i : i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    assert len(pieces) >= 5
    for piece in pieces[:-1]:
        with open(path, "ab") as f:
            f.write(piece)
        assert box.take(1, 0.15) == [], "a piece was handed out as an input"
    with open(path, "ab") as f:
        f.write(pieces[-1])
    (got,) = box.take(1, 5)
    assert got == path and got.read_bytes() == data
    assert box.done(got) == file_key(os.lstat(path))
