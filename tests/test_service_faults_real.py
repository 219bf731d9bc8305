"""Issue 10's faults provoked for real against the real ``digitd run`` subprocess:
a result JSON a power cut emptied, a size-limited tmpfs outbox (disk full),
file names that are not UTF-8, names of 250-255 bytes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
from digitd.results import CSV_COLUMNS
from service_support import (  # service: a fixture
    Digitd,
    assert_exactly_once,
    csv_rows,
    done_count,
    inbox_files,
    make_setup,
    result_files,
    service,
    sha,
    unique_png,
    wait_until,
    work_files,
)

pytestmark = pytest.mark.slow

CSV_FIELDS = len(CSV_COLUMNS)


def raw_csv_lines(outbox: Path) -> list[bytes]:
    data = (outbox / "results.csv").read_bytes()
    assert data.endswith(b"\n"), "results.csv ends inside a row"
    return data.split(b"\n")[:-1]


def assert_no_torn_row(outbox: Path) -> None:
    import csv
    import io

    text = b"\n".join(raw_csv_lines(outbox)).decode("utf-8")  # every byte UTF-8
    rows = list(csv.reader(io.StringIO(text)))
    torn = [r for r in rows if len(r) != CSV_FIELDS]
    assert torn == [], f"torn rows: {torn[:3]}"


def finish(svc: Digitd, setup, total: int, timeout: float = 90) -> None:
    wait_until(lambda: done_count(setup.outbox) >= total and not work_files(setup.inbox),
               timeout, f"{total} inputs finished", interval=0.1,
               on_fail=lambda: f"done {done_count(setup.outbox)}; work {work_files(setup.inbox)}"
                               f"\n{svc.tail()}")


# ---------------------------------------------------------------------------
# (c) recovery does not trust a result file that exists


def dead_instance_with(setup, entries: dict[str, tuple[str, bytes]]) -> None:
    """A stopped instance's work folder: each claimed file (source -> (NAME,
    bytes)) recorded in one batch journal, as a kill -9 leaves it."""
    work = setup.inbox / ".digitd" / "work" / "dead-1"
    work.mkdir(parents=True)
    (setup.inbox / ".digitd" / "dead-1.lock").write_bytes(b"")
    files = {}
    for i, (source, (name, data)) in enumerate(entries.items()):
        (work / f"tok{i}_{source}").write_bytes(data)
        files[f"tok{i}_{source}"] = {"source": source, "name": name, "claimed_at": 1.0}
    (work / "tok.batch.json").write_text(json.dumps({"files": files}))


def test_a_result_json_a_power_cut_emptied_is_redone_under_its_name_once(
        tmp_path, small_model, service):
    """a: its JSON is 0 bytes and its CSV row is there; b: its JSON is cut short and
    no row. Each is recognised again under its NAME: one JSON, one row, the original
    archived - and a complete JSON (c) is only archived, not redone."""
    setup = make_setup(tmp_path, small_model)
    data = {s: unique_png(i, s) for i, s in enumerate(["a.png", "b.png", "c.png"])}
    dead_instance_with(setup, {s: (s[0], d) for s, d in data.items()})
    results = setup.outbox / "results"
    results.mkdir()
    (results / "a.json").write_bytes(b"")
    (results / "b.json").write_bytes(b'{"source": "b.png", "stat')
    done_c = {"source": "c.png", "status": "ok", "number": "2", "sha256": sha(data["c.png"]),
              "processed_at": "2026-01-01T00:00:00.000Z"}
    (results / "c.json").write_text(json.dumps(done_c))
    header = "processed_at,source,status,number,confidence,model,sha256,result,error\n"
    (setup.outbox / "results.csv").write_text(
        header + f"2026-01-01T00:00:00.000Z,a.png,ok,0,0.9,m,{sha(data['a.png'])},results/a.json,\n"
        f"2026-01-01T00:00:00.000Z,c.png,ok,2,0.9,m,{sha(data['c.png'])},results/c.json,\n")
    svc = service(setup)
    svc.wait_ready()
    finish(svc, setup, 3)
    assert svc.terminate() == 0
    by_name = {r["_file"]: r for r in result_files(setup.outbox)}
    assert sorted(by_name) == ["a.json", "b.json", "c.json"]
    assert by_name["a.json"]["sha256"] == sha(data["a.png"])
    assert by_name["b.json"]["sha256"] == sha(data["b.png"])
    assert by_name["c.json"] == {**done_c, "_file": "c.json"}  # not redone
    rows = csv_rows(setup.outbox)
    assert sorted(r["result"] for r in rows) == ["results/a.json", "results/b.json",
                                                 "results/c.json"]
    assert sorted(os.listdir(setup.outbox / "originals")) == ["a.png", "b.png", "c.png"]
    assert "c.png -> finished (its result was written before a restart)" in svc.log()
    assert work_files(setup.inbox) == []


# ---------------------------------------------------------------------------
# (d) disk full, on a real size-limited tmpfs


class NotifySocket:
    """A $NOTIFY_SOCKET the test reads: every datagram kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(65536).decode())
            except BlockingIOError:
                return self.messages

    def statuses(self) -> list[str]:
        return [line[7:] for m in self.drain() for line in m.split("\n")
                if line.startswith("STATUS=")]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def small_tmpfs(tmp_path):
    """Factory: mount a tmpfs of ``size`` on a new folder; unmounted at teardown."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mounted: list[Path] = []

    def mount(name: str, size: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                            str(where)], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_disk_full_waits_for_space_no_torn_row_no_quarantine(tmp_path, small_model, service,
                                                             small_tmpfs):
    """The outbox on a 1 MB tmpfs, 120 inputs with their pictures: it fills. Nothing
    is quarantined, STATUS says "outbox full" with the count waiting, one warning;
    the tmpfs grown, every input finishes exactly once, with no torn CSV row."""
    outbox = small_tmpfs("outbox-fs", "1m")
    setup = make_setup(tmp_path, small_model, outbox=str(outbox), batch_max=8,
                       retry_backoff_seconds=0.2, retry_max_attempts=2)
    setup.outbox = outbox
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        svc = service(setup, env={"NOTIFY_SOCKET": str(notify.path)})
        svc.wait_ready()
        good = {}
        for i in range(120):
            data = unique_png(i % 10, f"full{i}" + os.urandom(1500).hex())  # 3 kB of text
            (setup.inbox / f"full-{i:03d}.png").write_bytes(data)
            good[f"full-{i:03d}.png"] = sha(data)
        full = wait_until(lambda: [s for s in notify.statuses() if s.startswith("outbox full")],
                          60, "STATUS saying the outbox is full", on_fail=svc.tail)
        assert "waiting for space" in full[-1]
        assert not (setup.outbox / "failed").exists() or \
            list((setup.outbox / "failed").iterdir()) == [], "quarantined for a full disk"
        log = svc.log()
        assert log.count("outbox full (disk full)") == 1, log.count("outbox full (disk full)")
        assert "gave up" not in log
        assert svc.alive()
        subprocess.run(["mount", "-o", "remount,size=64m", str(outbox)], check=True)
        finish(svc, setup, len(good), timeout=120)
        wait_until(lambda: any(s.startswith("processed") for s in notify.statuses()[-1:]), 10,
                   "STATUS without 'outbox full'")
        assert svc.terminate() == 0
    finally:
        notify.close()
    log = svc.log()
    assert "the outbox has room again" in log
    assert log.count("outbox full (disk full)") <= 2  # one a minute
    assert inbox_files(setup.inbox) == []
    assert_no_torn_row(setup.outbox)
    assert_exactly_once(setup.outbox, good, {})
    status = json.loads((setup.outbox / "status.json").read_text())
    assert (status["outbox_full"], status["waiting_for_space"], status["failed"]) == (False, 0, 0)


# ---------------------------------------------------------------------------
# (e) names that are not UTF-8, (f) names of 250-255 bytes


def test_names_that_are_not_utf8_are_processed_and_named_safely(tmp_path, small_model,
                                                                 service):
    setup = make_setup(tmp_path, small_model)
    inbox = os.fsencode(setup.inbox)
    names = [b"bad-\xff\xfe.png", b"caf\xe9-latin1.png", b"ok-1.png", b"\x80\x81.png"]
    good = {}
    for i, name in enumerate(names):
        data = unique_png(i, repr(name))
        with open(os.path.join(inbox, name), "wb") as f:
            f.write(data)
        good[os.fsdecode(name)] = sha(data)
    bad_data = b"not an image at all"
    with open(os.path.join(inbox, b"text-\xff.png"), "wb") as f:
        f.write(bad_data)
    svc = service(setup)
    svc.wait_ready()
    finish(svc, setup, len(names) + 1)
    assert svc.alive()
    assert svc.terminate() == 0
    results = result_files(setup.outbox)  # every JSON parses (valid UTF-8)
    by_sha = {r["sha256"]: r for r in results}
    for name in names:
        r = by_sha[good[os.fsdecode(name)]]
        shown = name.decode("utf-8", "backslashreplace")
        assert r["source"] == shown and r["status"] != "failed", r
        if shown != name.decode("utf-8", "surrogateescape"):
            assert bytes.fromhex(r["source_hex"]) == name
        else:
            assert "source_hex" not in r
    failed = [r for r in results if r["status"] == "failed"]
    assert [(r["source"], bytes.fromhex(r["source_hex"])) for r in failed] == [
        ("text-\\xff.png", b"text-\xff.png")]
    assert_no_torn_row(setup.outbox)
    assert sorted(os.listdir(os.fsencode(setup.outbox / "originals"))) == sorted(names)
    assert os.listdir(os.fsencode(setup.outbox / "failed")) != []
    assert_exactly_once(setup.outbox, {os.fsdecode(n): good[os.fsdecode(n)] for n in names},
                        {"text-\\xff.png": sha(bad_data)})


def test_names_of_250_to_255_bytes_are_claimed_and_processed(tmp_path, small_model, service):
    setup = make_setup(tmp_path, small_model)
    names = ["a" * 251 + ".png",  # 255 bytes
             "b" * 246 + ".png",  # 250
             "é" * 125 + ".png",  # 254 bytes, 129 characters
             "a" * 251 + ".png"[:0] + ".PNG"]  # same stem as the first: suffixed NAME
    good = {}
    for i, name in enumerate(names):
        assert 250 <= len(os.fsencode(name)) <= 255
        data = unique_png(i, name)
        (setup.inbox / name).write_bytes(data)
        good[name] = sha(data)
    svc = service(setup)
    svc.wait_ready()
    finish(svc, setup, len(names))
    svc.kill()  # and a restart with nothing left over
    svc = service(setup)
    svc.wait_ready()
    assert svc.terminate() == 0
    assert "file name too long" not in svc.log()
    by_sha = {r["sha256"]: r for r in result_files(setup.outbox)}
    for name in names:
        r = by_sha[good[name]]
        assert r["source"] == name and r["status"] != "failed"  # the full name
        assert len(r["_file"].encode()) <= 255
    assert sorted(os.listdir(setup.outbox / "originals")) == sorted(names)
    assert_no_torn_row(setup.outbox)
    assert_exactly_once(setup.outbox, good, {})


# ---------------------------------------------------------------------------
# (g) a file the service's user cannot read: the service runs as a real non-root user

USER = "digitd-faults"


def service_user() -> tuple[int, int]:
    """uid and gid of a real non-root user for the service (made with useradd)."""
    import pwd

    if os.geteuid() != 0:
        pytest.skip("running the service as another user needs root")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", USER], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot create a user: {r.stderr.strip()}")
        pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


def as_user(argv: list[str], uid: int, gid: int, scratch: Path) -> list[str]:
    """``argv`` run as uid:gid. If the venv's real interpreter lies under a folder
    that user cannot enter (a pyenv Python under /root), the command runs in a
    private mount namespace where only that interpreter's folder is shown there."""
    import sys

    prefix = os.path.realpath(sys.base_prefix)
    blocked = None
    here = prefix
    while here != "/":
        st = os.stat(here)
        if not st.st_mode & 0o001:  # others cannot enter it
            blocked = here
        here = os.path.dirname(here)
    drop = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
    if blocked is None:
        return drop + argv
    hold = scratch / "python-prefix"
    hold.mkdir(exist_ok=True)
    script = (f'set -e; mount --bind "{prefix}" "{hold}"; '
              f'mount -t tmpfs -o mode=0755 tmpfs "{blocked}"; mkdir -p "{prefix}"; '
              f'mount --bind "{hold}" "{prefix}"; exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"] \
        + drop + argv


def start_as(user: tuple[int, int], setup, digitd_exe, root: Path) -> Digitd:
    uid, gid = user
    log_path = root / "digitd.log"
    argv = as_user([str(digitd_exe), "run", "--config", str(setup.config)], uid, gid, root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    env.update(HOME=str(root), MPLCONFIGDIR=str(root / "mpl"))
    svc = Digitd(exe=digitd_exe, config=setup.config, log_path=log_path)
    svc._log_offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as err:
        svc.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=err, env=env, cwd=root)
    return svc


@pytest.mark.parametrize("outbox_fs", ["same", "other"])
def test_a_file_the_service_user_cannot_read_fails_once(small_model, digitd_exe, outbox_fs):
    """A root-owned mode-000 file, the service running as a real non-root user.
    Same file system: the file is renamed into failed/ (a hard link to it is
    refused). Outbox on another file system (a tmpfs): it cannot be copied
    either, so it is left in the inbox, marked known-failed, said once - and
    not tried again after a rescan or a restart."""
    import shutil
    import tempfile
    import time

    uid, gid = service_user()
    root = Path(tempfile.mkdtemp(prefix="digitd-user-", dir="/tmp"))
    mounted = None
    try:
        os.chmod(root, 0o755)
        models = root / "model"
        models.mkdir()
        for p in small_model.parent.iterdir():
            shutil.copy(p, models / p.name)
        setup = make_setup(root, models / small_model.name, retry_max_attempts=2,
                           retry_backoff_seconds=0.1, rescan_seconds=1.0)
        if outbox_fs == "other":
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size=64m,uid={uid},gid={gid}",
                                "tmpfs", str(setup.outbox)], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
            mounted = setup.outbox
        (root / "mpl").mkdir()
        for folder in (setup.inbox, setup.outbox, root / "mpl"):
            os.chown(folder, uid, gid)
        secret = unique_png(3, "secret")
        (setup.inbox / "secret.png").write_bytes(secret)  # root's, mode 000
        os.chmod(setup.inbox / "secret.png", 0)
        fine = unique_png(4, "fine")
        (setup.inbox / "fine.png").write_bytes(fine)  # root's, readable
        svc = start_as((uid, gid), setup, digitd_exe, root)
        try:
            svc.wait_ready(90)
            wait_until(lambda: "secret.png -> failed" in svc.log(), 60, "secret.png failed",
                       on_fail=svc.tail)
            finish(svc, setup, 1 if outbox_fs == "other" else 2, timeout=60)
            rescans_over = time.monotonic() + 3.5  # three rescans (rescan_seconds 1)
            wait_until(lambda: time.monotonic() > rescans_over, 10, "three rescans")
            assert svc.log().count("secret.png -> failed") == 1, svc.log()
            assert svc.alive()
            assert svc.terminate() == 0
        finally:
            svc.kill()
        assert os.stat(setup.outbox / "results.csv").st_uid == uid  # written by that user
        (record,) = [json.loads(p.read_text()) for p in (setup.outbox / "failed").glob("*.json")]
        assert (record["source"], record["reason"]) == (
            "secret.png", "gave up after 2 attempts: permission denied")
        assert sorted(os.listdir(setup.outbox / "originals")) == ["fine.png"]
        rows = csv_rows(setup.outbox)
        assert sorted((r["source"], r["status"]) for r in rows) == [
            ("fine.png", "ok"), ("secret.png", "failed")]
        if outbox_fs == "same":
            assert sorted(os.listdir(setup.outbox / "failed")) == ["secret.error.json",
                                                                   "secret.png"]
            st = os.stat(setup.outbox / "failed" / "secret.png")
            assert (st.st_uid, st.st_mode & 0o777) == (0, 0)  # the very file, moved
            assert (setup.outbox / "failed" / "secret.png").read_bytes() == secret
            assert_exactly_once(setup.outbox, {"fine.png": sha(fine)},
                                {"secret.png": sha(secret)})
            assert inbox_files(setup.inbox) == [] and work_files(setup.inbox) == []
            return
        assert (record["file"], record["left_in_inbox"]) == (None, "secret.png")
        assert inbox_files(setup.inbox) == ["secret.png"] and work_files(setup.inbox) == []
        st = os.stat(setup.inbox / "secret.png")
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0)
        # a restart: the mark holds, the file is not tried again
        svc = start_as((uid, gid), setup, digitd_exe, root)
        try:
            svc.wait_ready(90)
            rescans_over = time.monotonic() + 3.5
            wait_until(lambda: time.monotonic() > rescans_over, 10, "three rescans")
            assert "secret.png" not in svc.log()
            assert svc.terminate() == 0
        finally:
            svc.kill()
        assert len(csv_rows(setup.outbox)) == 2 and inbox_files(setup.inbox) == ["secret.png"]
    finally:
        if mounted is not None:
            subprocess.run(["umount", "-l", str(mounted)], check=False)
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------
# (h) bytes written to a file after it was claimed (a second writer's descriptor)


