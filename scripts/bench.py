#!/usr/bin/env python3
"""Benchmark the real service (``digitd run``) against the seed-style loop (issue 5).

    python scripts/bench.py [--n 2000] [--rate 20] [--seconds 30] [--annotate on|off|both]
                            [--long 20000] [--seed-n 200] [--data PATH/mnist.npz]
                            [--out bench/] [--quick]
    python scripts/bench.py --pages DIR [--annotate on|off|both]   (a page set: pages/s)

For each of "pictures" (annotate: true) and "no pictures" (annotate: false):

1. A fresh temporary inbox/outbox and a config naming them and the shipped
   model (``settle_seconds: 0.2``); ``digitd run --config`` is started with
   ``$NOTIFY_SOCKET`` pointing at a datagram socket this script binds.
   READY = time from starting the process to receiving ``READY=1``.
2. Burst: ``--n`` files dropped at once; throughput = n / (last
   ``results/*.json`` - first drop). Result files are seen through inotify
   (IN_MOVED_TO: the service writes each JSON to a temp name and renames it).
3. Trickle: files dropped at ``--rate`` per second for ``--seconds``; the
   latency of each is drop -> its ``results/NAME.json`` (p50, p95, p99).
   Then a second burst of ``--n`` files on the service now running: the first
   burst lands right after READY, while the worker processes may still be
   starting (their start-up is in its figure); this one shows the rate of a
   service that has been up, the common case for a daemon.
4. Long run (``--long N``): N more files, fed so that about 512 wait in the
   inbox at any time; RSS (``/proc/PID/status`` VmRSS) is sampled all along;
   growth = RSS around file N vs around file 5,000.
5. Peak RSS = VmHWM at the end; steady RSS = median VmRSS after file 5,000 of
   the long run (or during the trickle without one).

Files are dropped the way users do: every other file is a plain copy into
the inbox, the others are copied to a hidden ``.NAME.part`` name in the
inbox and renamed into place. Inputs are MNIST test digits (``--data``, else
``$DIGITD_MNIST``, else ``../shared/data/mnist.npz`` from the repo; font-drawn
digits if none is found), dark ink on white, upscaled to ``--size`` pixels.

The seed-style loop runs in this process over ``--seed-n`` of the same files:
per image ``cv2.imread``, invert, resize to 28x28, ``model.predict`` on ONE
image (the seed's MLP, untrained: only the cost matters), and with pictures a
new matplotlib figure saved per image. Each burst figure is shown with its
ratio to that loop, so the figure means something on any machine.

Writes ``results.md`` (the table, the machine, notes), ``results.json`` (raw
figures) and ``bench.png`` (latency distribution, throughput over time) into
``--out`` (default ``bench/`` in the repo). ``--quick`` is the CI mode: a few
files, no long run, done in well under a minute; it proves the script works.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchdata import digits, find_data, write_pngs  # noqa: E402  (beside this script)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = ROOT / "models" / "digitd-cnn-v8.keras"
MODES = {"pictures": True, "no pictures": False}
BACKLOG = 512  # files waiting in the inbox during the long run
GROWTH_FROM = 5000
IN_MOVED_TO = 0x80
IN_CLOSE_WRITE = 0x08

BARS = {
    "ready": 6.0,
    "burst": {"pictures": 100.0, "no pictures": 1000.0},
    "ratio": {"pictures": 12.0, "no pictures": 50.0},
    "p95": 250.0,
    "rss": 800.0,
    "growth": 5.0,
}


PAGE_SUFFIXES = {".pdf", ".tif", ".tiff", ".png", ".jpg", ".jpeg"}


def now() -> float:
    return time.monotonic()


# ----------------------------------------------------------------------------
# Inputs


# ----------------------------------------------------------------------------
# Watching results/ (inotify through ctypes: no dependency, no polling)


class ResultWatch:
    """Time of arrival of every ``results/NAME.json``, by NAME."""

    def __init__(self, folder: Path) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self._libc.inotify_add_watch(self.fd, os.fsencode(folder),
                                        IN_MOVED_TO | IN_CLOSE_WRITE) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder}")
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select

        poll = select.poll()
        poll.register(self.fd, select.POLLIN)
        while not self._stop:
            if not poll.poll(100):
                continue
            t = now()
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            names = []
            pos = 0
            while pos + 16 <= len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, pos)
                raw = buf[pos + 16: pos + 16 + length].split(b"\0", 1)[0]
                pos += 16 + length
                name = os.fsdecode(raw)
                if name.endswith(".json") and not name.startswith("."):
                    names.append(name[:-5])
            if names:
                with self.lock:
                    for name in names:
                        self.seen.setdefault(name, t)
                    self.changed.notify_all()

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def wait_for(self, names: list[str], timeout: float) -> bool:
        deadline = now() + timeout
        with self.lock:
            while True:
                if all(n in self.seen for n in names):
                    return True
                left = deadline - now()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        os.close(self.fd)


# ----------------------------------------------------------------------------
# The service


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                vals[key] = int(value.split()[0]) / 1024
    return vals.get("VmRSS", 0.0), vals.get("VmHWM", 0.0)


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def tree_rss_mb(pid: int) -> float:
    """VmRSS of the service and its child processes (the picture workers)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            total += rss_mb(p)[0]
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the service's main process and of its workers together."""
    return cpu_seconds(pid), sum(cpu_seconds(c) for c in children(pid))


