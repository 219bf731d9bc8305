"""crashfs: an in-memory FUSE file system that forgets, on command, all that was
not made durable - a power cut you can trigger.

A file's bytes and attributes become durable at ``fsync`` of that file; a name
(create, link, mkdir, symlink, rename, unlink, rmdir) at ``fsync`` of its
folder (a rename is one step: durable once either folder is synced). ``drop``
makes the visible tree the durable one again. Run it as a process:
``python crashfs.py MOUNTPOINT --control SOCKET``; commands on the socket:
``drop``, ``stats`` (JSON), ``quit``. :class:`Control` is the client.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import stat
import sys
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Node:
    kind: int  # stat.S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO
    mode: int
    uid: int
    gid: int
    data: bytearray = field(default_factory=bytearray)
    target: str = ""
    times: tuple[int, int, int] = (0, 0, 0)  # atime, mtime, ctime (ns)


@dataclass
class Durable:
    """What a node was at its last fsync (or when its name was first synced)."""

    kind: int
    mode: int
    uid: int
    gid: int
    data: bytes
    target: str


ROOT = 1


class State:
    """The visible tree, the durable one, and the metadata steps not yet durable.
    Pure (no FUSE): the FUSE operations below and the tests drive it."""

    def __init__(self) -> None:
        now = time.time_ns()
        self.lock = threading.RLock()
        self.nodes: dict[int, Node] = {ROOT: Node(stat.S_IFDIR, 0o755, 0, 0, times=(now,) * 3)}
        self.dirs: dict[int, dict[str, int]] = {ROOT: {}}
        self.durable: dict[int, Durable] = {ROOT: self._snap(self.nodes[ROOT])}
        self.durable_dirs: dict[int, dict[str, int]] = {ROOT: {}}
        self.pending: list[tuple[tuple[int, ...], tuple]] = []  # (folders touched, step)
        self.next_ino = ROOT + 1
        self.drops = 0

    @staticmethod
    def _snap(node: Node) -> Durable:
        return Durable(node.kind, node.mode, node.uid, node.gid, bytes(node.data), node.target)

    # -- paths -------------------------------------------------------------------

    def lookup(self, path: str) -> int:
        ino = ROOT
        for part in [p for p in path.split("/") if p]:
            entries = self.dirs.get(ino)
            if entries is None:
                raise OSError(errno.ENOTDIR, path)
            if part not in entries:
                raise OSError(errno.ENOENT, path)
            ino = entries[part]
        return ino

    def parent(self, path: str) -> tuple[int, str]:
        head, _, name = path.rstrip("/").rpartition("/")
        ino = self.lookup(head or "/")
        if ino not in self.dirs:
            raise OSError(errno.ENOTDIR, path)
        return ino, name

    # -- changes ------------------------------------------------------------------

    def add(self, path: str, node: Node) -> int:
        folder, name = self.parent(path)
        if name in self.dirs[folder]:
            raise OSError(errno.EEXIST, path)
        ino = self.next_ino
        self.next_ino += 1
        self.nodes[ino] = node
        if node.kind == stat.S_IFDIR:
            self.dirs[ino] = {}
        self.dirs[folder][name] = ino
        self.pending.append(((folder,), ("add", folder, name, ino)))
        return ino

    def link(self, existing: str, new: str) -> None:
        ino = self.lookup(existing)
        folder, name = self.parent(new)
        if name in self.dirs[folder]:
            raise OSError(errno.EEXIST, new)
        self.dirs[folder][name] = ino
        self.pending.append(((folder,), ("add", folder, name, ino)))

    def remove(self, path: str, folder_ok: bool = False) -> None:
        folder, name = self.parent(path)
        ino = self.dirs[folder].get(name)
        if ino is None:
            raise OSError(errno.ENOENT, path)
        if ino in self.dirs:
            if not folder_ok:
                raise OSError(errno.EISDIR, path)
            if self.dirs[ino]:
                raise OSError(errno.ENOTEMPTY, path)
        elif folder_ok:
            raise OSError(errno.ENOTDIR, path)
        del self.dirs[folder][name]
        self.pending.append(((folder,), ("remove", folder, name)))

    def rename(self, old: str, new: str) -> None:
        src, sname = self.parent(old)
        dst, dname = self.parent(new)
        ino = self.dirs[src].get(sname)
        if ino is None:
            raise OSError(errno.ENOENT, old)
        there = self.dirs[dst].get(dname)
        if there is not None and there in self.dirs and self.dirs[there]:
            raise OSError(errno.ENOTEMPTY, new)
        del self.dirs[src][sname]
        self.dirs[dst][dname] = ino
        self.pending.append(((src, dst), ("rename", src, sname, dst, dname, ino)))

    def nlink(self, ino: int) -> int:
        n = sum(1 for entries in self.dirs.values() for i in entries.values() if i == ino)
        return n + (1 + sum(1 for i in self.dirs[ino].values() if i in self.dirs)
                    if ino in self.dirs else 0)

    # -- durability ---------------------------------------------------------------

    def fsync(self, ino: int) -> None:
        """The node's bytes and attributes durable (not its name)."""
        self.durable[ino] = self._snap(self.nodes[ino])

    def fsyncdir(self, folder: int) -> None:
        """Every pending name step touching ``folder`` durable, in order."""
        keep = []
        for touched, step in self.pending:
            if folder in touched:
                self._apply(step)
            else:
                keep.append((touched, step))
        self.pending = keep

    def _apply(self, step: tuple) -> None:
        d = self.durable_dirs
        if step[0] == "add":
            _, folder, name, ino = step
            self._known(ino)
            d.setdefault(folder, {})[name] = ino
        elif step[0] == "remove":
            _, folder, name = step
            d.setdefault(folder, {}).pop(name, None)
        else:
            _, src, sname, dst, dname, ino = step
            self._known(ino)
            d.setdefault(src, {}).pop(sname, None)
            d.setdefault(dst, {})[dname] = ino

    def _known(self, ino: int) -> None:
        """A node first reachable by a durable name: durable as it was at its last
        fsync, or empty if never synced (what a real power cut gives)."""
        if ino not in self.durable and ino in self.nodes:
            node = self.nodes[ino]
            self.durable[ino] = Durable(node.kind, node.mode, node.uid, node.gid, b"",
                                        node.target)
        if self.durable.get(ino) and self.durable[ino].kind == stat.S_IFDIR:
            self.durable_dirs.setdefault(ino, {})

    def drop(self) -> None:
        """The power cut: what is visible becomes what was durable."""
        now = time.time_ns()
        reachable: set[int] = set()
        todo = [ROOT]
        while todo:
            ino = todo.pop()
            if ino in reachable:
                continue
            reachable.add(ino)
            todo.extend(self.durable_dirs.get(ino, {}).values())
        self.nodes = {}
        self.dirs = {}
        for ino in reachable:
            d = self.durable.get(ino)
            if d is None:
                continue
            self.nodes[ino] = Node(d.kind, d.mode, d.uid, d.gid, bytearray(d.data), d.target,
                                   (now, now, now))
            if d.kind == stat.S_IFDIR:
                self.dirs[ino] = {n: i for n, i in self.durable_dirs.get(ino, {}).items()
                                  if i in reachable and i in self.durable}
        self.durable_dirs = {ino: dict(entries) for ino, entries in self.dirs.items()}
        self.durable = {ino: d for ino, d in self.durable.items() if ino in self.nodes}
        self.pending = []
        self.drops += 1

    def stats(self) -> dict[str, int]:
        unsynced = sum(1 for ino, node in self.nodes.items() if node.kind == stat.S_IFREG and (
            ino not in self.durable or self.durable[ino].data != bytes(node.data)))
        return {"pending_names": len(self.pending), "unsynced_files": unsynced,
                "nodes": len(self.nodes), "drops": self.drops}


