"""The systemd units and their install script: rendered for a checkout, they pass
``systemd-analyze verify`` and carry the settings the service relies on."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import clean_env

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "install-service.sh"


def install_script(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60, env=clean_env(), cwd=cwd)


@pytest.fixture
def config(tmp_path) -> Path:
    """A config whose folders have a space and a '%' in their names."""
    root = tmp_path / "site 100%"
    (root / "in box").mkdir(parents=True)
    (root / "out").mkdir()
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump({"inbox": "in box", "outbox": "out", "model": "m.keras"}))
    return path


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def test_dry_run_prints_both_units_for_this_checkout(config, repo_root):
    r = install_script("--dry-run", "--config", str(config), "--user", "scans")
    assert r.returncode == 0, r.stderr
    assert "# ----- /etc/systemd/system/digitd.service -----" in r.stdout
    assert "# ----- /etc/systemd/system/digitd@.service -----" in r.stdout
    assert "dry run: nothing installed" in r.stderr
    single = r.stdout.split("# ----- /etc/systemd/system/digitd@.service -----")[0]
    s = unit_settings(single)
    root = str(config.parent).replace("%", "%%")
    assert s["ExecStart"] == [f'{repo_root}/.venv/bin/digitd run --config "{root}/config.yaml"']
    # "-": a missing folder is refused by digitd itself (exit 2), not by the sandbox
    assert s["ReadWritePaths"] == [f'"-{root}/in box" "-{root}/out"']
    assert s["User"] == ["scans"] and s["Group"] == ["scans"]
    for key, value in {"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure",
                       "RestartPreventExitStatus": "2 3 203", "WatchdogSec": "30",
                       "TimeoutStopSec": "30", "KillMode": "mixed", "ProtectSystem": "strict", "NoNewPrivileges": "yes",
                       "PrivateTmp": "yes", "ProtectKernelTunables": "yes",
                       "RestrictAddressFamilies": "AF_UNIX"}.items():
        assert s[key] == [value], key
    assert "MemoryMax" in s
    assert "CacheDirectory" not in s  # nothing the service runs keeps a cache
    assert s["RequiresMountsFor"] == [f'"{root}/in box" "{root}/out"']
    # /home is hidden entirely unless the checkout or the venv's real interpreter
    # (a pyenv Python, say) lives under a home
    python = repo_root / ".venv" / "bin" / "python"
    real = os.path.realpath(python)
    base = subprocess.run([str(python), "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    under_home = any(p.startswith(("/home/", "/root/")) for p in (str(repo_root), real, base))
    assert s["ProtectHome"] == ["read-only" if under_home else "yes"]
    assert not re.search(r"@[A-Z_]+@", r.stdout), "a placeholder was left"
    template = unit_settings(r.stdout.split("digitd@.service -----")[1])
    assert template["Environment"][-1] == "DIGITD_INSTANCE=%i"


def test_protect_home_is_read_only_when_folders_live_under_home(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"inbox": "/home/lab/scans/in", "outbox": "/home/lab/scans/out"}))
    r = install_script("--dry-run", "--config", str(config))
    assert r.returncode == 0, r.stderr
    assert "ProtectHome=read-only" in r.stdout
    assert "ReadWritePaths=-/home/lab/scans/in -/home/lab/scans/out" in r.stdout


def test_an_interpreter_the_service_user_cannot_execute_is_named(config, repo_root):
    """A venv on a Python under a 0700 home ends in status=203/EXEC under systemd:
    the install refuses it (before changing anything), a dry run warns."""
    real = os.path.realpath(repo_root / ".venv" / "bin" / "python")
    closed = next((str(p) for p in reversed(Path(real).parents) if not p.stat().st_mode & 0o001), None)
    r = install_script("--dry-run", "--config", str(config), "--user", "nobody")
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if "cannot execute" in line]
    if closed is None:
        assert warning == []
        pytest.skip(f"{real} is executable by everyone here: nothing to refuse")
    assert warning == [f"install-service: warning: user 'nobody' cannot execute the venv's interpreter "
                       f"{real} ({closed} is mode {Path(closed).stat().st_mode & 0o777:o}): build .venv "
                       f"with a Python that user can run, e.g. PYTHON=/usr/bin/python3.11 make venv-run"]
    if os.geteuid() != 0:
        return
    # a real install as root stops at that line, before creating users or folders
    r = install_script("--config", str(config), "--user", "nobody", "--prefix", str(config.parent / "units"))
    assert r.returncode == 2
    assert r.stderr.splitlines() == [warning[0].replace("warning:", "error:")]
    assert not (config.parent / "units").exists()


def test_bad_config_and_bad_options_are_refused(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("inbox: in\nbogus: 1\n")
    r = install_script("--dry-run", "--config", str(bad))
    assert r.returncode == 2
    assert "unknown key 'bogus'" in r.stderr
    r = install_script("--frobnicate")
    assert r.returncode == 2 and "unknown option '--frobnicate'" in r.stderr
    r = install_script("--user", "Bad User!", "--dry-run")
    assert r.returncode == 2 and "not a valid user name" in r.stderr
    r = install_script("--help")
    assert r.returncode == 0 and "--dry-run" in r.stdout


def test_rendered_units_pass_systemd_analyze_verify(tmp_path, config):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    out = tmp_path / "units"
    r = install_script("--output", str(out), "--config", str(config))
    assert r.returncode == 0, r.stderr
    # a template is verified through one of its instances
    shutil.copy(out / "digitd@.service", out / "digitd@2.service")
    for unit in ("digitd.service", "digitd@2.service"):
        v = subprocess.run([analyze, "verify", "--man=no", str(out / unit)],
                           capture_output=True, text=True, timeout=120)
        # unknown keys and unparsable values are only warnings: fail on any output
        problems = [line for line in (v.stdout + v.stderr).splitlines()
                    if unit.split(".")[0] in line or "digitd" in line]
        assert v.returncode == 0 and not problems, f"{unit}:\n{v.stdout}{v.stderr}"


def test_verify_catches_a_broken_unit(tmp_path, config):
    """The check above is not vacuous: a typo in the unit is reported."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd; .ci/run does)")
    out = tmp_path / "units"
    install_script("--output", str(out), "--config", str(config))
    text = (out / "digitd.service").read_text().replace("ProtectSystem=strict", "ProtectSytem=strict")
    (out / "broken.service").write_text(text)
    v = subprocess.run([analyze, "verify", "--man=no", str(out / "broken.service")],
                       capture_output=True, text=True, timeout=120)
    assert "Unknown key 'ProtectSytem'" in v.stderr
