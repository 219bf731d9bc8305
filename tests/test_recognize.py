"""The recognizer: one batched model call for many scans, statuses, confidence rules, real digits;
the engine serving the model (TFLite companion, converted in memory, tf.function fallback)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import draw_digits, font_digits
from digitd import model as digit_model
from digitd.errors import ModelLoadError
from digitd.imageio import to_scan
from digitd.model import TF_BUCKETS, TFLITE_BUCKETS, plan
from digitd.recognize import Recognizer, model_name
from digitd.segment import find_digits


def scan_of(text: str, **kw):
    return to_scan(draw_digits(text, **kw)) if text else to_scan(np.full((120, 90), 255, np.uint8))


@pytest.fixture(scope="module")
def small(small_model):
    return Recognizer(small_model)


def test_statuses_and_shapes(small):
    blank, one, three = small.read([scan_of(""), scan_of("4"), scan_of("307", height=120)])
    assert (blank.status, blank.number, blank.digits, blank.confidence) == ("blank", None, (), None)

    assert one.status in ("ok", "uncertain") and len(one.digits) == 1 and len(one.number) == 1
    d = one.digits[0]
    assert len(d.probabilities) == 10 and sum(d.probabilities) == pytest.approx(1.0, abs=1e-4)
    assert d.confidence == max(d.probabilities) and d.digit == int(np.argmax(d.probabilities))
    assert one.number == str(d.digit) and one.confidence == d.confidence
    assert d.pixels.shape == (28, 28)

    assert len(three.digits) == 3 and len(three.number) == 3
    xs = [dg.box[0] for dg in three.digits]
    assert xs == sorted(xs)
    assert three.number == "".join(str(dg.digit) for dg in three.digits)


@pytest.mark.parametrize("rule", ["min", "product"])
def test_number_confidence_rule_and_threshold(small_model, rule):
    scans = [scan_of("2024", height=100)]
    probe = Recognizer(small_model, number_confidence=rule).read(scans)[0]
    confs = [d.confidence for d in probe.digits]
    expected = min(confs) if rule == "min" else float(np.prod(confs))
    assert probe.confidence == pytest.approx(expected, rel=1e-6)
    # The threshold is inclusive: at the confidence itself ok, just above it uncertain.
    at = Recognizer(small_model, number_confidence=rule, confidence_threshold=probe.confidence).read(scans)[0]
    above = Recognizer(small_model, number_confidence=rule,
                       confidence_threshold=min(1.0, probe.confidence + 1e-6)).read(scans)[0]
    assert at.status == "ok"
    assert above.status == ("uncertain" if probe.confidence + 1e-6 <= 1.0 else "ok")
    assert above.number == probe.number  # uncertain still says what it read


def test_one_model_call_per_bucket_chunk_and_same_answers(small):
    assert small.engine.kind == "tflite"
    scans = [scan_of(str(i % 10), height=60 + (i % 5) * 10) for i in range(300)]
    calls = []
    real = small._call

    def counting(batch):
        calls.append(int(batch.shape[0]))
        return real(batch)

    small._call = counting
    try:
        together = small.read(scans)
    finally:
        small._call = real
    assert sum(len(r.digits) for r in together) == 300
    # 300 digits cut into bucket sizes exactly, largest first: no padding
    assert calls == [16] * 18 + [4] * 3
    assert small.engine.buckets == TFLITE_BUCKETS
    alone = [small.read([s])[0] for s in scans[:20]]
    for a, b in zip(alone, together[:20]):
        assert a.number == b.number
        # a digit's probabilities do not depend on the rest of its batch
        np.testing.assert_array_equal(a.digits[0].probabilities, b.digits[0].probabilities)


@pytest.mark.parametrize("n,buckets,pad,expected", [
    (1, TFLITE_BUCKETS, False, [(1, 1)]), (3, TFLITE_BUCKETS, False, [(1, 1)] * 3),
    (21, TFLITE_BUCKETS, False, [(16, 16), (4, 4), (1, 1)]), (32, TFLITE_BUCKETS, False, [(16, 16)] * 2),
    (300, TF_BUCKETS, False, [(256, 256), (16, 16), (16, 16), (4, 4), (4, 4), (4, 4)]),
    (3, TF_BUCKETS, True, [(3, 4)]), (300, TF_BUCKETS, True, [(256, 256), (44, 64)]), (0, TF_BUCKETS, True, []),
])
def test_plan_cuts_or_pads_batches_into_buckets(n, buckets, pad, expected):
    assert plan(n, buckets, pad) == expected


def test_classify_takes_marks_found_elsewhere(small):
    scans = [scan_of("5"), scan_of(""), scan_of("42", height=100)]
    found = [find_digits(s.image, small.max_digits) for s in scans]
    assert [len(marks) for marks, _ in found] == [1, 0, 2]
    assert small.classify(found) == small.read(scans)
    assert small.classify([]) == []


def test_buckets_are_warm_after_load(small_model):
    """Every bucket's interpreter was allocated and run once while loading, so
    the first file pays no allocation; one digit then costs one call of size 1."""
    rec = Recognizer(small_model)
    assert dict(rec.engine.calls) == {b: 1 for b in TFLITE_BUCKETS}
    rec.read([scan_of("7")])
    assert dict(rec.engine.calls) == {**{b: 1 for b in TFLITE_BUCKETS}, 1: 2}


def test_model_name_from_card_or_stem(tmp_path, small_model):
    assert model_name(small_model) == "tiny-test-mlp"
    assert model_name(tmp_path / "lonely.keras") == "lonely"


def test_shipped_model_reads_clear_digits_and_numbers(shipped_model):
    rec = Recognizer(shipped_model)
    texts = [str(d) for d in range(10)] + ["2024", "31", "907"]
    scans = [scan_of(t, height=200) for t in texts]
    scans += [to_scan(255 - draw_digits(t, height=200)) for t in ("5", "86")]  # light on dark
    readings = rec.read(scans)
    assert [r.number for r in readings] == texts + ["5", "86"]
    assert [r.polarity for r in readings[-2:]] == ["light_on_dark"] * 2


# --- the served engine: TFLite against the Keras model ------------------------------------


def keras_probabilities(model_path, pixels):
    from digitd import model as digit_model

    return digit_model.load(model_path).predict(pixels[..., None], batch_size=256, verbose=0)


def assert_parity(model_path, pixels, max_dp):
    rec = Recognizer(model_path)
    assert rec.engine.kind == "tflite"
    served, reference = rec.probabilities(pixels), keras_probabilities(model_path, pixels)
    assert np.array_equal(served.argmax(axis=1), reference.argmax(axis=1))
    assert np.abs(served - reference).max() <= max_dp
    return served


def test_tflite_parity_with_keras_on_font_digits(small_model, shipped_model):
    pixels, labels = font_digits(300, seed=5)
    assert_parity(small_model, pixels, 0.05)
    served = assert_parity(shipped_model, pixels, 0.05)
    assert (served.argmax(axis=1) == labels).mean() >= 0.9


@pytest.mark.slow
def test_tflite_parity_with_keras_on_mnist(shipped_model, mnist_path):
    from digitd.preprocess import to_mnist_batch

    with np.load(mnist_path) as npz:
        x, y = npz["x_test"][:500], npz["y_test"][:500]
    served = assert_parity(shipped_model, to_mnist_batch(x.astype(np.float32) / 255.0), 0.05)
    assert (served.argmax(axis=1) == y).mean() >= 0.99


# --- which engine serves: companion, converted in memory, tf.function ----------------------


@pytest.fixture
def model_copy(small_model, tmp_path):
    """A copy of the tiny model with its card and companion, in tmp_path."""
    for suffix in (".keras", ".json", ".tflite"):
        shutil.copy(small_model.with_suffix(suffix), tmp_path / f"m{suffix}")
    return tmp_path / "m.keras"


@pytest.fixture
def model_log(caplog):
    caplog.set_level(logging.DEBUG, logger="digitd.model")
    return lambda: [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "digitd.model"
                    and r.getMessage().startswith("model m.keras")]


def reference_readings(small_model):
    scans = [scan_of(t, height=80) for t in ("3", "2024", "")]
    return scans, Recognizer(small_model).read(scans)


def same_readings(a, b, atol=0.0):
    assert [r.number for r in a] == [r.number for r in b]
    for x, y in zip(a, b):
        for dx, dy in zip(x.digits, y.digits):
            np.testing.assert_allclose(dx.probabilities, dy.probabilities, atol=atol)


def test_companion_is_served_when_it_matches(model_copy, model_log):
    rec = Recognizer(model_copy)
    assert rec.engine.kind == "tflite"
    assert rec.engine.description.endswith("from m.tflite")
    assert "XNNPACK, 1 thread" in rec.engine.description
    assert model_log() == [(logging.DEBUG, f"model m.keras: serving with {rec.engine.description}")]


def test_stale_companion_is_not_used_the_model_is_converted(model_copy, small_model, model_log):
    import keras

    keras.saving.load_model(model_copy).save(model_copy)  # the same network, another file (sha256)
    rec = Recognizer(model_copy)
    assert rec.engine.kind == "tflite" and "converted in memory" in rec.engine.description
    [(level, message)] = model_log()
    assert level == logging.INFO
    assert message.startswith("model m.keras: companion m.tflite was made from another version of m.keras; "
                              "serving with TFLite")
    scans, expected = reference_readings(small_model)
    same_readings(rec.read(scans), expected)


@pytest.mark.parametrize("damage", ["bytes", "bytes and card"])
def test_damaged_companion_warns_and_still_reads_right(model_copy, small_model, model_log, damage):
    companion = model_copy.with_suffix(".tflite")
    companion.write_bytes(b"TFL3 this is not a flatbuffer" * 40)
    if damage == "bytes and card":  # the card vouches for the garbage: the interpreter refuses it
        card = json.loads(model_copy.with_suffix(".json").read_text())
        card["tflite"]["sha256"] = hashlib.sha256(companion.read_bytes()).hexdigest()
        model_copy.with_suffix(".json").write_text(json.dumps(card))
    rec = Recognizer(model_copy)
    assert rec.engine.kind == "tflite" and "converted in memory" in rec.engine.description
    [(level, message)] = model_log()
    assert level == logging.WARNING
    assert message.startswith("model m.keras: companion m.tflite " + (
        "does not match the sha256 in m.json (damaged or replaced)" if damage == "bytes"
        else "cannot be used: ValueError"))
    scans, expected = reference_readings(small_model)
    same_readings(rec.read(scans), expected)


def test_missing_companion_or_card_entry_means_converting(model_copy, model_log):
    model_copy.with_suffix(".json").write_text(json.dumps({"name": "m"}))
    assert "converted in memory" in Recognizer(model_copy).engine.description
    model_copy.with_suffix(".tflite").unlink()
    assert "converted in memory" in Recognizer(model_copy).engine.description
    messages = [m for _, m in model_log()]
    assert messages[0].startswith("model m.keras: companion m.tflite is not recorded in m.json; ")
    assert messages[1].startswith("model m.keras: no companion m.tflite; ")


def test_a_broken_keras_file_fails_even_beside_a_companion(model_copy):
    model_copy.write_bytes(b"PK\x03\x04 this is no model")
    with pytest.raises(ModelLoadError, match=r"^model .*m\.keras: cannot be loaded"):
        Recognizer(model_copy)
    model_copy.unlink()
    with pytest.raises(ModelLoadError, match=r"^model .*m\.keras: no such file$"):
        Recognizer(model_copy)


class BrokenInterpreter(digit_model.TFLiteEngine):
    """A TFLite engine whose interpreter fails when run (as on a CPU XNNPACK cannot serve)."""

    def __call__(self, batch):
        raise RuntimeError("XNNPACK delegate failed to run")


def test_tflite_failing_falls_back_to_tf_function(model_copy, small_model, model_log, monkeypatch):
    scans, expected = reference_readings(small_model)
    monkeypatch.setattr(digit_model, "TFLiteEngine", BrokenInterpreter)
    rec = Recognizer(model_copy)
    assert rec.engine.kind == "tf.function"
    assert dict(rec.engine.calls) == {b: 1 for b in TF_BUCKETS}  # traced and warm
    [(level, message)] = model_log()
    assert level == logging.WARNING
    assert message == ("model m.keras: companion m.tflite cannot be used: RuntimeError: XNNPACK delegate failed "
                       "to run; serving with TensorFlow tf.function (TFLite failed: RuntimeError: XNNPACK delegate "
                       "failed to run), slower")
    same_readings(rec.read(scans), expected, atol=0.02)  # Keras in float32 against int8 weights


def test_loading_prints_nothing_but_one_log_line(model_copy, tmp_path):
    """In a fresh process: no converter listing on stdout, no deprecation warning
    or XNNPACK notice on stderr; only the log line of an in-memory conversion."""
    bare = tmp_path / "bare" / "b.keras"
    bare.parent.mkdir()
    shutil.copy(model_copy, bare)
    code = ("import logging, sys\n"
            "logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s: %(message)s')\n"
            "from digitd.recognize import Recognizer\n"
            f"Recognizer({str(model_copy)!r}); print('companion', flush=True)\n"
            f"Recognizer({str(bare)!r}); print('converted', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "companion\nconverted\n"
    [line] = proc.stderr.splitlines()
    assert re.fullmatch(r"INFO digitd\.model: model b\.keras: no companion b\.tflite; serving with TFLite "
                        r"\(dynamic-range int8 weights, XNNPACK, 1 thread\) converted in memory in [\d.]+ s "
                        r"\(scripts/export_tflite\.py writes the companion\)", line), line