def digitd_exe() -> str:
    exe = shutil.which("digitd", path=str(Path(sys.executable).parent)) or shutil.which("digitd")
    if not exe:
        sys.exit("bench: no 'digitd' command; install the project (make venv)")
    return exe


class Run:
    """One service process on a fresh inbox/outbox."""

    def __init__(self, tmp: Path, annotate: bool, model: Path, forms: Path | None = None) -> None:
        self.tmp = tmp
        self.inbox = tmp / "inbox"
        self.outbox = tmp / "outbox"
        self.inbox.mkdir(parents=True)
        (self.outbox / "results").mkdir(parents=True)
        self.config = tmp / "config.yaml"
        self.config.write_text(
            f"inbox: {json.dumps(str(self.inbox))}\n"
            f"outbox: {json.dumps(str(self.outbox))}\n"
            f"model: {json.dumps(str(model))}\n"
            f"settle_seconds: 0.2\n"
            f"annotate: {'true' if annotate else 'false'}\n"
            + (f"forms: {json.dumps(str(forms))}\n" if forms else ""))
        self.watch = ResultWatch(self.outbox / "results")
        self.drops: dict[str, float] = {}
        self.samples: list[tuple[float, int, float]] = []  # (t, results so far, RSS MB)
        self.tree: list[float] = []  # RSS of the service with its children, MB
        self.renamed: set[str] = set()
        self._sampling = False
        self.proc: subprocess.Popen | None = None
        self._k = 0

    def start(self) -> float:
        sock_path = str(self.tmp / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DIGITD_", "WATCHDOG_", "NOTIFY_"))}
        env["NOTIFY_SOCKET"] = sock_path
        self.log = open(self.tmp / "service.log", "wb")
        t0 = now()
        self.proc = subprocess.Popen([digitd_exe(), "run", "--config", str(self.config)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        sock.settimeout(0.5)
        try:
            while True:
                try:
                    msg = sock.recv(4096).decode(errors="replace")
                except TimeoutError:
                    if self.proc.poll() is not None:
                        self.fail(f"digitd run exited {self.proc.returncode} before READY=1")
                    if now() - t0 > 120:
                        self.fail("no READY=1 within 120 s")
                    continue
                if "READY=1" in msg.split("\n"):
                    ready = now() - t0
                    break
        finally:
            sock.close()
        self._sampling = True
        threading.Thread(target=self._sample, daemon=True).start()
        return ready

    def fail(self, message: str) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        self.log.flush()
        tail = (self.tmp / "service.log").read_text(errors="replace")[-3000:]
        sys.exit(f"bench: {message}\n--- service log (end) ---\n{tail}")

    def _sample(self) -> None:
        while self._sampling and self.proc.poll() is None:
            try:
                rss, _ = rss_mb(self.proc.pid)
            except OSError:
                return
            self.samples.append((now(), self.watch.count(), rss))
            self.tree.append(tree_rss_mb(self.proc.pid))
            time.sleep(0.25)

    def drop(self, src: Path, name: str) -> None:
        """Copy (even k) or write to a hidden name and rename into place (odd k)."""
        dest = self.inbox / f"{name}.png"
        self._k += 1
        if self._k % 2:
            self.renamed.add(name)
            part = self.inbox / f".{name}.png.part"
            shutil.copyfile(src, part)
            self.drops[name] = now()
            os.rename(part, dest)
        else:
            self.drops[name] = now()
            shutil.copyfile(src, dest)

    def wait(self, names: list[str], timeout: float) -> None:
        if not self.watch.wait_for(names, timeout):
            missing = [n for n in names if n not in self.watch.seen]
            self.fail(f"{len(missing)} result(s) missing after {timeout:.0f} s "
                      f"(first: {missing[0]})")
        if self.proc.poll() is not None:
            self.fail(f"digitd run exited {self.proc.returncode}")

    def stop(self) -> dict:
        peak = rss_mb(self.proc.pid)[1]
        kids = [rss_mb(c)[1] for c in children(self.proc.pid)]
        self._sampling = False
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = "killed after 60 s"
        self.watch.close()
        self.log.close()
        failed = list((self.outbox / "failed").glob("*.error.json")) \
            if (self.outbox / "failed").exists() else []
        return {"peak_rss_mb": peak, "children_peak_mb": kids, "failed": len(failed),
                "tree_peak_mb": max(self.tree, default=0.0), "exit": code}


# ----------------------------------------------------------------------------
# Phases


def burst(run: Run, sources: list[Path], n: int, timeout: float, prefix: str = "burst") -> dict:
    names = [f"{prefix}-{i:06d}" for i in range(n)]
    for i, name in enumerate(names):
        run.drop(sources[i % len(sources)], name)
    run.wait(names, timeout)
    t_first = min(run.drops[n_] for n_ in names)
    t_done = [run.watch.seen[n_] for n_ in names]
    span = max(t_done) - t_first
    return {"n": n, "seconds": span, "files_per_s": n / span,
            "done_at": sorted(t - t_first for t in t_done),
            "drop_seconds": max(run.drops[n_] for n_ in names) - t_first}


def page_burst(run: Run, folder: Path, timeout: float) -> dict:
    """Every document and page image in ``folder`` (a set from scripts/pages.py)
    dropped at once; pages/s = pages read / (last result - first drop)."""
    sources = sorted(p for p in folder.iterdir() if p.suffix.lower() in PAGE_SUFFIXES)
    if not sources:
        run.fail(f"--pages {folder}: no PDF, TIFF, PNG or JPEG files")
    names = [f"page-{i:05d}" for i in range(len(sources))]
    main0, workers0 = cpu_split(run.proc.pid)
    t0 = now()
    for src, name in zip(sources, names):
        part = run.inbox / f".{name}{src.suffix}.part"
        shutil.copyfile(src, part)
        run.drops[name] = now()
        os.rename(part, run.inbox / f"{name}{src.suffix}")
    run.wait(names, timeout)
    span = max(run.watch.seen[n] for n in names) - t0
    main1, workers1 = cpu_split(run.proc.pid)
    results = [json.loads((run.outbox / "results" / f"{n}.json").read_text()) for n in names]
    pages = sum(len(r.get("pages") or [None]) for r in results)
    forms = sum(p.get("form") is not None for r in results for p in r.get("pages") or ())
    pictures = len(list((run.outbox / "annotated").glob("*.png"))) \
        if (run.outbox / "annotated").exists() else 0
    return {"files": len(names), "pages": pages, "seconds": span, "pages_per_s": pages / span,
            "forms": forms, "main_ms": (main1 - main0) * 1000 / pages,
            "workers_ms": (workers1 - workers0) * 1000 / pages,
            "failed": sum(r["status"] == "failed" for r in results), "pictures": pictures}


def trickle(run: Run, sources: list[Path], rate: float, seconds: float, timeout: float) -> dict:
    count = max(1, int(rate * seconds))
    names = [f"trickle-{i:06d}" for i in range(count)]
    t0 = now() + 0.05
    for i, name in enumerate(names):
        delay = t0 + i / rate - now()
        if delay > 0:
            time.sleep(delay)
        run.drop(sources[i % len(sources)], name)
    run.wait(names, timeout)
    lat = np.array([(run.watch.seen[n_] - run.drops[n_]) * 1000 for n_ in names])
    t_start = min(run.drops[n_] for n_ in names)
    t_end = max(run.watch.seen[n_] for n_ in names)
    rss = [r for t, _, r in run.samples if t_start <= t <= t_end]
    by = {}
    for label, keep in (("copy", False), ("rename", True)):
        sub = np.array([(run.watch.seen[n_] - run.drops[n_]) * 1000 for n_ in names
                        if (n_ in run.renamed) == keep])
        if len(sub):
            by[label] = {q: float(np.percentile(sub, int(q[1:]))) for q in ("p50", "p95")}
    return {"n": count, "rate": rate, "latency_ms": lat.tolist(),
            "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
            "p99": float(np.percentile(lat, 99)), "max": float(lat.max()),
            "rss_median_mb": statistics.median(rss) if rss else None, "by_method": by,
            "tree_median_mb": _tree_median(run, lambda t, c: t_start <= t <= t_end)}


def _tree_median(run: Run, keep) -> float | None:
    vals = [tr for (t, c, _), tr in zip(run.samples, run.tree) if keep(t, c)]
    return statistics.median(vals) if vals else None


def long_run(run: Run, sources: list[Path], n: int) -> dict:
    names = [f"long-{i:06d}" for i in range(n)]
    base = run.watch.count()
    t0 = now()
    i = 0
    last_progress, last_count = now(), base
    while True:
        done = run.watch.count() - base
        if done >= n:
            break
        while i < n and i - done < BACKLOG:
            run.drop(sources[i % len(sources)], names[i])
            i += 1
        if done != last_count:
            last_progress, last_count = now(), done
        elif now() - last_progress > 120:
            run.fail(f"long run stuck at {done} of {n} files")
        if run.proc.poll() is not None:
            run.fail(f"digitd run exited {run.proc.returncode} during the long run")
        time.sleep(0.02)
    seconds = now() - t0
    samples = [(t, c - base, r) for t, c, r in run.samples if t >= t0]

    def around(k: int, width: int) -> float | None:
        rs = [r for _, c, r in samples if k - width <= c <= k + width]
        return statistics.median(rs) if rs else None

    width = max(50, n // 40)
    at_from = around(min(GROWTH_FROM, n // 4), width)
    at_end = around(n, 2 * width)
    after = [r for _, c, r in samples if c >= min(GROWTH_FROM, n // 4)]
    done_at = sorted(run.watch.seen[n_] - t0 for n_ in names)
    return {"n": n, "seconds": seconds, "files_per_s": n / seconds,
            "from_file": min(GROWTH_FROM, n // 4),
            "rss_from_mb": at_from, "rss_end_mb": at_end,
            "growth_pct": (at_end - at_from) / at_from * 100 if at_from and at_end else None,
            "rss_median_mb": statistics.median(after) if after else None,
            "tree_median_mb": _tree_median(
                run, lambda t, c: t >= t0 and c - base >= min(GROWTH_FROM, n // 4)),
            "done_at": done_at,
            "rss_trace": [(t - t0, c, r) for t, c, r in samples]}


# ----------------------------------------------------------------------------
# The seed-style loop


def seed_loop(files: list[Path], pictures: bool, out: Path) -> dict:
    """The seed's way: one image at a time, one predict call each, one figure each."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from digitd.model import build_mlp

    model = build_mlp("seed")
    out.mkdir(parents=True, exist_ok=True)
    model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0)  # its first trace is start-up
    t0 = now()
    for i, path in enumerate(files):
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        img = 255 - img
        img = cv2.resize(img, (28, 28)).astype(np.float32) / 255.0
        probs = model.predict(img.reshape(1, 28, 28, 1), verbose=0)[0]
        digit = int(np.argmax(probs))
        if pictures:
            fig = plt.figure()
            plt.imshow(img, cmap="gray")
            plt.title(f"Predicted: {digit} ({probs[digit]:.2f})")
            plt.savefig(out / f"seed-{i:05d}.png")
            plt.close(fig)
    seconds = now() - t0
    return {"n": len(files), "seconds": seconds, "files_per_s": len(files) / seconds}


# ----------------------------------------------------------------------------
# Report


def machine() -> dict:
    model = platform.processor() or "?"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1024 / 1024:.0f} GB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem,
            "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "load_at_start": os.getloadavg()}


def ok(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**MISSED**")


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "—" if x is None else format(x, spec)


def table(res: dict, modes: list[str]) -> str:
    def cells(fn):
        return [fn(res["modes"][m]) for m in modes]

    def verdict(preds):
        vals = [p for p in preds if p is not None]
        if len(preds) == len(modes) > 1 and None not in preds and len(set(preds)) > 1:
            return "; ".join(f"{m} {ok(p)}" for m, p in zip(modes, preds))
        return ok(all(vals) if vals else None)

    head = "| Figure | " + " | ".join(modes) + " | Bar | Verdict |"
    rows = [head, "|" + "---|" * (len(modes) + 3)]

    def row(label, fn, bar, preds):
        rows.append(f"| {label} | " + " | ".join(cells(fn)) + f" | {bar} | {verdict(preds)} |")

    ms = [res["modes"][m] for m in modes]
    row("READY after start (s)", lambda r: fmt(r["ready_s"], ".2f"), f"<= {BARS['ready']:g} s",
        [r["ready_s"] <= BARS["ready"] for r in ms])
    row(f"Burst throughput, {res['n']} files (files/s)",
        lambda r: f"{r['burst']['files_per_s']:.0f} ({r['ratio']:.1f}x seed)",
        "100 / 1,000; 12x / 50x",
        [r["burst"]["files_per_s"] >= BARS["burst"][m] and r["ratio"] >= BARS["ratio"][m]
         for m, r in zip(modes, ms)])
    row(f"Burst of {res['n']} on the service running (files/s)",
        lambda r: f"{r['burst_running']['files_per_s']:.0f}", "—", [None])
    row(f"Seed-style loop, {res['seed_n']} files (files/s)",
        lambda r: f"{r['seed']['files_per_s']:.1f}", "—", [None])
    for q in ("p50", "p95", "p99"):
        bar = f"<= {BARS['p95']:g} ms (pictures)" if q == "p95" else "—"
        preds = [res["modes"]["pictures"]["trickle"]["p95"] <= BARS["p95"]] \
            if q == "p95" and "pictures" in modes else [None]
        row(f"Latency {q} at {res['rate']:g} files/s (ms)",
            lambda r, q=q: fmt(r["trickle"][q]), bar, preds)
    row("Latency p50 / p95, copied in (ms)",
        lambda r: " / ".join(fmt(r["trickle"]["by_method"].get("copy", {}).get(q))
                             for q in ("p50", "p95")), "—", [None])
    row("Latency p50 / p95, renamed in (ms)",
        lambda r: " / ".join(fmt(r["trickle"]["by_method"].get("rename", {}).get(q))
                             for q in ("p50", "p95")), "—", [None])
    row("Peak RSS, service process, VmHWM (MB)", lambda r: fmt(r["stop"]["peak_rss_mb"]), "—", [None])
    row("Steady RSS (MB)", lambda r: fmt(r["steady_rss_mb"]), f"<= {BARS['rss']:g} MB",
        [r["steady_rss_mb"] <= BARS["rss"] if r["steady_rss_mb"] else None for r in ms])
    row("Steady / peak RSS with picture workers (MB)",
        lambda r: f"{fmt((r['long'] or r['trickle'])['tree_median_mb'])} / "
                  f"{fmt(r['stop']['tree_peak_mb'])}", "—", [None])
    if res["long"]:
        lbl = f"RSS growth, file {ms[0]['long']['from_file']:,} -> {res['long']:,}"
        row(lbl, lambda r: f"{fmt(r['long']['growth_pct'], '+.1f')}% "
            f"({fmt(r['long']['rss_from_mb'])} -> {fmt(r['long']['rss_end_mb'])} MB)",
            f"< {BARS['growth']:g}%",
            [r["long"]["growth_pct"] < BARS["growth"] if r["long"]["growth_pct"] is not None
             else None for r in ms])
        row(f"Long run throughput, {res['long']:,} files (files/s)",
            lambda r: f"{r['long']['files_per_s']:.0f}", "—", [None])
    else:
        row("RSS growth, file 5,000 -> 20,000", lambda r: "not run (--long)", "< 5%", [None])
    row("Files failed (should be 0)", lambda r: str(r["stop"]["failed"]), "0",
        [r["stop"]["failed"] == 0 for r in ms])
    return "\n".join(rows)


def plot(res: dict, modes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    ax = axes[0]
    for m in modes:
        lat = np.sort(res["modes"][m]["trickle"]["latency_ms"])
        ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=m)
    ax.axvline(BARS["p95"], color="grey", ls="--", lw=0.8, label="bar: p95 250 ms")
    ax.axhline(0.95, color="grey", ls=":", lw=0.8)
    ax.set_xlabel(f"latency drop -> result JSON (ms) at {res['rate']:g} files/s")
    ax.set_ylabel("fraction of files")
    ax.set_title("Latency distribution (trickle)")
    ax.legend()
    ax = axes[1]
    for m in modes:
        r = res["modes"][m]
        for key, style in (("burst", "-"), ("long", "--")):
            phase = r.get(key)
            if not phase or not phase.get("done_at"):
                continue
            t = np.array(phase["done_at"])
            step = 0.5 if t[-1] > 5 else 0.1
            edges = np.arange(0, t[-1] + step, step)
            hist, _ = np.histogram(t, edges)
            ax.plot(edges[:-1], hist / step, style, label=f"{m}, {key} ({phase['n']:,} files)")
    ax.set_xlabel("seconds since the first drop")
    ax.set_ylabel("results per second")
    ax.set_yscale("symlog")
    ax.set_title("Throughput over time")
    ax.legend(fontsize=8)
    fig.suptitle(f"digitd bench — {res['machine']['nproc']} cores, {res['machine']['cpu']}, "
                 f"{res['machine']['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="files in the burst (default 2000)")
    ap.add_argument("--rate", type=float, default=20.0, help="trickle rate, files/s (default 20)")
    ap.add_argument("--seconds", type=float, default=30.0, help="trickle length (default 30)")
    ap.add_argument("--annotate", choices=("on", "off", "both"), default="both")
    ap.add_argument("--long", type=int, default=0, metavar="N",
                    help="long run of N files for RSS growth (e.g. 20000; default: none)")
    ap.add_argument("--seed-n", type=int, default=200, help="files for the seed-style loop")
    ap.add_argument("--size", type=int, default=112, help="side of the input images in pixels")
    ap.add_argument("--data", help="mnist.npz (default $DIGITD_MNIST or ../shared/data/mnist.npz)")
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--out", default=str(ROOT / "bench"), help="results folder (default bench/)")
    ap.add_argument("--pages", type=Path, metavar="DIR",
                    help="instead: a burst of the page set in DIR (scripts/pages.py), pages/s")
    ap.add_argument("--quick", action="store_true",
                    help="CI: 30 files, 2 s of trickle, 10 for the seed loop, no long run")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.seconds, args.seed_n, args.long = min(args.n, 30), 2.0, 10, 0
    modes = {"on": ["pictures"], "off": ["no pictures"], "both": list(MODES)}[args.annotate]
    model = Path(args.model).resolve()
    if not model.is_file():
        sys.exit(f"bench: --model {model}: no such file")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.pages:
        return bench_pages(args.pages, modes, model, out)

    res: dict = {"machine": machine(), "n": args.n, "rate": args.rate, "seed_n": args.seed_n,
                 "long": args.long, "size": args.size, "quick": args.quick, "modes": {}}
    n_src = min(max(args.n, args.seed_n, int(args.rate * args.seconds)), 10000)
    data = find_data(args.data, "bench")
    with tempfile.TemporaryDirectory(prefix="digitd-bench-") as tmp_s:
        tmp = Path(tmp_s)
        xs, _ys, res["inputs"] = digits(data, n_src)
        sources = write_pngs(tmp / "src", xs, args.size, "src")
        print(f"bench: {n_src} source images ({res['inputs']}, {args.size}x{args.size} PNG)",
              flush=True)
        for m in modes:
            annotate = MODES[m]
            run = Run(tmp / m.replace(" ", "-"), annotate, model)
            r: dict = {}
            try:
                r["ready_s"] = run.start()
                print(f"bench [{m}]: READY after {r['ready_s']:.2f} s", flush=True)
                r["burst"] = burst(run, sources, args.n, timeout=60 + args.n / 5)
                print(f"bench [{m}]: burst {args.n} files: {r['burst']['files_per_s']:.0f} files/s",
                      flush=True)
                r["trickle"] = trickle(run, sources, args.rate, args.seconds, timeout=120)
                t = r["trickle"]
                print(f"bench [{m}]: trickle {t['n']} files at {args.rate:g}/s: p50 {t['p50']:.0f}"
                      f" p95 {t['p95']:.0f} p99 {t['p99']:.0f} ms", flush=True)
                r["burst_running"] = burst(run, sources, args.n, timeout=60 + args.n / 5,
                                           prefix="again")
                print(f"bench [{m}]: burst {args.n} files on the running service: "
                      f"{r['burst_running']['files_per_s']:.0f} files/s", flush=True)
                r["long"] = long_run(run, sources, args.long) if args.long else None
                if r["long"]:
                    lr = r["long"]
                    print(f"bench [{m}]: long {args.long} files: {lr['files_per_s']:.0f} files/s, "
                          f"RSS {fmt(lr['rss_from_mb'])} -> {fmt(lr['rss_end_mb'])} MB", flush=True)
                r["steady_rss_mb"] = (r["long"] or r["trickle"])["rss_median_mb"]
                r["stop"] = run.stop()
            except BaseException:
                if run.proc is not None and run.proc.poll() is None:
                    run.proc.kill()
                raise
            r["seed"] = seed_loop(sources[: args.seed_n], annotate, tmp / "seed" / m.replace(" ", "-"))
            r["ratio"] = r["burst"]["files_per_s"] / r["seed"]["files_per_s"]
            print(f"bench [{m}]: seed-style loop {r['seed']['files_per_s']:.1f} files/s; "
                  f"ratio {r['ratio']:.1f}x", flush=True)
            res["modes"][m] = r

    md = table(res, modes)
    mach = res["machine"]
    load = ", ".join(f"{x:.2f}" for x in mach["load_at_start"])
    notes = (f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['memory']} RAM, "
             f"Python {mach['python']}; {mach['date']}; load average at start {load}.\n"
             f"Inputs: {res['inputs']}, {args.size}x{args.size} PNG, dark on light; "
             f"half copied in, half renamed in from a hidden name. "
             f"Trickle: {args.rate:g} files/s for {args.seconds:g} s. "
             f"Seed-style loop: {args.seed_n} of the same files, same run.")
    text = f"# digitd benchmark{' (--quick)' if args.quick else ''}\n\n{md}\n\n{notes}\n"
    (out / "results.md").write_text(text)
    slim = json.loads(json.dumps(res))
    for r in slim["modes"].values():
        for key in ("burst", "burst_running", "long"):
            if r.get(key):
                r[key].pop("done_at", None)
                r[key].pop("rss_trace", None)
    (out / "results.json").write_text(json.dumps(slim, indent=1))
    plot(res, modes, out / "bench.png")
    print()
    print(md)
    print()
    print(notes)
    print(f"\nbench: wrote {out / 'results.md'}, {out / 'results.json'}, {out / 'bench.png'}")
    return 0


def bench_pages(folder: Path, modes: list[str], model: Path, out: Path) -> int:
    """``--pages DIR``: the page set through the service, per mode; bench/pages.md.
    A set with form templates in ``DIR/forms`` (``pages.py --set forms``) is read
    with them (config key ``forms``), into bench/forms-service.md with the count of
    pages read as forms."""
    forms = folder / "forms" if (folder / "forms").is_dir() else None
    lines = ["| mode | files | pages | forms read | seconds | pages/s | failed | pictures | bar |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    with tempfile.TemporaryDirectory(prefix="digitd-bench-pages-") as tmp_s:
        for m in modes:
            run = Run(Path(tmp_s) / m.replace(" ", "-"), MODES[m], model, forms)
            try:
                ready = run.start()
                r = page_burst(run, folder, timeout=600)
                run.stop()
            except BaseException:
                if run.proc is not None and run.proc.poll() is None:
                    run.proc.kill()
                raise
            bar = "—" if forms else "met" if r["pages_per_s"] >= 20 else "NOT met"
            print(f"bench [{m}]: READY {ready:.2f} s; {r['pages']} pages in {r['files']} files: "
                  f"{r['pages_per_s']:.1f} pages/s; {r['forms']} read as forms; CPU per page: "
                  f"main process {r['main_ms']:.0f} ms, workers {r['workers_ms']:.0f} ms", flush=True)
            lines.append(f"| {m} | {r['files']} | {r['pages']} | {r['forms']} | {r['seconds']:.1f} | "
                         f"{r['pages_per_s']:.1f} | {r['failed']} | {r['pictures']} | "
                         f"{bar if m == 'pictures' else ''} |")
    mach = machine()
    text = ("# digitd page benchmark\n\n" + "\n".join(lines) + "\n\n"
            f"Set: {folder} ({len(list(folder.glob('*')))} entries"
            f"{', form templates in ' + str(forms) if forms else ''}). "
            f"{'' if forms else 'Bar: 20 pages/s with pictures. '}"
            f"Machine: {mach['nproc']} cores ({mach['cpu']}), Python {mach['python']}; "
            f"{mach['date']}; load average at start "
            f"{', '.join(f'{x:.2f}' for x in mach['load_at_start'])}.\n")
    (out / ("forms-service.md" if forms else "pages.md")).write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
