"""prepare throughput vs raw tiktoken, and prepare's peak memory vs corpus size, in one run.

The pg19 sample (../shared/data/pg19) is repeated into a >= 100 MB parquet
corpus (each copy gets distinct doc ids) and a 25 MB one. Side by side:

  raw      tiktoken gpt2 `encode_ordinary_batch` on the same texts (1 thread = one actor's budget)
  prepare  `nightshift.pipelines.prepare.prepare` end to end (read parquet, split, tokenize, write Arrow shards,
           manifest) with 1 and 2 Ray actors; Ray is started before the clock starts (its start-up
           time is reported separately)

Every measurement runs in a fresh subprocess so peak RSS (ru_maxrss) is its own.
ratio per actor = prepare MB/s / (actors x raw 1-thread MB/s); goal >= 0.8. On a shared, loaded box wall
clocks mostly measure the neighbours, so CPU time (driver + actor processes) is reported beside them.
RSS goal: driver and worker peak RSS within 20 % between the 25 MB and the 100 MB corpus.

    python -m benchmarks run prepare_throughput [--set mb=100 --set small_mb=25]
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.harness import SHARED, Benchmark, Context, peak_rss_mb, status_bytes


def build_corpus(folder: Path, target_mb: float, books: int | None = None) -> dict:
    """pg19 train repeated to >= target_mb (distinct url per copy) + the real validation split.
    `books`: only the first that many train books in each copy (None: all of them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    train = pq.read_table(SHARED / "pg19" / "train.parquet")
    if books is not None:
        train = train.slice(0, books)
    one = sum(len(t.encode("utf-8")) for t in train.column("text").to_pylist())
    copies = max(1, -(-int(target_mb * 1e6) // one))
    with pq.ParquetWriter(folder / "train.parquet", train.schema) as writer:
        for k in range(copies):
            urls = pa.array([f"{u}#copy{k}" for u in train.column("url").to_pylist()])
            writer.write_table(train.set_column(train.schema.get_field_index("url"), "url", urls), row_group_size=4)
    pq.write_table(pq.read_table(SHARED / "pg19" / "validation.parquet"), folder / "validation.parquet")
    return {"path": str(folder), "train_bytes": one * copies, "copies": copies}


def child_raw(corpus: str, threads: int) -> dict:
    import pyarrow.parquet as pq
    import tiktoken

    texts = []
    for name in ("validation", "train"):
        texts += pq.read_table(Path(corpus) / f"{name}.parquet", columns=["text"]).column("text").to_pylist()
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    enc = tiktoken.get_encoding("gpt2")
    start, cpu = time.perf_counter(), time.process_time()
    tokens = 0
    for lo in range(0, len(texts), 8):  # batches of 8 books, results dropped as we go
        tokens += sum(map(len, enc.encode_ordinary_batch(texts[lo:lo + 8], num_threads=threads)))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu, "bytes": n_bytes, "tokens": tokens,
            "driver_rss_mb": driver_rss_mb()}


def child_prepare(corpus: str, actors: int, store: str) -> dict:
    from nightshift.pipelines.prepare import PrepareConfig, prepare
    from nightshift.pipelines.store import Store
    from nightshift.pipelines.workers import ensure_ray

    ray_start = time.perf_counter()
    if actors:
        ensure_ray(actors)
    ray_seconds = time.perf_counter() - ray_start
    config = PrepareConfig(source=f"local:{corpus}", max_bytes=10**12, valid_bytes=10**9)
    start, cpu = time.perf_counter(), time.process_time()
    made = prepare(config, Store.open(store), actors=actors, progress=False)
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu + made.worker_cpu_seconds
    splits = made.data["splits"]
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "ray_start_seconds": ray_seconds,
            "bytes": sum(s["totals"]["bytes"] for s in splits.values()),
            "tokens": sum(s["totals"]["tokens"] for s in splits.values()),
            "shards": made.written_shards, "driver_rss_mb": driver_rss_mb(), "worker_rss_mb": made.worker_peak_rss_mb}


def driver_rss_mb() -> float:
    """Peak RSS of this process: VmHWM (ru_maxrss would carry the spawning harness's peak across exec)."""
    return status_bytes("VmHWM") / 2**20 or peak_rss_mb()


def prepare_name(actors: int) -> str:
    return f"prepare {actors} actor{'s' if actors > 1 else ''}"


def run(ctx: Context) -> dict:
    cpus = os.cpu_count()
    with tempfile.TemporaryDirectory(prefix="ns-bench-", dir=ctx.work) as tmp:
        big = build_corpus(Path(tmp, "big"), ctx["mb"], ctx["books"])
        small = build_corpus(Path(tmp, "small"), ctx["small_mb"], ctx["books"])
        ctx.log(f"corpus: pg19 train x{big['copies']} = {big['train_bytes'] / 1e6:.1f} MB (+0.6 MB validation); "
                f"small: x{small['copies']} = {small['train_bytes'] / 1e6:.1f} MB; cpus={cpus}")
        rows = {"raw 1 thread": ctx.child("child_raw", corpus=big["path"], threads=1),
                f"raw {cpus} threads": ctx.child("child_raw", corpus=big["path"], threads=cpus)}
        for actors in ctx["actors"]:
            rows[prepare_name(actors)] = ctx.child("child_prepare", corpus=big["path"], actors=actors,
                                                   store=str(Path(tmp, f"store-big-{actors}")))
        small_rows = {actors: ctx.child("child_prepare", corpus=small["path"], actors=actors,
                                        store=str(Path(tmp, f"store-small-{actors}")))
                      for actors in ctx["actors"]}

    raw = rows["raw 1 thread"]
    raw_mbs = raw["bytes"] / raw["seconds"] / 1e6
    raw_cpu = raw["bytes"] / raw["cpu_seconds"] / 1e6
    ctx.log(f"{'':<18}{'MB/s':>7}{'tok/s':>12}{'wall s':>8}{'ratio/actor':>12}{'CPU s':>7}{'MB/CPU-s':>9}"
            f"{'CPU ratio':>10}{'driver RSS':>11}{'worker RSS':>11}{'ray start':>10}")
    for name, r in rows.items():
        mbs = r["bytes"] / r["seconds"] / 1e6
        per_cpu = r["bytes"] / r["cpu_seconds"] / 1e6
        actors = int(name.split()[1]) if name.startswith("prepare") else 0
        r |= {"mb_s": mbs, "tokens_per_s": r["tokens"] / r["seconds"], "mb_per_cpu_s": per_cpu,
              "cpu_ratio": per_cpu / raw_cpu}
        if actors:
            r["ratio_per_actor"] = mbs / (actors * raw_mbs)
        ratio = f"{mbs / (actors * raw_mbs):.2f}" if actors else "-"
        worker = f"{r['worker_rss_mb']:.0f} MB" if r.get("worker_rss_mb") else "-"
        ray = f"{r['ray_start_seconds']:.1f} s" if actors else "-"
        ctx.log(f"{name:<18}{mbs:>7.1f}{r['tokens'] / r['seconds']:>12,.0f}{r['seconds']:>8.1f}{ratio:>12}"
                f"{r['cpu_seconds']:>7.1f}{per_cpu:>9.1f}{per_cpu / raw_cpu:>10.2f}"
                f"{r['driver_rss_mb']:>8.0f} MB{worker:>11}{ray:>10}")
    ctx.log("ratio/actor = wall MB/s / (actors x raw 1-thread MB/s); CPU ratio = MB per CPU-second (driver + "
            "actors) / raw 1-thread MB per CPU-second: the overhead measure that survives a loaded machine")
    ctx.log(f"peak RSS, {ctx['small_mb']} MB vs {ctx['mb']} MB corpus (goal: within 20 %):")
    rss = {}
    for actors in ctx["actors"]:
        s, b = small_rows[actors], rows[prepare_name(actors)]
        rss[prepare_name(actors)] = {
            "driver_small_mb": s["driver_rss_mb"], "driver_big_mb": b["driver_rss_mb"],
            "driver_growth": b["driver_rss_mb"] / s["driver_rss_mb"] - 1,
            "worker_small_mb": s["worker_rss_mb"], "worker_big_mb": b["worker_rss_mb"],
            "worker_growth": b["worker_rss_mb"] / s["worker_rss_mb"] - 1 if s["worker_rss_mb"] else None}
        g = rss[prepare_name(actors)]
        ctx.log(f"  {actors} actor{'s' if actors > 1 else ' '}: driver {s['driver_rss_mb']:.0f} -> "
                f"{b['driver_rss_mb']:.0f} MB ({g['driver_growth'] * 100:+.0f} %), worker {s['worker_rss_mb']:.0f} -> "
                f"{b['worker_rss_mb']:.0f} MB ({(g['worker_growth'] or 0) * 100:+.0f} %)")
    return {"cpus": cpus, "corpus": {"big_train_bytes": big["train_bytes"], "big_copies": big["copies"],
                                     "small_train_bytes": small["train_bytes"], "small_copies": small["copies"]},
            "raw_mb_s": raw_mbs, "raw_mb_per_cpu_s": raw_cpu, "rows": rows,
            "small_rows": {prepare_name(a): r for a, r in small_rows.items()}, "rss_small_vs_big": rss}


BENCHMARK = Benchmark(
    name="prepare_throughput",
    summary="prepare MB/s with 1 and 2 Ray actors against raw tiktoken gpt2 on one thread, and prepare's peak "
            "RSS at 25 vs 100 MB",
    run=run,
    threads=1,
    full={"mb": 100, "small_mb": 25, "actors": [1, 2], "books": None},
    toy={"mb": 2, "small_mb": 1, "actors": [2], "books": 1},
    goal="prepare >= 0.8 of raw tiktoken per actor; driver and worker peak RSS within 20 % from 25 MB to 100 MB",
)
