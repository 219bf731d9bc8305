"""``digitd run``: the hot-folder service, wired together, and its health loop.

The inbox watcher (:mod:`digitd.inbox`) finds ready files; one batch thread
(:mod:`digitd.batches`) claims and runs them; the main thread writes
``status.json`` and speaks sd_notify until SIGTERM. A file's life and the
durability design are in ``docs/DESIGN.md``.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .analyse import init_worker
from .annotate import Pictures
from .batches import BatchThread
from .config import Config
from .dispositions import Dispositions, Ledger
from .errors import ConfigError
from .inbox.watcher import Inbox
from .jobs import JobQueue, RetryPolicy
from .notify import Notifier
from .outbox import Outbox
from .pool import Pool, default_processes
from .reload import ModelReloader
from .runner import Limits, Runner
from .status import Counters, status_line, write_status
from .workdir import WorkArea
from .writer import Writer

log = logging.getLogger(__name__)

EXIT_THREAD_DIED = 70
TICK = 0.2  # the health loop's period, seconds
STOP_JOIN_SECONDS = 25.0  # the unit's TimeoutStopSec is 30
MIN_HANG_SECONDS = 60.0  # a batch thread silent this long is stuck (no WATCHDOG=1)
INSTANCE_ENV = "DIGITD_INSTANCE"  # set by digitd@.service: status-<instance>.json
WORKERS_START_SECONDS = 10.0  # READY waits this long at most for the worker processes' imports


def preflight(config: Config) -> None:
    """Refuse to start, with one line naming the key, on missing or read-only folders."""
    where = f" in {config.source}" if config.source else ""
    for key in ("inbox", "outbox"):
        path: Path = getattr(config, key)
        if not path.exists():
            raise ConfigError(f"{key} folder {path} does not exist (key '{key}'{where})")
        if not path.is_dir():
            raise ConfigError(f"{key} {path} is not a folder (key '{key}'{where})")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(f"{key} folder {path} is not writable by this user "
                              f"(key '{key}'{where})")


def load_recognizer(config: Config):
    from .recognize import (
        Recognizer,  # the model runtime: loaded only by the process that serves
    )

    return Recognizer.from_config(config)


class Service:
    """The running service: ``start()``, then ``serve()`` until the stop event is set.

    Tests plug fakes in through the keyword arguments: ``recognizer_factory``
    (config -> an object with ``.name`` and ``.classify(found)``), ``outbox``
    (an :class:`~digitd.outbox.Outbox`), ``notifier``, ``observer_factory``,
    ``pictures`` and ``pool`` (a :class:`~digitd.pool.Pool`).
    """

    def __init__(self, config: Config, *, stop_event: threading.Event | None = None,
                 recognizer_factory: Callable[[Config], Any] = load_recognizer,
                 outbox: Outbox | None = None, notifier: Notifier | None = None,
                 observer_factory: Callable | None = None, pictures: Any = None,
                 pool: Pool | None = None, instance_id: str | None = None) -> None:
        self.config = config
        self.stop_event = stop_event or threading.Event()
        self.recognizer_factory = recognizer_factory
        self.outbox = outbox or Outbox(config.outbox)
        self.notifier = notifier or Notifier()
        self.observer_factory = observer_factory
        self.pictures = pictures
        self.pool = pool
        self.work = WorkArea(config.inbox, instance_id)
        self.counters = Counters()
        self.inbox: Inbox | None = None
        self.batches: BatchThread | None = None
        self.batch_thread: threading.Thread | None = None
        self.exit_code = 0
        self._stopped_watching = False
        self._last_counts: tuple[int, int, int, int] | None = None
        instance = os.environ.get(INSTANCE_ENV, "")
        self.status_path = config.outbox / (f"status-{instance}.json" if instance
                                            else "status.json")

    def start(self) -> None:
        """Check folders, load the model, take over leftovers, start watching; READY=1."""
        config = self.config
        log.info("config: %s", ", ".join(f"{k}={v}" for k, v in config.as_dict().items()))
        preflight(config)
        try:
            self.work.open()
        except OSError as exc:
            raise ConfigError(f"inbox folder {config.inbox}: cannot create the work folder "
                              f"{self.work.folder}: {exc.strerror or exc} (key 'inbox')") from None
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
        t0 = time.monotonic()
        if self.pool is None:  # started now: the workers' imports overlap the model's load
            self.pool = Pool(default_processes(), initializer=init_worker)
        recognizer = self.recognizer_factory(config)  # ModelLoadError: exit 3
        if self.pictures is None and config.annotate:
            self.pictures = Pictures(self.pool)
        writer = Writer(self.outbox, durable=True)
        runner = Runner(recognizer, writer, self.pool, limits=Limits.from_config(config),
                        pictures=self.pictures, retry=True)
        engine = getattr(getattr(recognizer, "engine", None), "description", None)
        loaded = time.monotonic() - t0
        n = self.pool.processes
        if not n:
            workers = "no worker processes"
        elif self.pool.wait_started(WORKERS_START_SECONDS):  # READY: ready at full speed
            workers = f"{n} worker processes up in {time.monotonic() - t0:.1f} s"
        else:
            workers = f"{n} worker processes not up after {WORKERS_START_SECONDS:g} s (not waiting longer)"
        log.info("model %s loaded in %.1f s%s; %s", recognizer.name, loaded,
                 f" ({engine})" if engine else "", workers)
        queue = JobQueue()
        ledger = Ledger(self.work.finished_with)
        dispositions = Dispositions(
            writer, queue, RetryPolicy(config.retry_backoff_seconds, config.retry_max_attempts),
            ledger, self.counters, on_success=config.on_success,
            model_name=lambda: runner.recognizer.name)
        reloader = ModelReloader(config.model, lambda: self.recognizer_factory(config),
                                 on_error=lambda message: self.counters.add(error=message))
        self.inbox = Inbox(
            config.inbox, recursive=config.recursive, polling=config.polling,
            poll_interval=config.poll_interval_seconds, settle_seconds=config.settle_seconds,
            rescan_seconds=config.rescan_seconds, ignore=self.work.base,
            observer_factory=self.observer_factory)
        self.batches = BatchThread(config, runner, self.inbox, self.work, queue, dispositions,
                                   ledger, reloader, self.stop_event)
        self.inbox.start()
        self.batch_thread = threading.Thread(target=self.batches.run, name="digitd-batches",
                                       daemon=True)
        self.batch_thread.start()
        mode = f"polling every {config.poll_interval_seconds:g} s" if self.inbox.polling \
            else "inotify"
        log.info("watching %s (%s%s) as instance %s; results to %s", config.inbox, mode,
                 ", recursive" if config.recursive else "", self.work.id, config.outbox)
        if not self.stop_event.is_set():
            self.notifier.ready(f"watching {config.inbox}")

    def serve(self) -> int:
        """Run until the stop event is set (or a thread dies); returns the exit code."""
        wd = self.notifier.watchdog_seconds
        now = time.monotonic()
        next_status, next_watchdog = now, now
        while not self.stop_event.is_set():
            now = time.monotonic()
            dead = self.dead_thread()
            if dead:
                log.error("the %s stopped unexpectedly; exiting so that the service is restarted",
                          dead)
                self.exit_code = EXIT_THREAD_DIED
                break
            if wd is not None and now >= next_watchdog:
                if self.healthy():
                    self.notifier.watchdog()
                else:
                    log.warning("batch thread busy for %.0f s: not telling systemd it is alive",
                                now - self.batches.beat)
                next_watchdog = now + wd
            if now >= next_status:
                self.report()
                next_status = now + self.config.status_interval_seconds
            wait = TICK if wd is None else min(TICK, max(0.0, next_watchdog - now))
            self.stop_event.wait(wait)
        self.shutdown()
        return self.exit_code

    def stop(self) -> None:
        self.stop_event.set()

    def shutdown(self) -> None:
        """STOPPING=1; stop watching; let the batch thread finish its batch; last status."""
        self.stop_event.set()
        self.notifier.stopping(f"stopping: {status_line(self.snapshot())}")
        log.info("stopping: finishing the current batch")
        self.stop_watching()
        stuck = False
        if self.batch_thread is not None:
            self.batch_thread.join(STOP_JOIN_SECONDS)
            stuck = self.batch_thread.is_alive()
            if stuck:
                log.error("the batch thread did not finish within %.0f s; exiting anyway "
                          "(its files are redone at the next start)", STOP_JOIN_SECONDS)
        self.report()
        self.close(wait=not stuck)
        self.notifier.close()
        log.info("stopped: %s", status_line(self.snapshot()))

    def close(self, wait: bool = True) -> None:
        """Pictures, worker processes (killed unless ``wait``), locks (also after a
        failed start)."""
        if self.pictures is not None and hasattr(self.pictures, "close"):
            self.pictures.close()
        if self.pool is not None:
            self.pool.close(wait)
        self.stop_watching()
        self.work.close()

    def stop_watching(self) -> None:
        if self.inbox is not None and not self._stopped_watching:
            self._stopped_watching = True
            self.inbox.stop()

    # -- health and status -------------------------------------------------------

    def dead_thread(self) -> str | None:
        if self.batch_thread is not None and not self.batch_thread.is_alive():
            return "batch thread"
        if self.inbox is not None and not self.inbox.alive():
            return "inbox watcher"
        return None

    def healthy(self) -> bool:
        """Watcher and batch thread alive, and the batch thread not stuck."""
        if self.dead_thread():
            return False
        limit = max(MIN_HANG_SECONDS, 4 * (self.notifier.watchdog_seconds or 0))
        return time.monotonic() - self.batches.beat < limit

    def snapshot(self) -> dict[str, Any]:
        batches = self.batches
        self.counters.retrying = batches.queue.retrying if batches else 0
        return self.counters.snapshot(
            model=batches.runner.recognizer.name if batches else "",
            queued=batches.waiting if batches else 0, instance=self.work.id)

    def report(self) -> None:
        """status.json, STATUS=, and a log line when the counts changed."""
        snap = self.snapshot()
        line = status_line(snap)
        try:
            write_status(self.status_path, snap)
        except OSError as exc:
            log.debug("cannot write %s: %s", self.status_path, exc)
        self.notifier.status(line)
        counts = (snap["processed"], snap["failed"], snap["queued"], snap["retrying"])
        if counts != self._last_counts:
            self._last_counts = counts
            log.info("status: %s", line)
            release_memory()  # files were done since the last report


def release_memory() -> None:
    """Give the heap's free pages back to the system (glibc's malloc_trim, a few ms):
    otherwise a burst's images and pictures stay in the RSS long after it."""
    try:
        import ctypes  # only here: glibc's malloc_trim

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def run(config: Config) -> int:
    """``digitd run``: the service in the foreground until SIGTERM or SIGINT; exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            log.info("%s received", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    service = Service(config, stop_event=stop)
    try:
        service.start()
    except BaseException:
        service.close()
        raise
    return service.serve()
