"""The lean runtime: serving imports neither TensorFlow nor Keras (the
DIGITD_DEBUG_MODULES hook lists what a real process loaded), matplotlib only where
pictures are drawn; predict from any folder with the shipped model; the progress
bar on a terminal; a folder with nothing to read.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from conftest import SHIPPED_MODEL, clean_env, find_digitd_exe
from service_support import Digitd, digit_png, make_setup, wait_until

from digitd.config import PACKAGED_MODEL

MODULES = re.compile(r"^digitd: modules: (.*)$", re.M)


def modules(stderr: str) -> set[str]:
    found = MODULES.findall(stderr)
    assert len(found) == 1, stderr
    return set(found[0].split())


def digitd(*args, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120,
           **kwargs) -> subprocess.CompletedProcess:
    exe = find_digitd_exe()
    assert exe is not None
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def scans(folder: Path, digits: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, d in enumerate(digits):
        path = folder / f"s{i:02d}-{d}.png"
        path.write_bytes(digit_png(int(d)))
        out.append(path)
    return out


# --- no TensorFlow, no Keras ---------------------------------------------------------------------


@pytest.mark.parametrize("annotate", [True, False], ids=["pictures", "no-pictures"])
def test_predict_imports_no_tensorflow(tmp_path, annotate):
    (scan,) = scans(tmp_path / "in", "5")
    args = ["predict", "--json", "--model", SHIPPED_MODEL, "--out", tmp_path / "out", scan]
    proc = digitd(*args[:1], *([] if annotate else ["--no-annotate"]), *args[1:], cwd=tmp_path,
                  env={"DIGITD_DEBUG_MODULES": "1"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["number"] == "5"
    loaded = modules(proc.stderr)
    assert {"digitd", "ai_edge_litert", "cv2", "numpy"} <= loaded
    assert not loaded & {"tensorflow", "keras", "tf_keras"}
    assert "matplotlib" not in loaded  # pictures are drawn with Pillow
    assert ("PIL" in loaded) == annotate  # a few inputs: pictures drawn in this process


def test_check_config_imports_no_tensorflow(tmp_path):
    proc = digitd("check-config", cwd=tmp_path, env={"DIGITD_DEBUG_MODULES": "1"})
    assert proc.returncode == 0, proc.stderr
    loaded = modules(proc.stderr)
    assert not loaded & {"tensorflow", "keras", "matplotlib", "cv2", "ai_edge_litert"}


def test_service_imports_neither_tensorflow_nor_matplotlib(tmp_path, digitd_exe):
    """Pictures on: the workers draw them; the service process imports no drawing library."""
    setup = make_setup(tmp_path, SHIPPED_MODEL, annotate=True)
    svc = Digitd(exe=digitd_exe, config=setup.config, log_path=tmp_path / "digitd.log",
                 env={"DIGITD_DEBUG_MODULES": "1"}).start()
    try:
        svc.wait_ready()
        (setup.inbox / "six.png").write_bytes(digit_png(6))
        result = setup.outbox / "results" / "six.json"
        wait_until(result.exists, 30, "six.json", on_fail=svc.tail)
        assert json.loads(result.read_text())["number"] == "6"
        assert (setup.outbox / "annotated" / "six.png").is_file()
        assert svc.terminate() == 0
    finally:
        svc.kill()
    loaded = modules(svc.log())
    assert {"digitd", "ai_edge_litert", "watchdog"} <= loaded
    assert not loaded & {"tensorflow", "keras", "matplotlib", "PIL"}


# --- predict from any folder -----------------------------------------------------------------------


def test_predict_without_a_config_uses_the_shipped_model(tmp_path):
    """No config.yaml here: every default, the model shipped inside the package."""
    assert PACKAGED_MODEL.is_file()
    (scan,) = scans(tmp_path / "elsewhere", "8")
    proc = digitd("predict", "--json", "--out", tmp_path / "results", scan, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["number"], result["model"]) == ("8", "digitd-cnn-v8")
    assert (f"from {PACKAGED_MODEL}; config defaults (no config file); 1 input(s)") in proc.stderr
    assert (tmp_path / "results" / "results" / f"{scan.stem}.json").is_file()


def test_predict_without_a_config_writes_to_the_default_outbox(tmp_path):
    (scan,) = scans(tmp_path, "2")
    proc = digitd("predict", "--no-annotate", scan.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "outbox" / "results" / f"{scan.stem}.json").read_text())["number"] == "2"


def test_the_loaded_line_names_the_config_and_model(tmp_path):
    setup = make_setup(tmp_path / "site", SHIPPED_MODEL)
    (scan,) = scans(tmp_path / "in", "1")
    proc = digitd("predict", "--config", setup.config, "--no-annotate", scan, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^INFO digitd\.predict: model digitd-cnn-v8 loaded in \d+\.\d s \(TFLite .* from "
                     r"digitd-cnn-v8\.tflite\) from " + re.escape(f"{SHIPPED_MODEL}; config {setup.config};"),
                     proc.stderr, re.M), proc.stderr


def test_check_config_without_a_config_shows_the_defaults(tmp_path):
    proc = digitd("check-config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# effective config: the defaults (no config file), "
                                  "the model shipped with digitd\n")
    assert f"model: {PACKAGED_MODEL}\n" in proc.stdout
    assert f"inbox: {tmp_path / 'inbox'}\n" in proc.stdout


def test_run_still_needs_a_config(tmp_path):
    proc = digitd("run", cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == (f"digitd: error: config.yaml: config file not found "
                           f"(looked for {tmp_path}/config.yaml)\n")


# --- nothing to read -----------------------------------------------------------------------------------


def test_a_folder_with_no_image_files_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    proc = digitd("predict", "--json", empty, cwd=tmp_path, env={"DIGITD_DEBUG_MODULES": "1"})
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("digitd: modules:")]
    assert lines[-1] == f"digitd: error: no image files to read in {empty}"
    assert f"WARNING digitd.predict: {empty}: no image files in this folder" in lines
    assert "ai_edge_litert" not in modules(proc.stderr)  # refused before the model is loaded


# --- progress: a bar on a terminal, lines otherwise ------------------------------------------------------


def run_on_terminal(args: list, cwd: Path, timeout: float = 120) -> tuple[int, str]:
    """Run digitd with stderr on a pseudo-terminal; -> (exit code, what it showed there)."""
    exe = find_digitd_exe()
    assert exe is not None
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    proc = subprocess.Popen([str(exe), *map(str, args)], cwd=cwd, env=clean_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the other side is closed
                    break
                if not chunk:
                    break
                shown += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, shown.decode("utf-8", "replace")


def test_a_progress_bar_on_a_terminal(tmp_path):
    inputs = scans(tmp_path / "many", "0123456789")
    (tmp_path / "many" / "s99-broken.png").write_bytes(b"broken")
    code, shown = run_on_terminal(["predict", "--no-annotate", "--out", tmp_path / "out",
                                   tmp_path / "many"], tmp_path)
    assert code == 1, shown
    assert "11/11" in shown and "img/s" in shown  # tqdm: count and rate
    assert "s99-broken.png -> failed" in shown  # failures are still named
    assert " -> 3 (" not in shown  # no per-file lines for the good ones
    assert "digitd: 11 input(s): 10 ok, 1 failed" in shown
    assert len(inputs) == 10


def test_verbose_keeps_the_per_file_lines_on_a_terminal(tmp_path):
    scans(tmp_path / "few", "47")
    code, shown = run_on_terminal(["predict", "--verbose", "--no-annotate", "--out", tmp_path / "out",
                                   tmp_path / "few"], tmp_path)
    assert code == 0, shown
    assert re.search(r"s00-4\.png -> 4 \(\d\.\d\d\) \d+ ms", shown), shown
    assert "img/s" not in shown


def test_lines_not_a_bar_when_not_a_terminal(tmp_path):
    scans(tmp_path / "few", "47")
    proc = digitd("predict", "--no-annotate", "--out", tmp_path / "out", tmp_path / "few", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert re.fullmatch(r".*s00-4\.png -> 4 \(\d\.\d\d\) \d+ ms", lines[1]), proc.stderr
    assert re.fullmatch(r".*s01-7\.png -> 7 \(\d\.\d\d\) \d+ ms", lines[2]), proc.stderr
    assert lines[3].startswith("digitd: 2 input(s): 2 ok in ")
    assert len(lines) == 4 and "img/s" not in proc.stderr
