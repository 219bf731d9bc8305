"""The power-cut tool itself (tests/fusetool/crashfs.py): what it keeps and what it
drops - first its model alone, then mounted through FUSE and used with real calls."""

from __future__ import annotations

import os
import stat

import pytest
from fusetool.crashfs import Node, State


def new_file(state: State, path: str, data: bytes) -> int:
    ino = state.add(path, Node(stat.S_IFREG, 0o644, 0, 0))
    state.nodes[ino].data[:] = data
    return ino


def after_drop(state: State) -> dict[str, bytes]:
    state.drop()
    out = {}

    def walk(ino: int, prefix: str) -> None:
        for name, child in state.dirs[ino].items():
            if child in state.dirs:
                walk(child, f"{prefix}{name}/")
            else:
                out[prefix + name] = bytes(state.nodes[child].data)

    walk(1, "")
    return out


def test_model_nothing_synced_nothing_kept():
    s = State()
    new_file(s, "/a", b"data")
    assert after_drop(s) == {}


def test_model_a_synced_name_without_synced_data_is_an_empty_file():
    s = State()
    new_file(s, "/a", b"data")
    s.fsyncdir(1)
    assert after_drop(s) == {"a": b""}


def test_model_file_and_folder_synced_both_kept_later_bytes_dropped():
    s = State()
    ino = new_file(s, "/a", b"data")
    s.fsync(ino)
    s.fsyncdir(1)
    s.nodes[ino].data.extend(b"+more")
    assert after_drop(s) == {"a": b"data"}


def test_model_rename_unlink_and_link_undone_until_their_folder_is_synced():
    s = State()
    s.add("/d", Node(stat.S_IFDIR, 0o755, 0, 0))
    ino = new_file(s, "/a", b"x")
    s.fsync(ino)
    s.fsyncdir(1)
    s.rename("/a", "/d/a")
    s.link("/d/a", "/b")
    gone = new_file(s, "/c", b"c")
    s.fsync(gone)
    s.fsyncdir(1)
    s.remove("/c")
    # the folder d (synced with "/" above), the rename (touches "/": synced), the
    # link b (synced); the unlink of c (after the sync) is undone
    assert after_drop(s) == {"d/a": b"x", "b": b"x", "c": b"c"}


def test_model_a_rename_is_one_step_durable_by_either_folder():
    s = State()
    s.add("/d", Node(stat.S_IFDIR, 0o755, 0, 0))
    ino = new_file(s, "/a", b"x")
    s.fsync(ino)
    s.fsyncdir(1)
    s.rename("/a", "/d/a")
    s.fsyncdir(s.lookup("/d"))  # the destination only
    assert after_drop(s) == {"d/a": b"x"}


def test_model_a_name_in_a_folder_whose_own_name_was_lost_is_lost():
    s = State()
    d = s.add("/d", Node(stat.S_IFDIR, 0o755, 0, 0))
    ino = new_file(s, "/d/a", b"x")
    s.fsync(ino)
    s.fsyncdir(d)  # d's entries, but not d's own name in "/"
    assert after_drop(s) == {}


def fsync(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_mounted_keeps_what_was_fsynced_and_drops_the_rest(crashfs):
    root = crashfs.folder
    with open(f"{root}/kept", "wb") as f:
        f.write(b"synced")
        f.flush()
        os.fsync(f.fileno())
    with open(f"{root}/empty-later", "wb") as f:
        f.write(b"never synced")
    os.mkdir(f"{root}/sub")
    fsync(root)  # names: kept, empty-later, sub
    with open(f"{root}/kept", "ab") as f:
        f.write(b" + appended, not synced")
    with open(f"{root}/sub/lost", "wb") as f:
        f.write(b"name never synced")
        f.flush()
        os.fsync(f.fileno())
    os.rename(f"{root}/empty-later", f"{root}/renamed")
    os.link(f"{root}/kept", f"{root}/sub/link")
    fsync(f"{root}/sub")  # the link in sub and lost: both synced
    os.unlink(f"{root}/sub/lost")  # not synced: comes back
    assert crashfs.stats()["pending_names"] == 2  # the rename and the unlink
    assert sorted(os.listdir(root)) == ["kept", "renamed", "sub"]
    assert open(f"{root}/kept", "rb").read() == b"synced + appended, not synced"
    crashfs.drop()
    assert sorted(os.listdir(root)) == ["empty-later", "kept", "sub"]
    assert open(f"{root}/kept", "rb").read() == b"synced"
    assert open(f"{root}/empty-later", "rb").read() == b""
    assert sorted(os.listdir(f"{root}/sub")) == ["link", "lost"]
    assert open(f"{root}/sub/lost", "rb").read() == b"name never synced"
    assert os.stat(f"{root}/sub/link").st_ino == os.stat(f"{root}/kept").st_ino
    assert os.stat(f"{root}/kept").st_nlink == 2
    assert crashfs.stats() == {"pending_names": 0, "unsynced_files": 0, "nodes": 5, "drops": 1}


def test_mounted_append_flock_and_o_excl_work_as_the_service_needs(crashfs):
    import fcntl

    path = f"{crashfs.folder}/rows.csv"
    for i in range(3):
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"row {i}\n".encode())
        os.close(fd)
    assert open(path, "rb").read() == b"row 0\nrow 1\nrow 2\n"
    fd = os.open(f"{crashfs.folder}/.x.reserve", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    os.close(fd)
    with pytest.raises(FileExistsError):
        os.open(f"{crashfs.folder}/.x.reserve", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
