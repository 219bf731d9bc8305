"""A Debian 12 container booted with systemd as PID 1 (systemd-nspawn --boot), for tests.

The rootfs (debootstrap, then python3-venv in a chroot) is cached under
/var/cache/digitd-systemd-test/rootfs-<hash of the recipe>; each run copies it
into a tmpfs, puts the checkout in /opt/digitd, builds its venv in a chroot
(with the network), then boots it inside `unshare -m` with a tmpfs on /run/systemd.
Standard library only: `python3 container.py why-not` prints why it cannot run here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("DIGITD_SYSTEMD_CACHE", "/var/cache/digitd-systemd-test"))
SUITE = "bookworm"
MIRROR = os.environ.get("DIGITD_DEBIAN_MIRROR", "http://deb.debian.org/debian")
INCLUDE = "systemd,systemd-sysv,dbus,procps,make,util-linux"
CHROOT_PACKAGES = ["python3-venv"]
RECIPE = f"v1 {SUITE} {MIRROR} minbase {INCLUDE} {' '.join(CHROOT_PACKAGES)}"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
TMPFS_SIZE = "6g"  # the rootfs copy, the service venv (about 0.4 GB) and the test files
CHECKOUT = "/opt/digitd"


def say(text: str) -> None:
    print(f"systemd-test: {text}", file=sys.stderr, flush=True)


def why_not() -> str | None:
    """Why this machine cannot boot the container, or None."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "needs root (systemd-nspawn, debootstrap, unshare)"
    for tool in ("systemd-nspawn", "debootstrap", "unshare", "nsenter", "chroot"):
        if shutil.which(tool) is None:
            pkg = {"systemd-nspawn": "systemd-container", "debootstrap": "debootstrap"}.get(tool, "util-linux")
            return f"{tool} is not installed (apt-get install {pkg})"
    if not Path("/sys/fs/cgroup").is_dir():
        return "no /sys/fs/cgroup"
    return None


def run(cmd: list[str], *, timeout: float, check: bool = True, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {r.returncode}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r


def _chroot_script(root: Path, body: str) -> str:
    """Shell lines run in a private mount namespace: /proc, /dev, resolv.conf, then body."""
    r = str(root)
    return f"""set -e
mount -t proc proc '{r}/proc'
mount --rbind /dev '{r}/dev'
mount -t tmpfs tmpfs '{r}/run'
cp -L /etc/resolv.conf '{r}/etc/resolv.conf' 2>/dev/null || true
{body}
"""


def in_chroot(root: Path, body: str, *, timeout: float) -> subprocess.CompletedProcess:
    return run(["unshare", "-m", "--propagation", "private", "bash", "-c", _chroot_script(root, body)],
               timeout=timeout)


def cached_rootfs() -> Path:
    """The cached rootfs for RECIPE, built (about 2-3 minutes) when missing."""
    key = hashlib.sha256(RECIPE.encode()).hexdigest()[:16]
    final = CACHE / f"rootfs-{key}"
    if (final / ".complete").exists():
        say(f"cached rootfs {final}")
        return final
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=CACHE))
    started = time.monotonic()
    say(f"building rootfs {final} (debootstrap {SUITE})")
    try:
        run(["debootstrap", "--variant=minbase", f"--include={INCLUDE}", SUITE, str(tmp), MIRROR],
            timeout=900)
        apt = "DEBIAN_FRONTEND=noninteractive chroot '{r}' apt-get {a}"
        in_chroot(tmp, "\n".join([
            apt.format(r=tmp, a="update -qq"),
            apt.format(r=tmp, a="install -y -qq --no-install-recommends " + " ".join(CHROOT_PACKAGES)),
            apt.format(r=tmp, a="clean"),
        ]), timeout=900)
        os.chmod(tmp, 0o755)  # mkdtemp made it 0700: no other user could reach anything
        (tmp / "etc/hostname").write_text("digitd-test\n")
        (tmp / "etc/machine-id").write_text("")  # a new one at each boot is fine
        (tmp / ".complete").write_text(RECIPE + "\n")
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"rootfs built in {time.monotonic() - started:.0f} s")
    return final


def clean_stale_runs(runs: Path, older_than: float = 3 * 3600) -> None:
    """Unmount and remove run folders an interrupted run left behind."""
    for work in runs.glob("run-*"):
        try:
            if time.time() - work.stat().st_mtime < older_than:
                continue
        except OSError:
            continue
        if os.path.ismount(work / "rootfs"):
            subprocess.run(["umount", "-l", str(work / "rootfs")], capture_output=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)


