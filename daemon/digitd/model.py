"""The networks: their definitions (used by training) and loading one (used by serving).

Every layer is a stock Keras layer, so saved models load with Keras's safe
mode on. Keras is imported inside the functions: importing TensorFlow costs
seconds, and only the commands that need a model should pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .preprocess import SIZE

# TensorFlow's C++ start-up chatter (oneDNN notices, CPU feature hints) is not
# for our users' logs; real warnings and errors still come through.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
CHATTER = ("WARNING: All log messages before absl::InitializeLog()", "oneDNN custom operations are on",
           "This TensorFlow binary is optimized", "To enable the following instructions")


def quiet_import():
    """Import TensorFlow and Keras once, dropping the lines TensorFlow's C++ core
    prints at import (they ignore TF_CPP_MIN_LOG_LEVEL); anything else it prints
    on stderr is passed on unchanged. -> (tensorflow, keras)"""
    import sys

    if "tensorflow" in sys.modules:
        import keras
        import tensorflow

        return tensorflow, keras
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                if line.strip() and not any(c in line for c in CHATTER):
                    print(line, file=sys.stderr)
    return tensorflow, keras

ARCHS = ("cnn", "mlp")


def build_mlp(name: str = "mlp"):
    """The seed's network (Flatten, Dense 128 relu x2, Dense 10 softmax)."""
    _, keras = quiet_import()
    layers = keras.layers

    return keras.Sequential(
        [
            keras.Input(shape=(SIZE, SIZE, 1)),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dense(128, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name=name,
    )


def build_cnn(name: str = "cnn"):
    """A convolutional network: two blocks of 3x3 convolutions, each closed by a
    strided 5x5 convolution instead of pooling, batch normalisation and dropout,
    then a 4x4 convolution that sees the whole field."""
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
            layers.Dense(10, activation="softmax"),
        ],
        name=name,
    )


def build(arch: str, name: str | None = None):
    if arch == "cnn":
        return build_cnn(name or "cnn")
    if arch == "mlp":
        return build_mlp(name or "mlp")
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
    if shape not in ((SIZE, SIZE, 1), (SIZE, SIZE)) or model.output_shape[-1] != 10:
        raise ModelLoadError(
            f"model {path}: expects input {shape} and gives {model.output_shape[-1]} outputs; "
            f"a digit model takes ({SIZE}, {SIZE}, 1) and gives 10"
        )
    return model
