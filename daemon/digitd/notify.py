"""The sd_notify protocol, spoken directly (no dependency): systemd's ``Type=notify``.

Datagrams of ``KEY=value`` lines (``READY=1``, ``STATUS=...``,
``WATCHDOG=1``, ``STOPPING=1``) to ``$NOTIFY_SOCKET`` (a path, or an abstract
name starting with ``@``). Without it every call is a silent no-op; a failed
send is logged once and never raises.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes:
    """``$NOTIFY_SOCKET`` as an address for :meth:`socket.socket.sendto`.

    ``@name`` is the abstract namespace: a leading NUL byte instead of ``@``.
    """
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None.

    None when the watchdog is off, the value is not a positive integer, or
    ``$WATCHDOG_PID`` names another process (the variable was inherited).
    """
    env = os.environ if environ is None else environ
    raw = env.get("WATCHDOG_USEC", "")
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    return usec / 1e6 / 2


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET``; silent when it is not set."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = socket_address(value) if value else None
        self.watchdog_seconds = watchdog_interval(env)
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines (``send(READY=1, STATUS="...")``); True if sent."""
        if self.address is None:
            return False
        text = "\n".join(f"{key}={_one_line(value)}" for key, value in fields.items())
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(text.encode("utf-8"), self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd on %s: %s", _show(self.address), exc.strerror or exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send(READY=1, **({"STATUS": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        return self.send(STOPPING=1, **({"STATUS": status} if status else {}))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(value: object) -> str:
    return " ".join(str(value).split("\n"))


def _show(address: str | bytes) -> str:
    return "@" + address[1:].decode(errors="replace") if isinstance(address, bytes) else address
