"""Tokens/s of 1 vs 2 DDP workers: in-process, Ray Train (gloo), and the plain gloo spawner, side by side.

    .venv/bin/python benchmarks/ddp_scaling.py --steps 40 --model transformer:tiny

Every configuration trains the same run config (same global batch, same data)
in a fresh store, one after another, and reports the trainer's own figure:
global tokens per second of training steps (rank 0's step time; startup,
evaluation and checkpoints excluded), plus wall-clock seconds of the whole call
(startup included). Each worker gets one CPU thread, so 2 workers on a 2-core
box is the best case for scaling; a machine shared with other jobs will show it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

# One OpenMP thread per worker process, set before torch loads: Ray sets the same for its workers
# (measured alone, this is worth ~15-20 % on the in-process run here).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch

ROOT = Path(__file__).resolve().parents[1]


def prepare_seed_store(root: Path, source: str, max_bytes: int) -> str:
    from nightshift.pipelines.prepare import PrepareConfig, prepare
    from nightshift.pipelines.store import Store

    config = PrepareConfig(source=source, max_bytes=max_bytes, valid_bytes=20_000, tokenizer="bytes")
    return prepare(config, Store.open(str(root / "seed")), actors=0, progress=False).dataset_id


def fresh_store(root: Path, name: str) -> str:
    target = root / name
    shutil.copytree(root / "seed" / "datasets", target / "datasets")
    return str(target)


def run(name: str, fn) -> dict:
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    row = {"config": name, "tokens_per_s": result["tokens_per_s"], "train_seconds": result["train_seconds"],
           "wall_seconds": wall, "step": result["step"], "val_bpb": result["val_bpb"]}
    print(f"  {name:<14} {row['tokens_per_s']:>10,.0f} tok/s   train {row['train_seconds']:6.1f} s   "
          f"wall {wall:6.1f} s   val bpb {row['val_bpb']:.4f}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="transformer:tiny")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16, help="global sequences per step")
    parser.add_argument("--source", default=f"local:{ROOT.parent / 'shared' / 'data' / 'pg19'}")
    parser.add_argument("--max-bytes", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2, help="rounds over all configurations")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from nightshift.orchestrator.backends import launch
    from nightshift.orchestrator.backends.local_ddp import run_local_ddp
    from nightshift.orchestrator.backends.ray_backend import run_on_ray
    from nightshift.orchestrator.runs.config import build_run_config
    from nightshift.pipelines.store import Store

    torch.set_num_threads(1)  # one thread per worker everywhere: the comparison is about workers
    root = Path(tempfile.mkdtemp(prefix="ns-ddp-bench-"))
    try:
        dataset_id = prepare_seed_store(root, args.source, args.max_bytes)
        config = build_run_config(dataset_id, args.model, {"batch_size": str(args.batch_size), "eval_every": "0",
                                                           "checkpoint_every": "0", "log_every": "10"},
                                  steps=args.steps, seed=0)
        print(f"{args.model}, global batch {args.batch_size} x {config.model.config.seq_len} bytes, "
              f"{args.steps} steps, {os.cpu_count()} CPUs, torch {torch.__version__}", flush=True)
        configs = {
            "local 1 proc": lambda tag: launch(config, Store.open(fresh_store(root, tag)), tracking_uri="none",
                                               progress=False),
            "gloo 2 procs": lambda tag: run_local_ddp(config, fresh_store(root, tag), 2, "none", False),
            "ray 1 worker": lambda tag: run_on_ray(config, fresh_store(root, tag), workers=1, tracking_uri="none"),
            "ray 2 workers": lambda tag: run_on_ray(config, fresh_store(root, tag), workers=2, tracking_uri="none"),
        }
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
        rows = []
        try:
            for rep in range(args.repeats):  # alternate the order: a load spike from other jobs hits all configs
                order = list(configs) if rep % 2 == 0 else list(reversed(configs))
                print(f"round {rep + 1} (load average {os.getloadavg()[0]:.1f})", flush=True)
                for name in order:
                    rows.append(run(name, lambda n=name, r=rep: configs[n](f"{n.replace(' ', '-')}-{r}")))
        finally:
            ray.shutdown()
        best = {n: max(r["tokens_per_s"] for r in rows if r["config"] == n) for n in configs}
        median = {n: statistics.median(r["tokens_per_s"] for r in rows if r["config"] == n) for n in configs}
        print(f"tokens/s over {args.repeats} rounds (best | median) and ratios to 1 worker of the same kind:")
        for name in configs:
            print(f"  {name:<14} {best[name]:>10,.0f} | {median[name]:>10,.0f}")
        print(f"  gloo 2 procs  / local 1 proc  = {best['gloo 2 procs'] / best['local 1 proc']:.2f}x best, "
              f"{median['gloo 2 procs'] / median['local 1 proc']:.2f}x median")
        print(f"  ray 2 workers / ray 1 worker  = {best['ray 2 workers'] / best['ray 1 worker']:.2f}x best, "
              f"{median['ray 2 workers'] / median['ray 1 worker']:.2f}x median")
        print(f"  ray 1 worker  / local 1 proc  = {best['ray 1 worker'] / best['local 1 proc']:.2f}x best")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
