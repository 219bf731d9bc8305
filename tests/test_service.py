"""``digitd run`` end to end: the real service as a subprocess on tmp_path, a real
tiny Keras model, real PNG files; every wait has a deadline.

Heavier proofs (kill -9 rounds, three instances, 1,000 files) are in
test_service_crash.py and test_service_volume.py.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import time

import pytest
from service_support import (  # service: a fixture
    Digitd,
    csv_rows,
    digit_png,
    done_count,
    error_records,
    inbox_files,
    make_setup,
    result_files,
    service,
    sha,
    unique_png,
    wait_until,
    work_files,
)


# ---------------------------------------------------------------------------
# Noticing files: slow copies, renames


def big_png(digit: int) -> bytes:
    """An uncompressed PNG of about 60 KB: a digit on slightly noisy paper."""
    import cv2
    import numpy as np
    from conftest import draw_digits

    img = cv2.resize(draw_digits(str(digit), height=200), (200, 300))
    noise = np.random.default_rng(digit).integers(0, 20, img.shape)
    img = np.clip(img.astype(int) - noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("polling", [False, True], ids=["inotify", "polling"])
def test_slow_copy_is_read_only_once_complete(tmp_path, small_model, service, polling):
    """A file written in chunks with pauses longer than the settle time (inotify:
    it is still open for writing) or shorter than it (polling: size and mtime keep
    changing) is read once, complete."""
    settle, pause = (0.3, 0.6) if not polling else (1.5, 0.5)
    setup = make_setup(tmp_path, small_model, settle_seconds=settle, polling=polling,
                       poll_interval_seconds=0.2)
    svc = service(setup).wait_ready()
    data = big_png(7)
    chunks = [data[i:i + 10_000] for i in range(0, len(data), 10_000)]
    target = setup.inbox / "slow copy.png"
    with open(target, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(pause)
            assert target.exists(), "claimed while still being written"
            assert not (setup.outbox / "results").exists() or not result_files(setup.outbox)
    wait_until(lambda: result_files(setup.outbox), 20, "the result of the slow copy",
               on_fail=svc.tail)
    (result,) = result_files(setup.outbox)
    assert result["sha256"] == sha(data), "read before the copy was complete"
    assert result["source"] == "slow copy.png"
    assert result["status"] != "failed", result["error"]
    assert not (setup.outbox / "failed").exists() or not list((setup.outbox / "failed").iterdir())
    assert svc.terminate() == 0


def test_moved_in_and_subfolders_and_skips(tmp_path, small_model, service):
    """Files renamed in (from a hidden temp name and from outside) are processed;
    temporary, hidden and non-image names and folders are left alone and logged once."""
    setup = make_setup(tmp_path, small_model)
    leave = {"notes.txt": b"hello", ".hidden.png": digit_png(1), "scan.png.part": digit_png(2),
             "~$report.png": digit_png(3), "Thumbs.db": b"x", "noext": b"x"}
    for name, data in leave.items():
        (setup.inbox / name).write_bytes(data)
    (setup.inbox / "folder.png").mkdir()
    (setup.inbox / "folder.png" / "inside.png").write_bytes(digit_png(4))
    svc = service(setup).wait_ready()
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "from-outside.png").write_bytes(unique_png(5, "outside"))
    os.rename(staging / "from-outside.png", setup.inbox / "from-outside.png")
    (setup.inbox / ".partial-download").write_bytes(unique_png(6, "temp"))
    os.rename(setup.inbox / ".partial-download", setup.inbox / "renamed.png")
    (setup.inbox / "upload.png.tmp").write_bytes(unique_png(8, "tmp"))
    os.rename(setup.inbox / "upload.png.tmp", setup.inbox / "upload.png")
    wait_until(lambda: len(result_files(setup.outbox)) == 3, 20, "3 results", on_fail=svc.tail)
    assert sorted(r["source"] for r in result_files(setup.outbox)) == \
        ["from-outside.png", "renamed.png", "upload.png"]
    # (the skipped names were there before the start: the backlog scan, done
    # before any event, has decided about them long before these results)
    assert inbox_files(setup.inbox) == sorted([*leave, "folder.png"])
    assert (setup.inbox / "folder.png" / "inside.png").read_bytes() == digit_png(4)
    log = svc.log()
    for name in ("notes.txt", "scan.png.part", "~$report.png", "Thumbs.db", "noext", "folder.png"):
        assert log.count(f"skipped {name}:") == 1, name
    assert svc.terminate() == 0


# ---------------------------------------------------------------------------
# Bad inputs


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming a huge image (a decompression bomb's first bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    import zlib

    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\0" * 100


def test_bad_inputs_are_quarantined_and_the_service_lives_on(tmp_path, small_model, service):
    setup = make_setup(tmp_path, small_model, max_file_mb=0.02, log_level="DEBUG")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.png"
    secret.write_bytes(unique_png(9, "secret"))
    svc = service(setup).wait_ready()
    good = unique_png(3, "good")
    bad = {
        "empty.png": (b"", "empty file"),
        "truncated.png": (good[: len(good) // 2], "truncated PNG"),
        "fake.png": (b"this is not an image, just text\n", "not an image"),
        "random.jpg": (os.urandom(3000), "not a supported image"),
        "huge.png": (good + os.urandom(30_000), "file too large"),
        "bomb.png": (_bomb_png(60_000, 60_000), "image too large"),
    }
    for name, (data, _) in bad.items():
        (setup.inbox / name).write_bytes(data)
    os.symlink(secret, setup.inbox / "link.png")
    os.mkfifo(setup.inbox / "pipe.png")
    (setup.inbox / "x.png").mkdir()
    gone = setup.inbox / "gone.png"
    gone.write_bytes(unique_png(1, "gone"))
    gone.unlink()  # deleted right after its events
    odd = {"scan 1 copy.png": unique_png(1, "space"), "ünïcödé 数字 ٣.png": unique_png(2, "nonascii")}
    for name, data in odd.items():
        (setup.inbox / name).write_bytes(data)

    n_failed = len(bad) + 2  # + link + pipe
    wait_until(lambda: done_count(setup.outbox) >= n_failed + len(odd), 30,
               "every input finished", on_fail=svc.tail)
    assert svc.alive()

    records = {r["source"]: r for r in error_records(setup.outbox)}
    assert set(records) == {*bad, "link.png", "pipe.png"}
    for name, (_data, words) in bad.items():
        assert words in records[name]["reason"], (name, records[name])
        assert records[name]["attempts"] == 1
        assert (setup.outbox / "failed" / name).read_bytes() == bad[name][0]
    assert "symbolic link" in records["link.png"]["reason"]
    assert os.path.islink(setup.outbox / "failed" / "link.png"), "the link itself is quarantined"
    assert secret.read_bytes() == unique_png(9, "secret"), "the link's target is untouched"
    assert "not a regular file" in records["pipe.png"]["reason"]

    results = {r["source"]: r for r in result_files(setup.outbox)}
    for name in records:
        assert results[name]["status"] == "failed"
        assert results[name]["error"] == records[name]["reason"]
    for name, data in odd.items():
        assert results[name]["status"] != "failed", results[name]
        assert results[name]["sha256"] == sha(data)
        assert (setup.outbox / "originals" / name).read_bytes() == data
    assert "gone.png" not in results and "gone.png" not in records
    rows = csv_rows(setup.outbox)
    assert sorted(r["source"] for r in rows) == sorted(results)
    assert inbox_files(setup.inbox) == ["x.png"], "the folder named x.png is left alone"
    assert work_files(setup.inbox) == []
    log = svc.log()
    assert "skipped x.png: a folder" in log
    assert "gone.png" not in "\n".join(line for line in log.splitlines()
                                       if not line.startswith("DEBUG"))
    for name in records:
        assert f"{name} -> failed: " in log

    # still alive and working after all that
    (setup.inbox / "after.png").write_bytes(unique_png(4, "after"))
    wait_until(lambda: (setup.outbox / "results" / "after.json").exists(), 20, "after.json",
               on_fail=svc.tail)
    assert svc.terminate() == 0


# ---------------------------------------------------------------------------
# Stopping, systemd notifications, status


def test_sigterm_during_a_batch_finishes_it_and_exits_0(tmp_path, small_model, service):
    n = 40
    setup = make_setup(tmp_path, small_model, batch_max=n, batch_wait_ms=5000, log_level="DEBUG",
                       settle_seconds=0.1)
    for i in range(n):  # there before the start: the backlog scan notices them all at once, one batch
        (setup.inbox / f"s{i:02d}.png").write_bytes(unique_png(i % 10, f"term{i}"))
    svc = service(setup).wait_ready()
    svc.wait_log(rf"batch of {n} file\(s\)", 20)
    t0 = time.monotonic()
    code = svc.terminate(timeout=20)
    assert code == 0, svc.tail()
    assert time.monotonic() - t0 < 10
    log = svc.log()
    assert log.index("SIGTERM received") < log.rindex(".png -> "), \
        "the batch was still running when SIGTERM came"
    assert "stopping: finishing the current batch" in log
    assert len(result_files(setup.outbox)) == n
    assert len(csv_rows(setup.outbox)) == n
    assert inbox_files(setup.inbox) == [] and work_files(setup.inbox) == []
    status = json.loads((setup.outbox / "status.json").read_text())
    assert status["processed"] == n and status["failed"] == 0


def test_notify_socket_gets_ready_status_watchdog_stopping(tmp_path, small_model, service):
    setup = make_setup(tmp_path, small_model, status_interval_seconds=0.3)
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    messages: list[str] = []

    def receive_until(pred, timeout, what):
        def step():
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
            return pred()
        wait_until(step, timeout, what, interval=0, on_fail=lambda: f"got {messages}")

    def has(text):
        return lambda: any(text in m.split("\n") for m in messages)

    try:
        svc = service(setup, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "600000"})
        receive_until(has("READY=1"), 60, "READY=1")
        assert not any("WATCHDOG=1" in m for m in messages[: messages.index(
            next(m for m in messages if "READY=1" in m))]), "WATCHDOG before READY"
        (setup.inbox / "n.png").write_bytes(unique_png(5, "notify"))
        receive_until(lambda: any(m.startswith("STATUS=processed 1,") for m in messages), 20,
                      "STATUS with processed 1")
        n_before = sum("WATCHDOG=1" in m for m in messages)
        receive_until(lambda: sum("WATCHDOG=1" in m for m in messages) >= n_before + 3, 10,
                      "WATCHDOG=1 every 0.3 s")
        svc.proc.send_signal(15)
        receive_until(has("STOPPING=1"), 20, "STOPPING=1")
        assert svc.proc.wait(20) == 0
    finally:
        sock.close()
    status = json.loads((setup.outbox / "status.json").read_text())
    assert {"started_at", "model", "processed", "failed", "queued", "last_error", "rate"} <= set(status)
    assert status["processed"] == 1 and status["model"] == "tiny-test-mlp"


def test_without_notify_socket_it_is_silent(tmp_path, small_model, service):
    """No $NOTIFY_SOCKET: nothing about systemd in the log, exit 0 on SIGTERM."""
    setup = make_setup(tmp_path, small_model)
    svc = service(setup, env={"WATCHDOG_USEC": "100000"}).wait_ready()
    svc.wait_log(r"status: processed 0, failed 0")  # the main loop has gone round
    assert svc.terminate() == 0
    assert "cannot notify" not in svc.log() and "WATCHDOG" not in svc.log()


# ---------------------------------------------------------------------------
# Start-up refusals


def test_refuses_missing_folders_and_bad_model(tmp_path, small_model, run_digitd):
    setup = make_setup(tmp_path, small_model)
    shutil.rmtree(setup.inbox)
    r = run_digitd("run", "--config", setup.config, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"digitd: error: inbox folder {setup.inbox} does not exist "
        f"(key 'inbox' in {setup.config})")
    setup.inbox.mkdir()
    shutil.rmtree(setup.outbox)
    r = run_digitd("run", "--config", setup.config, timeout=60)
    assert r.returncode == 2
    assert "outbox folder" in r.stderr and "does not exist" in r.stderr
    setup.outbox.mkdir()
    bad_model = tmp_path / "bad.keras"
    bad_model.write_bytes(b"not a model")
    make_setup(tmp_path, bad_model)
    r = run_digitd("run", "--config", setup.config, timeout=90)
    assert r.returncode == 3, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"digitd: error: model {bad_model}")
    make_setup(tmp_path, small_model, outbox=str(setup.inbox / "out"))
    r = run_digitd("run", "--config", setup.config, timeout=60)
    assert r.returncode == 2 and "inside the inbox" in r.stderr
    assert "Traceback" not in r.stderr


# ---------------------------------------------------------------------------
# Model replaced while running


def test_model_replaced_is_reloaded_and_a_bad_one_is_refused(tmp_path, small_model, service):
    model = tmp_path / "model" / "current.keras"
    model.parent.mkdir()
    shutil.copy(small_model, model)
    model.with_suffix(".json").write_text(json.dumps({"name": "model-one"}))
    setup = make_setup(tmp_path, model)
    svc = service(setup).wait_ready()

    def process(name):
        (setup.inbox / f"{name}.png").write_bytes(unique_png(2, name))
        path = setup.outbox / "results" / f"{name}.json"
        wait_until(path.exists, 20, f"{name}.json", on_fail=svc.tail)
        return json.loads(path.read_text())["model"]

    assert process("first") == "model-one"
    tmp = model.with_name(".new.keras")
    shutil.copy(small_model, tmp)
    model.with_suffix(".json").write_text(json.dumps({"name": "model-two"}))
    os.replace(tmp, model)  # atomically replaced
    svc.wait_log(r"model reloaded: model-two", 30)
    assert process("second") == "model-two"
    tmp.write_bytes(b"garbage, not a model")
    os.replace(tmp, model)
    svc.wait_log(r"new model not loaded, still serving with model-two", 30)
    assert process("third") == "model-two"
    assert svc.alive()
    assert svc.terminate() == 0


# ---------------------------------------------------------------------------
# Recovery: every state a crash can leave, built by hand


def publish(outbox, name: str, obj) -> None:
    """``results/NAME.json`` as the writer publishes it (staged, then renamed)."""
    outbox.stage_json(name, obj)
    outbox.publish_json(name)


def test_recovery_finishes_each_crash_state_exactly_once(tmp_path, small_model, service):
    """A dead instance's work folder holding one file per crash window; the next
    start finishes each one exactly once."""
    from digitd.outbox import Outbox
    from digitd.results import csv_row, result_dict

    setup = make_setup(tmp_path, small_model)
    outbox = Outbox(setup.outbox)
    work = setup.inbox / ".digitd" / "work" / "dead-1"
    work.mkdir(parents=True)
    (setup.inbox / ".digitd" / "dead-1.lock").write_text("")  # not held: its owner is dead
    data = {k: unique_png(i, k) for i, k in enumerate("abcdefgh")}

    def claimed(key, state=None):
        path = work / f"10{key}_{key}.png"
        path.write_bytes(data[key])
        if state is not None:
            state = {"source": f"{key}.png", "sha256": sha(data[key]), **state}
            (work / f"{path.name}.state.json").write_text(json.dumps(state))
        return path

    def result_for(key, status_ok=True, error=None):
        from digitd.records import Reading

        reading = Reading(status="blank", number=None, digits=(), confidence=None) if status_ok \
            else None
        return result_dict(f"{key}.png", reading, sha256=sha(data[key]), model="old",
                           processed_at="2024-01-01T00:00:00.000Z", elapsed_ms=1.0,
                           annotated=None, error=error)

    # a: crashed after the JSON, before the archive (its CSV row is there too)
    outbox.claim_name("a")
    claimed("a", {"name": "a"})
    outbox.append_csv_rows([csv_row(result_for("a"), "results/a.json")], fsync=False)
    publish(outbox, "a", result_for("a"))
    # b: crashed after the CSV row, before the JSON
    outbox.claim_name("b")
    claimed("b", {"name": "b"})
    outbox.append_csv_rows([csv_row(result_for("b"), "results/b.json")], fsync=False)
    # c: crashed in the middle of the archive move (linked, not yet unlinked)
    outbox.claim_name("c")
    path_c = claimed("c", {"name": "c"})
    outbox.append_csv_rows([csv_row(result_for("c"), "results/c.json")], fsync=False)
    publish(outbox, "c", result_for("c"))
    (setup.outbox / "originals").mkdir()
    os.link(path_c, setup.outbox / "originals" / "c.png")
    # d: crashed right after the claim (no state record yet)
    claimed("d")
    # e: crashed after the archive, before the state record was removed
    outbox.claim_name("e")
    claimed("e", {"name": "e"}).rename(setup.outbox / "originals" / "e.png")
    outbox.append_csv_rows([csv_row(result_for("e"), "results/e.json")], fsync=False)
    publish(outbox, "e", result_for("e"))
    # f: a bad input crashed in the middle of its quarantine move
    data["f"] = b"not an image"
    outbox.claim_name("f")
    path_f = claimed("f", {"name": "f", "phase": "quarantine",
                           "reason": "not an image: the file holds text"})
    outbox.append_csv_rows([csv_row(result_for("f", False, "not an image: the file holds text"),
                              "results/f.json")], fsync=False)
    publish(outbox, "f", result_for("f", False, "not an image: the file holds text"))
    (setup.outbox / "failed").mkdir()
    (setup.outbox / "failed" / "f.error.json").write_text(json.dumps(
        {"source": "f.png", "reason": "not an image: the file holds text", "time": "x",
         "attempts": 1}))
    os.link(path_f, setup.outbox / "failed" / "f.png")
    # g: name reserved and recorded, nothing written yet
    outbox.claim_name("g")
    claimed("g", {"name": "g"})
    # h: a state record whose temp file was left by the crash
    claimed("h", {"name": None})
    (work / ".10h_h.png.state.json.123.tmp").write_text("{")

    svc = service(setup).wait_ready()
    wait_until(lambda: not work.exists(), 30, "the dead instance's folder to be emptied",
               on_fail=lambda: f"{work_files(setup.inbox)}\n{svc.tail()}")
    assert not (setup.inbox / ".digitd" / "dead-1.lock").exists()
    results = {r["source"]: r for r in result_files(setup.outbox)}
    assert sorted(results) == [f"{k}.png" for k in "abcdefgh"]
    assert results["a.png"]["model"] == "old", "a complete result is not redone"
    assert results["b.png"]["model"] == "tiny-test-mlp"
    rows = csv_rows(setup.outbox)
    assert sorted(r["result"] for r in rows) == [f"results/{k}.json" for k in "abcdefgh"]
    originals = sorted(p.name for p in (setup.outbox / "originals").iterdir())
    assert originals == [f"{k}.png" for k in "abcdegh"]
    for k in "abcdegh":
        assert (setup.outbox / "originals" / f"{k}.png").read_bytes() == data[k]
    assert sorted(p.name for p in (setup.outbox / "failed").iterdir()) == ["f.error.json", "f.png"]
    assert not list((setup.outbox / "results").glob(".*.reserve")), "names released"
    assert work_files(setup.inbox) == []
    assert svc.terminate() == 0


def test_recovery_from_batch_journals_keeps_each_name(tmp_path, small_model, service):
    """A dead instance's work folder as the group commit leaves it: one journal per
    batch naming each claimed file's NAME, crashed at every step of the batch; the
    next start finishes each input exactly once under the NAME its journal holds."""
    from digitd.outbox import Outbox
    from digitd.records import Reading
    from digitd.results import csv_row, result_dict

    setup = make_setup(tmp_path, small_model)
    outbox = Outbox(setup.outbox)
    work = setup.inbox / ".digitd" / "work" / "dead-2"
    work.mkdir(parents=True)
    (setup.inbox / ".digitd" / "dead-2.lock").write_text("")
    keys = ["j1", "j2", "j3", "j4", "j5", "j6", "j7"]
    data = {k: unique_png(i, k) for i, k in enumerate(keys)}

    def claimed(key):
        path = work / f"20{key}_{key}.png"
        path.write_bytes(data[key])
        return path

    def result_for(key):
        reading = Reading(status="blank", number=None, digits=(), confidence=None)
        return result_dict(f"{key}.png", reading, sha256=sha(data[key]), model="old",
                           processed_at="2024-01-01T00:00:00.000Z", elapsed_ms=1.0,
                           annotated=None)

    # an earlier input took "j1" for good: the journal's NAME for j1.png is j1-1
    publish(outbox, outbox.claim_name("j1"), {"earlier": True})
    names = {k: outbox.claim_name(k) for k in keys}
    assert names["j1"] == "j1-1"
    for k in keys:
        if k != "j4":
            claimed(k)
    journal = {f"20{k}_{k}.png": {"source": f"{k}.png", "name": names[k]} for k in keys[:5]}
    (work / "2a.batch.json").write_text(json.dumps({"files": journal}))
    (work / "2b.batch.json").write_text('{"files": {"20j7_j7.png": {"sou')  # cut short
    # j1: nothing written yet. j2: its row written and its JSON staged, not renamed.
    outbox.append_csv_rows([csv_row(result_for("j2"), "results/j2.json")], fsync=False)
    outbox.stage_json("j2", result_for("j2"))
    # j3: its JSON in place, the original not yet moved
    outbox.append_csv_rows([csv_row(result_for("j3"), "results/j3.json")], fsync=False)
    publish(outbox, "j3", result_for("j3"))
    # j4: finished (archived); only its journal entry is left
    (setup.outbox / "originals").mkdir()
    (setup.outbox / "originals" / "j4.png").write_bytes(data["j4"])
    outbox.append_csv_rows([csv_row(result_for("j4"), "results/j4.json")], fsync=False)
    publish(outbox, "j4", result_for("j4"))
    # j5: a transient error since: its own state record wins over the journal
    (work / "20j5_j5.png.state.json").write_text(json.dumps(
        {"source": "j5.png", "name": "j5", "attempts": 1, "last_error": "disk full"}))
    # j6: claimed after the journal was written; j7: only in the unreadable journal
    for k in ("j6", "j7"):
        outbox.release(names[k])
    (work / ".2c.batch.json.77.tmp").write_text("{")  # an interrupted journal write

    svc = service(setup).wait_ready()
    wait_until(lambda: not work.exists(), 30, "the dead instance's folder to be emptied",
               on_fail=lambda: f"{work_files(setup.inbox)}\n{svc.tail()}")
    assert not (setup.inbox / ".digitd" / "dead-2.lock").exists()
    results = {r["source"]: r for r in result_files(setup.outbox) if "source" in r}
    assert sorted(results) == [f"{k}.png" for k in keys]
    by_name = {r["source"]: r["_file"] for r in results.values()}
    assert by_name == {"j1.png": "j1-1.json", **{f"{k}.png": f"{k}.json" for k in keys[1:]}}
    assert results["j3.png"]["model"] == "old" and results["j4.png"]["model"] == "old"
    assert results["j2.png"]["model"] == "tiny-test-mlp", "a staged JSON is written again"
    rows = csv_rows(setup.outbox)
    assert sorted(r["result"] for r in rows) == sorted(f"results/{by_name[f'{k}.png']}"
                                                       for k in keys)
    originals = {p.name: p.read_bytes() for p in (setup.outbox / "originals").iterdir()}
    assert originals == {f"{k}.png": data[k] for k in keys}
    assert not list((setup.outbox / "results").glob(".*")), "no reservation or temp left"
    assert "unreadable journal" in svc.log()
    assert svc.terminate() == 0