def make_operations(state: State):
    from mfusepy import FuseOSError, Operations

    def guard(fn):
        def run(self, *args):
            with state.lock:
                try:
                    return fn(self, *args)
                except OSError as exc:
                    raise FuseOSError(exc.errno or errno.EIO) from None
        run.__name__ = fn.__name__
        return run

    class CrashOps(Operations):
        use_ns = True  # times in nanoseconds

        def __init__(self) -> None:
            self.fhs: dict[int, tuple[int, bool]] = {}  # fh -> (ino, append)
            self.next_fh = 1

        def _ino(self, path, fh=None) -> int:
            if fh is not None and fh in self.fhs:
                return self.fhs[fh][0]
            return state.lookup(path)

        def _node(self, path, fh=None) -> Node:
            ino = self._ino(path, fh)
            if ino not in state.nodes:
                raise OSError(errno.ENOENT, path)
            return state.nodes[ino]

        def _handle(self, ino: int, flags: int) -> int:
            fh = self.next_fh
            self.next_fh += 1
            self.fhs[fh] = (ino, bool(flags & os.O_APPEND))
            return fh

        def _touch(self, node: Node, m: bool = True) -> None:
            now = time.time_ns()
            node.times = (node.times[0], now if m else node.times[1], now)

        @guard
        def getattr(self, path, fh=None):
            ino = self._ino(path, fh)
            node = state.nodes[ino]
            size = len(node.target) if node.kind == stat.S_IFLNK else len(node.data)
            return {"st_mode": node.kind | node.mode, "st_ino": ino, "st_nlink": state.nlink(ino),
                    "st_uid": node.uid, "st_gid": node.gid, "st_size": size,
                    "st_blocks": (size + 511) // 512, "st_atime": node.times[0],
                    "st_mtime": node.times[1], "st_ctime": node.times[2]}

        @guard
        def readdir(self, path, fh):
            ino = state.lookup(path)
            out = [(".", {"st_mode": stat.S_IFDIR, "st_ino": ino}, 0),
                   ("..", {"st_mode": stat.S_IFDIR, "st_ino": ROOT}, 0)]
            for name, child in state.dirs[ino].items():  # st_ino 0 would hide the entry
                out.append((name, {"st_mode": state.nodes[child].kind, "st_ino": child}, 0))
            return out

        @guard
        def access(self, path, amode):
            state.lookup(path)
            return 0

        def _new(self, path, kind, mode, target=""):
            uid, gid, _pid = fuse_context()
            node = Node(kind, mode & 0o7777, uid, gid, target=target)
            self._touch(node)
            return state.add(path, node)

        @guard
        def mkdir(self, path, mode):
            self._new(path, stat.S_IFDIR, mode)
            return 0

        @guard
        def mknod(self, path, mode, dev):
            self._new(path, stat.S_IFMT(mode) or stat.S_IFREG, mode)
            return 0

        @guard
        def symlink(self, target, source):
            self._new(target, stat.S_IFLNK, 0o777, target=source)
            return 0

        @guard
        def readlink(self, path):
            return self._node(path).target

        @guard
        def create(self, path, mode, flags=os.O_WRONLY):
            try:
                ino = state.lookup(path)
            except OSError:
                ino = self._new(path, stat.S_IFREG, mode)
            else:
                if flags & os.O_EXCL:
                    raise OSError(errno.EEXIST, path)
            return self._handle(ino, flags)

        @guard
        def open(self, path, flags):
            ino = state.lookup(path)
            if flags & os.O_TRUNC:
                state.nodes[ino].data.clear()
            return self._handle(ino, flags)

        @guard
        def read(self, path, size, offset, fh):
            return bytes(self._node(path, fh).data[offset: offset + size])

        @guard
        def write(self, path, data, offset, fh):
            node = self._node(path, fh)
            if fh in self.fhs and self.fhs[fh][1]:
                offset = len(node.data)
            if offset > len(node.data):
                node.data.extend(b"\0" * (offset - len(node.data)))
            node.data[offset: offset + len(data)] = data
            self._touch(node)
            return len(data)

        @guard
        def truncate(self, path, length, fh=None):
            node = self._node(path, fh)
            if length < len(node.data):
                del node.data[length:]
            else:
                node.data.extend(b"\0" * (length - len(node.data)))
            self._touch(node)
            return 0

        @guard
        def fsync(self, path, datasync, fh):
            state.fsync(self._ino(path, fh))
            return 0

        @guard
        def fsyncdir(self, path, datasync, fh):
            state.fsyncdir(state.lookup(path))
            return 0

        @guard
        def flush(self, path, fh):
            return 0

        @guard
        def release(self, path, fh):
            self.fhs.pop(fh, None)
            return 0

        @guard
        def opendir(self, path):
            state.lookup(path)
            return 0

        @guard
        def releasedir(self, path, fh):
            return 0

        @guard
        def unlink(self, path):
            state.remove(path)
            return 0

        @guard
        def rmdir(self, path):
            state.remove(path, folder_ok=True)
            return 0

        @guard
        def rename(self, old, new):
            state.rename(old, new)
            return 0

        @guard
        def link(self, target, source):
            state.link(source, target)
            return 0

        @guard
        def chmod(self, path, mode):
            node = self._node(path)
            node.mode = mode & 0o7777
            self._touch(node, m=False)
            return 0

        @guard
        def chown(self, path, uid, gid):
            node = self._node(path)
            node.uid = node.uid if uid == -1 or uid == 0xFFFFFFFF else uid
            node.gid = node.gid if gid == -1 or gid == 0xFFFFFFFF else gid
            return 0

        @guard
        def utimens(self, path, times=None):
            node = self._node(path)
            now = time.time_ns()
            a, m = times if times else (now, now)
            node.times = (int(a), int(m), now)
            return 0

        @guard
        def statfs(self, path):
            return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 20, "f_bfree": 1 << 19,
                    "f_bavail": 1 << 19, "f_files": 1 << 20, "f_ffree": 1 << 19,
                    "f_namemax": 255}

    return CrashOps()


