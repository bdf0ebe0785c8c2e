"""What the holographic memory adds: validation bits/byte with each part switched off, side by side.

For each dataset size: prepare (a no-op when done), `nightshift train` one epoch of a holographic flavor
with a few sleeps, then score the final checkpoint on the whole validation split with nothing off, with
"memory" off (the refit bigram backoff alone) and with "prototypes" off (nightshift.models.protocol.ablated: the same
trained state, the mixture refit on held-out TRAINING windows). Also: what the fit chose, the sleep's
prototypes/schemas, and vorticity discriminability on validation windows.

    flock /tmp/nightshift-bench.lock .venv/bin/python benchmarks/holographic_memory_gain.py \\
        --source local:../shared/data/pg19 --sizes 1MB,4MB,32MB --flavor suffix --store /tmp/holo-store

Goal (issue 14): memory lowers validation bits/byte by >= 0.10 at 4 MB and larger.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

NIGHTSHIFT = [sys.executable, "-m", "nightshift.orchestrator.cli"]


def cli(*args: str) -> dict:
    out = subprocess.run([*NIGHTSHIFT, *args, "--json"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode != 0:
        raise SystemExit(f"nightshift {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def measure(args: argparse.Namespace, size: str) -> dict:
    import torch

    from nightshift.models.holographic import FLAVORS, metrics
    from nightshift.models.protocol import ablated
    from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
    from nightshift.orchestrator.runs.loading import load_run
    from nightshift.pipelines.store import Store

    prep = cli("prepare", "--source", args.source, "--max-bytes", size, "--tokenizer", "gpt2", "--store",
               args.store, "--actors", "0", "--no-progress")
    dataset_id = prep["dataset_id"]
    flavor = FLAVORS[args.flavor]
    seq = flavor.model.train_seq_len + 1
    batch = int(flavor.train.get("batch_size", 16))
    rows = max(1, int(prep["splits"]["train"]["tokens"]) // seq)
    steps = max(1, math.ceil(rows / batch))  # one epoch
    sleep_every = max(batch, rows // args.sleeps)  # samples (rows) between sleeps
    t0 = time.perf_counter()
    result = cli("train", "--dataset", dataset_id, "--model", f"holographic:{args.flavor}", "--store", args.store,
                 "--steps", str(steps), "--set", f"sleep_every={sleep_every}", "--set", "eval_every=0",
                 "--set", "checkpoint_every=0", "--set", "sample_every=0",
                 "--set", "final_ablations=false", "--no-progress")  # the ablations below, with their fits
    train_s = time.perf_counter() - t0
    loaded = load_run(Store.open(args.store), result["run_id"])
    model = loaded.model
    out = {"size": size, "dataset_id": dataset_id, "run_id": result["run_id"], "steps": steps,
           "sleep_every": sleep_every, "train_and_final_eval_s": train_s, "full": result["val_bpb"],
           "val_bytes": result["val_bytes"], "stored": model.memory.store.size,
           "prototypes": len(model.memory.protos), "schemas": model.memory.protos.num_schemas,
           "fit": {k: v for k, v in model.memory.fit_info.items() if not k.startswith("fit_c")}}
    for parts in (("memory",), ("prototypes",)):
        t = time.perf_counter()
        with ablated(model, set(parts)):
            res = bits_per_byte(model, loaded.dataset.validation_docs(), batch_size=16)
            out[f"{'+'.join(parts)}_fit"] = {k: v for k, v in model.memory.ablation_fits[frozenset(parts)][1].items()
                                             if k in ("heldout_nats", "fit_gamma", "fit_beta")}
        out[f"no_{'+'.join(parts)}"] = res.bits_per_byte
        out[f"no_{'+'.join(parts)}_s"] = time.perf_counter() - t
    out["sleeps"] = sleep_summary(Store.open(args.store), loaded.run.config.run_path)
    print(json.dumps(out, default=float), flush=True)  # the scores first: the metric below is extra
    docs = [torch.as_tensor(d.tokens[: 4 * model.config.context_size]) for d in loaded.dataset.validation_docs()]
    width = min(d.numel() for d in docs)
    out["vorticity"] = metrics.vorticity_discriminability(model, torch.stack([d[:width] for d in docs]), pairs=512)
    out["memory_gain"] = out["no_memory"] - out["full"]
    out["prototype_gain"] = out["no_prototypes"] - out["full"]
    return out


def sleep_summary(store: "Store", run_path: tuple[str, ...]) -> dict:  # noqa: F821 - imported lazily
    """What the run's sleeps logged (its tracked history): prototypes pruned in all, schemas kept at the end,
    the fitted prototype weight and the vorticity AUC at each sleep."""
    from nightshift.orchestrator.tracking.jsonl import metric_series, read_history

    records = read_history(store, "/".join([*run_path, "tracking"]))
    series = {k: [p["value"] for p in metric_series(records, f"sleep/{k}")]
              for k in ("pruned", "schemas", "prototype_weight", "vorticity_auc", "prototypes")}
    return {"pruned_total": sum(series["pruned"]), "schemas_end": (series["schemas"] or [0])[-1],
            "prototypes_end": (series["prototypes"] or [0])[-1], "prototype_weight": series["prototype_weight"],
            "vorticity_auc": series["vorticity_auc"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=f"local:{SHARED / 'pg19'}")
    parser.add_argument("--sizes", default="1MB,4MB,32MB")
    parser.add_argument("--flavor", default="suffix")
    parser.add_argument("--sleeps", type=int, default=4, help="sleep phases per epoch")
    parser.add_argument("--store", default=str(ROOT / ".nightshift"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    print(f"holographic:{args.flavor}, load average {os.getloadavg()}, {args.threads} thread(s)", flush=True)
    rows = []
    for size in args.sizes.split(","):
        r = measure(args, size)
        rows.append(r)
        print(json.dumps(r, default=float), flush=True)
    print("\n| size | full | memory off | prototypes off | memory gain | prototype gain |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['size']} | {r['full']:.4f} | {r['no_memory']:.4f} | {r['no_prototypes']:.4f} | "
              f"{r['memory_gain']:+.4f} | {r['prototype_gain']:+.4f} |")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
