"""Shared fixtures: where the repo, the real MNIST data and the digitd CLI are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fusetool.crashfs import Mounted, unavailable

if TYPE_CHECKING:
    import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_ENV = "DIGITD_MNIST"
MNIST_NAME = Path("data") / "mnist.npz"


def mnist_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where the full MNIST npz may be, in order of preference."""
    env = os.environ if environ is None else environ
    out: list[Path] = []
    if env.get(MNIST_ENV):
        out.append(Path(env[MNIST_ENV]))
    out.append(REPO_ROOT.parent / "shared" / MNIST_NAME)
    out.append(Path("/work/shared") / MNIST_NAME)
    return out


def find_real_dev() -> Path | None:
    """The real-dev folder (its ``labels.csv``): ``$DIGITD_REAL_DEV``,
    ``<repo>/../shared/data/real-dev`` or ``/work/shared/data/real-dev``; None if
    it is nowhere. Never copied into the repo."""
    for path in (os.environ.get("DIGITD_REAL_DEV"), REPO_ROOT.parent / "shared" / "data" / "real-dev",
                 Path("/work/shared/data/real-dev")):
        if path and (Path(path) / "labels.csv").is_file():
            return Path(path)
    return None


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder (holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """Path of the real MNIST npz; the test is skipped if it is nowhere.

    Looked up in ``$DIGITD_MNIST``, ``<repo>/../shared/data/mnist.npz`` and
    ``/work/shared/data/mnist.npz``. The data is never copied into the repo.
    """
    candidates = mnist_candidates()
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("MNIST data not found (set DIGITD_MNIST=/path/to/mnist.npz); looked at: "
                + ", ".join(str(p) for p in candidates))


def find_digitd_exe() -> Path | None:
    """The installed ``digitd`` console script beside this Python (the venv's)."""
    found = shutil.which("digitd", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


@pytest.fixture(scope="session")
def digitd_exe() -> Path:
    """The real ``digitd`` console script; fails clearly if not installed."""
    exe = find_digitd_exe()
    if exe is None:
        pytest.fail(f"no 'digitd' console script next to {sys.executable}; "
                    "install the project first: make venv")
    return exe


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without digitd's own variables (tests stay hermetic)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    env.update(extra)
    return env


RunDigitd = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_digitd(digitd_exe: Path, tmp_path: Path) -> RunDigitd:
    """Run the real CLI as a subprocess: ``run_digitd("check-config", cwd=..., env=...)``.

    Runs in ``tmp_path`` by default, with DIGITD_* variables removed unless
    given in ``env``; returns the CompletedProcess (text stdout/stderr).
    """

    def run(*args: str | os.PathLike[str], cwd: Path | None = None,
            env: Mapping[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        argv: Sequence[str] = [str(digitd_exe), *map(str, args)]
        return subprocess.run(argv, cwd=cwd or tmp_path, env=clean_env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout)

    return run


# --- models for tests -----------------------------------------------------------------

SHIPPED_MODEL = REPO_ROOT / "models" / "digitd-cnn-v8.keras"
FONTS = (0, 1, 2, 3, 4, 6)  # cv2.FONT_HERSHEY_{SIMPLEX,PLAIN,DUPLEX,COMPLEX,TRIPLEX,COMPLEX_SMALL}


def draw_digits(text: str, *, height: int = 280, thickness: int | None = None, font: int = 0,
                ink: int = 0, paper: int = 255) -> np.ndarray:
    """A uint8 gray image of ``text`` drawn with an OpenCV font, ink on paper,
    about ``height`` pixels tall with a margin around it (no transparency)."""
    import cv2
    import numpy as np

    scale = height / 40.0
    thick = thickness or max(2, int(height / 12))
    (w, h), base = cv2.getTextSize(text, font, scale, thick)
    pad = max(8, height // 6)
    canvas = np.full((h + base + 2 * pad, w + 2 * pad), paper, np.uint8)
    cv2.putText(canvas, text, (pad, pad + h), font, scale, int(ink), thick, cv2.LINE_AA)
    return canvas


def font_digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` font-drawn digits in MNIST form (through digitd.preprocess) and labels."""
    import cv2
    import numpy as np
    from digitd.preprocess import to_mnist_batch

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    inks = []
    for y in labels:
        canvas = np.zeros((64, 64), np.uint8)
        font = FONTS[rng.integers(len(FONTS))]
        cv2.putText(canvas, str(int(y)), (int(rng.integers(12, 20)), int(rng.integers(46, 54))), font,
                    float(rng.uniform(1.3, 1.8)), 255, int(rng.integers(2, 6)), cv2.LINE_AA)
        rot = cv2.getRotationMatrix2D((32, 32), float(rng.uniform(-12, 12)), 1.0)
        inks.append(cv2.warpAffine(canvas, rot, (64, 64)))
    return to_mnist_batch(np.stack(inks)), labels.astype(np.int64)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """A REAL tiny Keras model (digitd.model.build_mlp) trained here in seconds on
    1,000 font-drawn digits; saved as ``.keras`` with its card ``NAME.json``.

    Good enough to read clear printed digits mostly right; for tests of file
    handling and formats. Tests needing correct digits use ``shipped_model``.
    Its TFLite companion ``NAME.tflite`` is written too (and recorded in the
    card), as scripts/train.py does: every process loading it serves it as
    the shipped model is served, without converting it again.
    """
    import json

    import keras
    from digitd.model import build_mlp, export_companion

    keras.utils.set_random_seed(0)
    x, y = font_digits(1000, seed=0)
    model = build_mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[..., None], y, epochs=8, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("model")
    path = folder / "tiny-test-mlp.keras"
    model.save(path)
    path.with_suffix(".json").write_text(json.dumps({"name": "tiny-test-mlp", "arch": "mlp"}))
    export_companion(path, model)
    return path


@pytest.fixture(scope="session")
def shipped_model() -> Path:
    """The shipped model ``models/digitd-cnn-v8.keras``; skipped if it is not there."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip(f"shipped model {SHIPPED_MODEL} not present (train it: make train)")
    return SHIPPED_MODEL


@pytest.fixture
def crashfs(tmp_path):
    """A mounted crashfs (tests/fusetool/crashfs.py) on tmp_path/fs, or a skip naming why not."""
    why = unavailable()
    if why:
        pytest.skip(f"crashfs cannot run here: {why}")
    with Mounted(tmp_path / "fs") as fs:
        yield fs
