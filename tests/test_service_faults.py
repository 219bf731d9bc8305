"""Faults a subprocess cannot be made to show on demand (a full disk, a recognizer
that raises, a dead watcher thread, inotify limits): the real Service, run in a
thread on tmp_path, with fakes plugged in through the real interfaces - an
Outbox whose writes raise OSError(ENOSPC), a recognizer whose read raises, an
observer that cannot start. Everything else (watcher, claims, pipeline, files)
is the real thing."""

from __future__ import annotations

import errno
import logging
import threading
from pathlib import Path

import pytest
from digitd.config import parse_config
from digitd.outbox import Outbox
from digitd.records import Reading
from digitd.service import EXIT_THREAD_DIED, Service
from service_support import (
    csv_rows,
    done_count,
    error_records,
    inbox_files,
    result_files,
    unique_png,
    wait_until,
    work_files,
)


class FakeRecognizer:
    """Reads every number as "1"; raises for a batch holding a number of two or
    more marks (poison), or always."""

    name = "fake"

    def __init__(self, poison_wide: bool = False, always: bool = False) -> None:
        self.poison_wide = poison_wide
        self.always = always
        self.calls = 0

    def classify(self, found):
        self.calls += 1
        if self.always or (self.poison_wide and any(len(marks) > 1 for marks, _ in found)):
            raise RuntimeError("the model broke")
        return [Reading(status="ok", number="1", digits=(), confidence=1.0) for _ in found]


