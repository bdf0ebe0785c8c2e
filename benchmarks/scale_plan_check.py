"""The pre-flight plan against measured runs at small scale: estimated vs measured peak host memory.

Prepares 8 MB of the pg19 sample (gpt2) into a scratch store, then runs `nightshift train` (a fresh
process each, CPU, no tracking) for a few configs and compares each run's peak RSS (ru_maxrss,
reported in its result) with `nightshift.orchestrator.planning.preflight`'s host-memory estimate for the same config and
dataset manifest. Goal: within 25 %. The plan's process baseline (PROCESS_BASE_BYTES) is a measured
constant; the first row (transformer:debug, which holds almost nothing else) shows it.

    flock /tmp/nightshift-bench.lock .venv/bin/python benchmarks/scale_plan_check.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SCRATCH = Path(os.environ.get("NIGHTSHIFT_SCRATCH", "/work/scratch/scale"))
OUT = ROOT / "docs" / "scale" / "plan_check.json"
RUNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("transformer:debug", 5, ()),
    ("transformer:tiny", 20, ("batch_size=16",)),
    ("attractor:a1", 10, ()),
    ("holographic:base", 430, ("max_attractors=3000000", "sleep_every=0")),
    ("macro_unit:base", 120, ()),
)


def nightshift(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=3600)


def main() -> None:
    from nightshift.orchestrator.planning.preflight import data_from_manifest, plan_run
    from nightshift.orchestrator.runs.config import build_run_config, parse_sets
    from nightshift.pipelines.reader import open_dataset
    from nightshift.pipelines.store import Store

    store = SCRATCH / "plan-check-store"
    shutil.rmtree(store, ignore_errors=True)
    prep = nightshift("prepare", "--source", f"local:{SHARED / 'pg19'}", "--max-bytes", "8MB", "--valid-bytes",
                      "64KB", "--store", str(store), "--json", "--actors", "0")
    if prep.returncode:
        raise SystemExit(prep.stderr[-3000:])
    dataset_id = json.loads(prep.stdout)["dataset_id"]
    data = data_from_manifest(open_dataset(Store.open(str(store)), dataset_id).manifest)
    rows = []
    only = set(sys.argv[1:])  # optional model names to run (a smoke test)
    for model, steps, sets in RUNS:
        if only and model not in only:
            continue
        set_args = [a for s in (*sets, "eval_every=0", "eval_max_bytes=65536", "sample_tokens=8",
                                "device=cpu") for a in ("--set", s)]
        t0 = time.perf_counter()
        proc = nightshift("train", "--dataset", dataset_id, "--model", model, "--steps", str(steps), *set_args,
                          "--store", str(store), "--tracking-uri", "none", "--no-progress", "--json")
        if proc.returncode:
            raise SystemExit(f"{model} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(proc.stdout)
        config = build_run_config(dataset_id, model, parse_sets(list(sets) + ["eval_every=0"]), steps=steps)
        plan = plan_run(config, "CPU", data)
        measured = result["peak_rss_mb"] * 2**20
        rows.append({"model": model, "steps": steps, "sets": list(sets), "measured_peak_rss": measured,
                     "plan_host": plan.host_need, "ratio": plan.host_need / measured,
                     "memory_bytes": result["memory_bytes"], "plan_store": plan.memory.store_bytes,
                     "wall_s": time.perf_counter() - t0, "load": os.getloadavg()[0]})
        r = rows[-1]
        print(f"{model:<20} steps {steps:>4}: measured peak RSS {measured / 2**20:7.0f} MB, plan {r['plan_host'] / 2**20:7.0f}"
              f" MB, plan/measured {r['ratio']:.2f} (model memory {r['memory_bytes'] / 2**20:.0f} MB, plan store "
              f"{r['plan_store'] / 2**20:.0f} MB); load {r['load']:.1f}", flush=True)
    if only and OUT.exists():  # a partial re-run replaces its rows and keeps the others
        kept = [r for r in json.loads(OUT.read_text())["runs"] if r["model"] not in only]
        rows = sorted(kept + rows, key=lambda r: [m for m, _, _ in RUNS].index(r["model"]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "dataset": dataset_id, "runs": rows},
                              indent=2))
    shutil.rmtree(store, ignore_errors=True)
    worst = max(abs(r["ratio"] - 1) for r in rows)
    print(f"largest |plan/measured - 1| = {worst:.2f} (goal <= 0.25): {'met' if worst <= 0.25 else 'MISSED'}")


if __name__ == "__main__":
    main()
