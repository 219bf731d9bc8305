#!/usr/bin/env python3
"""Coverage against silent errors: what each ``confidence_threshold`` would give.

    python scripts/tradeoff.py --pages DIR [--real DIR] [--model M.keras ...]
                               [--out bench/tradeoff]

Runs ``digitd predict --json`` once per model with ``confidence_threshold: 0``
over real-dev (one labelled digit a file) and a page set from
``scripts/pages.py`` (labelled numbers on pages, non-digit inputs, blank and
ruled sheets). Every number the reader reports gets its confidence, whether it
is right, and whether the reader doubted it (a doubt keeps it ``uncertain`` at
any threshold). Then, for each threshold: **coverage**, the labelled numbers
read right and ``ok``; **silent errors**, the numbers reported ``ok`` that are
wrong (misread, not on the labels, or on an input holding no number). Writes
``OUT.md`` (a table) and ``OUT.png`` (the curves, one per model).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from accuracy import match_numbers, scaled  # noqa: E402  (beside this script)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)


@dataclass(frozen=True)
class Reported:
    """One number the reader reported: its confidence, right or not, doubted or not."""

    confidence: float
    right: bool
    doubted: bool


@dataclass
class Tally:
    labelled: int  # numbers on the labels: coverage's denominator
    reported: list[Reported]

    def at(self, threshold: float) -> tuple[int, int]:
        """(right and ok, wrong and ok) at ``threshold``."""
        ok = [r for r in self.reported if not r.doubted and r.confidence >= threshold]
        return sum(r.right for r in ok), sum(not r.right for r in ok)


def predict(files: list[Path], model: Path, tmp: Path) -> dict[str, dict]:
    """source name -> result, through the real CLI, every number's status from its doubts alone."""
    config = tmp / "config.yaml"
    text = (ROOT / "config.yaml").read_text()
    config.write_text("".join(line if not line.startswith("confidence_threshold:") else
                              "confidence_threshold: 0.0\n" for line in text.splitlines(keepends=True)))
    listing = tmp / "inputs"
    listing.mkdir(exist_ok=True)
    for f in files:
        link = listing / f.name
        if not link.exists():
            link.symlink_to(f)
    out = tmp / f"out-{model.stem}"
    proc = subprocess.run([sys.executable, "-m", "digitd", "predict", "--config", str(config), "--model", str(model),
                           "--out", str(out), "--no-annotate", "--json", str(listing)],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 1):
        sys.exit(f"tradeoff.py: digitd predict exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return {Path(r["source"]).name: r for r in results}


def handwritten(page: dict) -> list[dict]:
    return [n for n in page.get("numbers") or [] if not n.get("printed")]


def tally_real(real: Path, results: dict[str, dict]) -> Tally:
    """real-dev: each file one labelled digit; whatever else is reported there is wrong."""
    tally = Tally(0, [])
    with open(real / "labels.csv", newline="") as f:
        for row in csv.DictReader(f):
            tally.labelled += 1
            result = results.get(row["file"]) or {}
            for page in result.get("pages") or []:
                for n in handwritten(page):
                    tally.reported.append(Reported(n.get("confidence") or 0.0, n.get("number") == row["label"]
                                                   and len(handwritten(page)) == 1, n.get("status") != "ok"))
    return tally


def tally_pages(labels: dict, results: dict[str, dict]) -> Tally:
    """A page set: each labelled number matched by its box; unmatched reports are wrong."""
    tally = Tally(0, [])
    for name, meta in labels["files"].items():
        result = results.get(name) or {}
        found_pages = {p.get("page"): p for p in result.get("pages") or []}
        for label in meta["pages"]:
            page = found_pages.get(label["page"]) or {}
            found = handwritten(page)
            truth = label["numbers"]
            tally.labelled += len(truth)
            sx = sy = 1.0
            if page.get("width") and label.get("width"):
                sx, sy = page["width"] / label["width"], page["height"] / label["height"]
            match = match_numbers([scaled(n["box"], sx, sy) for n in truth], [n.get("box") for n in found])
            right = {j for i, j in match.items() if found[j].get("number") == truth[i]["text"]}
            for j, n in enumerate(found):
                tally.reported.append(Reported(n.get("confidence") or 0.0, j in right, n.get("status") != "ok"))
    return tally


def table(curves: dict[str, Tally]) -> str:
    lines = ["| threshold | " + " | ".join(f"{m}: coverage | {m}: silent errors" for m in curves) + " |",
             "|---|" + "---|---|" * len(curves)]
    for t in THRESHOLDS:
        cells = []
        for tally in curves.values():
            right, wrong = tally.at(t)
            cells += [f"{right / tally.labelled:.1%} ({right}/{tally.labelled})", f"{wrong}"]
        lines.append(f"| {t:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(curves: dict[str, Tally], path: Path, marked: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for model, tally in curves.items():
        steps = sorted({round(r.confidence, 4) for r in tally.reported} | set(THRESHOLDS))
        points = [tally.at(t) for t in steps]
        ax.plot([w for _, w in points], [100 * r / tally.labelled for r, _ in points], label=model)
        right, wrong = tally.at(marked)
        ax.plot([wrong], [100 * right / tally.labelled], "o", color=ax.lines[-1].get_color())
        ax.annotate(f"{marked:g}", (wrong, 100 * right / tally.labelled), textcoords="offset points", xytext=(6, -12))
    ax.set_xlabel("silent errors: numbers reported ok that are wrong")
    ax.set_ylabel("coverage: labelled numbers read right and ok (%)")
    ax.set_title("confidence_threshold from 0 (right) to 0.999 (left); dot: the default")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=Path, required=True, help="a page set from scripts/pages.py (labels.json)")
    p.add_argument("--real", type=Path, default=SHARED / "real-dev", help="real-dev folder (labels.csv)")
    p.add_argument("--no-real", action="store_true", help="the page set alone")
    p.add_argument("--model", type=Path, action="append", help="a model (repeat to compare; default v1)")
    p.add_argument("--threshold", type=float, default=0.8, help="the threshold to mark (default 0.8)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "tradeoff", help="OUT.md and OUT.png")
    args = p.parse_args(argv)
    models = args.model or [ROOT / "models" / "digitd-cnn-v8.keras"]
    labels = json.loads((args.pages / "labels.json").read_text())
    if not args.no_real and not (args.real / "labels.csv").is_file():
        sys.exit(f"tradeoff.py: no {args.real}/labels.csv (real-dev; --no-real for the page set alone)")
    real_files = [] if args.no_real else sorted(args.real.glob("*.png"))
    page_files = [args.pages / name for name in labels["files"]]
    curves: dict[str, Tally] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            for what, files in (("real-dev", real_files), ("pages", page_files)):
                if not files:
                    continue
                folder = Path(tmp) / what
                folder.mkdir(exist_ok=True)
                results = predict(files, model, folder)
                tally = tally_real(args.real, results) if what == "real-dev" else tally_pages(labels, results)
                key = model.stem
                if key in curves:
                    curves[key].labelled += tally.labelled
                    curves[key].reported += tally.reported
                else:
                    curves[key] = tally
    text = (f"Coverage against silent errors (`scripts/tradeoff.py`): real-dev ({len(real_files)} files) and "
            f"a page set ({len(page_files)} files, `scripts/pages.py --seed {labels.get('seed')}`).\n\n"
            + table(curves) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    plot(curves, args.out.with_suffix(".png"), args.threshold)
    print(text)
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
