"""The benchmarks of the suite: name -> (module, threads), read before torch loads so threads are pinned first.

Each module exposes `BENCHMARK` (benchmarks/harness.py). Helpers that are not
benchmarks themselves (nanogpt_reference: the yardstick model; gpu_sections:
gpu_check's sections) are not listed.
"""

from __future__ import annotations

import importlib

from benchmarks.harness import Benchmark

# name -> threads the harness pins (the benchmark's own choice: one thread where the figure is per core)
SUITE: dict[str, int] = {
    "attractor_equal_steps": 1,
    "attractor_learning_curve": 1,
    "attractor_throughput": 1,
    "attractor_vs_original": 1,
    "comparison_overhead": 1,
    "ddp_scaling": 1,
    "giant_rehearsal": 2,
    "gpu_check": 2,
    "holographic_knn": 1,
    "holographic_memory_gain": 1,
    "holographic_throughput": 2,
    "macro_unit_quality": 1,
    "macro_unit_throughput": 1,
    "prepare_throughput": 1,
    "scale_macro_unit": 1,
    "scale_memory": 1,
    "scale_plan_check": 1,
    "scale_prepare": 1,
    "tokenizer_bytes": 1,
    "trainer_overhead": 1,
    "transformer_memory": 1,
}


def load(name: str) -> Benchmark:
    if name not in SUITE:
        raise SystemExit(f"benchmarks: unknown benchmark {name!r}; see `python -m benchmarks list`")
    bench = importlib.import_module(f"benchmarks.{name}").BENCHMARK
    if bench.name != name:
        raise SystemExit(f"benchmarks/{name}.py declares BENCHMARK.name={bench.name!r}")
    return bench
