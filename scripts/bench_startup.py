#!/usr/bin/env python3
"""Start-up, memory and install size of digitd, old code and new side by side.

    python scripts/bench_startup.py --old /tmp/before [--runs 5] [--files 200] [--no-install]

Both sides run as ``python -m digitd`` with this Python and ``PYTHONPATH`` at their
``daemon/`` (the old code needs TensorFlow in this venv): ``predict one.png`` wall
time and peak RSS, READY after start, the service's RSS alone and with all its
processes after ``--files`` files (pictures on), and a fresh venv's size after
``pip install CHECKOUT``. Writes ``bench/startup.md`` and ``bench/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BARS = {"predict_wall_s": 0.6, "predict_peak_mb": 200, "ready_s": 1.0, "service_rss_mb": 150,
        "service_all_rss_mb": 450, "install_mb": 450}


def env_for(checkout: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_") and k != "NOTIFY_SOCKET"}
    env["PYTHONPATH"] = str(checkout / "daemon")
    env.update(extra)
    return env


def digit_png(path: Path, digit: int, seed: int = 0) -> None:
    """A 112x112 dark-on-light digit drawn with an OpenCV font (no data needed)."""
    rng = np.random.default_rng(seed)
    img = np.full((112, 112), 255, np.uint8)
    cv2.putText(img, str(digit), (int(rng.integers(28, 36)), int(rng.integers(84, 92))),
                cv2.FONT_HERSHEY_SIMPLEX, 2.6, 0, int(rng.integers(6, 10)), cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    path.write_bytes(buf.tobytes())


def write_config(folder: Path, model: Path, annotate: bool) -> Path:
    (folder / "inbox").mkdir(parents=True, exist_ok=True)
    (folder / "outbox").mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(f"inbox: inbox\noutbox: outbox\nmodel: {model}\nannotate: {str(annotate).lower()}\n"
                      "settle_seconds: 0.2\nstatus_interval_seconds: 1.0\nlog_level: INFO\n")
    return config


def predict_once(checkout: Path, config: Path, image: Path, out: Path, annotate: bool) -> tuple[float, float]:
    """One ``predict one.png``: (wall seconds, peak RSS MB of the process)."""
    args = [sys.executable, "-m", "digitd", "predict", "--config", str(config), "--out", str(out), str(image)]
    if not annotate:
        args.insert(4, "--no-annotate")
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, env=env_for(checkout), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"bench_startup: predict ({checkout}) exited {proc.returncode}:\n{err[-1500:]}")
    return wall, usage.ru_maxrss / 1024


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            kids = []
        out += [int(k) for k in kids]
        todo += [int(k) for k in kids]
    return out


def service_run(checkout: Path, folder: Path, model: Path, files: int, annotate: bool) -> dict:
    """Start ``digitd run``: seconds to READY=1, then RSS after ``files`` files are done."""
    config = write_config(folder, model, annotate)
    sock_path = folder / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "digitd", "run", "--config", str(config)],
                            env=env_for(checkout, NOTIFY_SOCKET=str(sock_path)),
                            stdout=subprocess.DEVNULL, stderr=open(folder / "log.txt", "wb"))
    ready = None
    try:
        deadline = time.monotonic() + 120
        while ready is None and time.monotonic() < deadline:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                if proc.poll() is not None:
                    break
                continue
            if "READY=1" in msg.split("\n"):
                ready = time.perf_counter() - t0
        if ready is None:
            sys.exit(f"bench_startup: no READY=1 from {checkout}:\n{(folder / 'log.txt').read_text()[-1500:]}")
        if not files:
            return {"ready_s": ready}
        for i in range(files):
            tmp = folder / "inbox" / f".n{i:04d}.png.part"
            digit_png(tmp, i % 10, seed=i)
            os.rename(tmp, folder / "inbox" / f"n{i:04d}.png")
        results = folder / "outbox" / "results"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if results.is_dir() and len(os.listdir(results)) >= files:
                break
            time.sleep(0.1)
        else:
            sys.exit(f"bench_startup: {checkout}: results missing")
        time.sleep(2.0)  # steady: the batch done, pictures written
        kids = descendants(proc.pid)
        service = rss_mb(proc.pid)
        total = service + sum(rss_mb(k) for k in kids)
        return {"ready_s": ready, "service_rss_mb": service, "all_rss_mb": total, "processes": 1 + len(kids)}
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        sock.close()


def install_size(checkout: Path, folder: Path) -> tuple[float, float]:
    """``pip install CHECKOUT`` (no extras) into a new venv: (MB on disk, seconds)."""
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    constraints = checkout / "constraints" / f"py{sys.version_info[0]}.{sys.version_info[1]}.txt"
    if not constraints.is_file():
        constraints = checkout / "constraints.txt"
    t0 = time.perf_counter()
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(constraints),
                    str(checkout)], check=True, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    size = int(subprocess.run(["du", "-sk", str(venv)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    return size / 1024, seconds


def median_min(values: list[float]) -> str:
    digits = 2 if max(values) < 10 else 0
    return f"{statistics.median(values):.{digits}f} (min {min(values):.{digits}f})"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, default=Path("/tmp/before"), help="checkout of the old code")
    p.add_argument("--new", type=Path, default=ROOT, help="checkout of the new code (this one)")
    p.add_argument("--runs", type=int, default=5, help="runs of predict and of READY per side")
    p.add_argument("--files", type=int, default=200, help="files the service reads before RSS is taken")
    p.add_argument("--no-install", action="store_true", help="skip the install-size measure")
    p.add_argument("--out", type=Path, default=ROOT / "bench")
    args = p.parse_args(argv)
    sides = {"old": args.old.resolve(), "new": args.new.resolve()}
    figures: dict[str, dict] = {name: {} for name in sides}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        tmp = Path(tmp)
        image = tmp / "one.png"
        digit_png(image, 7)
        for name, checkout in sides.items():
            model = checkout / "models" / "digitd-cnn-v1.keras"
            config = write_config(tmp / f"{name}-predict", model, True)
            f = figures[name]
            for annotate in (True, False):
                key = "pictures" if annotate else "no pictures"
                predict_once(checkout, config, image, tmp / "warm", annotate)  # page cache, font cache
                runs = [predict_once(checkout, config, image, tmp / f"{name}-out-{i}", annotate)
                        for i in range(args.runs)]
                f[f"predict {key}"] = {"wall_s": [round(w, 3) for w, _ in runs],
                                       "peak_mb": [round(m, 1) for _, m in runs]}
            services = [service_run(checkout, tmp / f"{name}-svc-{i}", model, args.files if i == 0 else 0, True)
                        for i in range(args.runs)]
            f["ready_s"] = [round(s["ready_s"], 3) for s in services]
            f["service_rss_mb"] = round(services[0]["service_rss_mb"], 1)
            f["service_all_rss_mb"] = round(services[0]["all_rss_mb"], 1)
            f["service_processes"] = services[0]["processes"]
            if not args.no_install:
                mb, secs = install_size(checkout, tmp / f"{name}-install")
                f["install_mb"], f["install_s"] = round(mb), round(secs)
            print(f"{name}: {json.dumps(f)}", file=sys.stderr)
    machine = (f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
               f"{platform.python_version()}, load average {os.getloadavg()[0]:.2f} at the end, "
               f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []
    for label, key, bar in [("`predict one.png`, wall s, pictures", ("predict pictures", "wall_s"), "predict_wall_s"),
                            ("`predict one.png`, wall s, `--no-annotate`", ("predict no pictures", "wall_s"),
                             "predict_wall_s"),
                            ("`predict one.png`, peak RSS MB, pictures", ("predict pictures", "peak_mb"),
                             "predict_peak_mb"),
                            ("`predict one.png`, peak RSS MB, `--no-annotate`", ("predict no pictures", "peak_mb"),
                             "predict_peak_mb")]:
        old, new = (figures[s][key[0]][key[1]] for s in ("old", "new"))
        rows.append((label, median_min(old), median_min(new), BARS[bar], statistics.median(new) <= BARS[bar]))
    rows.append(("`digitd run`, READY after start, s", median_min(figures["old"]["ready_s"]),
                 median_min(figures["new"]["ready_s"]), BARS["ready_s"],
                 statistics.median(figures["new"]["ready_s"]) <= BARS["ready_s"]))
    for label, key in [("service process, steady RSS MB (pictures on)", "service_rss_mb"),
                       ("service + all its processes, RSS MB (pictures on)", "service_all_rss_mb")]:
        rows.append((label, f"{figures['old'][key]:.0f}", f"{figures['new'][key]:.0f}", BARS[key],
                     figures["new"][key] <= BARS[key]))
    if not args.no_install:
        rows.append(("service-only install (`pip install .`, new venv), MB", figures["old"]["install_mb"],
                     figures["new"]["install_mb"], BARS["install_mb"],
                     figures["new"]["install_mb"] <= BARS["install_mb"]))
    lines = [f"Start-up and memory, old ({sides['old']}) and new ({sides['new']}); {machine}.",
             f"Median (min) of {args.runs} runs; RSS after {args.files} files.", "",
             "| measure | old | new | bar | |", "|---|---:|---:|---:|---|"]
    lines += [f"| {a} | {b} | {c} | {d} | {'met' if e else 'NOT met'} |" for a, b, c, d, e in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "startup.md").write_text(text)
    (args.out / "startup.json").write_text(json.dumps({"machine": machine, "figures": figures}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