class FullDisk(Outbox):
    """An Outbox whose JSON writes fail with ENOSPC while ``failures`` > 0 (the
    service's batch writes and its single writes both go through stage_json)."""

    def __init__(self, root, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.lock = threading.Lock()

    def stage_json(self, name, obj, **kwargs):
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                raise OSError(errno.ENOSPC, "No space left on device")
        return super().stage_json(name, obj, **kwargs)


class RecordingNotifier:
    def __init__(self, watchdog_seconds: float | None = 0.05) -> None:
        self.watchdog_seconds = watchdog_seconds
        self.messages: list[str] = []

    def send(self, **fields):
        self.messages.append("\n".join(f"{k}={v}" for k, v in fields.items()))
        return True

    def ready(self, status=None):
        return self.send(READY=1)

    def status(self, text):
        return self.send(STATUS=text)

    def watchdog(self):
        return self.send(WATCHDOG=1)

    def stopping(self, status=None):
        return self.send(STOPPING=1)

    def close(self):
        pass


@pytest.fixture
def run_service(tmp_path):
    """Factory: start a Service in a thread; stopped and joined at teardown."""
    running: list[tuple[Service, threading.Thread]] = []

    def start(recognizer=None, outbox_factory=None, notifier=None, observer_factory=None,
              **config_values):
        inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
        inbox.mkdir(exist_ok=True)
        outbox.mkdir(exist_ok=True)
        (tmp_path / "unused.keras").write_bytes(b"the fake recognizer does not read it")
        values = {"inbox": str(inbox), "outbox": str(outbox), "model": "unused.keras",
                  "annotate": False, "settle_seconds": 0.1, "batch_wait_ms": 20,
                  "retry_backoff_seconds": 0.05, "retry_max_attempts": 3,
                  "status_interval_seconds": 0.2, **config_values}
        config = parse_config(values, "test-config", tmp_path)
        recognizer = recognizer or FakeRecognizer()
        kwargs = {}
        if observer_factory is not None:
            kwargs["observer_factory"] = observer_factory
        service = Service(config, recognizer_factory=lambda _config: recognizer,
                          outbox=outbox_factory(outbox) if outbox_factory else None,
                          notifier=notifier or RecordingNotifier(None), **kwargs)
        service.start()
        result: dict = {}
        thread = threading.Thread(target=lambda: result.setdefault("code", service.serve()))
        thread.start()
        service.result = result
        service.thread = thread
        running.append((service, thread))
        return service

    yield start
    for service, thread in running:
        service.stop()
        thread.join(30)
        assert not thread.is_alive()


def drop(inbox: Path, n: int, tag: str) -> None:
    for i in range(n):
        (inbox / f"{tag}-{i}.png").write_bytes(unique_png(i % 10, f"{tag}{i}"))


def test_disk_full_while_writing_is_retried_without_a_second_csv_row(tmp_path, run_service,
                                                                    caplog):
    """The JSON fails twice (ENOSPC): the file stays claimed, is retried, and
    ends with one JSON and one CSV row."""
    caplog.set_level(logging.INFO)
    run_service(outbox_factory=lambda root: FullDisk(root, failures=2))
    drop(tmp_path / "inbox", 1, "full")
    wait_until(lambda: done_count(tmp_path / "outbox") == 1, 20, "the file finished")
    assert len(result_files(tmp_path / "outbox")) == 1
    rows = csv_rows(tmp_path / "outbox")
    assert [r["source"] for r in rows] == ["full-0.png"]
    assert caplog.text.count("outbox full (disk full): 1 file(s) waiting for space") == 1
    assert "attempt 1 of" not in caplog.text  # a full disk is not the file's failure


class BrokenCommit(Outbox):
    """An Outbox whose first renames of staged JSONs fail with EIO: the batch's CSV
    rows are already written when its commit fails."""

    def __init__(self, root, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def publish_json(self, name):
        if self.failures > 0:
            self.failures -= 1
            raise OSError(errno.EIO, "Input/output error")
        return super().publish_json(name)


def test_a_batch_whose_commit_fails_after_its_rows_is_retried_without_second_rows(
        tmp_path, run_service, caplog):
    caplog.set_level(logging.INFO)
    run_service(outbox_factory=lambda root: BrokenCommit(root, failures=1), batch_wait_ms=300)
    drop(tmp_path / "inbox", 5, "commit")
    wait_until(lambda: done_count(tmp_path / "outbox") == 5 and work_files(tmp_path / "inbox") == [], 20,
               "five files finished, their work copies gone")
    assert "cannot write the results of a batch" in caplog.text
    rows = csv_rows(tmp_path / "outbox")
    assert sorted(r["source"] for r in rows) == [f"commit-{i}.png" for i in range(5)]
    assert len(result_files(tmp_path / "outbox")) == 5


def test_disk_full_for_good_never_drops_the_file(tmp_path, run_service, caplog):
    """ENOSPC on every write: far past retry_max_attempts the file is neither
    failed nor dropped: it stays claimed and waits for space (status says so);
    once space is back it is finished, exactly once."""
    caplog.set_level(logging.DEBUG)
    service = run_service(outbox_factory=lambda root: FullDisk(root, failures=10**9),
                          retry_max_attempts=2)
    drop(tmp_path / "inbox", 1, "stuck")
    wait_until(lambda: caplog.text.count("stuck-0.png: disk full, trying again") >= 4, 20,
               "four waits for space")
    assert "gave up" not in caplog.text and "cannot fail it either" not in caplog.text
    snap = service.snapshot()
    assert (snap["outbox_full"], snap["waiting_for_space"], snap["retrying"]) == (True, 1, 1)
    assert inbox_files(tmp_path / "inbox") == []
    assert len([f for f in work_files(tmp_path / "inbox") if f.endswith(".png")]) == 1, \
        "still claimed"
    assert result_files(tmp_path / "outbox") == []
    with service.outbox.lock:
        service.outbox.failures = 0  # space is back
    # the original is linked into the outbox before its work copy is removed: wait for both
    wait_until(lambda: done_count(tmp_path / "outbox") == 1 and work_files(tmp_path / "inbox") == [], 30,
               "the file finished and its work copy gone")
    assert len(csv_rows(tmp_path / "outbox")) == 1
    assert len(result_files(tmp_path / "outbox")) == 1


def test_a_file_that_breaks_recognition_is_failed_alone(tmp_path, run_service):
    """One input makes the recognizer raise: the batch is retried file by file,
    that file is failed, the others get their results."""
    import cv2
    from conftest import draw_digits

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    ok, buf = cv2.imencode(".png", draw_digits("88", height=60))
    recognizer = FakeRecognizer(poison_wide=True)
    drop(inbox, 5, "fine")  # a backlog: settled together, so all six are one batch
    (inbox / "poison.png").write_bytes(buf.tobytes())
    run_service(recognizer=recognizer, batch_wait_ms=500)
    wait_until(lambda: done_count(tmp_path / "outbox") == 6, 20, "six files finished")
    (record,) = error_records(tmp_path / "outbox")
    assert record["source"] == "poison.png"
    assert record["reason"] == "recognition failed: RuntimeError: the model broke"
    statuses = sorted(r["status"] for r in result_files(tmp_path / "outbox"))
    assert statuses == ["failed"] + ["ok"] * 5


def test_recognition_failing_for_everything_is_retried_then_failed(tmp_path, run_service):
    run_service(recognizer=FakeRecognizer(always=True), retry_max_attempts=2)
    drop(tmp_path / "inbox", 2, "doomed")
    wait_until(lambda: done_count(tmp_path / "outbox") == 2 and work_files(tmp_path / "inbox") == [], 20,
               "both files failed, their work copies gone")
    reasons = {r["source"]: r for r in error_records(tmp_path / "outbox")}
    for record in reasons.values():
        assert record["reason"].startswith("gave up after 2 attempts: recognition failed")
        assert record["attempts"] == 3


def test_watchdog_pings_stop_when_the_watcher_dies_and_the_service_exits(tmp_path,
                                                                          run_service):
    notifier = RecordingNotifier(watchdog_seconds=0.05)
    service = run_service(notifier=notifier)
    wait_until(lambda: notifier.messages.count("WATCHDOG=1") >= 3, 10, "WATCHDOG pings")
    assert notifier.messages[0] == "READY=1"
    service.inbox._observer.stop()  # the observer thread ends
    service.thread.join(10)
    assert service.result.get("code") == EXIT_THREAD_DIED
    last = max(i for i, m in enumerate(notifier.messages) if m == "WATCHDOG=1")
    assert "STOPPING=1" in notifier.messages[last:]


def test_inotify_limit_falls_back_to_polling_with_one_warning(tmp_path, run_service, caplog):
    from digitd.inbox.watcher import make_observer

    def observer_factory(polling, interval):
        if not polling:
            class Limited:
                def schedule(self, *args, **kwargs):
                    pass

                def start(self):
                    raise OSError(errno.ENOSPC, "inotify watch limit reached")
            return Limited()
        return make_observer(polling, interval)

    caplog.set_level(logging.INFO)
    service = run_service(observer_factory=observer_factory, poll_interval_seconds=0.1)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "inotify watch limit reached" in warnings[0].getMessage()
    assert "polling every 0.1 s instead" in warnings[0].getMessage()
    assert service.inbox.polling
    drop(tmp_path / "inbox", 3, "polled")
    wait_until(lambda: done_count(tmp_path / "outbox") == 3, 20, "three files finished")


def test_recursive_inbox_and_on_success_delete(tmp_path, run_service):
    run_service(recursive=True, on_success="delete")
    inbox = tmp_path / "inbox"
    (inbox / "lab" / "day 1").mkdir(parents=True)
    (inbox / "lab" / "day 1" / "scan.png").write_bytes(unique_png(3, "deep"))
    (inbox / "scan.png").write_bytes(unique_png(4, "top"))
    wait_until(lambda: len(result_files(tmp_path / "outbox")) == 2, 20, "two results")
    results = sorted(result_files(tmp_path / "outbox"), key=lambda r: r["source"])
    assert [r["source"] for r in results] == ["lab/day 1/scan.png", "scan.png"]
    assert sorted(r["_file"] for r in results) == ["scan-1.json", "scan.json"], \
        "same stem, different inputs: suffixed, nothing overwritten"
    wait_until(lambda: not (inbox / "scan.png").exists()
               and not (inbox / "lab" / "day 1" / "scan.png").exists(), 10, "inputs gone")
    assert not (tmp_path / "outbox" / "originals").exists(), "on_success: delete"
    assert (inbox / "lab" / "day 1").is_dir(), "folders are left in place"
    wait_until(lambda: work_files(inbox) == [], 10, "work folder empty")


def test_preflight_refuses_a_folder_it_cannot_write(tmp_path, monkeypatch):
    """(Tests run as root, who may write anywhere: the permission check is faked
    here; missing folders are refused by the real service in test_service.py.)"""
    from digitd.errors import ConfigError
    from digitd.service import preflight

    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    config = parse_config({"inbox": "in", "outbox": "out"}, "site.yaml", tmp_path)
    config = config.replace(source=tmp_path / "site.yaml")
    real_access = __import__("os").access
    monkeypatch.setattr("os.access", lambda p, mode: False if str(p).endswith("out")
                        else real_access(p, mode))
    with pytest.raises(ConfigError) as info:
        preflight(config)
    assert info.value.exit_code == 2
    assert str(info.value) == (f"outbox folder {tmp_path / 'out'} is not writable by this user "
                               f"(key 'outbox' in {tmp_path / 'site.yaml'})")


class PoisonName(Outbox):
    """An Outbox whose NAME reservation has a bug for one stem (raises RuntimeError)."""

    def claim_name(self, stem):
        if stem == "poison":
            raise RuntimeError("a bug in the bookkeeping of this one file")
        return super().claim_name(stem)


def test_a_bug_in_one_files_bookkeeping_never_stops_the_others(tmp_path, run_service, caplog):
    """issue 10 (e): the bug recurs on every attempt (and when failing the file);
    the other files of its batches are finished, the service stays up."""
    caplog.set_level(logging.INFO)
    service = run_service(outbox_factory=PoisonName, batch_wait_ms=300)
    inbox = tmp_path / "inbox"
    (inbox / "poison.png").write_bytes(unique_png(1, "poison"))
    drop(inbox, 5, "fine")
    wait_until(lambda: done_count(tmp_path / "outbox") == 5, 20, "the five other files")
    wait_until(lambda: caplog.text.count("poison.png: cannot record the retry") >= 1, 20,
               "the poison past its last attempt")
    assert service.dead_thread() is None and service.thread.is_alive()
    assert "poison.png: unexpected error; it will be retried" in caplog.text
    assert sorted(r["source"] for r in csv_rows(tmp_path / "outbox")) == [
        f"fine-{i}.png" for i in range(5)]
    assert [f for f in work_files(inbox) if f.endswith(".png")][0].endswith("_poison.png")
