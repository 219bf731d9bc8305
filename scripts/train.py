#!/usr/bin/env python3
"""Train digitd's digit model on MNIST, with a "not a digit" class.

    python scripts/train.py --data ../shared/data/mnist.npz [--arch cnn|mlp]
                            [--epochs N] [--out models/NAME.keras]
    python scripts/train.py --data ../shared/data/mnist.npz --start models/digitd-cnn-v1.keras \
                            --epochs 5 --out models/digitd-cnn-v2.keras   # fine-tune

With --reject N (the CNN's default), an 11th output, "not a digit", is
trained on N marks from scripts/glyphs.py (letters, words, symbols, shapes,
scribbles, smudges, line pieces, edge shadows); --lowres shrinks a share of
the digits to 8-16 px and back each epoch, as old scanners and faxes do.
--start fine-tunes an existing model's members (a 10-output last layer is
widened to 11, its weights kept) instead of training from scratch.

Without --data, Keras's normal MNIST download is used. Every image goes
through ``digitd.preprocess.to_mnist_form``, the function the service uses at
inference. The CNN is trained on digits distorted the way real scans differ
from MNIST (rotation, shear, scale and aspect, stroke thickness, small
shifts), freshly drawn each epoch. Writes the model, its card
(``NAME.json``), the TFLite companion digitd serves (``NAME.tflite``, its
accuracy in the card under ``tflite``), a confusion matrix
(``NAME.confusion.png``) and a grid of misclassified test digits
(``NAME.errors.png``). The best epoch on the
validation split is kept in ``NAME.ckpt.keras`` while training runs; Ctrl-C
stops training and finishes the model from that checkpoint.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "daemon"))  # runnable from a plain checkout too

from digitd import model as digit_model  # noqa: E402
from digitd.preprocess import SIZE, to_mnist_batch, to_mnist_form  # noqa: E402

sys.path.insert(0, str(ROOT / "scripts"))
import glyphs  # noqa: E402

# ---------------------------------------------------------------- constants
NUM_CLASSES = 10  # digits; the reject class, when trained, is output 10 (digit_model.NOT_DIGIT)
SEED = 1337
EPOCHS = {"cnn": 30, "mlp": 20}
BATCH_SIZE = 128
VALIDATION = 5000  # training images held out for validation (best-epoch choice)
LEARNING_RATE = 1e-3
FINAL_LR = 0.03  # the learning rate decays exponentially to this fraction of its start
# Augmentation (CNN): what real scans do that MNIST does not.
ROTATE_DEG = 12.0
SHEAR = 0.25
SCALE = (0.85, 1.15)  # per axis, so the aspect changes too
SHIFT_PX = 2  # after normalisation: imperfect crops at inference
THICKNESS = ((-1, 0.15), (1, 0.20), (2, 0.10))  # (pixels at 2x, probability)
LOWRES = 0.3  # share of the digits shrunk to a side of LOWRES_SIDES and enlarged back each epoch
LOWRES_SIDES = (8, 8, 9, 10, 11, 12, 13, 14, 16)  # drawn uniformly: the smallest, hardest, twice
REJECT = 16000  # "not a digit" marks (scripts/glyphs.py) mixed into the CNN's training set
# As many again, up to 2000, go into the validation split (another seed) and are
# measured after training (glyphs.HELD_OUT_SEED, never trained on).
REJECT_VALIDATION = 2000
FINE_TUNE_LR = 3e-4  # the learning rate with --start
UNTAUGHT_BIAS = -30.0  # the "not a digit" logit of a network never taught it, not fitted: it never says so
# Share of the 1s given a long flag by hand, as many people
# write them; MNIST's 1s are nearly all bare strokes, and a flagged 1 reads as 7.
# Off by default: no model trained with flags has kept MNIST's accuracy yet.
FLAG_ONES = 0.0
FLAG_LENGTH = (0.3, 0.7)  # of the 1's height
FLAG_TURN_DEG = (35.0, 60.0)  # away from the stem, towards the left: a 7's bar turns further
FLAG_MIN_DROP_DEG = 20.0  # below the horizontal, at least
FLAG_MAX_LEAN_DEG = 15.0  # a 1 leaning further keeps no flag: it would be a 7
FOOT_SHARE = 0.0  # of the flagged 1s also given a foot (off: feet taught MNIST 1s to read as 8)
# Printed-style digits mixed into the CNN's training set: forms people write
# that MNIST rarely shows (closed-top 4s, 1s with a flag and a foot, open 6s).
FONT_DIGITS = 3000
TTF_FONTS = (
    "DejaVuSans", "DejaVuSans-Bold", "DejaVuSans-Oblique", "DejaVuSansMono", "DejaVuSansMono-Bold",
    "DejaVuSerif", "DejaVuSerif-Bold", "DejaVuSerif-Italic", "STIXGeneral", "STIXGeneralBol",
    "STIXGeneralItalic", "cmr10", "cmb10", "cmss10", "cmtt10", "cmti10",
)


class DataError(Exception):
    """The --data file cannot be used; the message names the file and the problem."""


# ---------------------------------------------------------------- data
def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_data(path: Path | None):
    """-> (x_train, y_train, x_test, y_test, sha256 or None); raises DataError."""
    if path is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        return x_train, y_train, x_test, y_test, None
    if not path.exists():
        raise DataError(f"--data {path}: no such file")
    if not path.is_file():
        raise DataError(f"--data {path}: not a file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in npz.files]
            if missing:
                raise DataError(
                    f"--data {path}: missing array(s) {', '.join(missing)}; "
                    "expected x_train, y_train, x_test, y_test"
                )
            arrays = [npz[k] for k in ("x_train", "y_train", "x_test", "y_test")]
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"--data {path}: not a readable NumPy .npz file ({type(exc).__name__})") from None
    for (name, arr), kind in zip(zip(("x_train", "y_train", "x_test", "y_test"), arrays), "xyxy"):
        if kind == "x" and (arr.ndim != 3 or arr.shape[1:] != (SIZE, SIZE)):
            raise DataError(f"--data {path}: {name} has shape {arr.shape}, expected (N, {SIZE}, {SIZE})")
        if kind == "y" and arr.ndim != 1:
            raise DataError(f"--data {path}: {name} has shape {arr.shape}, expected (N,)")
        if not np.issubdtype(arr.dtype, np.number):
            raise DataError(f"--data {path}: {name} has dtype {arr.dtype}, expected numbers")
    x_train, y_train, x_test, y_test = arrays
    for xs, ys, split in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        if len(xs) != len(ys):
            raise DataError(f"--data {path}: x_{split} has {len(xs)} images but y_{split} {len(ys)} labels")
        if len(xs) == 0:
            raise DataError(f"--data {path}: x_{split} is empty")
        if ys.min() < 0 or ys.max() >= NUM_CLASSES or not np.all(ys == np.round(ys)):
            raise DataError(f"--data {path}: y_{split} holds labels outside 0-9")
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64), sha256_file(path)


def as_ink(images: np.ndarray) -> np.ndarray:
    """MNIST-layout images (white on black, 0-255 or 0-1) -> float32 0-1."""
    images = images.astype(np.float32)
    return images / 255.0 if images.max() > 1.0 else images


def font_digits(count: int, seed: int):
    """`count` digits drawn with the TrueType fonts matplotlib ships and OpenCV's
    Hershey fonts, in MNIST form -> (float32 (count, 28, 28), int64 (count,))."""
    import cv2
    import matplotlib
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextPath

    bank, labels = [], []
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in TTF_FONTS:
        prop = FontProperties(fname=ttf / f"{name}.ttf")
        for digit in range(NUM_CLASSES):
            polys = [np.c_[p[:, 0], -p[:, 1]] for p in TextPath((0, 0), str(digit), size=100, prop=prop).to_polygons()]
            lo = np.vstack(polys).min(axis=0) - 5
            hi = np.vstack(polys).max(axis=0) + 5
            img = np.zeros((int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1), np.uint8)
            cv2.fillPoly(img, [np.round(p - lo).astype(np.int32) for p in polys], 255, cv2.LINE_AA)
            bank.append(to_mnist_form(img))
            labels.append(digit)
    hershey = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
               cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_COMPLEX)
    for font in hershey:
        for italic in (0, cv2.FONT_ITALIC):
            for digit in range(NUM_CLASSES):
                img = np.zeros((160, 160), np.uint8)
                cv2.putText(img, str(digit), (30, 130), font | italic, 4.0, 255, 9, cv2.LINE_AA)
                bank.append(to_mnist_form(img))
                labels.append(digit)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(bank), size=count)
    return np.stack(bank)[pick], np.asarray(labels, np.int64)[pick]


# ---------------------------------------------------------------- augmentation
def shrunk(img: np.ndarray, side: int) -> np.ndarray:
    """A 28x28 image (ink bright, 0-1) shrunk to ``side`` x ``side`` (a thumbnail, an
    old scanner's or a fax's few pixels) and enlarged back to 28x28, then read as
    the service reads such a file: dark on light, through ``segment.find_digits``
    (which saturates and crops the blurred ink); ``to_mnist_form`` of the small
    image when the finder does not see exactly one mark."""
    import cv2
    from digitd.imageio import to_scan
    from digitd.segment import find_digits

    small = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    page = np.round(255 * (1 - np.clip(back, 0, 1))).astype(np.uint8)
    marks, _ = find_digits(to_scan(page).image)
    return marks[0].pixels if len(marks) == 1 else to_mnist_form(small)


def flagged_one(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1 (ink bright, 0-1, any size) with a flag drawn from its top down to the
    left in its own pen (a share FOOT_SHARE also a foot): a 1 as much of the world
    writes it. A 1 leaning more than FLAG_MAX_LEAN_DEG is returned as it is."""
    import cv2

    ys, xs = np.nonzero(img > 0.5)
    if len(ys) < 8:
        return img
    top, bottom = ys.min(), ys.max()
    height = bottom - top + 1
    pen = max(1, int(round(np.count_nonzero(img > 0.5) / height)))  # a bare stroke: its area over its height
    h, w = img.shape
    up = max(1, 4 * SIZE // max(h, w))  # drawn at 4x MNIST's size at least, for an antialiased line
    big = cv2.resize(img, (w * up, h * up), interpolation=cv2.INTER_LINEAR) if up > 1 else img.copy()
    x0, xb = xs[ys <= top + 1].mean(), xs[ys >= bottom - 1].mean()
    stem = np.arctan2(height, xb - x0)  # its direction below the horizontal: 90 deg upright
    drop = min(stem + np.deg2rad(rng.uniform(*FLAG_TURN_DEG)), np.pi - np.deg2rad(FLAG_MIN_DROP_DEG))
    if abs(np.rad2deg(stem) - 90) > FLAG_MAX_LEAN_DEG:
        return img
    length = height * rng.uniform(*FLAG_LENGTH)
    start = np.array([x0, top + 0.5])
    end = start + length * np.array([np.cos(drop), np.sin(drop)])
    cv2.line(big, tuple(int(v) for v in start * up), tuple(int(v) for v in end * up), 1.0, pen * up, cv2.LINE_AA)
    if rng.random() < FOOT_SHARE:
        half = height * rng.uniform(0.15, 0.3)
        cv2.line(big, (int((xb - half) * up), int((bottom + 0.5) * up)), (int((xb + half) * up), int((bottom + 0.5) * up)),
                 1.0, pen * up, cv2.LINE_AA)
    return np.clip(cv2.resize(big, (w, h), interpolation=cv2.INTER_AREA) if up > 1 else big, 0, 1)


def distort(img: np.ndarray, rng: np.random.Generator, lowres: float = 0.0, flag: bool = False) -> np.ndarray:
    """One random real-scan-like distortion of a 28x28 float digit, then MNIST form;
    ``flag``: a 1 given a flag once turned and sheared (:func:`flagged_one`, so the
    flag keeps to the 1 as it now stands); with probability ``lowres`` it is then
    shrunk to 8-16 px and read back (:func:`shrunk`)."""
    import cv2

    big = cv2.resize(img, (2 * SIZE, 2 * SIZE), interpolation=cv2.INTER_LINEAR)
    big = cv2.copyMakeBorder(big, SIZE, SIZE, SIZE, SIZE, cv2.BORDER_CONSTANT, value=0)
    c = big.shape[0] / 2
    angle = np.deg2rad(rng.uniform(-ROTATE_DEG, ROTATE_DEG))
    sx, sy = rng.uniform(*SCALE, size=2)
    shear = rng.uniform(-SHEAR, SHEAR)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    lin = rot @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([sx, sy])
    m = np.hstack([lin, (np.array([c, c]) - lin @ np.array([c, c]))[:, None]])
    big = cv2.warpAffine(big, m, big.shape[::-1], flags=cv2.INTER_LINEAR)
    r = rng.random()
    for px, p in THICKNESS:
        if r < p:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(px) + 1, 2 * abs(px) + 1))
            big = cv2.dilate(big, k) if px > 0 else cv2.erode(big, k)
            break
        r -= p
    if flag:
        big = flagged_one(big, rng)
    out = to_mnist_form(big)
    if rng.random() < lowres:
        out = shrunk(out, int(rng.choice(LOWRES_SIDES)))
    dy, dx = rng.integers(-SHIFT_PX, SHIFT_PX + 1, size=2)
    return np.roll(out, (dy, dx), axis=(0, 1))  # the border is empty: a shift


