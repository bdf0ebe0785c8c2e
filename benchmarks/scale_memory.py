"""Holographic memory at 1 M and 10 M episodes: observe and query rates, RSS, and checkpoints before/after.

One fresh process per size (so peak RSS is its own). In it, side by side on the
same model state, interleaved:

  original  the checkpoint code before incremental chunks (`git show REV:orchestrator/checkpointing/trail.py`,
            written to a scratch folder outside the project and imported from there)
  chunked   this checkout's CheckpointTrail (orchestrator/checkpointing/chunks.py)

Phases: fill the store to N - 2 delta episodes (the store still has room: it appends) and save
(both write everything); observe delta more and save again (append: the chunked save writes only the
new tail); observe 2 delta more so the reservoir is full and replaces rows at random places, and save
(the chunked save rewrites nearly every chunk: reported, not hidden); restore each checkpoint.
delta = N / 100. Each save is timed with `model.state_dict()` (which both pay) apart.

Text: the pg19 sample (gpt2) repeated as needed: a throughput and memory measurement only.

    flock /tmp/nightshift-bench.lock .venv/bin/python benchmarks/scale_memory.py [--sizes 1000000,10000000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))
SCRATCH = Path(os.environ.get("NIGHTSHIFT_SCRATCH", "/work/scratch/scale"))
ORIGINAL_REV = "7682f24"  # main before incremental checkpoints
OUT = ROOT / "docs" / "scale" / "memory.json"


def status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Highest VmRSS seen while the block runs (sampled every 5 ms), minus RSS at entry."""

    def __enter__(self) -> "PeakRSS":
        self.base = self.peak = status_bytes("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, status_bytes("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
        self._stop.set()
        self._thread.join()
        self.extra = max(0, self.peak - self.base)


def original_trail_class(rev: str):
    """CheckpointTrail as it was at `rev`, from a file in the scratch folder (never copied into the project)."""
    folder = SCRATCH / "original"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint_{rev}.py"
    if not path.exists():
        text = subprocess.run(["git", "show", f"{rev}:orchestrator/checkpointing/trail.py"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout
        path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"original_checkpoint_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.CheckpointTrail


def token_stream() -> tuple[object, torch.Tensor]:
    import pyarrow.parquet as pq
    import tiktoken

    from nightshift.models.protocol import Vocab

    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token)
    texts = pq.read_table(SHARED / "pg19" / "train.parquet", columns=["text"]).column("text").to_pylist()
    ids = [t + [enc.eot_token] for t in enc.encode_ordinary_batch(texts)]
    return vocab, torch.tensor([i for doc in ids for i in doc])


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(n: int, threads: int, rev: str, store_root: Path) -> dict:
    from nightshift.models.holographic import Config
    from nightshift.models.holographic.store import knn
    from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
    from nightshift.pipelines.store import Store

    torch.set_num_threads(threads)
    Original = original_trail_class(rev)
    vocab, stream = token_stream()
    rss_before_model = status_bytes("VmRSS")
    model = Config(context_size=64, max_attractors=n).build(vocab)
    width, batch = model.train_seq_len + 1, 16
    windows = (stream.numel() - 1) // width
    delta = n // 100
    out: dict = {"episodes_target": n, "delta": delta, "threads": threads, "load_before": os.getloadavg()}
    cursor = 0

    def observe_until(target: int) -> tuple[float, float, int]:
        nonlocal cursor
        t0, c0, seen = time.perf_counter(), time.process_time(), 0
        while model.memory.counters["samples"] < target:
            idx = (torch.arange(batch) + cursor) % windows
            rows = torch.stack([stream[i * width:(i + 1) * width] for i in idx.tolist()])
            seen += int(model.observe(rows)["samples"])
            cursor += batch
        return time.perf_counter() - t0, time.process_time() - c0, seen

    with PeakRSS() as fill:
        wall, cpu, seen = observe_until(n - 2 * delta)
    out["observe"] = {"episodes": seen, "wall_s": wall, "cpu_s": cpu, "episodes_per_s": seen / wall,
                      "episodes_per_cpu_s": seen / cpu}
    trails = {"original": Original(Store.open(str(store_root / "original")), ("runs", "r")),
              "chunked": CheckpointTrail(Store.open(str(store_root / "chunked")), ("runs", "r"))}
    saves: dict[str, list] = {"original": [], "chunked": []}
    order = [("original", "chunked"), ("chunked", "original"), ("original", "chunked")]
    phases = [("first", None), ("append", n - delta), ("full", n + delta)]
    for step, ((phase, target), names) in enumerate(zip(phases, order, strict=True), start=1):
        if target is not None:
            observe_until(target)
        with PeakRSS() as sd:
            state = {"model": model.state_dict(), "step": step}
        for name in names:
            before = dir_bytes(store_root / name) if (store_root / name).exists() else 0
            with PeakRSS() as clock:
                info = trails[name].save(state, step, step - 1 or None)
            saves[name].append({"phase": phase, "store_rows": model.memory.store.size, "save_s": clock.wall,
                                "save_cpu_s": clock.cpu, "state_dict_s": sd.wall, "peak_extra_rss": clock.extra,
                                "written_bytes": dir_bytes(store_root / name) - before,
                                "checkpoint_bytes": info["bytes"] + info.get("chunk_bytes", 0),
                                "new_chunk_bytes": info.get("new_chunk_bytes")})
        del state
    for name in ("chunked", "original", "chunked", "original"):
        trail = trails[name]
        with PeakRSS() as clock:
            loaded = trail.load(3)
        restored = Config(context_size=64, max_attractors=n).build(vocab)
        restored.load_state_dict(loaded["model"])
        assert torch.equal(restored.memory.store.view("key"), model.memory.store.view("key"))
        saves[name].append({"phase": "restore", "load_s": clock.wall, "load_cpu_s": clock.cpu,
                            "peak_extra_rss": clock.extra})
        del loaded, restored
    out["checkpoints"] = saves
    # retrieval over the whole store
    from nightshift.models.holographic.context import window_features

    q_rows = torch.stack([stream[i * width + 7:i * width + 7 + 65] for i in range(256)])
    keys, _, _ = window_features(model.embeddings, q_rows[:, :-1], 64)
    q = keys[:, -1]
    bank = model.memory.store.view("key")
    knn(q[:16], bank, model.config.knn_k)
    t0 = time.perf_counter()
    knn(q, bank, model.config.knn_k)
    out["knn"] = {"queries": q.shape[0], "stored_keys": bank.shape[0],
                  "queries_per_s": q.shape[0] / (time.perf_counter() - t0)}
    out["memory"] = {"store_rows": model.memory.store.size, "store_bytes": model.memory.store.nbytes(),
                     "memory_bytes": model.memory_bytes(), "rss_before_model": rss_before_model,
                     "rss_after": status_bytes("VmRSS"), "peak_rss": status_bytes("VmHWM")}
    out["load_after"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rev", default=ORIGINAL_REV, help="git revision of the original checkpoint code")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        root = SCRATCH / f"ckpt-{args.child}"
        shutil.rmtree(root, ignore_errors=True)
        try:
            print(json.dumps(measure(args.child, args.threads, args.rev, root)))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(n), "--threads", str(args.threads),
                               "--rev", args.rev], capture_output=True, text=True, check=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(res)
        report(res)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"date": time.strftime("%Y-%m-%d %H:%M"), "results": results}, indent=2))
    print(f"wrote {OUT}")