class Container:
    """One booted container on a private copy of the cached rootfs."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "rootfs"
        self.proc: subprocess.Popen | None = None
        self.leader: int | None = None
        self.log = workdir / "console.log"

    # -- preparing ------------------------------------------------------------------

    def prepare(self, checkout: Path) -> None:
        base = cached_rootfs()
        started = time.monotonic()
        # the copy (with the venv, 1.5 GB) lives in a tmpfs: removing it from the
        # disk took minutes, unmounting takes none
        self.root.mkdir()
        run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=755", "digitd-systemd-test",
             str(self.root)], timeout=30)
        run(["cp", "-a", f"{base}/.", str(self.root)], timeout=600)
        os.chmod(self.root, 0o755)
        dest = self.root / CHECKOUT.lstrip("/")
        dest.mkdir(parents=True)
        # the checkout as git sees it (tracked and new files, not ignored ones): a clone
        # with the working tree's changes
        files = run(["git", "-C", str(checkout), "ls-files", "-z", "--cached", "--others",
                     "--exclude-standard"], timeout=60).stdout
        names = [n for n in files.split("\0") if n and (checkout / n).exists()]
        listing = self.workdir / "files.txt"
        listing.write_text("\0".join(names))
        run(["tar", "-C", str(checkout), "--null", "-T", str(listing), "-cf", str(self.workdir / "co.tar")],
            timeout=120)
        run(["tar", "-C", str(dest), "-xf", str(self.workdir / "co.tar")], timeout=120)
        say(f"rootfs copied and checkout placed in {time.monotonic() - started:.0f} s")

    def build_venv(self) -> float:
        """`make venv-run` (the service only) in the checkout, in a chroot with the
        network; seconds taken."""
        started = time.monotonic()
        pip_cache = CACHE / "pip-cache"
        pip_cache.mkdir(parents=True, exist_ok=True)
        r = str(self.root)
        (self.root / "root/.cache/pip").mkdir(parents=True, exist_ok=True)
        shutil.copy(HOST_CA, self.root / "tmp/host-ca.crt")
        body = f"""mount --bind '{pip_cache}' '{r}/root/.cache/pip'
chroot '{r}' env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \\
    PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off \\
    make -C {CHECKOUT} venv-run PYTHON=/usr/bin/python3 > '{self.workdir}/venv.log' 2>&1
"""
        try:
            in_chroot(self.root, body, timeout=1200)
        except RuntimeError as exc:
            tail = (self.workdir / "venv.log").read_text()[-3000:]
            raise RuntimeError(f"make venv-run failed in the container:\n{tail}") from exc
        finally:
            (self.root / "tmp/host-ca.crt").unlink(missing_ok=True)
        return time.monotonic() - started

    # -- booting --------------------------------------------------------------------

    def boot(self, timeout: float = 120) -> float:
        """Boot (or boot again); seconds until systemd says the system is running."""
        started = time.monotonic()
        script = f"""set -e
mount -t tmpfs tmpfs /run/systemd 2>/dev/null || {{ mkdir -p /run/systemd && mount -t tmpfs tmpfs /run/systemd; }}
exec systemd-nspawn --boot --register=no --keep-unit --private-network --quiet \\
    --machine=digitd-test -D '{self.root}'
"""
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        self.leader = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.proc.returncode}:\n{self.console()}")
            self.leader = self._find_leader()
            if self.leader:
                r = self.sh("systemctl is-system-running --wait", check=False, timeout=max(1, deadline - time.monotonic()))
                state = r.stdout.strip()
                if state in ("running", "degraded"):
                    if state == "degraded":
                        failed = self.sh("systemctl --failed --no-legend --plain", check=False).stdout
                        say(f"booted degraded: {failed.strip()}")
                    return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"the container did not boot in {timeout} s:\n{self.console()}")

    def _find_leader(self) -> int | None:
        """PID (on the host) of the container's init: the child of systemd-nspawn."""
        if self.proc is None:
            return None
        nspawn = self.proc.pid  # bash exec'ed systemd-nspawn: same pid
        try:
            children = Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()
        except OSError:
            return None
        for child in children:
            try:
                comm = Path(f"/proc/{child}/comm").read_text().strip()
            except OSError:
                continue
            if comm == "systemd":
                return int(child)
        return None

    def console(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def sh(self, command: str, *, check: bool = True, timeout: float = 60,
           input: str | None = None) -> subprocess.CompletedProcess:
        """A shell command inside the container (all its namespaces), as root."""
        assert self.leader, "not booted"
        cmd = ["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p", "-C", "--",
               "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
               "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "/bin/bash", "-c", command]
        return run(cmd, timeout=timeout, check=check, input=input)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def reboot(self, timeout: float = 120) -> float:
        """`systemctl reboot` inside; nspawn exits (133), and is started again."""
        self.sh("systemctl reboot", check=False)
        code = self.wait_exit(timeout)
        if code not in (0, 133):
            raise RuntimeError(f"systemd-nspawn exited {code} on reboot:\n{self.console()}")
        return self.boot(timeout)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.leader:
            self.sh("systemctl poweroff", check=False, timeout=30)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def remove(self) -> None:
        """Stop, unmount the rootfs copy, remove the run's folder."""
        self.stop()
        if os.path.ismount(self.root):
            run(["umount", "-l", str(self.root)], timeout=60, check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[1:] == ["why-not"]:
        reason = why_not()
        print(reason or "")
        return 1 if reason else 0
    if argv[1:] == ["rootfs"]:
        print(cached_rootfs())
        return 0
    print("usage: container.py why-not|rootfs", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