def test_a_file_written_after_it_was_claimed_goes_back_to_settling(tmp_path, small_model,
                                                                   service):
    """The first half of a PNG is written and closed (so it is judged complete and
    claimed); a second descriptor, opened before, appends the rest once it is
    claimed. The service notices the change after reading, writes nothing, puts
    the file back; it is read again when complete: one result, of the final bytes."""
    import time

    setup = make_setup(tmp_path, small_model, settle_seconds=0.5)
    svc = service(setup)
    svc.wait_ready()
    data = unique_png(7, "appended later" * 50)
    half = len(data) // 2
    path = setup.inbox / "late.png"
    first = open(path, "wb")
    second = open(path, "ab")
    first.write(data[:half])
    first.close()  # "closed after writing": complete 20 ms later, then claimed
    work = setup.inbox / ".digitd" / "work" / svc.instance
    deadline = time.monotonic() + 20
    while not any(n.endswith("_late.png") for n in os.listdir(work)):  # as fast as can be
        assert time.monotonic() < deadline, f"never claimed\n{svc.tail()}"
    second.write(data[half:])
    second.close()
    finish(svc, setup, 1, timeout=30)
    assert svc.terminate() == 0
    log = svc.log()
    assert "late.png changed after it was read; back to settling" in log, log
    (result,) = result_files(setup.outbox)
    assert (result["status"], result["sha256"]) == ("ok", sha(data)), result
    assert (setup.outbox / "originals" / "late.png").read_bytes() == data
    assert len(csv_rows(setup.outbox)) == 1
    assert not (setup.outbox / "failed").exists()
