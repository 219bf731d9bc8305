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


# --- MemoryDenyWriteExecute=yes ---------------------------------------------------------

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1  # <linux/prctl.h>; Linux 6.3 and later
NO_MDWE = 97  # the child's exit code when the kernel has no PR_SET_MDWE


def deny_write_execute() -> None:
    """Run in the child before exec: the kernel's memory-deny-write-execute, which
    systemd sets for MemoryDenyWriteExecute=yes (inherited across exec and fork)."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        os._exit(NO_MDWE)


def under_mdwe(argv: list[str], tmp_path: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=deny_write_execute)


def test_units_deny_writable_executable_memory(config):
    r = install_script("--dry-run", "--config", str(config), "--user", "scans")
    single, template = r.stdout.split("# ----- /etc/systemd/system/digitd@.service -----")
    assert unit_settings(single)["MemoryDenyWriteExecute"] == ["yes"]
    assert unit_settings(template)["MemoryDenyWriteExecute"] == ["yes"]


def test_predict_reads_images_pdfs_and_draws_under_memory_deny_write_execute(tmp_path, digitd_exe,
                                                                             shipped_model):
    """What the service runs (decoding, PDFium, workers, LiteRT, matplotlib pictures)
    needs no memory both writable and executable."""
    import sys

    import cv2
    import matplotlib

    matplotlib.use("Agg")
    from conftest import draw_digits
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    probe = under_mdwe([sys.executable, "-c", "import mmap; mmap.mmap(-1, 4096, prot=7)"], tmp_path)
    if probe.returncode == NO_MDWE:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later); tests/systemd covers it")
    assert probe.returncode == 1 and "PermissionError" in probe.stderr, probe.stderr  # MDWE is on

    inbox = tmp_path / "in"
    inbox.mkdir()
    texts = [str(n) for n in range(40, 80)]  # 40 files: enough for the worker processes
    for text in texts:
        cv2.imwrite(str(inbox / f"n{text}.png"), draw_digits(text, height=120))
    with PdfPages(inbox / "two.pdf") as pdf:
        for text in ("3", "58"):
            fig = Figure(figsize=(3, 2))
            fig.text(0.3, 0.2, text, fontsize=60)
            pdf.savefig(fig)
    out = tmp_path / "out"
    r = under_mdwe([str(digitd_exe), "predict", "--model", str(shipped_model), "--out", str(out),
                    "--json", "-v", str(inbox)], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "worker processes" in r.stderr
    import json

    results = {Path(d["source"]).name: d for d in map(json.loads, r.stdout.splitlines())}
    assert {k: v["numbers"] for k, v in results.items() if k.endswith(".png")} == \
        {f"n{t}.png": [t] for t in texts}
    assert [p["numbers"][0]["number"] for p in results["two.pdf"]["pages"]] == ["3", "58"]
    assert len(list((out / "annotated").glob("*.png"))) == len(texts) + 2


def test_a_stale_companion_is_converted_under_memory_deny_write_execute(tmp_path, digitd_exe,
                                                                        shipped_model):
    """With TensorFlow installed, a .keras without its companion is converted in memory;
    that needs no writable executable memory either (running TensorFlow's kernels would)."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed here: no conversion to try")
    model = tmp_path / "m" / shipped_model.name
    model.parent.mkdir()
    shutil.copy(shipped_model, model)
    import cv2
    from conftest import draw_digits

    cv2.imwrite(str(tmp_path / "seven.png"), draw_digits("7"))
    r = under_mdwe([str(digitd_exe), "predict", "--model", str(model), "--out", str(tmp_path / "out"),
                    str(tmp_path / "seven.png")], tmp_path, timeout=300)
    if r.returncode == NO_MDWE:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "converted in memory" in r.stderr
    assert re.search(r"seven\.png -> 7 \(", r.stderr), r.stderr[-2000:]
