"""Helpers for the service tests: tiny real PNGs, a config on tmp_path, the real
``digitd run`` as a subprocess, deadline waits, and exactly-once accounting."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import clean_env, draw_digits


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.05, on_fail: Callable[[], str] | None = None) -> object:
    """Poll ``predicate`` until it is truthy; AssertionError naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{on_fail()}" if on_fail else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Inputs

_DIGIT_PNGS: dict[int, bytes] = {}


def digit_png(digit: int) -> bytes:
    """A small real PNG (about 30x40 pixels) of one printed digit."""
    if digit not in _DIGIT_PNGS:
        import cv2

        img = cv2.resize(draw_digits(str(digit), height=60), (30, 40), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".png", img)
        assert ok
        _DIGIT_PNGS[digit] = buf.tobytes()
    return _DIGIT_PNGS[digit]


def unique_png(digit: int, tag: str) -> bytes:
    """``digit_png(digit)`` with a tEXt chunk holding ``tag``: the same pixels, unique
    bytes (so sha256 tells every input apart)."""
    png = digit_png(digit)
    data = b"digitd-test\0" + tag.encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data
    chunk += struct.pack(">I", zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF)
    at = 8 + 25  # signature, then the IHDR chunk (4 length + 4 type + 13 data + 4 crc)
    return png[:at] + chunk + png[at:]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_inputs(folder: Path, names: Iterable[str], prefix: str = "") -> dict[str, str]:
    """Write a unique PNG per name into ``folder``; returns name -> sha256."""
    out = {}
    for i, name in enumerate(names):
        data = unique_png(i % 10, prefix + name)
        (folder / name).write_bytes(data)
        out[name] = sha(data)
    return out


# ---------------------------------------------------------------------------
# Config and the service process


@dataclass
class Setup:
    root: Path
    inbox: Path
    outbox: Path
    config: Path
    model: Path


def make_setup(root: Path, model: Path, **overrides: object) -> Setup:
    """inbox/, outbox/ and config.yaml under ``root``; fast settings unless overridden."""
    inbox, outbox = root / "inbox", root / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    outbox.mkdir(parents=True, exist_ok=True)
    values: dict[str, object] = {
        "inbox": str(inbox),
        "outbox": str(outbox),
        "model": str(model),
        "settle_seconds": 0.3,
        "rescan_seconds": 5.0,
        "batch_wait_ms": 20,
        "status_interval_seconds": 0.5,
        "retry_backoff_seconds": 0.2,
        "log_level": "INFO",
    }
    values.update(overrides)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    return Setup(root=root, inbox=inbox, outbox=outbox, config=config, model=model)


READY_LINE = re.compile(r"watching .* as instance (\S+);")


