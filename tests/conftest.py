"""Shared fixtures: where the repo, the real MNIST data and the digitd CLI are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
MNIST_ENV = "DIGITD_MNIST"
MNIST_NAME = Path("data") / "mnist.npz"


def mnist_candidates(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Where the full MNIST npz may be, in order of preference."""
    env = os.environ if environ is None else environ
    out: list[Path] = []
    if env.get(MNIST_ENV):
        out.append(Path(env[MNIST_ENV]))
    out.append(REPO_ROOT.parent / "shared" / MNIST_NAME)
    out.append(Path("/work/shared") / MNIST_NAME)
    return out


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder (holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    """Path of the real MNIST npz; the test is skipped if it is nowhere.

    Looked up in ``$DIGITD_MNIST``, ``<repo>/../shared/data/mnist.npz`` and
    ``/work/shared/data/mnist.npz``. The data is never copied into the repo.
    """
    candidates = mnist_candidates()
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip("MNIST data not found (set DIGITD_MNIST=/path/to/mnist.npz); looked at: "
                + ", ".join(str(p) for p in candidates))


def find_digitd_exe() -> Path | None:
    """The installed ``digitd`` console script beside this Python (the venv's)."""
    found = shutil.which("digitd", path=str(Path(sys.executable).parent))
    return Path(found) if found else None


@pytest.fixture(scope="session")
def digitd_exe() -> Path:
    """The real ``digitd`` console script; fails clearly if not installed."""
    exe = find_digitd_exe()
    if exe is None:
        pytest.fail(f"no 'digitd' console script next to {sys.executable}; "
                    "install the project first: make venv")
    return exe


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without digitd's own variables (tests stay hermetic)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITD_")}
    env.update(extra)
    return env


RunDigitd = Callable[..., subprocess.CompletedProcess]


@pytest.fixture
def run_digitd(digitd_exe: Path, tmp_path: Path) -> RunDigitd:
    """Run the real CLI as a subprocess: ``run_digitd("check-config", cwd=..., env=...)``.

    Runs in ``tmp_path`` by default, with DIGITD_* variables removed unless
    given in ``env``; returns the CompletedProcess (text stdout/stderr).
    """

    def run(*args: str | os.PathLike[str], cwd: Path | None = None,
            env: Mapping[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        argv: Sequence[str] = [str(digitd_exe), *map(str, args)]
        return subprocess.run(argv, cwd=cwd or tmp_path, env=clean_env(**(env or {})),
                              capture_output=True, text=True, timeout=timeout)

    return run
