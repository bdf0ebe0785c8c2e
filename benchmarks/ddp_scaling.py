"""Tokens/s of 1 vs 2 DDP workers: in-process, Ray Train (gloo), and the plain gloo spawner, side by side.

    python -m benchmarks run ddp_scaling --set steps=40 --set model=transformer:tiny

Every configuration trains the same run config (same global batch, same data)
in a fresh store, one after another, and reports the trainer's own figure:
global tokens per second of training steps (rank 0's step time; startup,
evaluation and checkpoints excluded), plus wall-clock seconds of the whole call
(startup included). Each worker gets one CPU thread (the harness pins one
thread; Ray sets the same for its workers), so 2 workers on a 2-core box is the
best case for scaling; a machine shared with other jobs will show it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import Benchmark, Context
from nightshift.orchestrator.backends import launch
from nightshift.orchestrator.backends.local_ddp import run_local_ddp
from nightshift.orchestrator.backends.ray_backend import run_on_ray
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.store import Store
from nightshift.ray_session import session


def prepare_seed_store(root: Path, source: str, max_bytes: int) -> str:
    config = PrepareConfig(source=source, max_bytes=max_bytes, valid_bytes=20_000, tokenizer="bytes")
    return prepare(config, Store.open(str(root / "seed")), actors=0, progress=False).dataset_id


def fresh_store(root: Path, name: str) -> str:
    target = root / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root / "seed" / "datasets", target / "datasets")
    return str(target)


def timed(ctx: Context, name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    row = {"config": name, "tokens_per_s": result["tokens_per_s"], "train_seconds": result["train_seconds"],
           "wall_seconds": wall, "step": result["step"], "val_bpb": result["val_bpb"]}
    ctx.log(f"  {name:<14} {row['tokens_per_s']:>10,.0f} tok/s   train {row['train_seconds']:6.1f} s   "
            f"wall {wall:6.1f} s   val bpb {row['val_bpb']:.4f}")
    return row


RATIOS = {"gloo_2_over_local_1": ("gloo 2 procs", "local 1 proc"),
          "ray_2_over_ray_1": ("ray 2 workers", "ray 1 worker"),
          "ray_1_over_local_1": ("ray 1 worker", "local 1 proc"),
          "ray_2_over_local_1": ("ray 2 workers", "local 1 proc")}
CONFIGS = ["local 1 proc", "gloo 2 procs", "ray 1 worker", "ray 2 workers"]


def run(ctx: Context) -> dict[str, Any]:
    root = ctx.work
    shutil.rmtree(root, ignore_errors=True)
    source = ctx["source"] or f"local:{ctx.shared / 'pg19'}"
    dataset_id = prepare_seed_store(root, source, ctx["max_bytes"])
    config = build_run_config(dataset_id, ctx["model"], {"batch_size": str(ctx["batch_size"]), "eval_every": "0",
                                                         "checkpoint_every": "0", "log_every": "10"},
                              steps=ctx["steps"], seed=0)
    ctx.log(f"{ctx['model']}, global batch {ctx['batch_size']} x {config.model.config.seq_len} bytes, "
            f"{ctx['steps']} steps, {os.cpu_count()} CPUs, torch {torch.__version__}")
    every: dict[str, Callable[[str], dict[str, Any]]] = {
        "local 1 proc": lambda tag: launch(config, Store.open(fresh_store(root, tag)), tracking_uri="none",
                                           progress=False),
        "gloo 2 procs": lambda tag: run_local_ddp(config, fresh_store(root, tag), 2, "none", False),
        "ray 1 worker": lambda tag: run_on_ray(config, fresh_store(root, tag), workers=1, tracking_uri="none"),
        "ray 2 workers": lambda tag: run_on_ray(config, fresh_store(root, tag), workers=2, tracking_uri="none"),
    }
    unknown = sorted(set(ctx["configs"]) - set(every))
    if unknown:
        raise SystemExit(f"ddp_scaling: unknown configs {unknown}; accepted: {', '.join(every)}")
    configs = {name: fn for name, fn in every.items() if name in ctx["configs"]}
    rows = []
    with session(num_cpus=2, quiet=True):
        for rep in range(ctx["repeats"]):  # alternate the order: a load spike from other jobs hits all configs
            order = list(configs) if rep % 2 == 0 else list(reversed(configs))
            ctx.log(f"round {rep + 1} (load average {os.getloadavg()[0]:.1f})")
            for name in order:
                tag = f"{name.replace(' ', '-')}-{rep}"
                rows.append(timed(ctx, name, lambda n=name, t=tag: configs[n](t)))
    best = {n: max(r["tokens_per_s"] for r in rows if r["config"] == n) for n in configs}
    median = {n: statistics.median(r["tokens_per_s"] for r in rows if r["config"] == n) for n in configs}
    ratios = {}
    for key, (a, b) in RATIOS.items():  # the pairs whose both sides ran
        if a in best and b in best:
            ratios[key] = best[a] / best[b]
            ratios[key + "_median"] = median[a] / median[b]
            ctx.log(f"{a} / {b} = {ratios[key]:.2f}x best, {ratios[key + '_median']:.2f}x median")
    shutil.rmtree(root, ignore_errors=True)
    return {"rows": rows, "best_tokens_per_s": best, "median_tokens_per_s": median, "ratios": ratios}


BENCHMARK = Benchmark(
    name="ddp_scaling",
    summary="tokens/s of 1 vs 2 DDP workers: in-process, Ray Train (gloo) and the plain gloo spawner, side by side",
    run=run,
    threads=1,
    full={"model": "transformer:tiny", "steps": 40, "batch_size": 16, "source": "", "max_bytes": 1_000_000,
          "repeats": 2, "configs": CONFIGS},
    toy={"model": "transformer:tiny", "steps": 3, "batch_size": 4, "source": "", "max_bytes": 60_000, "repeats": 1,
         # no Ray Train start at toy size (CI): tests/backends/test_ray_backend.py trains through it already
         "configs": ["local 1 proc", "gloo 2 procs"]},
)