def report(r: dict) -> None:
    gb = 1e9
    print(f"\n== {r['memory']['store_rows']:,} episodes (load {r['load_before'][0]:.1f} -> {r['load_after'][0]:.1f})")
    o = r["observe"]
    print(f"observe: {o['episodes_per_s']:,.0f} episodes/s wall, {o['episodes_per_cpu_s']:,.0f} per CPU-s")
    print(f"kNN: {r['knn']['queries_per_s']:,.1f} queries/s over {r['knn']['stored_keys']:,} keys")
    m = r["memory"]
    print(f"store {m['store_bytes'] / gb:.2f} GB, memory {m['memory_bytes'] / gb:.2f} GB, "
          f"RSS {m['rss_after'] / gb:.2f} GB, peak {m['peak_rss'] / gb:.2f} GB")
    c = r["checkpoints"]
    for i, phase in enumerate(("first", "append", "full")):
        a, b = c["original"][i], c["chunked"][i]
        print(f"save {phase:6s}: original {a['save_s']:6.2f} s {a['written_bytes'] / gb:5.2f} GB "
              f"(+{a['peak_extra_rss'] / gb:.2f} GB RSS) | chunked {b['save_s']:6.2f} s "
              f"{b['written_bytes'] / gb:5.2f} GB (+{b['peak_extra_rss'] / gb:.2f} GB RSS) | "
              f"ratio {a['save_s'] / b['save_s']:.1f}x; state_dict {a['state_dict_s']:.2f} s")
    lo = [x["load_s"] for x in c["original"][3:]]
    lc = [x["load_s"] for x in c["chunked"][3:]]
    print(f"restore: original {min(lo):.2f} s, chunked {min(lc):.2f} s (best of 2, warm page cache)")


if __name__ == "__main__":
    main()
