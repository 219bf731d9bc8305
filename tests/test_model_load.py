"""Loading the served model when its companion cannot be used: missing, stale or
corrupt, with TensorFlow absent (tests/no_tensorflow on PYTHONPATH) and present;
each with its one-line error and exit code. A running service whose new model has
no usable companion keeps the old one. And LiteRT answers exactly as tf.lite.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import SHIPPED_MODEL, clean_env, find_digitd_exe
from service_support import Digitd, digit_png, make_setup, wait_until

NO_TF = Path(__file__).resolve().parent / "no_tensorflow"
EXPORT = "python scripts/export_tflite.py"


def no_tf_env(**extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(NO_TF), **extra}


def model_copy(folder: Path, *, companion: bool = True) -> Path:
    """The shipped model, its card and (if ``companion``) its .tflite, copied to ``folder``."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"shipped model {SHIPPED_MODEL} not present")
    folder.mkdir(parents=True, exist_ok=True)
    suffixes = (".keras", ".json", ".tflite") if companion else (".keras", ".json")
    for suffix in suffixes:
        shutil.copy(SHIPPED_MODEL.with_suffix(suffix), folder / f"m{suffix}")
    return folder / "m.keras"


def predict(tmp_path: Path, model: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    exe = find_digitd_exe()
    assert exe is not None
    (tmp_path / "in").mkdir(exist_ok=True)
    scan = tmp_path / "in" / "seven.png"
    scan.write_bytes(digit_png(7))
    return subprocess.run([str(exe), "predict", "--model", str(model), "--out", str(tmp_path / "out"),
                           "--no-annotate", *args, str(scan)], cwd=tmp_path, env=clean_env(**(env or {})),
                          capture_output=True, text=True, timeout=timeout)


def no_tf_line(model: Path, why: str) -> str:
    return (f"digitd: error: model {model}: {why}, and TensorFlow, needed to convert it, is not "
            f"installed (No module named 'tensorflow'); make the companion with: {EXPORT} {model} "
            f"(pip install 'digitd[train]')\n")


def set_card(model: Path, **changes) -> None:
    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["tflite"].update(changes)
    card_path.write_text(json.dumps(card))


# --- TensorFlow absent: exit 3, one line naming scripts/export_tflite.py -----------------------


def test_missing_companion_without_tensorflow(tmp_path):
    model = model_copy(tmp_path / "models", companion=False)
    proc = predict(tmp_path, model, env=no_tf_env())
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == no_tf_line(model, "no companion m.tflite")


def test_stale_companion_without_tensorflow(tmp_path):
    model = model_copy(tmp_path / "models")
    set_card(model, keras_sha256="0" * 64)  # made from another .keras
    proc = predict(tmp_path, model, env=no_tf_env())
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == no_tf_line(model, "companion m.tflite was made from another version of m.keras")


def test_corrupt_companion_without_tensorflow(tmp_path):
    model = model_copy(tmp_path / "models")
    model.with_suffix(".tflite").write_bytes(b"TFL3 but not really a model" * 10)
    proc = predict(tmp_path, model, env=no_tf_env())
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == no_tf_line(
        model, "companion m.tflite does not match the sha256 in m.json (damaged or replaced)")


def test_corrupt_companion_recorded_in_the_card_without_tensorflow(tmp_path):
    """Even a damaged file the card vouches for is refused by LiteRT, not served."""
    model = model_copy(tmp_path / "models")
    junk = b"\0" * 512
    model.with_suffix(".tflite").write_bytes(junk)
    set_card(model, sha256=hashlib.sha256(junk).hexdigest())
    proc = predict(tmp_path, model, env=no_tf_env())
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"digitd: error: model {model}: companion m.tflite cannot be used: ")
    assert proc.stderr.endswith(f"make the companion with: {EXPORT} {model} (pip install 'digitd[train]')\n")


def test_a_corrupt_tflite_given_as_the_model(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    proc = predict(tmp_path, bad, env=no_tf_env())
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"digitd: error: model {bad}: not a usable TFLite digit model: ")


