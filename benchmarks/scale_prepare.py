"""prepare at 2 GB on 2 Ray actors, local disk and S3 (moto); kill -9 half-way and resume; then the reader.

Corpus: the pg19 sample's train split repeated (distinct doc ids per copy) to 200 MB and to 2 GB
(+ the real validation split), in the benchmark's scratch folder: repeated text, so throughput and memory
only. Every measurement is a fresh subprocess (its own peak RSS). Side by side in this one run:

  raw       tiktoken gpt2 `encode_ordinary_batch` on one thread over the 200 MB corpus (one actor's budget)
  prepare   2 actors: 200 MB local, 2 GB local, 2 GB into a moto S3 server; 2 GB local killed (SIGKILL, driver
            and its Ray processes) when half the shards are in the ledger, then resumed
  reader    TrainReader tokens/s over the 2 GB dataset on local disk and on S3 (seq 512 x batch 16, the
            holographic:base shape), shard cache size and RSS while it streams; next to it, on the same
            batches, what the memory families consume (holographic:base observe, macro_unit:base observe)

    python -m benchmarks run scale_prepare [--set gb=2 --set small_mb=200]
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.harness import ROOT, Benchmark, Context, status_bytes
from benchmarks.prepare_throughput import build_corpus
from benchmarks.prepare_throughput import child_prepare as prepare_child
from benchmarks.prepare_throughput import child_raw as raw_child

VENV_BIN = Path(sys.executable).parent


# ----------------------------------------------------------------------------- children
def child_prepare(corpus: str, store: str) -> dict:
    out = prepare_child(corpus, 2, store)
    from nightshift.pipelines.reader import list_datasets
    from nightshift.pipelines.store import Store

    st = Store.open(store)
    ds = list_datasets(st)[0]
    manifest = st.read_json("datasets", ds["id"], "manifest.json")
    out["manifest_bytes"] = len(st.read_bytes("datasets", ds["id"], "manifest.json"))
    out["dataset_id"] = ds["id"]
    out["shards_total"] = sum(len(s["shards"]) for s in manifest["splits"].values())
    return out


def child_raw(corpus: str) -> dict:
    return raw_child(corpus, 1)


def child_reader(store: str, dataset_id: str, seconds: float, families: bool) -> dict:
    import numpy as np

    from nightshift.pipelines import reader as reader_mod
    from nightshift.pipelines.reader import open_dataset
    from nightshift.pipelines.store import Store

    ds = open_dataset(Store.open(store), dataset_id)
    reader = ds.train_reader(512, 16, seed=0)
    out: dict = {"seq_len": 512, "batch": 16, "shard_cache_limit": reader_mod.SHARD_CACHE}
    t0, c0, tokens, max_cache, max_rss = time.perf_counter(), time.process_time(), 0, 0, 0.0
    while time.perf_counter() - t0 < seconds:
        batch = next(reader)
        tokens += batch.size
        max_cache = max(max_cache, len(reader._cache))
        max_rss = max(max_rss, status_bytes("VmRSS") / 2**20)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out |= {"tokens": tokens, "wall_s": wall, "cpu_s": cpu, "tokens_per_s": tokens / wall,
            "tokens_per_cpu_s": tokens / cpu, "max_cached_shards": max_cache, "max_rss_mb": max_rss,
            "shards_touched": int(np.searchsorted(reader._cum, reader.batch * 16, side="right"))}
    if families:
        out["families"] = family_rates(reader, seconds)
    return out


def family_rates(reader, seconds: float) -> dict:
    """Tokens/s each memory family consumes from the same reader's batches (the fastest consumers)."""
    import torch

    from nightshift.models.registry import resolve
    from nightshift.orchestrator.runs.vocab import vocab_of

    vocab = vocab_of(reader.dataset.tokenizer())
    rates = {}
    for name, seq, batch in (("holographic:base", 512, 16), ("macro_unit:base", 2048, 32)):
        model = resolve(name).config.build(vocab)
        r = reader.dataset.train_reader(seq, batch, seed=1)
        batches = [torch.from_numpy(next(r)) for _ in range(4)]
        model.observe(batches[0])  # warm-up
        t0, c0, tokens, i = time.perf_counter(), time.process_time(), 0, 0
        while time.perf_counter() - t0 < seconds:
            b = batches[i % len(batches)] if i < 4 else torch.from_numpy(next(r))
            model.observe(b)
            tokens += b.numel()
            i += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rates[name] = {"tokens_per_s": tokens / wall, "tokens_per_cpu_s": tokens / cpu}
    return rates


