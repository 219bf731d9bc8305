"""The networks: their definitions (used by training), loading one and serving it.

Serving needs no TensorFlow: the ``.tflite`` *companion* ``NAME.tflite`` of a
``NAME.keras`` (recorded in the card ``NAME.json``, key ``tflite``, with the
sha256 of the ``.keras`` it was made from) runs on LiteRT (``ai_edge_litert``),
dynamic-range int8 weights on XNNPACK; see :func:`load_engine`. TensorFlow and
Keras (``pip install 'digitd[train]'``) are imported only inside the functions
that train, load a ``.keras`` or convert one, when a companion is missing or stale.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from .preprocess import SIZE

log = logging.getLogger(__name__)

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature hints) is not
# for our users' logs; real warnings and errors still come through.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CHATTER = ("WARNING: All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
           "This TensorFlow binary is optimized", "To enable the following instructions")
# TFLite's own C++ logging ignores TF_CPP_MIN_LOG_LEVEL: the XNNPACK notice (once
# per process) and, while converting, absl's info/warning lines ("W0000 00:00:...").
TFLITE_CHATTER = (*CHATTER, "Created TensorFlow Lite XNNPACK delegate")
ABSL_LINE = re.compile(r"^[IW]\d{4} \d\d:\d\d:\d\d")
# tf.lite.Interpreter (only the comparison tests use it) warns that it moves to ai_edge_litert.
DEPRECATED = r"(?s).*tf\.lite\.Interpreter is deprecated"
warnings.filterwarnings("ignore", message=DEPRECATED, category=UserWarning)
EXPORT_SCRIPT = "scripts/export_tflite.py"


@contextlib.contextmanager
def captured(*fds: int) -> Iterator[dict[int, str]]:
    """Point the file descriptors ``fds`` (1, 2) at temporary files while the block
    runs, so C++ code writing to them directly is caught too. Yields a dict that,
    after the block, maps each fd to the text written to it."""
    out: dict[int, str] = {fd: "" for fd in fds}
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = {}
    for fd in fds:
        with contextlib.suppress(OSError):  # a closed fd has nothing to protect
            saved[fd] = os.dup(fd)
    fds = tuple(saved)
    sinks = {fd: tempfile.TemporaryFile(mode="w+b") for fd in fds}
    try:
        for fd in fds:
            os.dup2(sinks[fd].fileno(), fd)
        yield out
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd in fds:
            os.dup2(saved[fd], fd)
            os.close(saved[fd])
            sinks[fd].seek(0)
            out[fd] = sinks[fd].read().decode(errors="replace")
            sinks[fd].close()


def pass_on(text: str, chatter: Sequence[str] = CHATTER, *, absl: bool = False) -> None:
    """Print the lines of ``text`` to stderr, except blank ones, known chatter and,
    with ``absl``, absl's info and warning lines."""
    for line in text.splitlines():
        if line.strip() and not any(c in line for c in chatter) and not (absl and ABSL_LINE.match(line)):
            print(line, file=sys.stderr)


def quiet_import():
    """Import TensorFlow and Keras once, dropping the lines TensorFlow's C++ core
    prints at import (they ignore TF_CPP_MIN_LOG_LEVEL); anything else it prints
    on stderr is passed on unchanged. -> (tensorflow, keras)"""
    if "tensorflow" in sys.modules:
        import keras
        import tensorflow

        return tensorflow, keras
    out: dict[int, str] = {}
    try:
        with captured(2) as out:
            import tensorflow  # first: its absence is the one to report
            import keras
    finally:
        pass_on(out.get(2, ""))
    return tensorflow, keras


ARCHS = ("cnn", "mlp")
DIGITS = 10  # outputs 0-9: the digits
NOT_DIGIT = 10  # the index of the 11th output, when a model has one: "not a digit"
OUTPUTS = (DIGITS, DIGITS + 1)  # a digit model gives 10 probabilities, or 11 with "not a digit"


