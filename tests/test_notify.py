"""The sd_notify client against real datagram sockets (path and abstract namespace)."""

from __future__ import annotations

import os
import socket

import pytest
from digitd.notify import Notifier, socket_address, watchdog_interval


def _bound(address) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(5)
    return sock


def test_path_socket_receives_each_message(tmp_path):
    path = str(tmp_path / "notify")
    sock = _bound(path)
    try:
        n = Notifier({"NOTIFY_SOCKET": path})
        assert n.enabled
        assert n.ready("watching /in")
        assert sock.recv(4096) == b"READY=1\nSTATUS=watching /in"
        assert n.status("processed 3,\nfailed 0")
        assert sock.recv(4096) == b"STATUS=processed 3, failed 0", "one line per field"
        assert n.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert n.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        n.close()
    finally:
        sock.close()


def test_abstract_namespace_socket():
    name = f"@digitd-test-{os.getpid()}-{os.urandom(4).hex()}"
    sock = _bound(b"\0" + name[1:].encode())
    try:
        n = Notifier({"NOTIFY_SOCKET": name})
        assert n.ready()
        assert sock.recv(4096) == b"READY=1"
    finally:
        sock.close()


def test_silent_without_notify_socket():
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False and n.stopping() is False


def test_a_vanished_socket_is_logged_once_and_never_raises(tmp_path, caplog):
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert n.ready() is False
    assert n.watchdog() is False
    warnings = [r for r in caplog.records if "cannot notify systemd" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
])
def test_watchdog_interval_is_half_of_watchdog_usec(env, expected):
    assert watchdog_interval(env, pid=4242) == expected


def test_socket_address():
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"