# ----------------------------------------------------------------------------- driver side
@contextlib.contextmanager
def environ(env: dict[str, str] | None) -> Iterator[None]:
    """`env` in os.environ for the children started inside the block (the S3 endpoint and keys)."""
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kill_halfway_then_resume(ctx: Context, corpus: str, store: Path, expected_shards: int) -> dict:
    """Start a 2-actor prepare, SIGKILL it and its Ray processes at half the ledger, then resume it."""
    import psutil

    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "benchmarks", "child", ctx.benchmark.name, "child_prepare",
           json.dumps({"corpus": corpus, "store": str(store)})]  # what ctx.child runs, started by hand to kill it
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    t0 = time.perf_counter()
    done = 0
    while proc.poll() is None:
        time.sleep(0.5)
        ledgers = list(store.glob("datasets/*/ledger/*.json"))
        done = len(ledgers)
        if done >= expected_shards // 2:
            break
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    killed_at = time.perf_counter() - t0
    time.sleep(2)
    leftovers = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    before = len(list(store.glob("datasets/*/ledger/*.json")))
    resumed = ctx.child("child_prepare", corpus=corpus, store=str(store))
    return {"killed_after_s": killed_at, "ledger_at_kill": before, "expected_shards": expected_shards,
            "resume": resumed, "leftover_processes": leftovers}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, dict]:
    import urllib.request

    import boto3

    port = free_port()
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.5)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": endpoint}
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="scale")
    return proc, env


def run(ctx: Context) -> dict:
    scratch = ctx.work
    books, seconds = ctx["books"], ctx["reader_seconds"]
    ctx.log(f"disk: {shutil.disk_usage(scratch).free / 1e9:.1f} GB free; load {os.getloadavg()}")
    small = build_corpus(scratch / "corpus-small", ctx["small_mb"], books)
    big = build_corpus(scratch / "corpus-big", ctx["gb"] * 1000, books)
    res: dict = {"load_start": os.getloadavg(),
                 "corpus": {"small_bytes": small["train_bytes"], "big_bytes": big["train_bytes"]}}
    try:
        res["raw_small"] = ctx.child("child_raw", corpus=small["path"])
        res["prepare_small_local"] = ctx.child("child_prepare", corpus=small["path"],
                                               store=str(scratch / "store-small"))
        res["raw_small_after"] = ctx.child("child_raw", corpus=small["path"])  # bracket the prepares: load drifts
        res["prepare_big_local"] = ctx.child("child_prepare", corpus=big["path"], store=str(scratch / "store-big"))
        ctx.log(json.dumps(res))
        moto, env = start_moto()
        try:
            with environ(env):
                res["prepare_big_s3"] = ctx.child("child_prepare", corpus=big["path"], store="s3://scale/team")
            res["raw_big_after"] = ctx.child("child_raw", corpus=small["path"])
            ds_id = res["prepare_big_local"]["dataset_id"]
            res["reader_local"] = ctx.child("child_reader", store=str(scratch / "store-big"), dataset_id=ds_id,
                                            seconds=seconds, families=True)
            with environ(env):
                res["reader_s3"] = ctx.child("child_reader", store="s3://scale/team", dataset_id=ds_id,
                                             seconds=seconds, families=False)
        finally:
            moto.terminate()
            moto.wait(timeout=30)
        shards = res["prepare_big_local"]["shards_total"]
        res["kill_resume"] = kill_halfway_then_resume(ctx, big["path"], scratch / "store-kill", shards)
        res["load_end"] = os.getloadavg()
        res["derived"] = report(ctx, res)
    finally:
        if not ctx["keep"]:
            for name in ("corpus-small", "corpus-big", "store-small", "store-big", "store-kill"):
                shutil.rmtree(scratch / name, ignore_errors=True)
    return res