def make_epoch_dataset(x, y, batch_size: int, seed: int, lowres: float = 0.0, flag_ones: float = 0.0):
    """A Keras PyDataset that draws a fresh distortion of every digit each epoch."""
    import keras

    class Distorted(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.draw()

        def draw(self):
            order = self.rng.permutation(len(x))
            # Low resolution for digits only: an 8 px letter is a blob a digit could be,
            # and a reject class taught so would refuse the thumbnails it is meant to read.
            self.x = np.stack([distort(x[i], self.rng, lowres if y[i] < NUM_CLASSES else 0.0,
                                       flag=y[i] == 1 and self.rng.random() < flag_ones)
                               for i in order])[..., None]
            self.y = y[order]

        def __len__(self):
            return (len(x) + batch_size - 1) // batch_size

        def __getitem__(self, i):
            s = slice(i * batch_size, (i + 1) * batch_size)
            return self.x[s], self.y[s]

        def on_epoch_end(self):
            self.draw()

    return Distorted()


# ---------------------------------------------------------------- pictures
def save_confusion(cm: np.ndarray, path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    n = len(cm)
    names = [str(c) for c in range(NUM_CLASSES)] + ["not a digit"] * (n - NUM_CLASSES)
    fig = Figure(figsize=(6.5, 5.5), dpi=110)
    ax = fig.add_subplot()
    shown = np.log1p(cm)
    ax.imshow(shown, cmap="Blues")
    for t in range(n):
        for p in range(n):
            if cm[t, p]:
                dark = shown[t, p] > shown.max() * 0.6
                ax.text(p, t, str(cm[t, p]), ha="center", va="center", fontsize=7, color="white" if dark else "black")
    ax.set_xticks(range(n), names, fontsize=7)
    ax.set_yticks(range(n), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def save_errors(images, true, pred, conf, path: Path, title: str, limit: int = 100) -> None:
    from matplotlib.figure import Figure

    n = min(limit, len(images))
    cols = 10
    rows = max(1, (n + cols - 1) // cols)
    fig = Figure(figsize=(cols * 1.0, rows * 1.15 + 0.5), dpi=100)
    fig.suptitle(f"{title}: {len(images)} misclassified test digits" + (f" (first {n})" if n < len(images) else ""), fontsize=9)
    for k in range(rows * cols):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], cmap="gray_r", vmin=0, vmax=1)
            ax.set_title(f"true {true[k]} → {pred[k]} ({conf[k]:.2f})", fontsize=6.5, color="firebrick")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path)


# ---------------------------------------------------------------- fitting
def decay(epochs: int) -> float:
    return FINAL_LR ** (1.0 / max(1, epochs - 1))


def members_of(model) -> list:
    """The networks an averaged model is made of (itself, when it is one network)."""
    import keras

    inner = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return inner or [model]


def widened(member, arch: str, classes: int, fitted: bool = True):
    """A copy of the network ``member`` with ``classes`` outputs: every layer's weights
    kept; a last layer with fewer outputs gets new columns beside the old ones, so the
    old outputs start where they were: small random weights and zero bias to be
    fitted, or (``fitted`` False) zero weights and a bias so low they stay silent."""
    new = digit_model.build(arch, name=member.name, classes=classes)
    if len(new.layers) != len(member.layers):
        raise ValueError(f"{member.name}: {len(member.layers)} layers, a {arch} has {len(new.layers)}; "
                         "is --arch right?")
    for src, dst in zip(member.layers[:-1], new.layers[:-1]):
        dst.set_weights(src.get_weights())
    kernel, bias = member.layers[-1].get_weights()
    new_kernel, new_bias = new.layers[-1].get_weights()
    old = kernel.shape[1]
    new_kernel[:, :old], new_bias[:old] = kernel, bias
    new_kernel[:, old:] *= 0.1 if fitted else 0.0
    new_bias[old:] = 0.0 if fitted else UNTAUGHT_BIAS
    new.layers[-1].set_weights([new_kernel, new_bias])
    return new


def parse_networks(spec: str) -> list[tuple[Path, int]]:
    """'A.keras:0,B.keras:1' -> [(A.keras, 0), (B.keras, 1)] (ValueError on a bad part)."""
    picked = []
    for part in spec.split(","):
        path, sep, index = part.strip().rpartition(":")
        if not sep or not path or not index.isdigit():
            raise ValueError(f"{part.strip()!r}: expected MODEL.keras:N (N the network's index, from 0)")
        picked.append((Path(path), int(index)))
    return picked


def start_networks(args) -> list:
    """The networks to fine-tune or combine: every member of --start, or the ones
    --networks picks, each widened to this training's outputs."""
    picked = []
    for path, index in args.networks or [(args.start, None)]:
        members = members_of(digit_model.load(path))
        if index is not None and index >= len(members):
            raise ValueError(f"--networks {path}:{index}: that model has {len(members)} network(s)")
        for m in members if index is None else [members[index]]:
            if m.output_shape[-1] > args.classes:
                raise ValueError(f"{path} gives {m.output_shape[-1]} outputs; this training gives {args.classes}")
            net = widened(m, args.arch, args.classes, fitted=args.epochs > 0)
            net.name = f"{args.arch}_{len(picked)}"  # two models' networks may share a name
            picked.append(net)
    return picked


def start_record(args) -> dict | None:
    """The card's ``start``: the model (or networks) this training began from, with their cards."""
    def card_of(path):
        return {k: v for k, v in digit_model.read_card(path).items() if k != "tflite"} or None

    how = ("each member's weights kept; a 10-output last Dense widened to 11 (old columns kept, the new one "
           "small random, zero bias, or with --epochs 0 zero weights and bias " + str(UNTAUGHT_BIAS)
           + "); then fine-tuned for --epochs (0: not at all)")
    if args.networks is not None:
        return {"networks": [{"from": str(path), "network": index, "sha256": sha256_file(path), "card": card_of(path)}
                             for path, index in args.networks], "how": how}
    if args.start is not None:
        return {"from": str(args.start), "sha256": sha256_file(args.start), "how": how, "card": card_of(args.start)}
    return None


def shift_not_digit(member, bias: float) -> None:
    """Add ``bias`` to the "not a digit" logit of ``member``'s last layer: the prior
    correction for a reject class trained more often than it is met (a negative
    bias rejects less; digits' probabilities keep their order)."""
    kernel, b = member.layers[-1].get_weights()
    b[NUM_CLASSES] += bias
    member.layers[-1].set_weights([kernel, b])


def fit_member(args, k, seed, ckpt, x_fit, y_fit, x_val, y_val, augment, start=None):
    """Fit one network (``start``, a network to fine-tune, or a new one), keeping its
    best epoch (validation accuracy) in `ckpt`. -> (history or None, interrupted)."""
    import keras

    keras.utils.set_random_seed(seed)
    if start is not None:
        model = start
    else:
        model = digit_model.build(args.arch, name=f"{args.arch}_{k}" if args.members > 1 else args.arch,
                                  classes=args.classes)
    if k == 0:
        model.summary()
    model.compile(optimizer=keras.optimizers.Adam(args.lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rate = decay(args.epochs)

    class BestCheckpoint(keras.callbacks.Callback):
        """Keep the best epoch (validation accuracy) in `ckpt`, written to a temporary
        name and renamed, so Ctrl-C in the middle of a save cannot break it."""

        best = -1.0

        def on_epoch_end(self, epoch, logs=None):
            acc = float((logs or {}).get("val_accuracy", -1.0))
            if acc > self.best:
                tmp = ckpt.with_name(ckpt.stem + ".partial.keras")
                self.model.save(tmp)
                os.replace(tmp, ckpt)
                print(f"epoch {epoch + 1}: val_accuracy {acc:.4f} is the best so far, saved {ckpt.name}", flush=True)
                self.best = acc

    class StopOnCtrlC(keras.callbacks.Callback):
        """The first Ctrl-C asks fit to stop after the batch under way (a
        KeyboardInterrupt raised inside TensorFlow's data pipeline could be lost);
        a second one interrupts at once."""

        requested = False

        def ask(self, signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        def on_train_batch_end(self, batch, logs=None):
            if self.requested:
                self.model.stop_training = True

    stop = StopOnCtrlC()
    callbacks = [
        stop,
        BestCheckpoint(),
        keras.callbacks.LearningRateScheduler(lambda epoch: args.lr * rate**epoch),
    ]
    if augment:
        data, kwargs = make_epoch_dataset(x_fit, y_fit, args.batch_size, seed, args.lowres, args.flag_ones), {}
    else:
        data, kwargs = to_mnist_batch(x_fit)[..., None], {"y": y_fit, "batch_size": args.batch_size, "shuffle": True}
    if args.members > 1:
        print(f"member {k + 1} of {args.members} (seed {seed})", flush=True)
    previous = signal.signal(signal.SIGINT, stop.ask)
    try:
        history = model.fit(data, epochs=args.epochs, validation_data=(x_val, y_val), callbacks=callbacks,
                            verbose=1 if sys.stdout.isatty() else 2, **kwargs)
        interrupted = stop.requested
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        print("\ninterrupted: finishing from the best checkpoint", file=sys.stderr, flush=True)
        return None, True
    return history, False


def average_of(members, arch: str):
    """One model whose output is the mean of the members' probabilities (stock layers only)."""
    import keras

    inputs = keras.Input(shape=(SIZE, SIZE, 1))
    outputs = keras.layers.Average()([m(inputs) for m in members])
    return keras.Model(inputs, outputs, name=f"{arch}_x{len(members)}")


# ---------------------------------------------------------------- measuring
def measure_reject(model, x_reject, kinds, mnist_probs, threshold: float = 0.8) -> dict:
    """How the model treats held-out non-digit marks and MNIST test digits: the share
    of marks it calls "not a digit", the share a Recognizer at ``threshold`` would
    still read ``ok`` (best digit >= threshold), per kind, and the share of MNIST
    test digits it calls "not a digit"."""
    p = model.predict(x_reject[..., None], batch_size=1024, verbose=0)
    rejected = p.argmax(axis=1) == digit_model.NOT_DIGIT
    ok = p[:, :NUM_CLASSES].max(axis=1) >= threshold
    kinds = np.asarray(kinds)
    return {
        "marks": int(len(p)),
        "seed": glyphs.HELD_OUT_SEED,
        "threshold": threshold,
        "rejected": round(float(rejected.mean()), 5),
        "read_ok": round(float(ok.mean()), 5),
        "read_ok_by_kind": {k: round(float(ok[kinds == k].mean()), 5) for k in glyphs.KINDS if (kinds == k).any()},
        "mnist_test_rejected": round(float((mnist_probs.argmax(axis=1) == digit_model.NOT_DIGIT).mean()), 5),
    }


def measure_lowres(model, x_test, y_test, sides=(8, 12, 16)) -> dict:
    """Accuracy on the test digits shrunk to ``side`` x ``side`` and back, per side
    (a "not a digit" answer counts as wrong)."""
    out = {}
    for side in sides:
        x = np.stack([shrunk(im, side) for im in x_test])[..., None]
        out[f"{side}x{side}"] = round(float((model.predict(x, batch_size=1024, verbose=0).argmax(1) == y_test).mean()), 5)
    return out


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="npz with x_train, y_train, x_test, y_test (MNIST layout); default: Keras's MNIST download")
    p.add_argument("--arch", choices=digit_model.ARCHS, default="cnn", help="network: cnn (default) or the seed's mlp")
    p.add_argument("--epochs", type=int, help="epochs (default: cnn 30, mlp 20; 0 with --start: no fitting)")
    p.add_argument("--out", type=Path, help="model path, ending in .keras (default: models/digitd-ARCH.keras)")
    p.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help=f"batch size (default {BATCH_SIZE})")
    p.add_argument("--validation", type=int, default=VALIDATION, help=f"training images held out for validation (default {VALIDATION}, at most a fifth)")
    p.add_argument("--no-augment", action="store_true", help="train on the digits as they are (the mlp never augments)")
    p.add_argument("--members", type=int, default=1, help="networks trained with seeds SEED, SEED+1, ... and averaged into one model (default 1)")
    p.add_argument("--fonts", type=int, help=f"printed-style digits mixed into the training set (default: cnn {FONT_DIGITS}, mlp 0)")
    p.add_argument("--reject", type=int, help=f"'not a digit' marks (scripts/glyphs.py) trained as an 11th output "
                   f"(default: cnn {REJECT}, mlp 0; 0 gives a 10-output model)")
    p.add_argument("--lowres", type=float, help=f"share of the digits shrunk to {min(LOWRES_SIDES)}-{max(LOWRES_SIDES)} px and "
                   f"enlarged back each epoch (default: cnn {LOWRES}, 0 without augmentation)")
    p.add_argument("--flag-ones", type=float, help=f"share of the upright 1s given a long flag each epoch "
                   f"(default {FLAG_ONES}: off; the cnn with augmentation only)")
    p.add_argument("--start", type=Path, metavar="MODEL.keras",
                   help="fine-tune this model's members instead of training new ones (its 10-output last layer "
                        "widened to 11 when --reject is on); --members is then theirs")
    p.add_argument("--networks", metavar="A.keras:N,B.keras:M",
                   help="like --start, but with the networks picked from models (N: a network's index in its model, "
                        "from 0), averaged into one model; with --epochs 0 only combined")
    p.add_argument("--not-digit-bias", type=float, default=0.0, metavar="B",
                   help="add B to each member's 'not a digit' logit after fitting (a prior correction; default 0); "
                        "with --start and --epochs 0, only this, no fitting")
    p.add_argument("--lr", type=float, help=f"starting learning rate (default {LEARNING_RATE}, "
                   f"{FINE_TUNE_LR} with --start), decaying to {round(FINAL_LR * 100)}%% of it")
    args = p.parse_args(argv)
    if args.out is None:
        args.out = ROOT / "models" / f"digitd-{args.arch}.keras"
    if args.out.suffix != ".keras":
        p.error(f"--out {args.out}: must end in .keras")
    if args.epochs is None:
        args.epochs = EPOCHS[args.arch]
    if args.fonts is None:
        args.fonts = FONT_DIGITS if args.arch == "cnn" and not args.no_augment else 0
    if args.reject is None:
        args.reject = REJECT if args.arch == "cnn" else 0
    if args.lowres is None:
        args.lowres = LOWRES if args.arch == "cnn" and not args.no_augment else 0.0
    if args.flag_ones is None:
        args.flag_ones = FLAG_ONES
    if not 0.0 <= args.flag_ones <= 1.0:
        p.error("--flag-ones must be between 0 and 1")
    if args.flag_ones > 0 and (args.arch != "cnn" or args.no_augment):
        p.error("--flag-ones needs augmentation (the cnn without --no-augment)")
    if args.networks is not None:
        if args.start is not None:
            p.error("--networks and --start: give one of them")
        try:
            args.networks = parse_networks(args.networks)
        except ValueError as exc:
            p.error(f"--networks {exc}")
        for path, _ in args.networks:
            if not path.is_file():
                p.error(f"--networks {path}: no such file")
    args.tuning = args.start is not None or args.networks is not None
    if args.lr is None:
        args.lr = FINE_TUNE_LR if args.tuning else LEARNING_RATE
    args.classes = NUM_CLASSES + (args.reject > 0)
    args.reject_validation = min(REJECT_VALIDATION, max(50, args.reject // 8)) if args.reject > 0 else 0
    if args.reject < 0:
        p.error("--reject must be 0 or more")
    if not 0.0 <= args.lowres <= 1.0:
        p.error("--lowres must be between 0 and 1")
    if args.lowres > 0 and (args.arch != "cnn" or args.no_augment):
        p.error("--lowres needs augmentation (the cnn without --no-augment)")
    if args.start is not None and not args.start.is_file():
        p.error(f"--start {args.start}: no such file")
    if args.epochs < (0 if args.tuning else 1):
        p.error("--epochs must be at least 1 (0 with --start or --networks: no fitting)")
    if args.not_digit_bias and args.reject == 0:
        p.error("--not-digit-bias needs the reject class (--reject N)")
    if args.members < 1:
        p.error("--members must be at least 1")
    if args.batch_size < 1:
        p.error("--batch-size must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.time()
    try:
        x_train, y_train, x_test, y_test, data_sha = load_data(args.data)
    except DataError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2

    _, keras = digit_model.quiet_import()
    keras.utils.set_random_seed(args.seed)
    augment = args.arch == "cnn" and not args.no_augment

    # Data: the serving normalisation, a seeded validation split.
    x_train, x_test = as_ink(x_train), as_ink(x_test)
    order = np.random.default_rng(args.seed).permutation(len(x_train))
    n_val = min(args.validation, len(x_train) // 5)
    val_idx, fit_idx = order[:n_val], order[n_val:]
    x_fit, y_fit = x_train[fit_idx], y_train[fit_idx]
    if args.fonts > 0:
        x_font, y_font = font_digits(args.fonts, args.seed)
        x_fit, y_fit = np.concatenate([x_fit, x_font]), np.concatenate([y_fit, y_font])
    x_val = to_mnist_batch(x_train[val_idx])
    y_val = y_train[val_idx]
    x_reject_test = None
    if args.reject > 0:  # "not a digit": class 10, in training, validation and a held-out test set
        t0 = time.time()
        x_rej, _ = glyphs.not_digits(args.reject, args.seed)
        x_rej_val, _ = glyphs.not_digits(args.reject_validation, args.seed + 500_000)
        x_reject_test, reject_kinds = glyphs.not_digits(args.reject_validation, glyphs.HELD_OUT_SEED)
        x_fit = np.concatenate([x_fit, x_rej])
        y_fit = np.concatenate([y_fit, np.full(len(x_rej), digit_model.NOT_DIGIT, np.int64)])
        x_val = np.concatenate([x_val, x_rej_val])
        y_val = np.concatenate([y_val, np.full(len(x_rej_val), digit_model.NOT_DIGIT, np.int64)])
        print(f"{args.reject + 2 * args.reject_validation} non-digit marks drawn in {time.time() - t0:.0f} s",
              flush=True)
    x_val = x_val[..., None]
    x_test_in = to_mnist_batch(x_test)[..., None]
    print(f"train {x_fit.shape} val {x_val.shape} test {x_test_in.shape}; augment={augment} "
          f"lowres={args.lowres} classes={args.classes}", flush=True)

    starts: list = [None] * args.members
    if args.tuning:
        try:
            starts = start_networks(args)
        except ValueError as exc:
            print(f"train.py: error: {exc}", file=sys.stderr)
            return 2
        source = args.start if args.networks is None else ", ".join(f"{p}:{i}" for p, i in args.networks)
        args.members = len(starts)
        print(f"fine-tuning the {len(starts)} member(s) of {source}" + (" (no fitting: --epochs 0)" if args.epochs == 0 else ""), flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    fit_started = time.time()
    members, histories, interrupted = [], [], False
    if args.epochs == 0:  # --start, no fitting: the members as they are, with --not-digit-bias
        members, histories = starts, [{} for _ in starts]
    for k in range(args.members if args.epochs > 0 else 0):
        seed = args.seed + k
        ckpt = args.out.with_name(args.out.stem + (f".m{k}" if args.members > 1 else "") + ".ckpt.keras")
        history, interrupted = fit_member(args, k, seed, ckpt, x_fit, y_fit, x_val, y_val, augment, starts[k])
        if not ckpt.exists():
            if members:
                break
            print(f"train.py: error: no checkpoint was written ({ckpt}); nothing to save", file=sys.stderr)
            return 1
        members.append(digit_model.load(ckpt))
        histories.append(history.history if history is not None else {})
        if interrupted:
            break
    fit_seconds = time.time() - fit_started
    for m in members:
        if args.not_digit_bias:
            shift_not_digit(m, args.not_digit_bias)
    member_acc = [float((m.predict(x_test_in, batch_size=1024, verbose=0).argmax(1) == y_test).mean()) for m in members]
    best = members[0] if len(members) == 1 else average_of(members, args.arch)

    best.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    test_loss, test_acc = best.evaluate(x_test_in, y_test, batch_size=1024, verbose=0)
    probs = best.predict(x_test_in, batch_size=1024, verbose=0)
    pred = probs.argmax(axis=1)
    cm = np.zeros((args.classes, args.classes), np.int64)
    np.add.at(cm, (y_test, pred), 1)
    extra = {}
    if x_reject_test is not None:
        extra["reject"] = measure_reject(best, x_reject_test, reject_kinds, probs)
        np.add.at(cm, (digit_model.NOT_DIGIT, best.predict(x_reject_test[..., None], batch_size=1024,
                                                           verbose=0).argmax(axis=1)), 1)
    if args.lowres > 0 or args.reject > 0:
        extra["lowres_test_accuracy"] = measure_lowres(best, x_test, y_test)
    per_class = {str(c): round(float(cm[c, c] / max(cm[c].sum(), 1)), 5) for c in range(args.classes)}

    # Save atomically, then prove the saved file reloads (safe mode) and predicts the same.
    tmp = args.out.with_name(args.out.stem + ".tmp.keras")
    best.save(tmp)
    reloaded = digit_model.load(tmp)
    np.testing.assert_allclose(reloaded.predict(x_test_in[:256], verbose=0), probs[:256], rtol=1e-5, atol=1e-6)
    os.replace(tmp, args.out)

    name = args.out.stem
    import cv2
    import matplotlib
    import tensorflow as tf

    card = {
        "name": name,
        "file": args.out.name,
        "architecture": args.arch,
        "layers": [f"{layer.__class__.__name__}{tuple(layer.output.shape[1:])}" for layer in best.layers],
        "parameters": int(best.count_params()),
        "input": "28x28x1 float32 0-1, white ink on black, made by digitd.preprocess.to_mnist_form",
        "epochs": args.epochs,
        "interrupted": interrupted,
        "members": [
            {
                "seed": args.seed + k,
                "epochs_completed": len(h.get("loss", [])),
                "best_epoch": int(np.argmax(h["val_accuracy"])) + 1 if h.get("val_accuracy") else None,
                "best_val_accuracy": round(float(max(h["val_accuracy"])), 5) if h.get("val_accuracy") else None,
                "test_accuracy": round(acc, 5),
            }
            for k, (h, acc) in enumerate(zip(histories, member_acc))
        ],
        "combination": "average of the members' probabilities" if len(members) > 1 else None,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "outputs": args.classes,
        "output_meaning": "probabilities of the digits 0-9" + (", then of 'not a digit'" if args.classes > NUM_CLASSES else ""),
        "start": start_record(args),
        "not_digit_bias": args.not_digit_bias if args.reject else None,
        "optimizer": f"Adam lr {args.lr}, decaying x {decay(args.epochs):.4f} per epoch to {FINAL_LR:.0%} of it",
        "augmentation": (
            f"each epoch: rotation +-{ROTATE_DEG} deg, shear +-{SHEAR}, scale {SCALE[0]}-{SCALE[1]} per axis, "
            f"stroke thickness {THICKNESS} (px at 2x, probability)"
            + (f", then a share {args.flag_ones} of the 1s, if leaning at most {FLAG_MAX_LEAN_DEG} deg, given a flag "
               f"of {FLAG_LENGTH} of their height, turned {FLAG_TURN_DEG} deg left of the stem and at least "
               f"{FLAG_MIN_DROP_DEG} deg below the horizontal, a share {FOOT_SHARE} of those a foot (flagged_one)"
               if args.flag_ones > 0 else "")
            + ", then to_mnist_form"
            + (f", then for a share {args.lowres} shrunk to a side of {LOWRES_SIDES} px (INTER_AREA), enlarged "
               "back to 28 px (INTER_LINEAR) and read as the service reads such a file (segment.find_digits)"
               if args.lowres > 0 else "")
            + f", then shift +-{SHIFT_PX} px; the same for non-digit marks, except low resolution (digits only)"
            if augment
            else None
        ),
        "data": {
            "path": str(args.data) if args.data else "keras.datasets.mnist.load_data()",
            "sha256": data_sha,
            "train": int(len(fit_idx)),
            "font_digits": int(args.fonts),
            "not_digit_marks": int(args.reject),
            "not_digit_validation": args.reject_validation,
            "validation": int(n_val),
            "test": int(len(x_test)),
            "source": 'Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits", CC BY-SA 3.0',
        },
        "test_accuracy": round(float(test_acc), 5),
        "test_loss": round(float(test_loss), 5),
        "test_errors": int((pred != y_test).sum()),
        "per_class_accuracy": per_class,
        "digit_accuracy": round(float((probs[:, :NUM_CLASSES].argmax(axis=1) == y_test).mean()), 5),
        **extra,
        "not_digit_recipe": (
            {"generator": "scripts/glyphs.py not_digits(count, seed)", "kinds": dict(zip(glyphs.KINDS, glyphs.SHARES)),
             "fonts": {"truetype (matplotlib)": list(glyphs.TTF_FONTS), "hershey (OpenCV)": len(glyphs.HERSHEY)},
             "letters": glyphs.allowed(glyphs.LETTERS), "symbols": glyphs.allowed(glyphs.SYMBOLS),
             "excluded_glyphs": glyphs.EXCLUDED,
             "distortion": "random affine (rotation +-15 deg, shear +-0.35, scale 0.75-1.25 per axis), elastic warp "
                           "(70%), stroke thickening (25%) or thinning (15%), then to_mnist_form"}
            if args.reject else None
        ),
        "training_seconds": round(fit_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.platform()}",
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": np.__version__,
            "opencv": cv2.__version__,
            "matplotlib": matplotlib.__version__,
        },
        "command": "python scripts/train.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    card_path = args.out.with_suffix(".json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    # The file digitd serves: the TFLite companion NAME.tflite, recorded in the card
    # with its accuracy on the same test set (scripts/export_tflite.py redoes this).
    served = digit_model.export_companion(args.out, reloaded, x_test=x_test_in, y_test=y_test, reference=probs,
                                          test_data={"path": card["data"]["path"], "sha256": data_sha,
                                                     "images": int(len(y_test))})

    title = f"{name}: test accuracy {test_acc:.2%} on {len(x_test)} digits"
    save_confusion(cm, args.out.with_suffix(".confusion.png"), title)
    wrong = np.flatnonzero(pred != y_test)
    save_errors(x_test_in[wrong, ..., 0], y_test[wrong], pred[wrong], probs[wrong].max(axis=1), args.out.with_suffix(".errors.png"), name)
    for k in range(args.members):
        stem = args.out.stem + (f".m{k}" if args.members > 1 else "")
        for leftover in (".ckpt.keras", ".ckpt.partial.keras"):
            args.out.with_name(stem + leftover).unlink(missing_ok=True)

    print(f"test accuracy {test_acc:.4%}  loss {test_loss:.4f}  errors {card['test_errors']}")
    if "reject" in extra:
        r = extra["reject"]
        print(f"not a digit: {r['rejected']:.2%} of {r['marks']} held-out marks rejected, {r['read_ok']:.2%} read ok; "
              f"{r['mnist_test_rejected']:.2%} of the test digits rejected")
    if "lowres_test_accuracy" in extra:
        print("low resolution: " + ", ".join(f"{k} {v:.2%}" for k, v in extra["lowres_test_accuracy"].items()))
    print(f"served (TFLite, {served['quantization']}) test accuracy {served['test_accuracy']:.4%}  "
          f"errors {served['test_errors']}  same answer as Keras on {served['argmax_agreement_with_keras']:.2%}")
    print(f"wrote {args.out}, {card_path.name}, {served['file']}, {name}.confusion.png, {name}.errors.png "
          f"in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
