"""digitd under a real systemd 252 (PID 1 of a systemd-nspawn container, Debian 12),
installed with scripts/install-service.sh as a user would, its inbox a `_netdev`
mount (a network share to systemd). The tests run in order on one container.

Only with DIGITD_SYSTEMD_TEST=1 (tests/systemd/run.sh, .ci/run's systemd stage):
`make test` skips this module at once. Needs root, systemd-nspawn and debootstrap.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

if os.environ.get("DIGITD_SYSTEMD_TEST") != "1":
    pytest.skip("the systemd end-to-end test runs only from tests/systemd/run.sh "
                "(DIGITD_SYSTEMD_TEST=1; .ci/run does it where it can)", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import container  # noqa: E402
from digitd.results import CSV_COLUMNS  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REAL_DEV_ENV = "DIGITD_REAL_DEV"
CSV_FIELDS = len(CSV_COLUMNS)
# inside the container
SITE = "/srv/scans"
INBOX = f"{SITE}/inbox"     # a bind mount of /srv/share with _netdev: a "remote" file system
OUTBOX = f"{SITE}/outbox"
STAGING = "/srv/staging"


def real_dev() -> Path | None:
    for candidate in (os.environ.get(REAL_DEV_ENV), REPO.parent / "shared/data/real-dev",
                      "/work/shared/data/real-dev"):
        if candidate and len(list(Path(candidate).glob("d*.png"))) >= 50:
            return Path(candidate)
    return None


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def show(box: container.Container, unit: str, *props: str) -> dict[str, str]:
    out = box.sh(f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props)).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


class Site:
    """The container, and the host's view of its outbox and inbox."""

    def __init__(self, box: container.Container) -> None:
        self.box = box
        self.outbox = box.root / OUTBOX.lstrip("/")
        self.share = box.root / "srv/share"  # what the inbox mount shows

    def stage(self, prefix: str, n: int, real: Path | None = None) -> None:
        """n PNG files named PREFIX-0000.png ... in the container's staging folder."""
        folder = self.box.root / STAGING.lstrip("/") / prefix
        folder.mkdir(parents=True)
        if real is not None:
            sources = sorted(real.glob("d*.png"))[:n]
            for i, src in enumerate(sources):
                shutil.copy(src, folder / f"{prefix}-{i:04d}.png")
            return
        import cv2
        import numpy as np
        for i in range(n):
            img = np.full((112, 112), 255, np.uint8)
            cv2.putText(img, str(i % 10), (28, 88), cv2.FONT_HERSHEY_SIMPLEX, 2.6, 0, 9)
            cv2.imwrite(str(folder / f"{prefix}-{i:04d}.png"), img)

    def drop(self, prefix: str) -> None:
        """Copy the staged files into the inbox, inside the container, like a user."""
        self.box.sh(f"cp {STAGING}/{prefix}/*.png {INBOX}/", timeout=120)

    def jsons(self, prefix: str) -> int:
        return sum(1 for _ in (self.outbox / "results").glob(f"{prefix}-*.json"))

    def waiting(self, prefix: str) -> int:
        """Files of PREFIX still in the inbox or claimed in its work folders."""
        n = sum(1 for _ in self.share.glob(f"{prefix}-*.png"))
        return n + sum(1 for _ in (self.share / ".digitd" / "work").glob(f"*/*_{prefix}-*.png"))

    def outcome(self, prefix: str) -> dict:
        """Per input: JSONs and CSV rows; torn rows; originals; what is left in the inbox."""
        json_sources: Counter[str] = Counter()
        for path in (self.outbox / "results").glob(f"{prefix}-*.json"):
            json_sources[json.loads(path.read_text())["source"]] += 1
        rows: Counter[str] = Counter()
        torn = 0
        with open(self.outbox / "results.csv", newline="") as f:
            for row in csv.reader(f):
                if len(row) != CSV_FIELDS:
                    torn += 1
                elif row[1].startswith(prefix + "-"):
                    rows[row[1]] += 1
        return {"json": json_sources, "rows": rows, "torn": torn,
                "originals": sum(1 for _ in (self.outbox / "originals").glob(f"{prefix}-*.png")),
                "failed": sum(1 for _ in (self.outbox / "failed").glob(f"{prefix}-*.png")),
                "waiting": self.waiting(prefix)}

    def assert_exactly_once(self, prefix: str, n: int) -> dict:
        wait_for(lambda: self.jsons(prefix) >= n and self.waiting(prefix) == 0, 240,
                 f"all {n} {prefix} files done")
        out = self.outcome(prefix)
        expected = {f"{prefix}-{i:04d}.png" for i in range(n)}
        assert set(out["json"]) == expected and set(out["json"].values()) == {1}
        assert set(out["rows"]) == expected and set(out["rows"].values()) == {1}
        assert out["torn"] == 0
        assert out["originals"] + out["failed"] == n and out["waiting"] == 0
        return out

    def journal(self, unit: str, since: str = "") -> str:
        return self.box.sh(f"journalctl -q -o cat --no-pager -u {unit} {since}", timeout=60).stdout