def fuse_context() -> tuple[int, int, int]:
    from mfusepy import fuse_get_context

    return fuse_get_context()


def serve_control(state: State, path: str, stop) -> None:
    """One command per connection: drop | stats | quit; the answer is one JSON line."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    srv.bind(path)
    srv.listen(4)
    while True:
        conn, _ = srv.accept()
        with conn:
            cmd = conn.recv(64).decode().strip()
            with state.lock:
                if cmd == "drop":
                    state.drop()
                    answer = state.stats()
                elif cmd == "stats":
                    answer = state.stats()
                elif cmd == "quit":
                    conn.sendall(b"{}\n")
                    stop()
                    return
                else:
                    answer = {"error": f"unknown command {cmd!r}"}
            conn.sendall((json.dumps(answer) + "\n").encode())


class Control:
    """The test's side: ``Control(socket_path).drop()`` / ``.stats()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def send(self, cmd: str) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(self.path)
            s.sendall(cmd.encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def drop(self) -> dict:
        return self.send("drop")

    def stats(self) -> dict:
        return self.send("stats")


def unavailable() -> str | None:
    """Why crashfs cannot be mounted here, or None."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    try:
        import mfusepy  # noqa: F401 - loads libfuse
    except (ImportError, OSError) as exc:
        return f"no FUSE binding or libfuse: {exc} (pip mfusepy; apt fuse3)"
    if os.geteuid() != 0 and not any(os.access(os.path.join(d, "fusermount3"), os.X_OK)
                                     for d in os.environ.get("PATH", "").split(":")):
        return "fusermount3 is missing (apt fuse3)"
    return None


class Mounted:
    """``with Mounted(folder) as fs:`` crashfs on ``folder`` (created) in a child
    process; ``fs.drop()``, ``fs.stats()``; unmounted on exit."""

    def __init__(self, folder: os.PathLike[str] | str, timeout: float = 20.0) -> None:
        self.folder = os.fspath(folder)
        self.control = Control(self.folder + ".ctl")
        self.timeout = timeout
        self.proc = None

    def __enter__(self) -> Mounted:
        import subprocess

        os.makedirs(self.folder, exist_ok=True)
        self.log = open(self.folder + ".log", "wb")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.folder,
                                      "--control", self.control.path],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while not (os.path.ismount(self.folder) and os.path.exists(self.control.path)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                with open(self.folder + ".log", "rb") as f:
                    raise RuntimeError(f"crashfs did not mount: {f.read().decode()[-500:]}")
            time.sleep(0.05)
        return self

    def drop(self) -> dict:
        return self.control.drop()

    def stats(self) -> dict:
        return self.control.stats()

    def __exit__(self, *exc) -> None:
        import subprocess

        if self.proc is not None and self.proc.poll() is None:
            try:
                self.control.send("quit")
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.ismount(self.folder):
            subprocess.run(["umount", "-l", self.folder], check=False)
        self.log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mountpoint")
    parser.add_argument("--control", required=True, help="unix socket for drop/stats/quit")
    args = parser.parse_args(argv)
    from mfusepy import FUSE

    state = State()
    uid, gid = os.getuid(), os.getgid()
    state.nodes[ROOT].uid, state.nodes[ROOT].gid = uid, gid

    def stop():
        os.system(f"fusermount3 -u {args.mountpoint!r} 2>/dev/null || "
                  f"umount -l {args.mountpoint!r}")

    threading.Thread(target=serve_control, args=(state, args.control, stop),
                     daemon=True).start()
    # Every read and write goes to this process (no kernel cache that a drop could
    # leave stale); inode numbers are ours (the service compares them).
    FUSE(make_operations(state), args.mountpoint, foreground=True, nothreads=False,
         direct_io=True, use_ino=True, entry_timeout=0, attr_timeout=0, negative_timeout=0,
         hard_remove=True, default_permissions=True, allow_other=os.getuid() == 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
