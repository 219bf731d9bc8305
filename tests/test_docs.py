"""The docs match the code: every config key documented, every result key and CSV
column in the design, every subcommand with its --help, one design document."""

from __future__ import annotations

import ast
import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT, find_digitd_exe
from digitd.cli import build_parser
from digitd.config import KEYS
from digitd.records import Reading
from digitd.results import CSV_COLUMNS, failed_result, result_dict

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
CONFIG = (REPO_ROOT / "config.yaml").read_text(encoding="utf-8")
DESIGN = (REPO_ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("key", [spec.name for spec in KEYS])
def test_every_config_key_is_documented(key):
    assert f"| `{key}` |" in README, f"{key} missing from the README's configuration table"
    assert re.search(rf"^#? ?{key}:", CONFIG, re.M), f"{key} missing from config.yaml"


def result_keys() -> set[str]:
    ok = result_dict("a.png", Reading("ok", "7", (), 0.9, polarity="dark_on_light"),
                     sha256="h", model="m", processed_at=dt.datetime.now(dt.UTC),
                     elapsed_ms=1.0, annotated="annotated/a.png")
    return set(ok) | set(failed_result("b.png", "bad", model="m"))


@pytest.mark.parametrize("key", sorted(result_keys()) + list(CSV_COLUMNS))
def test_every_result_key_and_csv_column_is_in_the_design(key):
    assert f"`{key}`" in DESIGN or key in DESIGN.split("CSV columns:")[1][:200], key


def subcommands() -> list[str]:
    """The subcommands, as ``digitd --help`` lists them under "commands"."""
    listing = build_parser().format_help().split("commands:")[1].split("\n\n")[0]
    return sorted(re.findall(r"^    ([a-z][a-z-]+)", listing, re.M))


def test_the_subcommands_are_known():
    assert subcommands() == ["check-config", "predict", "run", "template"]


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command):
    exe = find_digitd_exe()
    if exe is None:
        pytest.skip("the digitd command is not installed beside this Python")
    done = subprocess.run([str(exe), command, "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: digitd {command}")
    assert len(done.stdout.splitlines()) > 3


def test_the_design_is_only_in_the_repository():
    stray = []
    for path in [REPO_ROOT / "README.md", *REPO_ROOT.glob("daemon/digitd/**/*.py"),
                 *REPO_ROOT.glob("scripts/*"), *REPO_ROOT.glob("tests/*.py")]:
        if Path(path).name == "test_docs.py":
            continue
        text = Path(path).read_text(encoding="utf-8", errors="replace")
        for m in re.finditer(r"(\S*)DESIGN\.md", text):
            if not m.group(1).endswith("docs/"):
                stray.append(f"{path.relative_to(REPO_ROOT)}: {m.group(0)}")
    assert stray == []


PACKAGE = REPO_ROOT / "daemon" / "digitd"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_in_the_code_map_with_a_short_docstring(path):
    """The design's code map names every module; module docstrings say what the
    module is for in a few lines (the design lives in docs/DESIGN.md)."""
    rel = str(path.relative_to(PACKAGE))
    assert f"`{rel}`" in DESIGN, f"docs/DESIGN.md's code map does not name {rel}"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc, f"{rel} has no module docstring"
    assert len(doc.splitlines()) <= 12, f"{rel}: a {len(doc.splitlines())}-line docstring"


def test_the_package_has_no_import_cycles():
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = name if parts[-1] == "__init__" else name.rpartition(".")[0]
        deps = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                deps.add(".".join(base + ([node.module] if node.module else [])))
    cycles = []

    def visit(name: str, stack: list[str]) -> None:
        for dep in sorted(graph.get(name, ())):
            if dep in stack:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif dep in graph and dep not in done:
                done.add(dep)
                visit(dep, stack + [dep])

    done: set[str] = set()
    for name in sorted(graph):
        done.add(name)
        visit(name, [name])
    assert cycles == []
