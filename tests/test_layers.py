"""The layers hold: import-linter's contracts (pyproject's [tool.importlinter]) and ruff, as CI runs them.

pipelines <- models <- orchestrator <- jobs / benchmarks, with nightshift.collectives
and nightshift.ray_session below all three, and the orchestrator's rooms in the
order of orchestrator/README.md. import-linter reads a package from its folder,
so the contracts are checked on the namespace laid out as in a wheel (the
three layer folders copied under `nightshift/`), which is what users install.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nightshift
from tests.helpers.paths import ROOT

BIN = Path(sys.executable).parent


def stage_wheel_layout(into: Path) -> Path:
    """`into/nightshift/{pipelines,models,orchestrator}`: the namespace as a wheel installs it (.py files)."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "nightshift", into / "nightshift", ignore=skip)
    for layer in nightshift.LAYERS:
        shutil.copytree(ROOT / layer, into / "nightshift" / layer, ignore=skip)
    return into


def lint_imports(staged: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lint-imports"), str(ROOT / "pyproject.toml"), "--no-cache"], cwd=staged,
                          env={"PYTHONPATH": str(staged), "PATH": str(BIN)}, capture_output=True, text=True,
                          timeout=300)


def test_the_import_contracts_hold(tmp_path: Path) -> None:
    proc = lint_imports(stage_wheel_layout(tmp_path))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout and "4 kept" in proc.stdout


@pytest.mark.parametrize("module, upward", [
    ("models/protocol.py", "import nightshift.orchestrator.errors"),  # a family reaching up a layer
    ("orchestrator/runs/folders.py", "import nightshift.orchestrator.training.trainer"),  # a room reaching up
    ("orchestrator/planning/figures.py", "import nightshift.models.holographic.store"),  # into a family
])
def test_the_contracts_catch_an_import_that_points_the_wrong_way(tmp_path: Path, module: str, upward: str) -> None:
    staged = stage_wheel_layout(tmp_path)
    target = staged / "nightshift" / module
    target.write_text(target.read_text() + f"\n{upward}  # injected by the test\n")
    proc = lint_imports(staged)
    assert proc.returncode != 0
    assert "BROKEN" in proc.stdout


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_nothing_in_the_library_imports_jobs_benchmarks_or_tests() -> None:
    offenders = []
    for folder in ("nightshift", *nightshift.LAYERS):
        for path in (ROOT / folder).rglob("*.py"):
            bad = _imported_roots(path) & {"jobs", "benchmarks", "tests"}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {sorted(bad)}")
    assert not offenders


def test_ruff_is_clean_with_the_configured_rules() -> None:
    """pyproject's [tool.ruff]; every remaining noqa names an enabled rule (RUF100 is on)."""
    proc = subprocess.run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