def report(ctx: Context, res: dict) -> dict:
    """The run's headline ratios (logged, and kept with the figures)."""
    raw = [res[k] for k in ("raw_small", "raw_small_after", "raw_big_after")]
    raw_mbs = [r["bytes"] / r["seconds"] / 1e6 for r in raw]
    raw_cpu = [r["bytes"] / r["cpu_seconds"] / 1e6 for r in raw]
    out: dict = {"raw_mb_s": raw_mbs, "raw_mb_per_cpu_s": raw_cpu}
    ctx.log(f"load {res['load_start'][0]:.1f} -> {res['load_end'][0]:.1f}")
    ctx.log(f"raw tiktoken 1 thread: {', '.join(f'{x:.2f}' for x in raw_mbs)} MB/s wall; "
            f"{', '.join(f'{x:.2f}' for x in raw_cpu)} MB/CPU-s")
    for key in ("prepare_small_local", "prepare_big_local", "prepare_big_s3"):
        r = res[key]
        mbs, per_cpu = r["bytes"] / r["seconds"] / 1e6, r["bytes"] / r["cpu_seconds"] / 1e6
        out[key] = {"mb_s": mbs, "mb_per_cpu_s": per_cpu,
                    "per_actor_over_raw_wall": [mbs / 2 / max(raw_mbs), mbs / 2 / min(raw_mbs)],
                    "cpu_ratio": [per_cpu / max(raw_cpu), per_cpu / min(raw_cpu)]}
        ctx.log(f"{key}: {r['bytes'] / 1e9:.2f} GB in {r['seconds']:.0f} s = {mbs:.2f} MB/s; per actor / raw wall "
                f"{mbs / 2 / max(raw_mbs):.2f}-{mbs / 2 / min(raw_mbs):.2f}; CPU ratio "
                f"{per_cpu / max(raw_cpu):.2f}-{per_cpu / min(raw_cpu):.2f}; shards {r['shards']}, "
                f"manifest {r['manifest_bytes']:,} B; driver RSS {r['driver_rss_mb']:.0f} MB, "
                f"actor RSS {r['worker_rss_mb']:.0f} MB")
    s, b = res["prepare_small_local"], res["prepare_big_local"]
    out["rss_growth"] = {"driver": b["driver_rss_mb"] / s["driver_rss_mb"] - 1,
                         "actors": b["worker_rss_mb"] / s["worker_rss_mb"] - 1}
    ctx.log(f"RSS {s['bytes'] / 1e6:.0f} MB -> {b['bytes'] / 1e9:.2f} GB: driver {s['driver_rss_mb']:.0f} -> "
            f"{b['driver_rss_mb']:.0f} MB ({out['rss_growth']['driver'] * 100:+.1f} %), actors "
            f"{s['worker_rss_mb']:.0f} -> {b['worker_rss_mb']:.0f} MB ({out['rss_growth']['actors'] * 100:+.1f} %)")
    k = res["kill_resume"]
    ctx.log(f"kill -9 after {k['killed_after_s']:.0f} s with {k['ledger_at_kill']} of {k['expected_shards']} shards "
            f"in the ledger; resume wrote {k['resume']['shards']} shards in {k['resume']['seconds']:.0f} s "
            f"(leftover processes: {k['leftover_processes']})")
    for key in ("reader_local", "reader_s3"):
        r = res[key]
        ctx.log(f"{key}: {r['tokens_per_s']:,.0f} tokens/s ({r['tokens_per_cpu_s']:,.0f} per CPU-s), "
                f"max {r['max_cached_shards']} cached shards (limit {r['shard_cache_limit']}), "
                f"RSS {r['max_rss_mb']:.0f} MB")
    out["reader_over_family"] = {}
    for name, f in res["reader_local"].get("families", {}).items():
        local, s3 = res["reader_local"]["tokens_per_s"] / f["tokens_per_s"], res["reader_s3"]["tokens_per_s"] / f[
            "tokens_per_s"]
        out["reader_over_family"][name] = {"local": local, "s3": s3}
        ctx.log(f"  {name} consumes {f['tokens_per_s']:,.0f} tokens/s ({f['tokens_per_cpu_s']:,.0f} per CPU-s): "
                f"reader local / family = {local:.1f}x, S3 / family = {s3:.1f}x")
    return out


BENCHMARK = Benchmark(
    name="scale_prepare",
    summary="prepare at 2 GB on 2 Ray actors to local disk and moto S3, kill -9 half-way and resume, then reader "
            "tokens/s against what the memory families consume",
    run=run,
    threads=1,
    full={"gb": 2.0, "small_mb": 200, "reader_seconds": 20, "keep": False, "books": None},
    toy={"gb": 0.006, "small_mb": 2, "reader_seconds": 0.5, "keep": False, "books": 1},
    goal="reader >= 10x the fastest family's consumption; driver and actor RSS flat from 200 MB to 2 GB",
)
