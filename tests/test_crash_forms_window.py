"""``kill -9`` at the two moments of a group commit that matter to the forms CSV,
made certain: the real ``digitd run`` kills itself (SIGKILL, from a
``sitecustomize`` on its PYTHONPATH) right after a batch's forms rows are
appended and before its results.csv rows, then, started again, right after its
results.csv rows and before any JSON is published. Started a third time it
finishes: every form page has exactly one forms CSV row and every number one
results.csv row."""

from __future__ import annotations

import csv
import signal
import textwrap
from collections import Counter

from form_support import EXAM_NAME, exam_page, handwriting, png, write_forms
from service_support import (
    Digitd,
    csv_rows,
    done_count,
    finish_all,
    inbox_files,
    make_setup,
    result_files,
    wait_until,
    work_files,
)

HOOK = '''
import os, signal
from pathlib import Path

def _install():
    from digitd import outbox
    real = outbox.Outbox.append_rows
    marks = Path(os.environ["FORMS_KILL_MARKS"])

    def append_rows(self, rows, forms, *, fsync):
        kill_before_results = forms and not (marks / "forms-done").exists()
        if kill_before_results:
            real(self, [], forms, fsync=fsync)  # the forms rows alone
            (marks / "forms-done").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        out = real(self, rows, forms, fsync=fsync)
        if rows and not (marks / "results-done").exists():
            (marks / "results-done").touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    outbox.Outbox.append_rows = append_rows

if os.environ.get("FORMS_KILL_MARKS"):
    _install()
'''


def test_kill_9_between_the_forms_rows_and_results_csv_and_before_the_jsons(
        tmp_path, mnist_path, shipped_model, digitd_exe):
    hand = handwriting(mnist_path, shipped_model)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(HOOK))
    marks = tmp_path / "marks"
    marks.mkdir()
    forms = write_forms(tmp_path / "forms", lab=False)
    setup = make_setup(tmp_path, shipped_model, forms=str(forms), batch_max=8)
    names = [f"form-{i}.png" for i in range(3)]
    for i, name in enumerate(names):
        (setup.inbox / name).write_bytes(png(exam_page(hand, {"student_id": f"{i}1234567",
                                                              "score": f"{i + 1}"}, start=i)))
    env = {"PYTHONPATH": str(hook), "FORMS_KILL_MARKS": str(marks)}
    log_path = tmp_path / "digitd.log"
    for mark in ("forms-done", "results-done"):
        svc = Digitd(exe=digitd_exe, config=setup.config, log_path=log_path, env=env).start()
        try:
            wait_until(lambda: not svc.alive(), 120, f"the kill after {mark}", on_fail=svc.tail)
            assert svc.proc.returncode == -signal.SIGKILL, svc.tail()
        finally:
            svc.kill()
        assert (marks / mark).exists()
        assert done_count(setup.outbox) == 0  # killed before any JSON was published
    with open(setup.outbox / "forms" / f"{EXAM_NAME}.csv", newline="") as f:
        assert len(list(csv.reader(f))) > 1  # the first kill left forms rows behind

    finish_all(digitd_exe, setup, log_path, len(names), timeout=180)
    assert inbox_files(setup.inbox) == [] and work_files(setup.inbox) == []
    results = result_files(setup.outbox)
    assert sorted(r["source"] for r in results) == names
    with open(setup.outbox / "forms" / f"{EXAM_NAME}.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][:2] == ["file", "page"] and rows[0].count("file") == 1
    assert Counter((r[0], r[1]) for r in rows[1:]) == Counter((n, "1") for n in names)
    numbers = Counter((r["result"], r["page"], r["index"]) for r in csv_rows(setup.outbox))
    assert set(numbers.values()) == {1}
    assert len(numbers) == sum(len(r["numbers"]) for r in results) == 2 * len(names)
