"""Model hot reload with a fake clock, a fake file key and a fake load."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from digitd.errors import DigitdError
from digitd.reload import CHECK_SECONDS, ModelReloader

MODEL = Path("/models/current.keras")


class Model:
    def __init__(self, name: str) -> None:
        self.name = name


class World:
    """The clock, the model file's key and the loader, all under the test's control."""

    def __init__(self) -> None:
        self.now = 100.0
        self.file_key: tuple[int, int, int] | None = (10, 1, 7)
        self.loads = 0
        self.fail_with: Exception | None = None
        self.errors: list[str] = []

    def clock(self) -> float:
        return self.now

    def key(self, path: Path):
        assert path == MODEL
        return self.file_key

    def load(self) -> Model:
        self.loads += 1
        if self.fail_with is not None:
            raise self.fail_with
        return Model(f"model-{self.loads}")

    def reloader(self) -> ModelReloader:
        return ModelReloader(MODEL, self.load, clock=self.clock, key=self.key,
                             on_error=self.errors.append)

    def tick(self, r: ModelReloader, seconds: float = CHECK_SECONDS):
        self.now += seconds
        return r.poll("old")


@pytest.fixture
def world() -> World:
    return World()


def test_no_reload_while_the_file_is_unchanged(world):
    r = world.reloader()
    assert [world.tick(r) for _ in range(5)] == [None] * 5
    assert world.loads == 0


def test_a_change_is_loaded_after_it_stayed_the_same_for_one_check(world):
    r = world.reloader()
    assert world.tick(r) is None
    world.file_key = (11, 2, 8)
    assert world.tick(r) is None  # seen changed: wait one check
    assert world.loads == 0
    new = world.tick(r)
    assert isinstance(new, Model) and new.name == "model-1" and world.loads == 1
    assert r.loaded_key == (11, 2, 8)
    assert world.tick(r) is None and world.loads == 1  # loaded once


def test_a_file_that_keeps_changing_is_not_loaded(world):
    r = world.reloader()
    for i in range(5):
        world.file_key = (20 + i, i, 9)
        assert world.tick(r) is None
    assert world.loads == 0
    assert world.tick(r) is not None  # stayed the same for one check


def test_checks_happen_at_most_once_per_check_seconds(world):
    r = world.reloader()
    assert r.poll("old") is None  # checks now
    world.file_key = (11, 2, 8)
    assert world.tick(r, CHECK_SECONDS * 0.5) is None  # no check: change not seen yet
    assert world.tick(r, CHECK_SECONDS * 0.5) is None  # check: seen changed
    assert world.tick(r, CHECK_SECONDS * 0.9) is None  # no check
    assert world.loads == 0
    new = world.tick(r, CHECK_SECONDS * 0.1)
    assert new is not None and world.loads == 1


def test_a_load_that_raises_is_reported_once_and_not_retried(world, caplog):
    r = world.reloader()
    world.file_key = (11, 2, 8)
    world.fail_with = ValueError("weights do not fit the layers")
    world.tick(r)
    with caplog.at_level(logging.ERROR, logger="digitd.reload"):
        assert world.tick(r) is None
    assert world.loads == 1
    assert world.errors == ["model: ValueError: weights do not fit the layers"]
    assert [rec.getMessage() for rec in caplog.records] == [
        "new model not loaded, still serving with old: ValueError: weights do not fit the layers"]
    for _ in range(5):
        assert world.tick(r) is None
    assert world.loads == 1 and len(world.errors) == 1
    # the file changes again: that one is loaded
    world.fail_with = None
    world.file_key = (12, 3, 9)
    assert world.tick(r) is None
    new = world.tick(r)
    assert new is not None and new.name == "model-2"


def test_an_error_with_a_message_attribute_reports_that_message(world):
    r = world.reloader()
    world.file_key = (11, 2, 8)
    world.fail_with = DigitdError("not a digitd model\n(no labels)")
    world.tick(r)
    world.tick(r)
    assert world.errors == ["model: not a digitd model (no labels)"]


def test_a_missing_file_is_warned_once_and_serving_goes_on(world, caplog):
    r = world.reloader()
    world.file_key = None
    with caplog.at_level(logging.WARNING, logger="digitd.reload"):
        results = [world.tick(r) for _ in range(4)]
    assert results == [None] * 4
    assert [rec.getMessage() for rec in caplog.records] == [
        f"model file {MODEL} is gone; still serving with old"]
    assert world.loads == 0 and world.errors == []
    # it comes back as a new file: loaded after one stable check
    world.file_key = (30, 4, 11)
    assert world.tick(r) is None
    assert world.tick(r).name == "model-1"


def test_a_file_missing_again_is_warned_again(world, caplog):
    r = world.reloader()
    with caplog.at_level(logging.WARNING, logger="digitd.reload"):
        world.file_key = None
        world.tick(r)
        world.file_key = (10, 1, 7)
        world.tick(r)
        world.file_key = None
        world.tick(r)
    assert [rec.levelname for rec in caplog.records] == ["WARNING", "WARNING"]
    assert world.loads == 0


def test_the_real_key_follows_the_link(tmp_path):
    target = tmp_path / "m1.keras"
    target.write_bytes(b"1")
    link = tmp_path / "current.keras"
    link.symlink_to(target.name)
    now = [0.0]
    loaded = []
    r = ModelReloader(link, lambda: loaded.append(1) or Model("new"), clock=lambda: now[0])
    other = tmp_path / "m2.keras"
    other.write_bytes(b"22")
    tmp = tmp_path / "current.tmp"
    tmp.symlink_to(other.name)
    tmp.replace(link)
    assert r.poll("old") is None
    now[0] += CHECK_SECONDS
    assert r.poll("old").name == "new" and loaded == [1]


def test_a_change_back_and_forth_still_waits_for_a_stable_check(world):
    r = world.reloader()
    world.file_key = (11, 2, 8)  # B
    assert world.tick(r) is None
    world.file_key = (10, 1, 7)  # back to the loaded A
    assert world.tick(r) is None
    world.file_key = (11, 2, 8)  # B again: changed since the last check
    assert world.tick(r) is None
    assert world.loads == 0
