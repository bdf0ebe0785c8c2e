"""macro_unit at scale: bits/byte vs size on distinct text, then memory and speed to 300 MB of repeated text.

Phase 1 (distinct text only): the pg19 train split (31.6 MB) then the FineWeb rows in
../shared/data/fineweb, through `observe()` in (32, 2049) byte rows; at 10 MB, 20 MB and at the end
of the distinct text: a sleep (MDL consolidation) and bits per byte on the pg19 validation split
(3 books, full left context). Phase 2 (memory and speed only, never quality): the same distinct
stream repeated until 300 MB, a sleep every 50 MB; RSS, model memory and observe MB/s at each mark,
next to the pre-flight plan's host-memory estimate for the same run (orchestrator/planning/preflight.py).

One thread (as macro_unit_throughput; the harness pins it).

    python -m benchmarks run scale_macro_unit [--set mb=300 --set flavor=base]
    python -m benchmarks run scale_macro_unit --set replan=true   # the recorded run, plan column recomputed
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from benchmarks.harness import SHARED, Benchmark, Context, recorded, status_bytes

MB = 1_000_000
BATCH = 32


def texts(path: Path) -> list[str]:
    return pq.read_table(path, columns=["text"]).column("text").to_pylist()


def status_mb(field: str) -> float:
    return status_bytes(field) / 2**20


def bits_per_byte(model, docs: list[bytes]) -> float:
    nats, n = 0.0, 0
    for doc in docs:
        seq = torch.tensor([[model.vocab.eot_id, *doc]], dtype=torch.long)
        nats -= model.score(seq).double().sum().item()
        n += len(doc)
    return nats / math.log(2) / n


def plan_host_mb(flavor: str, total_bytes: int, distinct_bytes: int, row: int) -> float:
    from nightshift.orchestrator.planning.preflight import data_from_bytes, plan_run
    from nightshift.orchestrator.runs.config import build_run_config

    steps = math.ceil(total_bytes / (BATCH * row))
    config = build_run_config("x" * 16, f"macro_unit:{flavor}", {"batch_size": str(BATCH)}, steps=steps)
    plan = plan_run(config, "CPU", data_from_bytes("bytes", distinct_bytes, 10**6))
    return plan.host_need / 2**20


def replan(ctx: Context, res: dict) -> dict:
    """The plan column of a recorded run recomputed with the current plan code."""
    from nightshift.models.macro_unit import FLAVORS

    for entry in res["memory"]:
        entry["plan_host_mb"] = plan_host_mb(res["flavor"], int(entry["mb"] * MB), int(res["distinct_mb"] * MB),
                                             FLAVORS[res["flavor"]].model.train_seq_len + 1)
        ctx.log(f"{entry['mb']:6.1f} MB: peak RSS {entry['peak_rss_mb']:.0f} MB, plan {entry['plan_host_mb']:.0f} MB "
                f"({entry['plan_host_mb'] / entry['peak_rss_mb']:.2f})")
    return res


def run(ctx: Context) -> dict:
    from nightshift.models.macro_unit import FLAVORS
    from nightshift.models.protocol import SleepContext, Vocab

    if ctx["replan"]:
        doc = recorded(ctx.benchmark.name)
        if doc is None:
            raise SystemExit("scale_macro_unit: replan=true needs a recorded result (benchmarks/results/)")
        ctx.note(f"replan: the figures of the run recorded {doc['date']}, plan column recomputed with this code")
        return replan(ctx, doc["figures"])
    flavor, total_mb = ctx["flavor"], ctx["mb"]
    distinct = "".join(texts(SHARED / "pg19" / "train.parquet")).encode()
    pg19_mb = len(distinct) / MB
    for name in sorted((SHARED / "fineweb").glob("*.parquet")):
        distinct += "\n".join(texts(name)).encode()
    if ctx["distinct_mb"] is not None:
        distinct = distinct[: int(ctx["distinct_mb"] * MB)]
        pg19_mb = min(pg19_mb, len(distinct) / MB)
    val = [t.encode()[: ctx["val_bytes"]] for t in texts(SHARED / "pg19" / "validation.parquet")]
    config = FLAVORS[flavor].model
    model = config.build(Vocab.bytes_vocab())
    row = model.train_seq_len + 1
    rss_before = status_mb("VmRSS")
    res: dict = {"flavor": flavor, "load_start": os.getloadavg(), "threads": torch.get_num_threads(),
                 "distinct_mb": len(distinct) / MB, "pg19_mb": pg19_mb, "rss_before_model_mb": rss_before,
                 "quality": [], "memory": []}
    ctx.log(f"distinct text {len(distinct) / MB:.1f} MB (pg19 train {pg19_mb:.1f} + fineweb rows); load "
            f"{os.getloadavg()[0]:.1f}")
    data = np.frombuffer(distinct, dtype=np.uint8)
    rows_per_pass = len(data) // row
    rows = data[: rows_per_pass * row].reshape(-1, row)  # (R, row) uint8 view; int64 copies made per batch
    seen = wall = cpu = 0.0
    quality_marks = [len(distinct) / MB if m is None else m for m in ctx["quality_marks"]]
    memory_marks = [m for m in ctx["memory_marks"] if m <= total_mb]
    sleep_every = ctx["sleep_every_mb"]
    i = 0
    while seen < total_mb:
        r = i % rows_per_pass
        batch = torch.from_numpy(rows[r:r + BATCH].astype(np.int64))  # (<=B, row)
        i += batch.shape[0]
        t0, c0 = time.perf_counter(), time.process_time()
        model.observe(batch)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        seen += batch.numel() / MB
        if quality_marks and seen >= quality_marks[0] - 1e-9:
            quality_marks.pop(0)
            model._flush()
            sleep = model.sleep(SleepContext(step=i))
            bpb = bits_per_byte(model, val)
            res["quality"].append({"mb": seen, "bpb": bpb, "units": sleep.get("units"),
                                   "model_mb": model.memory_bytes() / 2**20})
            ctx.log(f"distinct {seen:6.1f} MB: bpb {bpb:.4f}, units {sleep.get('units')}, "
                    f"model {model.memory_bytes() / 2**20:.0f} MB")
        if memory_marks and seen >= memory_marks[0]:
            memory_marks.pop(0)
            t0, c0 = time.perf_counter(), time.process_time()
            model._flush()
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            s0 = time.perf_counter()
            if round(seen) % sleep_every == 0 or seen >= total_mb:
                model.sleep(SleepContext(step=i))
            entry = {"mb": seen, "observe_mb_s": seen / wall, "observe_mb_cpu_s": seen / cpu,
                     "sleep_s": time.perf_counter() - s0, "model_mb": model.memory_bytes() / 2**20,
                     "rss_mb": status_mb("VmRSS"), "peak_rss_mb": status_mb("VmHWM"),
                     "plan_host_mb": plan_host_mb(flavor, int(seen * MB), len(distinct), row),
                     "load": os.getloadavg()[0]}
            res["memory"].append(entry)
            ctx.log(f"{seen:6.1f} MB in: observe {entry['observe_mb_s']:.2f} MB/s ({entry['observe_mb_cpu_s']:.2f} "
                    f"CPU), model {entry['model_mb']:.0f} MB, RSS {entry['rss_mb']:.0f} MB (peak "
                    f"{entry['peak_rss_mb']:.0f}), plan says {entry['plan_host_mb']:.0f} MB; load {entry['load']:.1f}")
    res["load_end"] = os.getloadavg()
    first, last = res["memory"][0], res["memory"][-1]
    ctx.log(f"peak RSS {first['peak_rss_mb']:.0f} MB at {first['mb']:.0f} MB -> {last['peak_rss_mb']:.0f} MB at "
            f"{last['mb']:.0f} MB (x{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}); plan / measured peak at the "
            f"end {last['plan_host_mb'] / last['peak_rss_mb']:.2f}")
    return res


def markdown(doc: dict) -> str:
    """RESULTS.md: bits/byte on distinct text, then memory and speed at each mark next to the plan."""
    f = doc["figures"]
    lines = [f"macro_unit:{f['flavor']}, distinct text {f['distinct_mb']:.1f} MB (pg19 train {f['pg19_mb']:.1f})", "",
             "| distinct MB | bits/byte | units | model MB |", "|---:|---:|---:|---:|"]
    lines += [f"| {q['mb']:.1f} | {q['bpb']:.4f} | {q['units']} | {q['model_mb']:.0f} |" for q in f["quality"]]
    lines += ["", "| MB in | observe MB/s | per CPU-s | model MB | RSS MB | peak RSS MB | plan MB | plan / peak |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {m['mb']:.1f} | {m['observe_mb_s']:.2f} | {m['observe_mb_cpu_s']:.2f} | {m['model_mb']:.0f} | "
              f"{m['rss_mb']:.0f} | {m['peak_rss_mb']:.0f} | {m['plan_host_mb']:.0f} | "
              f"{m['plan_host_mb'] / m['peak_rss_mb']:.2f} |" for m in f["memory"]]
    return "\n".join(lines)


BENCHMARK = Benchmark(
    name="scale_macro_unit",
    summary="macro_unit bits/byte vs distinct text, then RSS, model memory and observe MB/s to 300 MB of repeated "
            "text next to the pre-flight plan's host-memory estimate",
    run=run,
    threads=1,
    full={"mb": 300, "flavor": "base", "replan": False, "distinct_mb": None, "quality_marks": [10, 20, None],
          "memory_marks": [40, 100, 150, 200, 250, 300], "sleep_every_mb": 50, "val_bytes": None},
    toy={"mb": 1.2, "flavor": "small", "replan": False, "distinct_mb": 0.7, "quality_marks": [0.3, None],
         "memory_marks": [0.9, 1.2], "sleep_every_mb": 1, "val_bytes": 5_000},
    goal="macro_unit RSS bounded by its config to 300 MB; the plan's host memory within 25 % of the measured peak",
    table=markdown,
)
