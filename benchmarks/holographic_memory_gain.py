"""What the holographic memory adds: validation bits/byte with each part switched off, side by side.

For each dataset size: prepare (a no-op when done), `nightshift train` one epoch of a holographic flavor
with a few sleeps, then score the final checkpoint on the whole validation split with nothing off, with
"memory" off (the refit bigram backoff alone) and with "prototypes" off (nightshift.models.protocol.ablated: the same
trained state, the mixture refit on held-out TRAINING windows). Also: what the fit chose, the sleep's
prototypes/schemas, and vorticity discriminability on validation windows.

The store is `store` (default: a folder in the benchmark's scratch space, kept between runs, so a
prepare already done is not redone); the source defaults to the pg19 sample (local:<shared>/pg19).

    python -m benchmarks run holographic_memory_gain [--set sizes='["1MB","4MB","32MB"]' --set flavor=suffix]

Goal (issue 14): memory lowers validation bits/byte by >= 0.10 at 4 MB and larger.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.harness import ROOT, Benchmark, Context

NIGHTSHIFT = [sys.executable, "-m", "nightshift.orchestrator.cli"]


def cli(*args: str) -> dict:
    out = subprocess.run([*NIGHTSHIFT, *args, "--json"], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if out.returncode != 0:
        raise SystemExit(f"nightshift {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def measure(ctx: Context, source: str, store: str, size: str) -> dict:
    import torch

    from nightshift.models.holographic import FLAVORS, metrics
    from nightshift.models.protocol import ablated
    from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
    from nightshift.orchestrator.runs.loading import load_run
    from nightshift.pipelines.store import Store

    valid = ["--valid-bytes", ctx["valid_bytes"]] if ctx["valid_bytes"] else []
    prep = cli("prepare", "--source", source, "--max-bytes", size, *valid, "--tokenizer", "gpt2", "--store",
               store, "--actors", "0", "--no-progress")
    dataset_id = prep["dataset_id"]
    flavor = FLAVORS[ctx["flavor"]]
    seq = flavor.model.train_seq_len + 1
    batch = int(flavor.train.get("batch_size", 16))
    rows = max(1, int(prep["splits"]["train"]["tokens"]) // seq)
    steps = max(1, math.ceil(rows / batch))  # one epoch
    sleep_every = max(batch, rows // ctx["sleeps"])  # samples (rows) between sleeps
    t0 = time.perf_counter()
    result = cli("train", "--dataset", dataset_id, "--model", f"holographic:{ctx['flavor']}", "--store", store,
                 "--steps", str(steps), "--set", f"sleep_every={sleep_every}", "--set", "eval_every=0",
                 "--set", "checkpoint_every=0", "--set", "sample_every=0",
                 "--set", "final_ablations=false", "--no-progress")  # the ablations below, with their fits
    train_s = time.perf_counter() - t0
    loaded = load_run(Store.open(store), result["run_id"])
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
    out["sleeps"] = sleep_summary(Store.open(store), loaded.run.config.run_path)
    ctx.log(f"{size}: full {out['full']:.4f}, memory off {out['no_memory']:.4f}, prototypes off "
            f"{out['no_prototypes']:.4f} bits/byte")  # the scores first: the metric below is extra
    docs = [torch.as_tensor(d.tokens[: 4 * model.config.context_size]) for d in loaded.dataset.validation_docs()]
    width = min(d.numel() for d in docs)
    out["vorticity"] = metrics.vorticity_discriminability(model, torch.stack([d[:width] for d in docs]), pairs=512)
    out["memory_gain"] = out["no_memory"] - out["full"]
    out["prototype_gain"] = out["no_prototypes"] - out["full"]
    return out


def sleep_summary(store: Any, run_path: tuple[str, ...]) -> dict:
    """What the run's sleeps logged (its tracked history): prototypes pruned in all, schemas kept at the end,
    the fitted prototype weight and the vorticity AUC at each sleep."""
    from nightshift.orchestrator.tracking.jsonl import metric_series, read_history

    records = read_history(store, "/".join([*run_path, "tracking"]))
    series = {k: [p["value"] for p in metric_series(records, f"sleep/{k}")]
              for k in ("pruned", "schemas", "prototype_weight", "vorticity_auc", "prototypes")}
    return {"pruned_total": sum(series["pruned"]), "schemas_end": (series["schemas"] or [0])[-1],
            "prototypes_end": (series["prototypes"] or [0])[-1], "prototype_weight": series["prototype_weight"],
            "vorticity_auc": series["vorticity_auc"]}


def run(ctx: Context) -> dict:
    import torch

    source = ctx["source"] or f"local:{ctx.shared / 'pg19'}"
    store = ctx["store"] or str(ctx.work / "store")
    ctx.log(f"holographic:{ctx['flavor']}, {torch.get_num_threads()} thread(s), source {source}, store {store}")
    rows = []
    for size in ctx["sizes"]:
        rows.append(measure(ctx, source, store, size))
        ctx.log(json.dumps(rows[-1], default=float))
    for line in markdown(rows).splitlines():
        ctx.log(line)
    return {"flavor": ctx["flavor"], "threads": torch.get_num_threads(), "sizes": rows}


def markdown(rows: list[dict]) -> str:
    lines = ["| size | full | memory off | prototypes off | memory gain | prototype gain |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['full']:.4f} | {r['no_memory']:.4f} | {r['no_prototypes']:.4f} | "
                     f"{r['memory_gain']:+.4f} | {r['prototype_gain']:+.4f} |")
    return "\n".join(lines)


BENCHMARK = Benchmark(
    name="holographic_memory_gain",
    summary="holographic validation bits/byte after one epoch through `nightshift train`, with memory and "
            "prototypes each switched off (what each part adds)",
    run=run,
    threads=1,
    full={"source": None, "sizes": ["1MB", "4MB", "32MB"], "flavor": "suffix", "sleeps": 4, "store": None,
          "valid_bytes": None},
    toy={"source": None, "sizes": ["128KB"], "flavor": "tiny", "sleeps": 2, "store": None, "valid_bytes": "32KB"},
    goal="memory lowers validation bits/byte by >= 0.10 at 4 MB and larger",
    table=lambda doc: f"holographic:{doc['figures']['flavor']}\n\n{markdown(doc['figures']['sizes'])}",
)
