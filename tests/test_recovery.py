"""Crash triage and adoption of dead instances' work folders, built by hand on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from digitd.jobs import Job, Permanent
from digitd.outbox import Outbox
from digitd.recovery import Phase, adopt, triage
from digitd.workdir import State, WorkArea, read_journal, state_path, write_journal


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path / "outbox")


def claimed(tmp_path: Path, state: State, content: bytes | None = b"png") -> Job:
    folder = tmp_path / "work"
    folder.mkdir(exist_ok=True)
    path = folder / f"tok_{state.source}"
    if content is not None:
        path.write_bytes(content)
    return Job(path=path, folder=folder, state=state)


def test_claimed_file_gone(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png", name="a", phase="quarantine"), content=None)
    assert triage(job, outbox) is Phase.GONE


def test_phase_quarantine(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png", name="a", phase="quarantine", reason="bad"))
    assert triage(job, outbox) is Phase.QUARANTINE


def test_a_link_being_quarantined_is_quarantined(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png", name="a", phase="quarantine"), content=None)
    os.symlink("/etc/passwd", job.path)
    assert triage(job, outbox) is Phase.QUARANTINE


def test_name_recorded_and_result_written(tmp_path, outbox):
    name = outbox.claim_name("a")
    outbox.stage_json(name, {"status": "ok"})
    outbox.publish_json(name)
    job = claimed(tmp_path, State(source="a.png", name=name))
    assert triage(job, outbox) is Phase.WRITTEN


def test_name_recorded_but_only_reserved(tmp_path, outbox):
    name = outbox.claim_name("a")
    assert os.path.exists(outbox.reserve_path(name))
    job = claimed(tmp_path, State(source="a.png", name=name))
    assert triage(job, outbox) is Phase.FRESH


def test_name_recorded_and_staged_but_not_published(tmp_path, outbox):
    name = outbox.claim_name("a")
    outbox.stage_json(name, {"status": "ok"})
    job = claimed(tmp_path, State(source="a.png", name=name))
    assert triage(job, outbox) is Phase.FRESH


def test_no_name_recorded(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png"))
    assert triage(job, outbox) is Phase.FRESH


def test_a_symlink_is_permanent(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png"), content=None)
    os.symlink("/nowhere/x.png", job.path)
    with pytest.raises(Permanent) as caught:
        triage(job, outbox)
    assert caught.value.reason == "a symbolic link (to /nowhere/x.png); links are not followed"
    assert str(caught.value) == caught.value.reason


def test_a_fifo_is_permanent(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png"), content=None)
    os.mkfifo(job.path)
    with pytest.raises(Permanent) as caught:
        triage(job, outbox)
    assert caught.value.reason == "not a regular file (a named pipe)"


def test_a_folder_is_permanent(tmp_path, outbox):
    job = claimed(tmp_path, State(source="a.png"), content=None)
    job.path.mkdir()
    with pytest.raises(Permanent, match=r"^not a regular file \(a folder\)$"):
        triage(job, outbox)


# -- adoption ----------------------------------------------------------------


def dead_folder(inbox: Path, ident: str) -> Path:
    """The work folder and lock file of an instance that died (lock not held)."""
    base = inbox / ".digitd"
    folder = base / "work" / ident
    folder.mkdir(parents=True)
    (base / f"{ident}.lock").write_bytes(b"")
    return folder


@pytest.fixture
def work(tmp_path: Path):
    area = WorkArea(tmp_path / "inbox", instance_id="me")
    area.open()
    yield area
    area.close()


def test_adopt_a_dead_instances_folder(tmp_path, outbox, work):
    inbox = work.inbox
    folder = dead_folder(inbox, "dead-1")
    for name in ("a", "b", "d", "e"):
        assert outbox.claim_name(name) == name
    # a file recorded in a batch journal
    (folder / "t1_a.png").write_bytes(b"a")
    journal = write_journal(folder, {"t1_a.png": State(source="a.png", name="a")})
    # a file with a state record (a retry), which wins over its journal entry
    (folder / "t2_b.png").write_bytes(b"b")
    State(source="b.png", name="b", attempts=2, last_error="disk full").save(
        state_path(folder / "t2_b.png"))
    # a file claimed just before the crash, without any record
    (folder / "t3_sub%2Fc.png").write_bytes(b"c")
    # an orphan record whose file is gone
    State(source="d.png", name="d").save(state_path(folder / "t4_d.png"))
    # a journal no job needs: its one file has a state record, the other is gone
    unneeded = write_journal(folder, {"t2_b.png": State(source="b.png", name="b"),
                                      "t5_e.png": State(source="e.png", name="e")})
    (folder / ".tmp-interrupted").write_bytes(b"x")

    taken = adopt(work, outbox)

    assert [f for f, _ in taken] == [folder]
    jobs = taken[0][1]
    by_source = {j.source: j for j in jobs}
    assert sorted(by_source) == ["a.png", "b.png", "sub/c.png"]
    a, b, c = by_source["a.png"], by_source["b.png"], by_source["sub/c.png"]
    assert [(j.state.name, j.resumed, j.row_may_exist, j.record) for j in (a, b, c)] == [
        ("a", True, True, False), ("b", True, True, True), (None, True, False, False)]
    assert (b.state.attempts, b.state.last_error) == (2, "disk full")
    assert all(j.folder == folder for j in jobs)
    assert a.journal is not None and a.journal.path == journal and a.journal.pending == 1
    assert b.journal is None and c.journal is None
    # the orphan's record is removed and its reservation released; so is e's
    assert sorted(os.listdir(folder)) == sorted(
        ["t1_a.png", journal.name, "t2_b.png", "t2_b.png.state.json", "t3_sub%2Fc.png"])
    assert sorted(os.listdir(outbox.root / "results")) == [".a.reserve", ".b.reserve"]
    assert not unneeded.exists()
    assert read_journal(journal) == {"t1_a.png": State(
        source="a.png", name="a", claimed_at=a.state.claimed_at)}
    assert work.adopted == [folder]
    assert adopt(work, outbox) == []  # already ours


def test_an_empty_dead_folder_is_adopted_with_no_jobs(tmp_path, outbox, work):
    folder = dead_folder(work.inbox, "dead-2")
    assert adopt(work, outbox) == [(folder, [])]
    work.finished_with(folder)
    assert not folder.exists()
    assert not (work.inbox / ".digitd" / "dead-2.lock").exists()


def test_a_live_instances_folder_is_not_adopted(tmp_path, outbox, work):
    live = WorkArea(work.inbox, instance_id="live")
    live.open()
    try:
        (live.folder / "t1_a.png").write_bytes(b"a")
        assert adopt(work, outbox) == []
        assert work.adopted == []
        assert os.listdir(live.folder) == ["t1_a.png"]
    finally:
        live.close()


def test_a_real_instance_that_exited_is_adopted(tmp_path, outbox, work):
    script = (
        "import sys; from pathlib import Path; from digitd.workdir import WorkArea\n"
        "w = WorkArea(Path(sys.argv[1]), instance_id='gone-1'); w.open()\n"
        "src = w.inbox / 'x.png'; src.write_bytes(b'x'); print(w.claim(src).name)\n"
        "import os; os._exit(0)\n")
    done = subprocess.run([sys.executable, "-c", script, str(work.inbox)], capture_output=True,
                          text=True, timeout=60, check=True)
    work_name = done.stdout.strip()
    taken = adopt(work, outbox)
    assert [(f.name, [j.path.name for j in jobs]) for f, jobs in taken] == [
        ("gone-1", [work_name])]
    job = taken[0][1][0]
    assert (job.source, job.state.name, job.resumed, job.row_may_exist, job.record) == (
        "x.png", None, True, False, False)
