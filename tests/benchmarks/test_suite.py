"""The benchmark suite: every script is a registered benchmark, runs at toy size, and its recorded figures are
what RESULTS.md and the planner show (generated, never copied by hand)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

BENCH = ROOT / "benchmarks"
NOT_BENCHMARKS = {"__init__", "__main__", "harness", "suite", "render", "nanogpt_reference", "gpu_sections",
                  "scale_plots"}


def python_benchmarks(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_every_benchmark_script_is_in_the_suite_with_toy_and_full_parameters() -> None:
    from benchmarks.suite import SUITE, load

    modules = {p.stem for p in BENCH.glob("*.py")} - NOT_BENCHMARKS
    assert modules == set(SUITE)
    for name in SUITE:
        bench = load(name)
        assert bench.summary and callable(bench.run)
        assert set(bench.toy) <= set(bench.full) or not bench.full, name  # toy shrinks the recorded run's knobs


# Modules allowed one kind of set-up, and why.
ALLOWED = {
    ("attractor_vs_original.py", "argparse"): "runs the original's own argparse to build its A1 model",
    ("attractor_vs_original.py", "sys.path"): "imports the original's sandbox.py from the checkout it is given",
}


def test_no_benchmark_does_its_own_setup() -> None:
    """Set-up is the harness's: no argparse, no sys.path edits, no thread pinning in a benchmark module."""
    offenders = []
    for path in BENCH.glob("*.py"):
        if path.stem in {"__main__", "harness", "gpu_check"}:  # gpu_check.sh drives gpu_check.py's own CLI
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            text = ast.unparse(node) if isinstance(node, (ast.Import, ast.ImportFrom, ast.Call, ast.Assign)) else ""
            if isinstance(node, (ast.Import, ast.ImportFrom)) and "argparse" in text:
                if (path.name, "argparse") not in ALLOWED:
                    offenders.append(f"{path.name}: imports argparse")
            if isinstance(node, ast.Call) and "sys.path.insert" in text and (path.name, "sys.path") not in ALLOWED:
                offenders.append(f"{path.name}: {text[:60]}")
            if isinstance(node, ast.Call) and "set_num_threads" in text:
                offenders.append(f"{path.name}: {text[:60]}")
            if isinstance(node, ast.Assign) and "OMP_NUM_THREADS" in text:
                offenders.append(f"{path.name}: {text[:60]}")
    assert not offenders


def test_list_names_every_benchmark() -> None:
    from benchmarks.suite import SUITE

    proc = python_benchmarks("list", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split()[0] for line in proc.stdout.splitlines() if not line.startswith(" ")] == list(SUITE)


def test_a_run_writes_one_result_with_the_machines_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "tokenizer_bytes.json"
    proc = python_benchmarks("run", "tokenizer_bytes", "--size", "toy", "--out", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert json.loads(proc.stdout) == doc
    assert doc["benchmark"] == "tokenizer_bytes" and doc["size"] == "toy"
    assert {"cpu", "logical_cpus", "torch", "python", "load_1m", "commit"} <= set(doc["machine"])
    assert 3.0 < doc["figures"]["bytes_per_token"]["gpt2"] < 5.0
    assert doc["command"] == "python -m benchmarks run tokenizer_bytes --size toy"


def test_an_unknown_parameter_is_one_line(tmp_path: Path) -> None:
    proc = python_benchmarks("run", "tokenizer_bytes", "--size", "toy", "--set", "bogus=1", "--out",
                             str(tmp_path / "x.json"), timeout=300)
    assert proc.returncode != 0
    assert "tokenizer_bytes has no parameter bogus; accepted: max_chars" in proc.stderr
    assert not (tmp_path / "x.json").exists()


def test_results_md_and_the_planners_figures_are_generated_from_the_recorded_results() -> None:
    """`python -m benchmarks tables --check`: RESULTS.md's blocks and planning/recorded.json are exactly what
    benchmarks/results/*.json say; a figure edited by hand in either fails here."""
    proc = python_benchmarks("tables", "--check", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    from nightshift.orchestrator.planning import figures

    recorded = {p.stem for p in (BENCH / "results").glob("*.json")}
    assert {"holographic_throughput", "tokenizer_bytes"} <= recorded
    assert figures.RECORDED and all("benchmarks/results/" in r.source for r in figures.RECORDED)
    assert "benchmarks/results/tokenizer_bytes.json" in figures.BYTES_PER_TOKEN_SOURCE


@pytest.mark.slow
def test_every_benchmark_runs_at_toy_size(tmp_path: Path) -> None:
    proc = python_benchmarks("smoke", "--jobs", "3", "--out", str(tmp_path), timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    from benchmarks.suite import SUITE

    for name in SUITE:
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        assert doc["size"] == "toy" and doc["figures"], name
    # Option A at 1/10,000 through giant.local: every count (sleeps, log lines, evaluations, generations,
    # positions, steps), read back from MLflow and the run folder, is what the scaled flags ask
    rehearsal = json.loads((tmp_path / "giant_rehearsal.json").read_text())["figures"]
    assert {key: rehearsal["got"][key] for key in rehearsal["asked"]} == rehearsal["asked"]
