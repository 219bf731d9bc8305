"""The service's counters, and their two outputs: ``outbox/status.json`` and systemd's ``STATUS=``."""

from __future__ import annotations

import datetime as _dt
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import atomic_write


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Counters:
    """Thread-safe counts of what the service did since it started."""

    started_at: float = field(default_factory=time.time)
    processed: int = 0  # inputs with a result (ok, uncertain, blank)
    failed: int = 0  # inputs quarantined in failed/
    retrying: int = 0  # claimed inputs waiting to be retried
    waiting_for_space: int = 0  # of those, inputs waiting because the outbox is full
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rate_mark: tuple[float, int] = (0.0, 0)
    rate: float = 0.0  # inputs per second over the last status interval

    def add(self, *, processed: int = 0, failed: int = 0, error: str | None = None) -> None:
        with self._lock:
            self.processed += processed
            self.failed += failed
            if error is not None:
                self.last_error = error

    def snapshot(self, *, model: str, queued: int, instance: str, extra: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            done = self.processed + self.failed
            t0, n0 = self._rate_mark
            if t0 and now > t0:
                self.rate = (done - n0) / (now - t0)
            self._rate_mark = (now, done)
            out = {
                "started_at": _iso(self.started_at),
                "updated_at": _iso(now),
                "model": model,
                "processed": self.processed,
                "failed": self.failed,
                "queued": queued,
                "retrying": self.retrying,
                "outbox_full": self.waiting_for_space > 0,
                "waiting_for_space": self.waiting_for_space,
                "last_error": self.last_error,
                "rate": round(self.rate, 2),
                "instance": instance,
                "pid": os.getpid(),
            }
        if extra:
            out.update(extra)
        return out


def status_line(snap: dict[str, Any]) -> str:
    """One line for systemd's STATUS= and the log."""
    line = (f"processed {snap['processed']}, failed {snap['failed']}, queued {snap['queued']}, "
            f"retrying {snap['retrying']}, {snap['rate']:.1f} files/s")
    if snap.get("waiting_for_space"):
        line = f"outbox full, {snap['waiting_for_space']} waiting for space; {line}"
    return line


def write_status(path: Path, snap: dict[str, Any]) -> None:
    """Rewrite ``path`` atomically (hidden temp + rename)."""
    data = (json.dumps(snap, ensure_ascii=False, indent=2) + "\n").encode("utf-8",
                                                                          "backslashreplace")
    atomic_write(path, lambda f: f.write(data), fsync=False)
