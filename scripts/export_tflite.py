#!/usr/bin/env python3
"""Write (or refresh) the TFLite companion of a trained digit model.

    python scripts/export_tflite.py models/NAME.keras [--data ../shared/data/mnist.npz]

Converts the Keras model with dynamic-range quantization (int8 weights) to
``models/NAME.tflite``, the file digitd serves, and records it in the card
``models/NAME.json`` under ``tflite``: the sha256 of the ``.keras`` it was made
from and of the ``.tflite`` itself (digitd serves the companion only while both
match), and, when the MNIST data is there, the served engine's accuracy on the
10,000 test digits and its agreement with the Keras model. scripts/train.py
does the same for every model it saves.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))  # runnable from a plain checkout too

from digitd import model as digit_model  # noqa: E402
from digitd.errors import ModelLoadError  # noqa: E402


def default_mnist() -> Path:
    env = os.environ.get("DIGITD_MNIST")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "mnist.npz"


def mnist_test(path: Path):
    """-> (x_test in MNIST form (N, 28, 28, 1), y_test, test_data record), or None when absent."""
    import numpy as np

    from digitd.preprocess import to_mnist_batch

    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        x, y = npz["x_test"].astype(np.float32), npz["y_test"].astype(np.int64)
    x = to_mnist_batch(x / 255.0 if x.max() > 1.0 else x)[..., None]
    record = {"path": os.path.relpath(path, ROOT), "sha256": digit_model.sha256_file(path), "images": int(len(y))}
    return x, y, record


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path, help="the trained model, models/NAME.keras")
    p.add_argument("--data", type=Path, default=default_mnist(),
                   help="MNIST npz whose test set measures the served accuracy (default ../shared/data/mnist.npz "
                        "or $DIGITD_MNIST; skipped when absent)")
    args = p.parse_args(argv)
    if args.model.suffix != ".keras":
        p.error(f"{args.model}: must end in .keras")
    started = time.perf_counter()
    missing = digit_model.tensorflow_missing()
    if missing is not None:
        print(f"export_tflite.py: error: converting needs TensorFlow, which is not installed ({missing}); "
              "install it with: pip install 'digitd[train]'", file=sys.stderr)
        return 3
    try:
        model = digit_model.load(args.model)
    except ModelLoadError as exc:
        print(f"export_tflite.py: error: {exc}", file=sys.stderr)
        return 3
    test = mnist_test(args.data)
    if test is None:
        print(f"no MNIST data at {args.data}: the served accuracy is not measured", file=sys.stderr)
        entry = digit_model.export_companion(args.model, model)
    else:
        x, y, record = test
        entry = digit_model.export_companion(args.model, model, x_test=x, y_test=y, test_data=record)
    companion = digit_model.companion_path(args.model)
    print(f"wrote {companion} ({entry['bytes']:,} bytes, {entry['quantization']}, converted in "
          f"{entry['conversion_seconds']} s) and its entry in {digit_model.card_path(args.model).name}")
    if "test_accuracy" in entry:
        card = digit_model.read_card(args.model)
        keras_acc = card.get("test_accuracy")
        print(f"served (TFLite) accuracy on {entry['test_data']['images']:,} test digits: "
              f"{entry['test_accuracy']:.2%} ({entry['test_errors']} errors)"
              + (f"; Keras model {keras_acc:.2%}" if isinstance(keras_acc, float) else "")
              + f"; same answer as Keras on {entry['argmax_agreement_with_keras']:.2%}, "
              f"largest probability difference {entry['max_abs_difference_with_keras']}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
