"""Compilation is its own kind of work, outside the budget: a cold compile cache does not eat a run's steps."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.cli import nightshift


def test_a_cold_cache_compile_leaves_the_budget_to_training(store_dir: Path, pg19_bytes: str,
                                                              tmp_path: Path) -> None:
    """Empty inductor cache, a budget shorter than the compile: before, the run stopped after 1 step."""
    cache = tmp_path / "inductor-cache"
    cache.mkdir()
    out = nightshift("train", "--dataset", pg19_bytes, "--model", "attractor:debug", "--store", str(store_dir),
                     "--tracking-uri", "none", "--no-progress", "--json", "--steps", "100000",
                     "--set", "compile_relaxation=true", "--set", "budget_device_seconds=1.5",
                     "--set", "eval_every=0", "--set", "final_ablations=false", "--set", "sample_tokens=4",
                     env={"TORCHINDUCTOR_CACHE_DIR": str(cache)})
    result = json.loads(out.stdout)
    assert any(cache.iterdir())  # it compiled, into the empty cache
    compiled, budgeted = result["compute"]["compile"], result["compute_seconds"]
    assert compiled > 1.5  # the cold compile alone is longer than the whole budget ...
    assert result["stop_reason"] == "budget" and result["step"] > 10  # ... and the run still trained
    assert budgeted < 1.5 + 1.0  # the budget bound what it should: training, not compiling
