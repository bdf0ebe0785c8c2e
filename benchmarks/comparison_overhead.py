"""What the honest comparison costs on top of training: reference compressors and ablations.

    python benchmarks/comparison_overhead.py --store STORE --sweep SWEEP_ID

For each dataset of the sweep: the seconds of computing xz / zstd / PPMd from
scratch (uncached; afterwards they are read from references.json). For each
finished cell: the seconds of one full validation evaluation of its final
checkpoint, which is what each ablated part costs at the end of a run, next to
the cell's compute and wall seconds. Prints a table and writes JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.evaluation.references import compute_references, dataset_texts
from nightshift.orchestrator.runs.loading import load_run
from nightshift.orchestrator.sweeps.record import read_sweep
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.store import Store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--sweep", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    store = Store.open(args.store)
    sweep = read_sweep(store, args.sweep)
    out: dict = {"references": {}, "cells": []}
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
    print(f"{'dataset':>8} {'references s':>13}  (xz / zstd / ppmd)")
    for size, r in out["references"].items():
        by = " / ".join(f"{v:.1f}" for v in r["by_name"].values())
        print(f"{size:>8} {r['seconds']:>13.1f}  ({by}; {r['train_bytes']:,} training bytes)")
    print(f"\n{'cell':<34} {'eval s (= one ablated part)':>28} {'parts':>5} {'compute s':>10}")
    for c in out["cells"]:
        print(f"{c['cell']:<34} {c['eval_seconds']:>28.1f} {c['parts']:>5} {c['compute_seconds'] or 0:>10.1f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
