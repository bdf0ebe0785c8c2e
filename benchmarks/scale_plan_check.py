"""The pre-flight plan against measured runs at small scale: estimated vs measured peak host memory.

Prepares 8 MB of the pg19 sample (gpt2) into a scratch store, then runs `nightshift train` (a fresh
process each, CPU, no tracking) for a few configs and compares each run's peak RSS (ru_maxrss,
reported in its result) with `nightshift.orchestrator.planning.preflight`'s host-memory estimate for the same config and
dataset manifest. Goal: within 25 %. The plan's process baseline (PROCESS_BASE_BYTES) is a measured
constant; the first row (transformer:debug, which holds almost nothing else) shows it.

`models` (a list of model names) re-runs only those rows; the other rows are then the recorded
result's (benchmarks/results/scale_plan_check.json), and the run says so.

    python -m benchmarks run scale_plan_check [--set models='["macro_unit:base"]']
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

from benchmarks.harness import ROOT, Benchmark, Context, recorded

RUNS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("transformer:debug", 5, ()),
    ("transformer:tiny", 20, ("batch_size=16",)),
    ("attractor:a1", 10, ()),
    ("holographic:base", 430, ("max_attractors=3000000", "sleep_every=0")),
    ("macro_unit:base", 120, ()),
)


def nightshift(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # one thread: the harness's setting, inherited
    return subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)


def run(ctx: Context) -> dict:
    from nightshift.orchestrator.planning.preflight import data_from_manifest, plan_run
    from nightshift.orchestrator.runs.config import build_run_config, parse_sets
    from nightshift.pipelines.reader import open_dataset
    from nightshift.pipelines.store import Store

    runs = [(m, int(s), tuple(sets)) for m, s, sets in ctx["runs"]]
    store = ctx.work / "plan-check-store"
    shutil.rmtree(store, ignore_errors=True)
    prep = nightshift("prepare", "--source", f"local:{ctx.shared / 'pg19'}", "--max-bytes", ctx["max_bytes"],
                      "--valid-bytes", "64KB", "--store", str(store), "--json", "--actors", "0")
    if prep.returncode:
        raise SystemExit(prep.stderr[-3000:])
    dataset_id = json.loads(prep.stdout)["dataset_id"]
    data = data_from_manifest(open_dataset(Store.open(str(store)), dataset_id).manifest)
    rows = []
    only = set(ctx["models"] or ())  # optional model names to run
    for model, steps, sets in runs:
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
        ctx.log(f"{model:<20} steps {steps:>4}: measured peak RSS {measured / 2**20:7.0f} MB, plan "
                f"{r['plan_host'] / 2**20:7.0f} MB, plan/measured {r['ratio']:.2f} (model memory "
                f"{r['memory_bytes'] / 2**20:.0f} MB, plan store {r['plan_store'] / 2**20:.0f} MB); "
                f"load {r['load']:.1f}")
    previous = recorded(ctx.benchmark.name) if only else None
    if previous:  # a partial re-run replaces its rows and keeps the others
        kept = [r for r in previous["figures"]["runs"] if r["model"] not in only]
        if kept:
            ctx.note(f"rows {', '.join(r['model'] for r in kept)} are the recorded run's ({previous['date']})")
        order = [m for m, _, _ in runs]
        rows = sorted(kept + rows, key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))
    shutil.rmtree(store, ignore_errors=True)
    worst = max(abs(r["ratio"] - 1) for r in rows)
    ctx.log(f"largest |plan/measured - 1| = {worst:.2f} (goal <= 0.25): {'met' if worst <= 0.25 else 'MISSED'}")
    return {"dataset": dataset_id, "runs": rows, "worst_abs_ratio_minus_1": worst, "goal_met": worst <= 0.25}


def markdown(doc: dict) -> str:
    """RESULTS.md: each run's measured peak RSS against the plan's host-memory estimate."""
    f = doc["figures"]
    lines = [f"dataset {f['dataset']}", "",
             "| model | steps | sets | measured peak RSS MB | plan MB | plan / measured |",
             "|---|---:|---|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['steps']} | {' '.join(r['sets']) or '-'} | {r['measured_peak_rss'] / 2**20:.0f} | "
              f"{r['plan_host'] / 2**20:.0f} | {r['ratio']:.2f} |" for r in f["runs"]]
    lines.append(f"\nlargest |plan/measured - 1| = {f['worst_abs_ratio_minus_1']:.2f} (goal <= 0.25)")
    return "\n".join(lines)


BENCHMARK = Benchmark(
    name="scale_plan_check",
    summary="pre-flight plan's host-memory estimate against the measured peak RSS of `nightshift train` runs of "
            "each family (CPU, 8 MB of pg19)",
    run=run,
    threads=1,
    full={"max_bytes": "8MB", "runs": [list(r) for r in RUNS], "models": None},
    toy={"max_bytes": "512KB", "runs": [["transformer:debug", 3, []], ["holographic:tiny", 5, ["sleep_every=0"]]],
         "models": None},
    goal="plan within 25 % of the measured peak RSS",
    table=markdown,
)