@dataclass
class Digitd:
    """The real ``digitd run`` as a subprocess; stderr goes to a log file we read."""

    exe: Path
    config: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    instance: str | None = None
    _log_offset: int = 0

    def start(self) -> Digitd:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(
                [str(self.exe), "run", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                env=clean_env(**self.env), cwd=self.config.parent)
        return self

    def log(self) -> str:
        """This run's log (since the last start)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 40) -> str:
        return "--- log tail ---\n" + "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match:
        rx = re.compile(pattern)

        def found():
            m = rx.search(self.log())
            if m is None and self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"digitd exited ({self.proc.returncode}) before logging "
                                     f"{pattern!r}\n{self.tail()}")
            return m

        return wait_until(found, timeout, f"log line {pattern!r}", on_fail=self.tail)

    def wait_ready(self, timeout: float = 60.0) -> Digitd:
        self.instance = self.wait_log(READY_LINE.pattern, timeout).group(1)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"digitd did not exit within {timeout} s of SIGTERM\n{self.tail()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------
# Reading the outbox


def result_files(outbox: Path) -> list[dict]:
    """Every results/*.json (each must parse: no partial file under a final name)."""
    out = []
    for path in sorted((outbox / "results").glob("*.json")):
        result = json.loads(path.read_text("utf-8"))
        result["_file"] = path.name
        out.append(result)
    return out


def csv_rows(outbox: Path) -> list[dict]:
    path = outbox / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def error_records(outbox: Path) -> list[dict]:
    return [json.loads(p.read_text("utf-8")) for p in sorted((outbox / "failed").glob("*.error.json"))]


def file_shas(folder: Path, skip_suffix: str = ".error.json") -> Counter:
    """sha256 of every visible regular file in ``folder`` -> count."""
    out: Counter = Counter()
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.startswith(".") or path.name.endswith(skip_suffix) or not path.is_file():
                continue
            out[sha(path.read_bytes())] += 1
    return out


def inbox_files(inbox: Path) -> list[str]:
    """What is left in the inbox, our hidden folder aside."""
    return sorted(p.name for p in inbox.iterdir() if p.name != ".digitd")


def work_files(inbox: Path) -> list[str]:
    """Everything left in the work folders (claimed files, state records). The
    service removes a finished folder at any moment: os.walk passes over one that
    vanishes while it is read (rglob raised FileNotFoundError)."""
    work = inbox / ".digitd" / "work"
    return sorted(os.path.relpath(os.path.join(folder, name), work)
                  for folder, _dirs, names in os.walk(work) for name in names
                  if os.path.isfile(os.path.join(folder, name)))


def done_count(outbox: Path) -> int:
    """Inputs finished so far: archived originals plus quarantine records."""
    n = 0
    for sub, pattern in (("originals", "*"), ("failed", "*.error.json")):
        folder = outbox / sub
        if folder.is_dir():
            n += sum(1 for p in folder.glob(pattern) if not p.name.startswith("."))
    return n


def assert_exactly_once(outbox: Path, good: dict[str, str], bad: dict[str, str]) -> None:
    """Each good input (name -> sha256): one ok result JSON, one CSV row, one original.
    Each bad input: one failed result JSON, one CSV row, one error record, its original
    in failed/. Nothing else."""
    results = result_files(outbox)
    by_sha = Counter(r["sha256"] for r in results if r["sha256"])
    for name, digest in good.items():
        assert by_sha[digest] == 1, f"{name}: {by_sha[digest]} result JSONs"
    ok = [r for r in results if r["status"] != "failed"]
    assert len(ok) == len(good), f"{len(ok)} successful results for {len(good)} good inputs"
    failed = [r for r in results if r["status"] == "failed"]
    assert Counter(r["source"] for r in failed) == Counter(list(bad)), "failed results"

    rows = csv_rows(outbox)
    assert len(rows) == len(good) + len(bad), f"{len(rows)} CSV rows for {len(good) + len(bad)} inputs"
    row_results = Counter(r["result"] for r in rows)
    assert all(n == 1 for n in row_results.values()), [k for k, n in row_results.items() if n > 1]
    assert set(row_results) == {f"results/{r['_file']}" for r in results}, "CSV rows vs JSONs"

    originals = file_shas(outbox / "originals")
    assert originals == Counter(good.values()), "originals/ holds each good input exactly once"
    records = error_records(outbox)
    assert Counter(r["source"] for r in records) == Counter(list(bad)), "error records"
    assert file_shas(outbox / "failed") == Counter(d for d in bad.values() if d), \
        "failed/ holds each bad input exactly once"


def env_without_notify() -> dict[str, str]:
    return {k: "" for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def service(digitd_exe, tmp_path):
    """Factory: ``service(setup, env=...)`` -> a started Digitd; all killed at teardown.
    A test module uses it by importing it from here."""
    started: list[Digitd] = []

    def start(setup, env=None, log_name="digitd.log") -> Digitd:
        svc = Digitd(exe=digitd_exe, config=setup.config, log_path=setup.root / log_name,
                     env=dict(env or {}))
        started.append(svc.start())
        return svc

    yield start
    for svc in started:
        svc.kill()


def finish_all(exe, setup, log_path, total: int, timeout: float = 120) -> None:
    """Start the service once more and let it finish every input (``total`` results,
    the work folders empty); it must then stop with exit 0."""
    svc = Digitd(exe=exe, config=setup.config, log_path=log_path).start()
    try:
        svc.wait_ready()
        wait_until(lambda: done_count(setup.outbox) >= total and not work_files(setup.inbox),
                   timeout, "every input finished", interval=0.2,
                   on_fail=lambda: f"{done_count(setup.outbox)} done, left: "
                                   f"{work_files(setup.inbox)}\n{svc.tail()}")
        assert svc.terminate() == 0
    finally:
        svc.kill()