@pytest.fixture(scope="module")
def site():
    reason = container.why_not()
    if reason:
        pytest.skip(reason)
    runs = container.CACHE / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    container.clean_stale_runs(runs)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    box = container.Container(work)
    started = time.monotonic()
    try:
        box.prepare(REPO)
        root = box.root
        for folder in ("srv/share", "srv/scans/inbox", "srv/scans/outbox", "srv/staging"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        with open(root / "etc/fstab", "a") as f:
            f.write("/srv/share /srv/scans/inbox none bind,_netdev 0 0\n")
        config = (REPO / "config.yaml").read_text()
        for key, value in {"inbox": INBOX, "outbox": OUTBOX,
                           "model": f"{container.CHECKOUT}/models/digitd-cnn-v8.keras",
                           "settle_seconds": "0.2", "status_interval_seconds": "1.0"}.items():
            config, n = re.subn(rf"(?m)^{key}:.*$", f"{key}: {value}", config)
            assert n == 1, key
        (root / "srv/scans/config.yaml").write_text(config)
        container.say(f"venv built in the container in {box.build_venv():.0f} s")
        container.say(f"booted in {box.boot():.1f} s")
        # cgroup v1: the memory and pids controllers come up read-only in the
        # container; MemoryMax/TasksMax do nothing until they are writable
        box.sh("mount -o remount,bind,rw /sys/fs/cgroup/memory"
               " && mount -o remount,bind,rw /sys/fs/cgroup/pids && systemctl daemon-reexec")
        container.say(f"ready for tests {time.monotonic() - started:.0f} s after the start")
        yield Site(box)
    finally:
        try:
            if box.leader and box.proc and box.proc.poll() is None:
                log = box.sh("journalctl -q --no-pager -u 'digitd*' | tail -60", check=False).stdout
                (work / "journal-tail.txt").write_text(log)
        finally:
            if os.environ.get("DIGITD_SYSTEMD_KEEP") == "1":
                box.stop()
                container.say(f"kept {work} (a tmpfs on {box.root}: umount it when done)")
            else:
                box.remove()


def test_install_as_a_user_would_then_start_through_ready(site):
    box = site.box
    r = box.sh(f"{container.CHECKOUT}/scripts/install-service.sh --config {SITE}/config.yaml 2>&1")
    assert "created system user and group 'digitd'" in r.stdout
    assert "installed /etc/systemd/system/digitd.service" in r.stdout
    assert "ran systemctl daemon-reload" in r.stdout
    assert "warning" not in r.stdout, r.stdout
    unit = box.sh("systemctl cat digitd").stdout
    assert "ProtectHome=yes" in unit and "RestartPreventExitStatus=2 3 203" in unit
    started = time.monotonic()
    box.sh("systemctl start digitd", timeout=200)  # Type=notify: returns at READY=1
    ready = time.monotonic() - started
    s = show(box, "digitd", "ActiveState", "SubState", "StatusText", "NotifyAccess", "MainPID")
    assert (s["ActiveState"], s["SubState"]) == ("active", "running")
    assert s["StatusText"] == f"watching {INBOX}" or s["StatusText"].startswith("processed ")
    container.say(f"READY {ready:.1f} s after systemctl start; pid {s['MainPID']}")
    # pictures are drawn with Pillow: no matplotlib, so no font cache to build and
    # no warning about an unwritable home
    log = site.journal("digitd")
    assert not [line for line in log.splitlines() if "matplotlib" in line.lower()], log


def test_fifty_real_files_give_results_group_writable(site):
    real = real_dev()
    if real is None:  # the later checks still need 50 files
        container.say(f"no real-dev folder with 50 d*.png (set {REAL_DEV_ENV}): 50 generated digits instead")
    site.stage("real", 50, real)
    started = time.monotonic()
    site.drop("real")
    out = site.assert_exactly_once("real", 50)
    container.say(f"50 real files done {time.monotonic() - started:.1f} s after the copy; "
                  f"originals {out['originals']}, failed {out['failed']}")
    assert out["failed"] == 0
    statuses = Counter(json.loads(p.read_text())["status"]
                       for p in (site.outbox / "results").glob("real-*.json"))
    assert statuses["failed"] == 0 and sum(statuses.values()) == 50
    # UMask=0002: results group-writable for the people sharing the folder
    modes = {oct((site.outbox / "results" / "real-0000.json").stat().st_mode & 0o777),
             oct((site.outbox / "results.csv").stat().st_mode & 0o777)}
    assert modes == {"0o664"}
    # the workers' matplotlib cache went where the unit says (when matplotlib is used)
    if "generated new fontManager" in site.journal("digitd"):
        assert box_path_exists(site, "/var/cache/digitd/matplotlib")


def box_path_exists(site: Site, path: str) -> bool:
    return site.box.sh(f"test -d {path}", check=False).returncode == 0


def test_status_shows_the_counts(site):
    pattern = re.compile(r'Status: "processed (\d+), failed (\d+), queued (\d+), retrying (\d+), ')

    def counted():
        text = site.box.sh("systemctl status digitd --no-pager -n 0", check=False).stdout
        m = pattern.search(text)
        return text if m and int(m.group(1)) + int(m.group(2)) >= 50 else None

    # STATUS= and status.json are sent every status_interval_seconds (1 s here)
    text = wait_for(counted, 15, "systemctl status showing the 50 files in STATUS")
    container.say("systemctl status: " + next(line.strip() for line in text.splitlines() if "Status:" in line))
    status = json.loads((site.outbox / "status.json").read_text())
    assert status["processed"] + status["failed"] >= 50 and status["pid"] > 0


def test_memory_max_is_enforced(site):
    box = site.box
    s = show(box, "digitd", "MemoryCurrent", "MemoryMax", "ControlGroup", "TasksCurrent", "TasksMax")
    assert s["MemoryMax"] == str(2 << 30)
    current = int(s["MemoryCurrent"])  # "[not set]" when the controller is not there
    assert 50 << 20 < current < 2 << 30
    limit = box.sh(f"cat /sys/fs/cgroup/memory{s['ControlGroup']}/memory.limit_in_bytes").stdout
    assert int(limit) == 2 << 30
    assert int(s["TasksCurrent"]) > 0 and s["TasksMax"] == "512"
    container.say(f"MemoryCurrent {current / 2**20:.0f} MiB of MemoryMax 2 GiB; tasks {s['TasksCurrent']}")
    # the limit really bites here: a transient unit with a small MemoryMax is killed
    r = box.sh("systemd-run --wait -p MemoryMax=64M -p MemorySwapMax=0 /usr/bin/python3 -c "
               "\"b = b'x' * (400 << 20); print('survived')\" 2>&1", check=False, timeout=120)
    assert r.returncode != 0 and "survived" not in r.stdout, r.stdout
    assert "code=killed/status=KILL" in r.stdout, r.stdout


def test_systemd_analyze_security_is_at_most_one(site):
    r = site.box.sh("systemd-analyze security --no-pager digitd.service", check=False)
    m = re.search(r"Overall exposure level for digitd\.service: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout[-2000:]
    container.say(f"systemd-analyze security: {m.group(1)} {m.group(2)}")
    assert float(m.group(1)) <= 1.0


def test_a_frozen_service_is_killed_by_the_watchdog_and_restarted(site):
    box = site.box
    before = show(box, "digitd", "MainPID", "NRestarts")
    started = time.monotonic()
    box.sh("systemctl kill --kill-whom=main -s SIGSTOP digitd")

    def restarted():
        s = show(box, "digitd", "MainPID", "NRestarts", "ActiveState", "SubState")
        return s if (int(s["NRestarts"]) > int(before["NRestarts"]) and s["ActiveState"] == "active"
                     and s["SubState"] == "running" and s["MainPID"] != before["MainPID"]) else None

    after = wait_for(restarted, 120, "a restart after the watchdog timeout", interval=0.5)
    took = time.monotonic() - started
    log = site.journal("digitd")
    assert "digitd.service: Watchdog timeout (limit 30s)!" in log
    assert 30 <= took < 100
    container.say(f"watchdog: pid {before['MainPID']} frozen, killed and restarted as pid "
                  f"{after['MainPID']} after {took:.0f} s")


def test_kill_9_mid_burst_then_every_input_exactly_once(site):
    box = site.box
    n = 600
    site.stage("k9", n)
    before = show(box, "digitd", "NRestarts", "MainPID")
    site.drop("k9")
    wait_for(lambda: site.jsons("k9") >= 40, 120, "the burst under way", interval=0.05)
    box.sh("systemctl kill --kill-whom=main -s SIGKILL digitd")
    done, waiting = site.jsons("k9"), site.waiting("k9")
    claimed = sum(1 for _ in (site.share / ".digitd" / "work").glob("*/*_k9-*.png"))
    assert waiting > 0, "the burst was over before the kill"
    wait_for(lambda: int(show(box, "digitd", "NRestarts")["NRestarts"]) > int(before["NRestarts"]),
             60, "restart after kill -9")
    out = site.assert_exactly_once("k9", n)
    container.say(f"kill -9 with {done} of {n} done, {claimed} claimed, {waiting} waiting: after the "
                  f"restart {sum(out['json'].values())} JSONs, {sum(out['rows'].values())} rows, "
                  f"0 lost, 0 doubled, {out['torn']} torn")


def test_stop_during_a_long_batch_exits_0(site):
    box = site.box
    n = 1200
    site.stage("stop", n)
    site.drop("stop")
    wait_for(lambda: site.jsons("stop") >= 1, 60, "the batch under way", interval=0.05)
    log = site.journal("digitd")
    exits, clean = log.count("Main process exited"), log.count("Deactivated successfully")
    started = time.monotonic()
    r = box.sh("systemctl stop digitd", check=False, timeout=60)
    took = time.monotonic() - started
    s = show(box, "digitd", "ActiveState", "Result", "ExecMainStatus")
    done = site.jsons("stop")
    container.say(f"stop took {took:.1f} s with {done} of {n} done; {s}")
    assert r.returncode == 0 and took < 30  # within TimeoutStopSec=30
    assert (s["ActiveState"], s["Result"], s["ExecMainStatus"]) == ("inactive", "success", "0")
    # exit 0: systemd logs no "Main process exited, code=..., status=..." for it
    log = site.journal("digitd")
    assert (log.count("Main process exited"), log.count("Deactivated successfully")) == (exits, clean + 1)
    assert done < n, "the batch was over before the stop"
    # KillMode=mixed: SIGTERM reached the main process only, its workers finished the batch
    assert "a worker process died" not in log, log[-3000:]
    box.sh("systemctl start digitd", timeout=200)
    site.assert_exactly_once("stop", n)
    # after three starts the font cache was still built only at the first
    assert site.journal("digitd").count("generated new fontManager") <= 1


def test_two_template_instances_share_the_inbox(site):
    """digitd@1 and digitd@2 on one inbox: a wave while each one is frozen (SIGSTOP,
    well within WatchdogSec) goes to the other, a wave with both running is shared;
    every file is read once."""
    box = site.box
    box.sh("systemctl stop digitd")
    box.sh("systemctl start digitd@1 digitd@2", timeout=300)
    for i in (1, 2):
        assert show(box, f"digitd@{i}", "ActiveState")["ActiveState"] == "active"
    waves = {"two-a": (1, 100), "two-b": (2, 100), "two-c": (None, 200)}
    for prefix, (frozen, n) in waves.items():
        site.stage(prefix, n)
        if frozen:
            box.sh(f"systemctl kill --kill-whom=main -s SIGSTOP digitd@{frozen}")
        try:
            site.drop(prefix)
            site.assert_exactly_once(prefix, n)
        finally:
            if frozen:
                box.sh(f"systemctl kill --kill-whom=main -s SIGCONT digitd@{frozen}")
    total = sum(n for _, n in waves.values())

    def both_counted():
        counts = [json.loads((site.outbox / f"status-{i}.json").read_text()) for i in (1, 2)]
        return counts if sum(c["processed"] + c["failed"] for c in counts) >= total else None

    counts = wait_for(both_counted, 15, "status-1.json and status-2.json counting every file")
    per = [c["processed"] + c["failed"] for c in counts]
    container.say(f"digitd@1 and digitd@2 read {per[0]} and {per[1]} of {total}")
    assert sum(per) == total and all(p >= 100 for p in per)
    for i in (1, 2):
        s = show(box, f"digitd@{i}", "ActiveState", "NRestarts")
        assert (s["ActiveState"], s["NRestarts"]) == ("active", "0")
    box.sh("systemctl stop digitd@1 digitd@2")


def test_an_interpreter_hidden_by_protect_home_fails_once_not_for_ever(site):
    """The issue's pyenv case: an interpreter under /root, hidden by ProtectHome=yes,
    fails with 203/EXEC; RestartPreventExitStatus has 203, so no restart loop."""
    box = site.box
    box.sh("mkdir -p /root/pyenv/bin && cp /usr/bin/python3.11 /root/pyenv/bin/python3.11 && "
           "mkdir -p /run/systemd/system/digitd.service.d && printf '%s\\n' '[Service]' 'ExecStart=' "
           f"'ExecStart=/root/pyenv/bin/python3.11 -m digitd run --config {SITE}/config.yaml' "
           "> /run/systemd/system/digitd.service.d/pyenv.conf && systemctl daemon-reload")
    try:
        r = box.sh("systemctl start digitd", check=False, timeout=60)
        assert r.returncode != 0
        s = wait_for(lambda: (lambda s: s if s["ActiveState"] == "failed" else None)(
            show(box, "digitd", "ActiveState", "Result", "ExecMainStatus", "NRestarts")), 30, "failed")
        assert (s["Result"], s["ExecMainStatus"]) == ("exit-code", "203")
        # a manual start counts restarts from 0; RestartSec=5: watch for 8 s that none comes
        before = int(s["NRestarts"])
        assert before == 0
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            now = show(box, "digitd", "ActiveState", "NRestarts")
            assert (now["ActiveState"], int(now["NRestarts"])) == ("failed", before)
            time.sleep(0.5)
        assert "status=203/EXEC" in site.journal("digitd")
        container.say(f"203/EXEC: unit {s['ActiveState']}, {int(s['NRestarts']) - before} restarts in 8 s")
    finally:
        box.sh("rm -rf /run/systemd/system/digitd.service.d && systemctl daemon-reload && "
               "systemctl reset-failed digitd")


def test_enabled_unit_starts_at_boot_after_the_network_share(site):
    box = site.box
    box.sh("systemctl enable digitd 2>&1")
    container.say(f"rebooted in {box.reboot():.1f} s")
    wait_for(lambda: show(box, "digitd", "ActiveState")["ActiveState"] == "active", 180,
             "digitd active after the reboot")
    s = show(box, "digitd", "After", "Wants", "Requires", "UnitFileState")
    assert s["UnitFileState"] == "enabled"
    after, wants = s["After"].split(), s["Wants"].split()
    assert "remote-fs.target" in after and "remote-fs.target" in wants
    assert "srv-scans-inbox.mount" in after and "srv-scans-inbox.mount" in s["Requires"].split()
    mount = show(box, "srv-scans-inbox.mount", "ActiveState", "Where")
    assert mount == {"ActiveState": "active", "Where": INBOX}
    assert "srv-scans-inbox.mount" in show(box, "remote-fs.target", "Wants", "Requires", "After")["After"]
    n = 5
    site.stage("boot", n)
    site.drop("boot")
    site.assert_exactly_once("boot", n)
