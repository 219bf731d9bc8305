"""The settle tracker alone: a fake clock and a fake ``stat``, no threads, no waiting."""

from __future__ import annotations

import os
import stat

import pytest
from digitd.inbox.settle import (
    CLOSE_GRACE,
    CLOSED,
    MOVED,
    OPEN_SETTLE_MIN,
    SEEN,
    TICK,
    WRITTEN,
    SettleTracker,
)


class Disk:
    """What ``stat`` sees: path -> (size, mtime_ns, inode, mode)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[int, int, int, int]] = {}
        self.unfinished: set[str] = set()  # images that end before their end marker

    def write(self, path: str, size: int, mtime: int = 1, inode: int = 7,
              mode: int = stat.S_IFREG | 0o644) -> None:
        self.files[path] = (size, mtime, inode, mode)

    def stat(self, path: str) -> os.stat_result:
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime, inode, mode = self.files[path]
        return os.stat_result((mode, inode, 0, 1, 0, 0, size, 0, 0, 0,  # the 10 visible fields
                               0.0, 0.0, 0.0, 0, mtime, 0))  # then float times, *_ns


    def ends_early(self, path: str, size: int) -> str | None:
        return "PNG" if path in self.unfinished else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def disk():
    return Disk()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def tracker(disk, clock):
    return SettleTracker(settle_seconds=1.0, clock=clock, stat=disk.stat,
                         ends_early=disk.ends_early)


def ready_names(tracker):
    return [path for path, _key in tracker.step().ready]


def test_a_scanned_file_is_ready_after_settle_seconds_unchanged(tracker, disk, clock):
    disk.write("a.png", 10)
    assert tracker.add("a.png") is True
    assert tracker.add("a.png") is False  # tracked once
    assert ready_names(tracker) == []  # first look: the key starts its clock
    clock.advance(0.95)
    assert ready_names(tracker) == []
    clock.advance(0.04)
    assert ready_names(tracker) == []  # not a tick: only touched files are looked at
    clock.advance(TICK)
    assert tracker.step().ready == [("a.png", (10, 1, 7))]
    assert "a.png" not in tracker and len(tracker) == 0


def test_a_change_restarts_the_settle_clock(tracker, disk, clock):
    disk.write("a.png", 10)
    tracker.add("a.png")
    tracker.step()
    clock.advance(0.8)
    disk.write("a.png", 20, mtime=2)
    assert ready_names(tracker) == []
    clock.advance(0.8)
    assert ready_names(tracker) == []  # 1.6 s since first seen, 0.8 since the change
    clock.advance(0.2)
    assert ready_names(tracker) == ["a.png"]


def test_a_file_moved_in_is_ready_at_once(tracker, disk):
    disk.write("m.png", 5)
    tracker.hint("m.png", MOVED)
    assert ready_names(tracker) == ["m.png"]


def test_a_closed_file_is_ready_after_the_grace_if_unchanged(tracker, disk, clock):
    disk.write("c.png", 5)
    tracker.hint("c.png", WRITTEN)
    tracker.hint("c.png", CLOSED)
    assert ready_names(tracker) == []
    assert tracker.next_step() == pytest.approx(clock.now + CLOSE_GRACE)  # wakes at the grace
    clock.advance(CLOSE_GRACE)
    assert ready_names(tracker) == ["c.png"]


def test_a_close_then_a_change_falls_back_to_the_settle_rule(tracker, disk, clock):
    disk.write("c.png", 5)
    tracker.hint("c.png", CLOSED)
    tracker.step()  # takes the key at the close
    disk.write("c.png", 9, mtime=3)  # reopened and written without a new event yet
    clock.advance(CLOSE_GRACE)
    assert ready_names(tracker) == []
    clock.advance(1.0)
    assert ready_names(tracker) == ["c.png"]  # unchanged for settle_seconds


def test_a_file_open_for_writing_waits_the_long_settle(tracker, disk, clock):
    disk.write("w.png", 5)
    tracker.hint("w.png", WRITTEN)
    tracker.step()
    clock.advance(OPEN_SETTLE_MIN - 0.1)
    assert ready_names(tracker) == []  # a slow copy may pause longer than settle_seconds
    clock.advance(0.1)
    assert ready_names(tracker) == ["w.png"]  # a lost close event is not waited for forever


def test_in_polling_mode_a_write_is_only_a_change(disk, clock):
    tracker = SettleTracker(settle_seconds=1.0, writes_mean_open=False, clock=clock,
                            stat=disk.stat)
    disk.write("p.png", 5)
    tracker.hint("p.png", WRITTEN)
    tracker.step()
    clock.advance(1.0)
    assert ready_names(tracker) == ["p.png"]


def test_a_write_after_the_close_cancels_the_grace(tracker, disk, clock):
    disk.write("c.png", 5)
    tracker.hint("c.png", CLOSED)
    tracker.step()
    tracker.hint("c.png", WRITTEN)  # reopened for writing within the grace
    clock.advance(CLOSE_GRACE)
    assert ready_names(tracker) == []
    clock.advance(1.0)
    assert ready_names(tracker) == []  # open for writing: the long settle
    tracker.hint("c.png", CLOSED)
    clock.advance(CLOSE_GRACE)
    assert ready_names(tracker) == ["c.png"]


def test_between_ticks_only_touched_files_are_looked_at(disk, clock):
    looked = []

    def counting_stat(path):
        looked.append(path)
        return disk.stat(path)

    tracker = SettleTracker(settle_seconds=1.0, clock=clock, stat=counting_stat)
    for name in ("a.png", "b.png"):
        disk.write(name, 1)
        tracker.add(name)
    tracker.step()  # a tick: both
    assert sorted(looked) == ["a.png", "b.png"]
    looked.clear()
    disk.write("m.png", 1)
    tracker.hint("m.png", MOVED)
    clock.advance(TICK / 2)
    assert ready_names(tracker) == ["m.png"]
    assert looked == ["m.png"]  # not a, b: between ticks
    assert tracker.next_step() == pytest.approx(clock.now + TICK / 2)
    looked.clear()
    clock.advance(TICK)
    tracker.step()
    assert sorted(looked) == ["a.png", "b.png"]


def test_vanished_files_and_folders_are_dropped_special_files_are_ready_as_they_are(
        tracker, disk):
    disk.write("gone.png", 1)
    disk.write("dir.png", 0, mode=stat.S_IFDIR | 0o755)
    disk.write("fifo.png", 0, mode=stat.S_IFIFO | 0o644)
    for name in ("gone.png", "dir.png", "fifo.png"):
        tracker.hint(name, SEEN)
    del disk.files["gone.png"]
    looked = tracker.step()
    assert looked.ready == [("fifo.png", None)]  # the claim quarantines it
    assert looked.folders == ["dir.png"]
    assert len(tracker) == 0


def test_a_stat_error_keeps_the_candidate(tracker, disk, clock):
    def failing(path):
        raise PermissionError(13, "Permission denied")

    tracker.stat = failing
    tracker.add("x.png")
    assert tracker.step().ready == []
    assert "x.png" in tracker
    tracker.stat = disk.stat
    disk.write("x.png", 3)
    clock.advance(TICK)
    tracker.step()
    clock.advance(1.0)
    assert ready_names(tracker) == ["x.png"]


def test_a_closed_image_that_ends_early_waits_for_the_settle_rule(tracker, disk, clock):
    """A writer that appends in pieces and closes between them: the first close
    does not make the piece an input of its own."""
    disk.write("slow.png", 100)
    disk.unfinished.add("slow.png")
    tracker.hint("slow.png", CLOSED)
    tracker.step()
    clock.advance(CLOSE_GRACE)
    assert ready_names(tracker) == []
    clock.advance(0.15)  # the next piece, then its close: now complete
    disk.write("slow.png", 200, mtime=2)
    disk.unfinished.discard("slow.png")
    tracker.hint("slow.png", WRITTEN)
    tracker.hint("slow.png", CLOSED)
    tracker.step()
    clock.advance(CLOSE_GRACE)
    assert tracker.step().ready == [("slow.png", (200, 2, 7))]


def test_an_image_that_stays_short_is_handed_out_after_settle_seconds(tracker, disk, clock):
    """A truly truncated file is not kept for ever: the reader fails it with its reason."""
    disk.write("cut.png", 100)
    disk.unfinished.add("cut.png")
    tracker.hint("cut.png", MOVED)
    assert ready_names(tracker) == []
    clock.advance(1.0)
    assert ready_names(tracker) == ["cut.png"]