def build_mlp(name: str = "mlp", classes: int = DIGITS):
    """The seed's network (Flatten, Dense 128 relu x2, Dense ``classes`` softmax)."""
    _, keras = quiet_import()
    layers = keras.layers

    return keras.Sequential(
        [
            keras.Input(shape=(SIZE, SIZE, 1)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(classes, activation="softmax"),
        ],
        name=name,
    )


def build_cnn(name: str = "cnn", classes: int = DIGITS):
    """A convolutional network: two blocks of 3x3 convolutions, each closed by a
    strided 5x5 convolution instead of pooling, batch normalisation and dropout,
    then a 4x4 convolution that sees the whole field; ``classes`` softmax outputs."""
    _, keras = quiet_import()
    layers = keras.layers

    def conv(filters, kernel, strides=1, padding="valid"):
        return [
            layers.Conv2D(filters, kernel, strides=strides, padding=padding, use_bias=False),
            layers.BatchNormalization(),
            layers.Activation("relu"),
        ]

    return keras.Sequential(
        [
            keras.Input(shape=(SIZE, SIZE, 1)),
            *conv(32, 3),
            *conv(32, 3),
            *conv(32, 5, strides=2, padding="same"),
            layers.Dropout(0.4),
            *conv(64, 3),
            *conv(64, 3),
            *conv(64, 5, strides=2, padding="same"),
            layers.Dropout(0.4),
            *conv(128, 4),
            layers.Flatten(),
            layers.Dropout(0.4),
            layers.Dense(classes, activation="softmax"),
        ],
        name=name,
    )


def build(arch: str, name: str | None = None, classes: int = DIGITS):
    if arch == "cnn":
        return build_cnn(name or "cnn", classes)
    if arch == "mlp":
        return build_mlp(name or "mlp", classes)
    raise ValueError(f"unknown architecture {arch!r}; expected one of {', '.join(ARCHS)}")


def load(path: str | Path):
    """Load a saved ``.keras`` model with safe mode on; any failure is a ModelLoadError."""
    from .errors import ModelLoadError

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model {path}: no such file")
    try:
        _, keras = quiet_import()
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # keras raises many types for a bad file
        raise ModelLoadError(f"model {path}: cannot be loaded: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    shape = tuple(model.input_shape[1:])
    if shape not in ((SIZE, SIZE, 1), (SIZE, SIZE)) or model.output_shape[-1] not in OUTPUTS:
        raise ModelLoadError(
            f"model {path}: expects input {shape} and gives {model.output_shape[-1]} outputs; "
            f"a digit model takes ({SIZE}, {SIZE}, 1) and gives 10 (or 11 with 'not a digit')"
        )
    return model


# ---------------------------------------------------------------- serving
TFLITE_SUFFIX = ".tflite"
QUANTIZATION = "dynamic-range int8 weights"
# One thread per model call. Decoding and segmentation run on the other core;
# measured on this 2-core box with a segmenting process busy on the other core,
# a second XNNPACK thread made the model at best 15% quicker and cost the
# segmenting process 23-32% of its rate (threads spin while they wait): the
# whole pipeline is quicker with one.
TFLITE_THREADS = 1
# Batch sizes an engine is prepared for, each allocated and run once at load.
# TFLite: a batch is cut into these sizes exactly (300 digits: 18 x 16, 3 x 4), no
# padding. Its CPU time per digit is flat from 1 to 256 digits a call (0.12-0.14
# ms here; 16 was the best) while each interpreter's memory grows with its size
# (+7 MB for 16, +12 for 64, +34 for 256): bigger buckets buy nothing.
TFLITE_BUCKETS = (1, 4, 16)
# tf.function: a call costs ~2 ms whatever its size, so batches are padded up to
# the next of these sizes (one trace each) and big ones pay.
TF_BUCKETS = (1, 4, 16, 64, 256)


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def companion_path(path: str | Path) -> Path:
    """Where the TFLite companion of ``models/NAME.keras`` lives: ``models/NAME.tflite``."""
    return Path(path).with_suffix(TFLITE_SUFFIX)


def card_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def read_card(path: str | Path) -> dict:
    """The model's card (``NAME.json``) as a dict; {} when it is missing or unreadable."""
    try:
        card = json.loads(card_path(path).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def convert_tflite(model) -> bytes:
    """A Keras digit model -> a TFLite flatbuffer with dynamic-range quantization
    (weights int8, activations quantized on the fly; no representative data).
    The converter's output (a SavedModel listing on stdout, absl lines on
    stderr, Python warnings) is dropped; anything else on stderr passes."""
    tf, _ = quiet_import()
    out: dict[int, str] = {}
    printed = io.StringIO()
    loggers = [logging.getLogger(name) for name in ("tensorflow", "absl")]  # "Assets written to: /tmp/..."
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with captured(1, 2) as out, contextlib.redirect_stdout(printed), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            return bytes(converter.convert())
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        log.debug("TFLite converter printed %d characters", len(printed.getvalue()) + len(out.get(1, "")))
        pass_on(out.get(2, ""), TFLITE_CHATTER, absl=True)


def save_companion(path: str | Path, blob: bytes, **measured) -> dict:
    """Write ``blob`` as the companion of the model ``path`` (NAME.tflite) and record
    it in the card under ``tflite`` (with the sha256 of both files and any
    ``measured`` figures, e.g. ``mnist_test_accuracy``); both written atomically,
    the companion first. -> the card's ``tflite`` entry."""
    tf, _ = quiet_import()
    path = Path(path)
    companion = companion_path(path)
    entry = {
        "file": companion.name,
        "keras_sha256": sha256_file(path),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "bytes": len(blob),
        "quantization": QUANTIZATION,
        **measured,
        "tensorflow": tf.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(companion, blob)
    card = read_card(path)
    card["tflite"] = entry
    _atomic_write(card_path(path), (json.dumps(card, indent=2) + "\n").encode())
    return entry


class CompanionUnused(Exception):
    """Why the companion file is not served; ``damaged`` when that needs a warning
    (rather than being the normal state of a model exported by hand)."""

    def __init__(self, reason: str, damaged: bool = False) -> None:
        super().__init__(reason)
        self.damaged = damaged


def verified_companion(path: Path) -> bytes:
    """The companion's bytes, if the card vouches for it being made from this very
    ``.keras`` file; else CompanionUnused saying why."""
    companion = companion_path(path)
    entry = read_card(path).get("tflite")
    if not companion.is_file():
        raise CompanionUnused(f"no companion {companion.name}")
    if not isinstance(entry, dict) or not entry.get("keras_sha256") or not entry.get("sha256"):
        raise CompanionUnused(f"companion {companion.name} is not recorded in {card_path(path).name}")
    if entry["keras_sha256"] != sha256_file(path):
        raise CompanionUnused(f"companion {companion.name} was made from another version of {path.name}")
    blob = companion.read_bytes()
    if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
        raise CompanionUnused(f"companion {companion.name} does not match the sha256 in "
                              f"{card_path(path).name} (damaged or replaced)", damaged=True)
    return blob


def litert_interpreter():
    """LiteRT's Interpreter class (``ai_edge_litert``: the runtime, without TensorFlow)."""
    from ai_edge_litert.interpreter import Interpreter  # 0.01 s; only where a model is served

    return Interpreter


def tf_lite_interpreter():
    """TensorFlow's own ``tf.lite.Interpreter``: the reference LiteRT is compared with."""
    tf, _ = quiet_import()
    return tf.lite.Interpreter


class TFLiteEngine:
    """A TFLite model on LiteRT, one interpreter per batch size in ``buckets``, each
    allocated and run once on zeros at construction (warm), so no call pays an
    allocation. ``engine(batch)`` takes a float32 (B, 28, 28, 1) batch with B in
    ``buckets`` and returns (B, ``outputs``) probabilities. Interpreters are not
    thread-safe: each has its lock (invoke releases the GIL, so other threads run).
    ``outputs``: 10, or 11 for a model whose last output is "not a digit".
    A digit's probabilities do not depend on the rest of its batch.
    ``interpreter``: the Interpreter class (default LiteRT's; tests pass tf.lite's)."""

    kind = "tflite"
    pad = False  # any batch is cut into bucket sizes exactly; no padding needed

    def __init__(self, blob: bytes, buckets: Sequence[int] = TFLITE_BUCKETS, *, threads: int = TFLITE_THREADS,
                 source: str = "", interpreter=None) -> None:
        make = interpreter or litert_interpreter()
        self.buckets = tuple(sorted(buckets))
        self.threads = threads
        self.calls: Counter[int] = Counter()  # model calls per batch size, the warm-up included
        self._slots: dict[int, tuple] = {}
        self.outputs = DIGITS  # set from the model below
        out: dict[int, str] = {}
        try:
            with captured(2) as out:  # XNNPACK says it is there, once per process, from C++
                for size in self.buckets:
                    with warnings.catch_warnings():  # in case the filters were reset (pytest does)
                        warnings.filterwarnings("ignore", message=DEPRECATED, category=UserWarning)
                        it = make(model_content=blob, num_threads=threads)
                    (inp,), (outp,) = it.get_input_details(), it.get_output_details()
                    shape, gives = [int(v) for v in inp["shape_signature"]], [int(v) for v in outp["shape_signature"]]
                    if shape[1:] != [SIZE, SIZE, 1] or len(gives) != 2 or gives[1] not in OUTPUTS \
                            or inp["dtype"] != np.float32:
                        raise ValueError(f"takes {shape} {np.dtype(inp['dtype']).name} and gives "
                                         f"{gives}; a digit model takes [-1, {SIZE}, {SIZE}, 1] float32 "
                                         f"and gives [-1, 10] (or [-1, 11] with 'not a digit')")
                    self.outputs = int(gives[1])
                    it.resize_tensor_input(inp["index"], [size, SIZE, SIZE, 1], strict=False)
                    it.allocate_tensors()
                    self._slots[size] = (it, inp["index"], outp["index"], threading.Lock())
                for size in self.buckets:
                    self(np.zeros((size, SIZE, SIZE, 1), np.float32))
        finally:
            pass_on(out.get(2, ""), TFLITE_CHATTER)
        self.description = f"TFLite ({QUANTIZATION}, XNNPACK, {threads} thread{'s' * (threads != 1)})" \
            + (f" {source}" if source else "")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        it, inp, outp, lock = self._slots[len(batch)]
        batch = np.ascontiguousarray(batch, np.float32)
        with lock:
            it.set_tensor(inp, batch)
            it.invoke()
            self.calls[len(batch)] += 1
            return it.get_tensor(outp)  # a copy


class TFFunctionEngine:
    """The Keras model through a compiled ``tf.function``: the fallback when TFLite
    cannot serve. Batches are padded up to a bucket size (one trace each); every
    bucket is traced at construction."""

    kind = "tf.function"
    pad = True

    def __init__(self, model, buckets: Sequence[int] = TF_BUCKETS, *, reason: str = "") -> None:
        tf, _ = quiet_import()
        self.model = model
        self.buckets = tuple(sorted(buckets))
        self.outputs = int(model.output_shape[-1])
        self.calls: Counter[int] = Counter()
        self._fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        for size in self.buckets:
            self(np.zeros((size, SIZE, SIZE, 1), np.float32))
        self.description = "TensorFlow tf.function" + (f" ({reason})" if reason else "")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls[len(batch)] += 1
        return np.asarray(self._fn(batch))


def plan(n: int, buckets: Sequence[int], pad: bool) -> list[tuple[int, int]]:
    """How ``n`` digits go to an engine: (digits, batch size) per call. Without
    ``pad``, batches of exactly a bucket's size, largest first (buckets 1, 4, 16,
    21 digits: 16, 4, 1); with it, full batches of the largest bucket and the
    rest padded up to the next bucket (buckets 1 ... 256, 300 digits: 256, then
    44 in 64)."""
    buckets = sorted(buckets)
    top, out = buckets[-1], []
    while n > 0:
        if n >= top:
            take = size = top
        elif pad:
            take, size = n, next(b for b in buckets if b >= n)
        else:
            take = size = max(b for b in buckets if b <= n)
        out.append((take, size))
        n -= take
    return out


def batched(call, pixels: np.ndarray, buckets: Sequence[int], pad: bool, outputs: int = DIGITS) -> np.ndarray:
    """(N, 28, 28) MNIST-form digits -> (N, ``outputs``) probabilities from ``call`` (an
    engine: float32 (B, 28, 28, 1), B in ``buckets`` -> (B, outputs)), per :func:`plan`."""
    n = len(pixels)
    if n == 0:
        return np.zeros((0, outputs), np.float32)
    out, start = [], 0
    for take, size in plan(n, buckets, pad):
        batch = np.zeros((size, SIZE, SIZE, 1), np.float32)
        batch[:take] = np.reshape(pixels[start : start + take], (take, SIZE, SIZE, 1))
        out.append(np.asarray(call(batch))[:take])
        start += take
    return np.concatenate(out)


def export_companion(path: str | Path, model=None, *, x_test=None, y_test=None, reference=None,
                     test_data: dict | None = None) -> dict:
    """Convert the model ``path`` (or the already loaded ``model`` saved there), write
    its companion and card entry (:func:`save_companion`). With ``x_test`` (MNIST
    form, (N, 28, 28[, 1])) and ``y_test``, the served engine's accuracy on them is
    measured and recorded, with its agreement with the Keras model's argmax
    (``reference``: the Keras probabilities, computed here when not given) and
    ``test_data`` (where the test set came from). -> the card's ``tflite`` entry."""
    path = Path(path)
    model = load(path) if model is None else model
    t0 = time.perf_counter()
    blob = convert_tflite(model)
    measured: dict = {"conversion_seconds": round(time.perf_counter() - t0, 2)}
    if x_test is not None and y_test is not None:
        x = np.reshape(np.asarray(x_test, np.float32), (-1, SIZE, SIZE, 1))
        y = np.asarray(y_test)
        engine = TFLiteEngine(blob)
        probs = batched(engine, x, engine.buckets, engine.pad, engine.outputs)
        if reference is None:
            reference = model.predict(x, batch_size=1024, verbose=0)
        pred = probs.argmax(axis=1)
        measured.update({
            "test_accuracy": round(float((pred == y).mean()), 5),
            "test_errors": int((pred != y).sum()),
            "test_data": test_data or {"images": int(len(y))},
            "argmax_agreement_with_keras": round(float((pred == np.asarray(reference).argmax(axis=1)).mean()), 5),
            "max_abs_difference_with_keras": round(float(np.abs(probs - reference).max()), 5),
        })
    return save_companion(path, blob, **measured)


def tensorflow_missing() -> str | None:
    """Why TensorFlow/Keras cannot be imported here (e.g. "No module named
    'tensorflow'"), or None when they can. Imports them when present."""
    try:
        quiet_import()
    except ImportError as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def serve_tflite_file(path: Path):
    """A ``.tflite`` file given as the model itself (e.g. the one shipped with the package)."""
    from .errors import ModelLoadError

    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"model {path}: cannot be read: {exc.strerror or exc}") from None
    try:
        engine = TFLiteEngine(blob, source=f"from {path.name}")
    except Exception as exc:  # LiteRT refuses a damaged or foreign file
        raise ModelLoadError(f"model {path}: not a usable TFLite digit model: "
                             f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
    log.debug("model %s: serving with %s", path.name, engine.description)
    return engine


def load_engine(path: str | Path):
    """The engine serving the model ``path``, logged in one line:

    0. a ``.tflite`` file is served as it is, on LiteRT;
    1. a ``.keras`` file: its companion ``NAME.tflite`` on LiteRT, when the card
       records it as made from this very ``.keras`` file (sha256 of both
       checked); neither Keras nor TensorFlow is imported;
    2. else, with TensorFlow installed, the Keras model (safe mode;
       ModelLoadError as :func:`load`) converted to TFLite in memory, about 2 s
       for the shipped model (logged at INFO; a damaged companion makes it a
       WARNING); without TensorFlow, ModelLoadError saying why the companion
       cannot serve and how to make it (:data:`EXPORT_SCRIPT`);
    3. else, if TFLite cannot convert or run it, the Keras model through
       ``tf.function`` (a WARNING: slower).
    """
    from .errors import ModelLoadError

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"model {path}: no such file")
    if path.suffix == TFLITE_SUFFIX:
        return serve_tflite_file(path)
    try:
        blob = verified_companion(path)
        engine = TFLiteEngine(blob, source=f"from {companion_path(path).name}")
        log.debug("model %s: serving with %s", path.name, engine.description)
        return engine
    except CompanionUnused as exc:
        why, damaged = str(exc), exc.damaged
    except Exception as exc:  # the interpreter refused it: a damaged file
        why, damaged = f"companion {companion_path(path).name} cannot be used: " \
                       f"{type(exc).__name__}: {exc}".splitlines()[0], True
    missing = tensorflow_missing()
    if missing is not None:
        raise ModelLoadError(
            f"model {path}: {why}, and TensorFlow, needed to convert it, is not installed "
            f"({missing}); make the companion with: python {EXPORT_SCRIPT} {path} "
            f"(pip install 'digitd[train]')")
    model = load(path)
    try:
        t0 = time.perf_counter()
        blob = convert_tflite(model)
        engine = TFLiteEngine(blob, source=f"converted in memory in {time.perf_counter() - t0:.1f} s")
    except Exception as exc:
        engine = TFFunctionEngine(model, reason=f"TFLite failed: {type(exc).__name__}: {exc}".splitlines()[0])
        log.warning("model %s: %s; serving with %s, slower", path.name, why, engine.description)
        return engine
    level = logging.WARNING if damaged else logging.INFO
    log.log(level, "model %s: %s; serving with %s (%s writes the companion)",
            path.name, why, engine.description, EXPORT_SCRIPT)
    return engine