def test_a_good_companion_serves_without_tensorflow(tmp_path):
    model = model_copy(tmp_path / "models")
    proc = predict(tmp_path, model, "--json", env=no_tf_env())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["number"] == "7"


def test_a_tflite_file_serves_directly(tmp_path):
    model = model_copy(tmp_path / "models").with_suffix(".tflite")
    proc = predict(tmp_path, model, "--json", env=no_tf_env())
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["number"], result["model"]) == ("7", "digitd-cnn-v8")


# --- TensorFlow present: converted as before -----------------------------------------------------


@pytest.mark.slow
def test_stale_companion_with_tensorflow_is_converted(tmp_path):
    pytest.importorskip("tensorflow")
    model = model_copy(tmp_path / "models")
    set_card(model, keras_sha256="0" * 64)
    proc = predict(tmp_path, model, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["number"] == "7"
    assert (f"INFO digitd.model: model m.keras: companion m.tflite was made from another version of "
            f"m.keras; serving with TFLite") in proc.stderr
    assert "scripts/export_tflite.py writes the companion" in proc.stderr


# --- the running service keeps its model -------------------------------------------------------------


def test_service_keeps_its_model_when_the_new_one_has_no_usable_companion(tmp_path, digitd_exe):
    model = model_copy(tmp_path / "models")
    setup = make_setup(tmp_path / "site", model)
    svc = Digitd(exe=digitd_exe, config=setup.config, log_path=setup.root / "digitd.log",
                 env=no_tf_env()).start()
    try:
        svc.wait_ready()

        def process(name: str) -> dict:
            (setup.inbox / f"{name}.png").write_bytes(digit_png(4))
            path = setup.outbox / "results" / f"{name}.json"
            wait_until(path.exists, 30, f"{name}.json", on_fail=svc.tail)
            return json.loads(path.read_text())

        assert process("before")["number"] == "4"
        new = model.with_name(".new.keras")
        new.write_bytes(model.read_bytes() + b"\0")  # another .keras: the companion is stale now
        os.replace(new, model)
        svc.wait_log(r"new model not loaded, still serving with digitd-cnn-v8: model "
                     + str(model).replace(".", r"\.")
                     + r": companion m\.tflite was made from another version of m\.keras, "
                       r"and TensorFlow, needed to convert it, is not installed", 30)
        after = process("after")
        assert (after["number"], after["model"], after["status"]) == ("4", "digitd-cnn-v8", "ok")
        assert svc.alive()
        assert svc.terminate() == 0
    finally:
        svc.kill()


# --- LiteRT gives exactly tf.lite's answers --------------------------------------------------------


@pytest.mark.slow
def test_litert_answers_exactly_as_tf_lite_on_mnist(mnist_path):
    """All 10,000 MNIST test digits through the shipped companion: LiteRT (served)
    against TensorFlow's own tf.lite.Interpreter, the same probabilities."""
    pytest.importorskip("tensorflow")
    from digitd.model import TFLiteEngine, batched, tf_lite_interpreter

    if not SHIPPED_MODEL.with_suffix(".tflite").is_file():
        pytest.skip("shipped companion not present")
    blob = SHIPPED_MODEL.with_suffix(".tflite").read_bytes()
    with np.load(mnist_path) as data:
        x, y = data["x_test"].astype(np.float32) / 255.0, data["y_test"]
    served = TFLiteEngine(blob)
    reference = TFLiteEngine(blob, interpreter=tf_lite_interpreter())
    p_served = batched(served, x, served.buckets, served.pad)
    p_ref = batched(reference, x, reference.buckets, reference.pad)
    assert len(p_served) == 10_000
    assert (p_served.argmax(1) == p_ref.argmax(1)).all()
    assert np.array_equal(p_served, p_ref)
    assert int((p_served.argmax(1) == y).sum()) == 9937  # the card's tflite 99.37%
