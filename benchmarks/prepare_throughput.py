"""prepare throughput vs raw tiktoken, and prepare's peak memory vs corpus size, in one run.

The pg19 sample (../shared/data/pg19) is repeated into a >= 100 MB parquet
corpus (each copy gets distinct doc ids) and a 25 MB one. Side by side:

  raw      tiktoken gpt2 `encode_ordinary_batch` on the same texts (1 thread = one actor's budget)
  prepare  `nightshift.pipelines.prepare.prepare` end to end (read parquet, split, tokenize, write Arrow shards,
           manifest) with 1 and 2 Ray actors; Ray is started before the clock starts (its start-up
           time is printed separately)

Every measurement runs in a fresh subprocess so peak RSS (ru_maxrss) is its own.
ratio per actor = prepare MB/s / (actors x raw 1-thread MB/s); goal >= 0.8. On a shared, loaded box wall
clocks mostly measure the neighbours, so CPU time (driver + actor processes) is printed beside them.
RSS goal: driver and worker peak RSS within 20 % between the 25 MB and the 100 MB corpus.

    .venv/bin/python benchmarks/prepare_throughput.py [--mb 100] [--small-mb 25]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def build_corpus(folder: Path, target_mb: float) -> dict:
    """pg19 train repeated to >= target_mb (distinct url per copy) + the real validation split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    train = pq.read_table(SHARED / "pg19" / "train.parquet")
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
            "driver_rss_mb": _rss_mb()}


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
            "shards": made.written_shards, "driver_rss_mb": _rss_mb(), "worker_rss_mb": made.worker_peak_rss_mb}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--small-mb", type=float, default=25)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        result = child_raw(rest[0], int(rest[1])) if kind == "raw" else child_prepare(rest[0], int(rest[1]), rest[2])
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="ns-bench-") as tmp:
        big = build_corpus(Path(tmp, "big"), args.mb)
        small = build_corpus(Path(tmp, "small"), args.small_mb)
        print(f"corpus: pg19 train x{big['copies']} = {big['train_bytes'] / 1e6:.1f} MB (+0.6 MB validation); "
              f"small: x{small['copies']} = {small['train_bytes'] / 1e6:.1f} MB; cpus={os.cpu_count()}")
        rows = {"raw 1 thread": run_child("raw", big["path"], "1"),
                f"raw {os.cpu_count()} threads": run_child("raw", big["path"], str(os.cpu_count()))}
        for actors in (1, 2):
            rows[f"prepare {actors} actor{'s' if actors > 1 else ''}"] = run_child(
                "prepare", big["path"], str(actors), str(Path(tmp, f"store-big-{actors}")))
        small_rows = {actors: run_child("prepare", small["path"], str(actors), str(Path(tmp, f"store-small-{actors}")))
                      for actors in (1, 2)}

    raw = rows["raw 1 thread"]
    raw_mbs = raw["bytes"] / raw["seconds"] / 1e6
    raw_cpu = raw["bytes"] / raw["cpu_seconds"] / 1e6
    print(f"\n{'':<18}{'MB/s':>7}{'tok/s':>12}{'wall s':>8}{'ratio/actor':>12}{'CPU s':>7}{'MB/CPU-s':>9}"
          f"{'CPU ratio':>10}{'driver RSS':>11}{'worker RSS':>11}{'ray start':>10}")
    for name, r in rows.items():
        mbs = r["bytes"] / r["seconds"] / 1e6
        per_cpu = r["bytes"] / r["cpu_seconds"] / 1e6
        actors = int(name.split()[1]) if name.startswith("prepare") else 0
        ratio = f"{mbs / (actors * raw_mbs):.2f}" if actors else "-"
        worker = f"{r['worker_rss_mb']:.0f} MB" if r.get("worker_rss_mb") else "-"
        ray = f"{r['ray_start_seconds']:.1f} s" if actors else "-"
        print(f"{name:<18}{mbs:>7.1f}{r['tokens'] / r['seconds']:>12,.0f}{r['seconds']:>8.1f}{ratio:>12}"
              f"{r['cpu_seconds']:>7.1f}{per_cpu:>9.1f}{per_cpu / raw_cpu:>10.2f}"
              f"{r['driver_rss_mb']:>8.0f} MB{worker:>11}{ray:>10}")
    print("ratio/actor = wall MB/s / (actors x raw 1-thread MB/s); CPU ratio = MB per CPU-second (driver + actors)"
          " / raw 1-thread MB per CPU-second: the overhead measure that survives a loaded machine")
    print("\npeak RSS, 25 MB vs 100 MB corpus (goal: within 20 %):")
    for actors in (1, 2):
        s, b = small_rows[actors], rows[f"prepare {actors} actor{'s' if actors > 1 else ''}"]
        print(f"  {actors} actor{'s' if actors > 1 else ' '}: driver {s['driver_rss_mb']:.0f} -> {b['driver_rss_mb']:.0f} MB "
              f"({(b['driver_rss_mb'] / s['driver_rss_mb'] - 1) * 100:+.0f} %), worker {s['worker_rss_mb']:.0f} -> "
              f"{b['worker_rss_mb']:.0f} MB ({(b['worker_rss_mb'] / s['worker_rss_mb'] - 1) * 100:+.0f} %)")


if __name__ == "__main__":
    main()
