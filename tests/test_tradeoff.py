"""scripts/tradeoff.py counts coverage and silent errors per threshold exactly, and
runs end to end on a page set through the real ``digitd predict``."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))  # tradeoff.py imports accuracy.py beside it
spec = importlib.util.spec_from_file_location("script_tradeoff", REPO_ROOT / "scripts" / "tradeoff.py")
tradeoff = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = tradeoff  # dataclasses look their module up there
spec.loader.exec_module(tradeoff)


def number(text, confidence, box, status="ok"):
    return {"number": text, "confidence": confidence, "box": box, "status": status, "printed": False}


def test_a_threshold_counts_right_and_wrong_ok_numbers():
    labels = {"files": {
        "form.png": {"pages": [{"page": 1, "width": 1000, "height": 1000, "numbers": [
            {"text": "42", "box": [100, 100, 80, 40]},
            {"text": "7", "box": [100, 300, 40, 40]},
            {"text": "12/05", "box": [100, 500, 120, 40]},
            {"text": "9", "box": [100, 700, 40, 40]}]}]},
        "letter.png": {"pages": [{"page": 1, "width": 100, "height": 100, "numbers": []}]},
    }}
    results = {
        "form.png": {"pages": [{"page": 1, "width": 500, "height": 500, "numbers": [  # half the label's scale
            number("42", 0.97, [50, 50, 40, 20]),
            number("1", 0.95, [50, 150, 20, 20]),  # misread
            number("1205", 0.99, [50, 250, 60, 20], status="uncertain"),  # its separator doubted
            number("3", 0.6, [400, 400, 20, 20]),  # on no label: extra
            {**number("2024", 0.99, [300, 50, 60, 20]), "printed": True},  # printed: not counted
        ]}]},  # the "9" is missed
        "letter.png": {"pages": [{"page": 1, "width": 100, "height": 100, "numbers": [number("8", 0.85, [0, 0, 9, 9])]}]},
    }
    tally = tradeoff.tally_pages(labels, results)
    assert tally.labelled == 4
    assert len(tally.reported) == 5
    assert tally.at(0.0) == (1, 3)  # 42 right; 1, 3 and the letter's 8 wrong; 1205 doubted
    assert tally.at(0.9) == (1, 1)
    assert tally.at(0.96) == (1, 0)
    assert tally.at(0.98) == (0, 0)


def test_runs_on_a_page_set_and_writes_its_table_and_plot(tmp_path, mnist_path):
    out = tmp_path / "set"
    made = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "pages.py"), "--out", str(out), "--pages", "2",
                           "--seed", "78", "--set", "pages", "--mnist", str(mnist_path)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "tradeoff.py"), "--pages", str(out),
                           "--no-real", "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "t.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 0") or line.startswith("| 0.")]
    assert len(rows) == len(tradeoff.THRESHOLDS)
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    labelled = sum(len(p["numbers"]) for f in json.loads((out / "labels.json").read_text())["files"].values()
                   for p in f["pages"])
    assert f"/{labelled})" in rows[0].split("|")[2], rows[0]  # coverage's denominator: every labelled number
