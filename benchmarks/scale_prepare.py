"""prepare at 2 GB on 2 Ray actors, local disk and S3 (moto); kill -9 half-way and resume; then the reader.

Corpus: the pg19 sample's train split repeated (distinct doc ids per copy) to 200 MB and to 2 GB
(+ the real validation split), in /work/scratch/scale: repeated text, so throughput and memory only.
Every measurement is a fresh subprocess (its own peak RSS). Side by side in this one run:

  raw       tiktoken gpt2 `encode_ordinary_batch` on one thread over the 200 MB corpus (one actor's budget)
  prepare   2 actors: 200 MB local, 2 GB local, 2 GB into a moto S3 server; 2 GB local killed (SIGKILL, driver
            and its Ray processes) when half the shards are in the ledger, then resumed
  reader    TrainReader tokens/s over the 2 GB dataset on local disk and on S3 (seq 512 x batch 16, the
            holographic:base shape), shard cache size and RSS while it streams; next to it, on the same
            batches, what the memory families consume (holographic:base observe, macro_unit:base observe)

    flock /tmp/nightshift-bench.lock .venv/bin/python benchmarks/scale_prepare.py [--gb 2] [--small-mb 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SCRATCH = Path(os.environ.get("NIGHTSHIFT_SCRATCH", "/work/scratch/scale"))
OUT = ROOT / "docs" / "scale" / "prepare.json"
VENV_BIN = Path(sys.executable).parent


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----------------------------------------------------------------------------- children
def child_prepare(corpus: str, store: str) -> dict:
    bench = _sibling("prepare_throughput")
    out = bench.child_prepare(corpus, 2, store)
    from nightshift.pipelines.reader import list_datasets
    from nightshift.pipelines.store import Store

    st = Store.open(store)
    ds = list_datasets(st)[0]
    manifest = st.read_json("datasets", ds["id"], "manifest.json")
    out["manifest_bytes"] = len(st.read_bytes("datasets", ds["id"], "manifest.json"))
    out["dataset_id"] = ds["id"]
    out["shards_total"] = sum(len(s["shards"]) for s in manifest["splits"].values())
    return out


def child_reader(store: str, dataset_id: str, seconds: float, families: bool) -> dict:
    import numpy as np
    import torch

    from nightshift.pipelines import reader as reader_mod
    from nightshift.pipelines.reader import open_dataset
    from nightshift.pipelines.store import Store

    torch.set_num_threads(1)
    ds = open_dataset(Store.open(store), dataset_id)
    reader = ds.train_reader(512, 16, seed=0)
    out: dict = {"seq_len": 512, "batch": 16, "shard_cache_limit": reader_mod.SHARD_CACHE}
    t0, c0, tokens, max_cache, max_rss = time.perf_counter(), time.process_time(), 0, 0, 0.0
    while time.perf_counter() - t0 < seconds:
        batch = next(reader)
        tokens += batch.size
        max_cache = max(max_cache, len(reader._cache))
        max_rss = max(max_rss, _vm_rss_mb())
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


def _vm_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ----------------------------------------------------------------------------- driver side
def run_child(*args: str, env: dict | None = None, timeout: float = 7200) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def kill_halfway_then_resume(corpus: str, store: Path, expected_shards: int) -> dict:
    """Start a 2-actor prepare, SIGKILL it and its Ray processes at half the ledger, then resume it."""
    import psutil

    shutil.rmtree(store, ignore_errors=True)
    proc = subprocess.Popen([sys.executable, __file__, "--child", "prepare", corpus, str(store)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
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
    resumed = run_child("prepare", corpus, str(store))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--small-mb", type=float, default=200)
    parser.add_argument("--reader-seconds", type=float, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the corpora and stores in the scratch folder")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "prepare":
            result = child_prepare(rest[0], rest[1])
        elif kind == "raw":
            result = _sibling("prepare_throughput").child_raw(rest[0], 1)
        else:
            result = child_reader(rest[0], rest[1], float(rest[2]), rest[3] == "1")
        print(json.dumps(result))
        return

    bench = _sibling("prepare_throughput")
    SCRATCH.mkdir(parents=True, exist_ok=True)
    print("disk:", shutil.disk_usage(SCRATCH).free / 1e9, "GB free;", "load", os.getloadavg())
    small = bench.build_corpus(SCRATCH / "corpus-small", args.small_mb)
    big = bench.build_corpus(SCRATCH / "corpus-big", args.gb * 1000)
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_start": os.getloadavg(),
                 "corpus": {"small_bytes": small["train_bytes"], "big_bytes": big["train_bytes"]}}
    res["raw_small"] = run_child("raw", small["path"])
    res["prepare_small_local"] = run_child("prepare", small["path"], str(SCRATCH / "store-small"))
    res["raw_small_after"] = run_child("raw", small["path"])  # bracket the prepares: load drifts
    res["prepare_big_local"] = run_child("prepare", big["path"], str(SCRATCH / "store-big"))
    print(json.dumps(res, indent=1))
    moto, env = start_moto()
    try:
        res["prepare_big_s3"] = run_child("prepare", big["path"], "s3://scale/team", env=env)
        res["raw_big_after"] = run_child("raw", small["path"])
        ds_id = res["prepare_big_local"]["dataset_id"]
        res["reader_local"] = run_child("reader", str(SCRATCH / "store-big"), ds_id, str(args.reader_seconds), "1")
        res["reader_s3"] = run_child("reader", "s3://scale/team", ds_id, str(args.reader_seconds), "0", env=env)
    finally:
        moto.terminate()
        moto.wait(timeout=30)
    shards = res["prepare_big_local"]["shards_total"]
    res["kill_resume"] = kill_halfway_then_resume(big["path"], SCRATCH / "store-kill", shards)
    res["load_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))
    report(res)
    if not args.keep:
        for name in ("corpus-small", "corpus-big", "store-small", "store-big", "store-kill"):
            shutil.rmtree(SCRATCH / name, ignore_errors=True)


def report(res: dict) -> None:
    raw = [res[k] for k in ("raw_small", "raw_small_after", "raw_big_after")]
    raw_mbs = [r["bytes"] / r["seconds"] / 1e6 for r in raw]
    raw_cpu = [r["bytes"] / r["cpu_seconds"] / 1e6 for r in raw]
    print(f"load {res['load_start'][0]:.1f} -> {res['load_end'][0]:.1f}")
    print(f"raw tiktoken 1 thread: {', '.join(f'{x:.2f}' for x in raw_mbs)} MB/s wall; "
          f"{', '.join(f'{x:.2f}' for x in raw_cpu)} MB/CPU-s")
    for key in ("prepare_small_local", "prepare_big_local", "prepare_big_s3"):
        r = res[key]
        mbs, per_cpu = r["bytes"] / r["seconds"] / 1e6, r["bytes"] / r["cpu_seconds"] / 1e6
        print(f"{key}: {r['bytes'] / 1e9:.2f} GB in {r['seconds']:.0f} s = {mbs:.2f} MB/s; per actor / raw wall "
              f"{mbs / 2 / max(raw_mbs):.2f}-{mbs / 2 / min(raw_mbs):.2f}; CPU ratio "
              f"{per_cpu / max(raw_cpu):.2f}-{per_cpu / min(raw_cpu):.2f}; shards {r['shards']}, "
              f"manifest {r['manifest_bytes']:,} B; driver RSS {r['driver_rss_mb']:.0f} MB, "
              f"actor RSS {r['worker_rss_mb']:.0f} MB")
    s, b = res["prepare_small_local"], res["prepare_big_local"]
    print(f"RSS 200 MB -> 2 GB: driver {s['driver_rss_mb']:.0f} -> {b['driver_rss_mb']:.0f} MB "
          f"({(b['driver_rss_mb'] / s['driver_rss_mb'] - 1) * 100:+.1f} %), actors {s['worker_rss_mb']:.0f} -> "
          f"{b['worker_rss_mb']:.0f} MB ({(b['worker_rss_mb'] / s['worker_rss_mb'] - 1) * 100:+.1f} %)")
    k = res["kill_resume"]
    print(f"kill -9 after {k['killed_after_s']:.0f} s with {k['ledger_at_kill']} of {k['expected_shards']} shards "
          f"in the ledger; resume wrote {k['resume']['shards']} shards in {k['resume']['seconds']:.0f} s "
          f"(leftover processes: {k['leftover_processes']})")
    for key in ("reader_local", "reader_s3"):
        r = res[key]
        print(f"{key}: {r['tokens_per_s']:,.0f} tokens/s ({r['tokens_per_cpu_s']:,.0f} per CPU-s), "
              f"max {r['max_cached_shards']} cached shards (limit {r['shard_cache_limit']}), RSS {r['max_rss_mb']:.0f} MB")
    for name, f in res["reader_local"].get("families", {}).items():
        print(f"  {name} consumes {f['tokens_per_s']:,.0f} tokens/s ({f['tokens_per_cpu_s']:,.0f} per CPU-s): "
              f"reader local / family = {res['reader_local']['tokens_per_s'] / f['tokens_per_s']:.1f}x, "
              f"S3 / family = {res['reader_s3']['tokens_per_s'] / f['tokens_per_s']:.1f}x")


if __name__ == "__main__":
    main()
