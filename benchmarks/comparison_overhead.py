"""What the honest comparison costs on top of training: reference compressors and ablations.

    python -m benchmarks run comparison_overhead --set store=STORE --set sweep=SWEEP_ID

For each dataset of the sweep: the seconds of computing xz / zstd / PPMd from
scratch (uncached; afterwards they are read from references.json). For each
finished cell: the seconds of one full validation evaluation of its final
checkpoint, which is what each ablated part costs at the end of a run, next to
the cell's compute and wall seconds. Without a store and sweep it first runs a
small sweep of its own (two sizes of pg19, bytes tokenizer, two tiny models).
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks.harness import Benchmark, Context
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.evaluation.references import compute_references, dataset_texts
from nightshift.orchestrator.runs.loading import load_run
from nightshift.orchestrator.sweeps.record import read_sweep
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.store import Store


def own_sweep(ctx: Context) -> tuple[Store, str]:
    """A sweep to measure when none is given: `sizes` of pg19 x `models`, `steps` steps each, on local."""
    from nightshift.orchestrator.sweeps.run import run_sweep
    from nightshift.orchestrator.sweeps.spec import SweepConfig

    store = Store.open(str(ctx.work / "store"))
    spec = SweepConfig(source=f"local:{ctx.shared / 'pg19'}", sizes=tuple(ctx["sizes"]), models=tuple(ctx["models"]),
                       tokenizer="bytes", valid_bytes=ctx["valid_bytes"], steps=ctx["steps"], evals=0)
    ctx.log(f"no sweep given: running {len(spec.sizes)} sizes x {len(spec.models)} models, {spec.steps} steps each")
    return store, run_sweep(spec, store, tracking_uri="none", progress=False).sweep_id


def run(ctx: Context) -> dict[str, Any]:
    if ctx["store"] and ctx["sweep"]:
        store, sweep_id = Store.open(ctx["store"]), ctx["sweep"]
    else:
        store, sweep_id = own_sweep(ctx)
    sweep = read_sweep(store, sweep_id)
    out: dict[str, Any] = {"sweep": sweep_id, "references": {}, "cells": []}
    for d in sweep["datasets"]:
        t0 = time.perf_counter()
        train, valid = dataset_texts(store, d["dataset_id"])
        refs = compute_references(train, valid)
        out["references"][format_size(d["size_bytes"])] = {
            "seconds": time.perf_counter() - t0, "by_name": refs["seconds"], "train_bytes": len(train)}
    for c in sweep["cells"]:
        if c.get("state") != "finished":
            continue
        result = store.read_json(c["run_path"], "result.json")
        loaded = load_run(store, c["run_id"])
        t0 = time.perf_counter()
        bits_per_byte(loaded.model, loaded.dataset.validation_docs())
        out["cells"].append({"cell": f"{c['model']}@{c['size']}/s{c['seed']}", "eval_seconds": time.perf_counter() - t0,
                             "parts": len(loaded.model.ablatable), "compute_seconds": result.get("compute_seconds"),
                             "ablation_seconds": (result.get("compute") or {}).get("ablation")})
    for size, r in out["references"].items():
        by = " / ".join(f"{v:.1f}" for v in r["by_name"].values())
        ctx.log(f"dataset {size:>8}: references {r['seconds']:.1f} s ({by}; {r['train_bytes']:,} training bytes)")
    for c in out["cells"]:
        ctx.log(f"{c['cell']:<34} eval {c['eval_seconds']:.1f} s (= one ablated part), {c['parts']} parts, "
                f"compute {c['compute_seconds'] or 0:.1f} s")
    return out


BENCHMARK = Benchmark(
    name="comparison_overhead",
    summary="seconds of the reference compressors per dataset and of one validation evaluation (= one ablated "
            "part) per finished sweep cell",
    run=run,
    threads=1,
    full={"store": "", "sweep": "", "sizes": [100_000, 1_000_000], "models": ["transformer:tiny", "holographic:base"],
          "valid_bytes": 100_000, "steps": 200},
    toy={"store": "", "sweep": "", "sizes": [20_000], "models": ["transformer:tiny"], "valid_bytes": 5_000,
         "steps": 4},
)
