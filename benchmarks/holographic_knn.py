"""Exact kNN over 1M stored holographic keys on ONE thread: this code and the previous code path, interleaved.

Keys are real: pg19 gpt2 windows observed by the model (faithful context-64 keys, 16 coefficients, and the
suffix flavor's 64-float keys), queries are validation windows. The previous `knn` is loaded from git
(`--old-rev`, default the commit before issue 14's change) into a temporary module, never copied into the
project; both run in this process, alternating, and must return the same neighbours.

    flock /tmp/nightshift-bench.lock .venv/bin/python benchmarks/holographic_knn.py

Goal (issue 14): >= 1,000 queries/s over 1M keys on one thread (faithful keys).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["OMP_NUM_THREADS"] = "1"

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.holographic_throughput import gpt2_vocab_and_stream, rows_of  # noqa: E402
from nightshift.models.holographic import FLAVORS, Config  # noqa: E402
from nightshift.models.holographic.store import knn  # noqa: E402

MILLION = 1_000_000
OLD_REV = "7682f24"  # main before issue 14: tiles of 65,536 keys, scores written to memory


def old_knn(rev: str):
    src = None
    for where in (ROOT, Path.cwd()):  # a checkout, or run from one (e.g. on a snapshot of the tree)
        try:
            src = subprocess.run(["git", "show", f"{rev}:models/holographic/store.py"], cwd=where,
                                 capture_output=True, text=True, check=True).stdout
            break
        except (OSError, subprocess.CalledProcessError):
            continue
    if src is None:
        return None
    path = Path(tempfile.mkdtemp()) / "old_store.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("holographic_old_store", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["holographic_old_store"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.knn


def filled(config: Config, vocab, stream: torch.Tensor, count: int) -> tuple[torch.Tensor, object]:
    model = config.build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, (1 << 17) // (model.train_seq_len + 1))
    for s in range(0, rows.shape[0], batch):
        model.observe(rows[s : s + batch])
        if model.memory.store.size >= count:
            break
    return model.memory.store.view("key")[:count].contiguous(), model


def queries_of(model, val: torch.Tensor, count: int) -> torch.Tensor:
    n = model.config.context_size
    ctx = rows_of(val, 4 * n)[:count]
    keys, _, _ = model.layout.features(model.embeddings, ctx)
    return keys[:, -1].contiguous()  # (Q, D): windows with their full context


def timed(fn, q: torch.Tensor, bank: torch.Tensor, k: int) -> tuple[float, float, tuple]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(q, bank, k)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--keys", type=int, default=MILLION, help="stored keys")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread, load average at start {os.getloadavg()}", flush=True)
    vocab, stream, val = gpt2_vocab_and_stream(args.keys + args.keys // 4 + 100_000)
    previous = old_knn(args.old_rev)
    for name, cfg in (("faithful context 64 (16 floats)", Config(context_size=64, max_attractors=MILLION)),
                      ("suffix (64 floats)", FLAVORS["suffix"].model)):
        bank, model = filled(cfg, vocab, stream, args.keys)
        q = queries_of(model, val, args.queries)
        k = model.config.knn_k
        contenders = {"this code": knn} | ({f"previous ({args.old_rev})": previous} if previous else {})
        for fn in contenders.values():
            fn(q[:128], bank, k)  # warm-up
        times: dict[str, list[tuple[float, float]]] = {c: [] for c in contenders}
        results = {}
        for _ in range(args.repeats):  # interleaved: the same load for both
            for label, fn in contenders.items():
                wall, cpu, results[label] = timed(fn, q, bank, k)
                times[label].append((wall, cpu))
        if previous:
            (v0, i0), (v1, i1) = results["this code"], results[f"previous ({args.old_rev})"]
            assert torch.allclose(v0, v1, atol=1e-5), "values differ"
            same = float((i0.sort(1).values == i1.sort(1).values).all(1).float().mean())
            print(f"  same neighbour sets for {same:.2%} of queries (differences only at float-rounding ties)")
        print(f"{name}: {bank.shape[0]:,} stored keys, {q.shape[0]} queries, k = {k}")
        rates = {}
        for label, ts in times.items():
            wall = statistics.median(t[0] for t in ts)
            cpu = statistics.median(t[1] for t in ts)
            rates[label] = q.shape[0] / wall
            print(f"  {label:22s} {q.shape[0] / wall:8,.0f} queries/s  ({q.shape[0] / cpu:8,.0f} per CPU-second)")
        if previous:
            print(f"  ratio {rates['this code'] / rates[f'previous ({args.old_rev})']:.2f}x")
        del bank, model
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
