"""Exact kNN over 1M stored holographic keys on ONE thread: this code and the previous code path, interleaved.

Keys are real: pg19 gpt2 windows observed by the model (faithful context-64 keys, 16 coefficients, and the
suffix flavor's 64-float keys), queries are validation windows. The previous `knn` is loaded from git
(`old_rev`, default the commit before issue 14's change) into a temporary module, never copied into the
project; both run in this process, alternating, and must return the same neighbours. Where git cannot
find `old_rev` (a shallow clone, a snapshot without history) only this code is timed, and the run says so.

    python -m benchmarks run holographic_knn [--set queries=2048 --set old_rev=7682f24]

Goal (issue 14): >= 1,000 queries/s over 1M keys on one thread (faithful keys).
"""

from __future__ import annotations

import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import ROOT, Benchmark, Context
from benchmarks.holographic_throughput import gpt2_vocab_and_stream, rows_of
from nightshift.models.holographic import FLAVORS, Config
from nightshift.models.holographic.store import knn

MILLION = 1_000_000
OLD_REV = "7682f24"  # main before issue 14: tiles of 65,536 keys, scores written to memory


def old_knn(rev: str, work: Path | None = None):
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
    path = Path(tempfile.mkdtemp(dir=work)) / "old_store.py"
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


def run(ctx: Context) -> dict:
    keys, rev = ctx["keys"], ctx["old_rev"]
    ctx.log(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    vocab, stream, val = gpt2_vocab_and_stream(keys + keys // 4 + 100_000)
    previous = old_knn(rev, ctx.work)
    old_label = f"previous ({rev})"
    if previous is None:
        ctx.note(f"original not available: git cannot show {rev}:models/holographic/store.py here; "
                 "the comparison was skipped (this code timed alone)")
    results: dict[str, object] = {"threads": torch.get_num_threads(), "old_rev": rev if previous else None}
    for name, cfg in (("faithful context 64 (16 floats)", Config(context_size=64, max_attractors=MILLION)),
                      ("suffix (64 floats)", FLAVORS["suffix"].model)):
        bank, model = filled(cfg, vocab, stream, keys)
        q = queries_of(model, val, ctx["queries"])
        k = model.config.knn_k
        contenders = {"this code": knn} | ({old_label: previous} if previous else {})
        for fn in contenders.values():
            fn(q[:128], bank, k)  # warm-up
        times: dict[str, list[tuple[float, float]]] = {c: [] for c in contenders}
        outputs = {}
        for _ in range(ctx["repeats"]):  # interleaved: the same load for both
            for label, fn in contenders.items():
                wall, cpu, outputs[label] = timed(fn, q, bank, k)
                times[label].append((wall, cpu))
        entry: dict[str, object] = {"stored_keys": bank.shape[0], "queries": q.shape[0], "k": k,
                                    "key_floats": bank.shape[1]}
        if previous:
            (v0, i0), (v1, i1) = outputs["this code"], outputs[old_label]
            assert torch.allclose(v0, v1, atol=1e-5), "values differ"
            same = float((i0.sort(1).values == i1.sort(1).values).all(1).float().mean())
            entry["same_neighbour_sets"] = same
            ctx.log(f"  same neighbour sets for {same:.2%} of queries (differences only at float-rounding ties)")
        ctx.log(f"{name}: {bank.shape[0]:,} stored keys, {q.shape[0]} queries, k = {k}")
        rates = {}
        for label, ts in times.items():
            wall = statistics.median(t[0] for t in ts)
            cpu = statistics.median(t[1] for t in ts)
            rates[label] = {"queries_per_s": q.shape[0] / wall, "queries_per_cpu_s": q.shape[0] / cpu}
            ctx.log(f"  {label:22s} {q.shape[0] / wall:8,.0f} queries/s  ({q.shape[0] / cpu:8,.0f} per CPU-second)")
        entry["this_code"] = rates["this code"]
        if previous:
            entry["previous"] = rates[old_label]
            entry["ratio"] = rates["this code"]["queries_per_s"] / rates[old_label]["queries_per_s"]
            ctx.log(f"  ratio {entry['ratio']:.2f}x")
        results["faithful" if name.startswith("faithful") else "suffix"] = entry
        del bank, model
    return results


BENCHMARK = Benchmark(
    name="holographic_knn",
    summary="exact kNN queries/s over 1M stored holographic keys on one thread, this code vs the previous "
            "revision's (git), interleaved",
    run=run,
    threads=1,
    full={"queries": 2048, "repeats": 3, "old_rev": OLD_REV, "keys": MILLION},
    toy={"queries": 256, "repeats": 1, "old_rev": OLD_REV, "keys": 20_000},
    goal=">= 1,000 queries/s over 1M keys on one thread (faithful keys)",
)
