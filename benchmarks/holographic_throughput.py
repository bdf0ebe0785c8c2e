"""Holographic family throughput, side by side in one run.

- training samples/s (stored (context -> next token) episodes per second of observe())
  at context 64, 512 and 4096, next to the original holographic_v4 figures on this machine;
- retrieval queries/s with 1M stored keys (exact kNN), and full score() queries/s;
- bytes per stored episode and peak RSS of a fresh process holding 1M episodes.

Text: the pg19 sample in ../shared/data, tokenized with tiktoken gpt2 (offline cache).

    .venv/bin/python benchmarks/holographic_throughput.py [--threads 2] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# On a shared, oversubscribed box OpenMP worker threads that spin-wait make every small torch op
# 100x slower with 2 threads; passive waiting keeps 2 threads useful. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))

from nightshift.models.holographic import Config  # noqa: E402
from nightshift.models.holographic.store import knn  # noqa: E402
from nightshift.models.protocol import Vocab  # noqa: E402

ORIGINAL = {64: 19_180, 512: 3_301, 4096: 411}  # holographic_v4 train_batch, samples/s, this machine
TOKENS_PER_BATCH = 1 << 17
MILLION = 1_000_000


def gpt2_vocab_and_stream(max_tokens: int) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    import pyarrow.parquet as pq
    import tiktoken

    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token,
                  token_bytes=tuple(enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)))

    def stream(split: str, limit: int) -> torch.Tensor:
        ids: list[int] = []
        for text in pq.read_table(SHARED / "pg19" / f"{split}.parquet", columns=["text"]).column("text").to_pylist():
            ids += enc.encode_ordinary(text) + [enc.eot_token]
            if len(ids) >= limit:
                break
        return torch.tensor(ids[:limit])

    return vocab, stream("train", max_tokens), stream("validation", 200_000)


def rows_of(stream: torch.Tensor, length: int) -> torch.Tensor:
    n = stream.numel() // length
    return stream[: n * length].view(n, length)


class Clock:
    """Wall and process-CPU seconds of a block: on a shared box, CPU time shows what the code costs."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def train_rate(vocab: Vocab, stream: torch.Tensor, context: int, seconds: float) -> tuple[dict, object]:
    multiple = 4 if context >= 4096 else 8
    model = Config(context_size=context, max_attractors=MILLION, train_seq_multiple=multiple).build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model.train_seq_len + 1))
    model.observe(rows[:batch])  # warm-up (allocations)
    samples, start, s = 0, time.perf_counter(), batch
    with Clock() as clock:
        while time.perf_counter() - start < seconds:
            if s >= rows.shape[0]:
                s = 0
            samples += int(model.observe(rows[s : s + batch])["samples"])
            s += batch
    return {"per_s": samples / clock.wall, "per_cpu_s": samples / clock.cpu, "samples": samples}, model


def retrieval_rates(model, val: torch.Tensor, queries: int = 2048) -> dict[str, float]:
    from nightshift.models.holographic.context import window_features

    n = model.context_length
    ctx = rows_of(val, n + 1)[:queries]
    keys, _, sigs = window_features(model.embeddings, ctx[:, :-1], n)
    q = keys[:, -1]  # (Q, 16) full-window query keys
    bank = model.memory.store.view("key")
    knn(q[:128], bank, model.config.knn_k)  # warm-up
    with Clock() as c_knn:
        knn(q, bank, model.config.knn_k)
    model.ensure_fitted()  # held-out fit happens once, outside the timing
    probe = ctx[:32]
    with Clock() as c_score:
        model.score(probe)  # every position of 32 windows: n queries per row
    nq = probe.shape[0] * n
    return {"stored_keys": float(bank.shape[0]), "knn_queries": q.shape[0],
            "knn_queries_per_s": q.shape[0] / c_knn.wall, "knn_queries_per_cpu_s": q.shape[0] / c_knn.cpu,
            "score_queries": nq, "score_queries_per_s": nq / c_score.wall, "score_queries_per_cpu_s": nq / c_score.cpu}


def _status_bytes(field: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def memory_child() -> None:
    """Fresh process: fill 1M episodes at context 64, report bytes/episode and RSS."""
    torch.set_num_threads(int(os.environ.get("HB_THREADS", "2")))
    rss_imports = _status_bytes("VmRSS")
    vocab, stream, _ = gpt2_vocab_and_stream(1_250_000)
    rss_before = _status_bytes("VmRSS")
    peak_before = _status_bytes("VmHWM")
    model = Config(context_size=64, max_attractors=MILLION).build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model.train_seq_len + 1))
    for s in range(0, rows.shape[0], batch):
        model.observe(rows[s : s + batch])
        if model.memory.store.size >= MILLION:
            break
    store = model.memory.store
    print(json.dumps({
        "episodes": store.size,
        "bytes_per_episode": store.bytes_per_row(),
        "store_bytes": store.nbytes(),
        "memory_bytes_total": model.memory_bytes(),
        "peak_rss_bytes": max(_status_bytes("VmHWM"), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
        "rss_after_imports_bytes": rss_imports,
        "rss_before_model_bytes": rss_before,
        "peak_rss_before_model_bytes": peak_before,
        "rss_after_fill_bytes": _status_bytes("VmRSS"),
    }))


def quality(vocab: Vocab, stream: torch.Tensor, val: torch.Tensor, flavor: str, val_tokens: int) -> dict:
    """Train on the stream, sleep once, then the metrics users expect (see models/holographic/metrics.py)."""
    from nightshift.models.holographic import FLAVORS, metrics
    from nightshift.models.protocol import SleepContext

    cfg = FLAVORS[flavor].model
    model = cfg.build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model.train_seq_len + 1))
    t0 = time.perf_counter()
    for s in range(0, rows.shape[0], batch):
        model.observe(rows[s : s + batch])
    out: dict[str, object] = {"flavor": flavor, "context_size": cfg.context_size, "train_tokens": stream.numel(),
                              "stored": model.memory.store.size, "observe_s": time.perf_counter() - t0}
    out["sleep"] = model.sleep(SleepContext(step=1))
    seen = rows[~model.heldout_rows(rows)][:64]
    out["seen_top1"] = metrics.top1(model, seen)
    val_rows = rows_of(val, model.train_seq_len + 1)
    out["validation_top1"] = metrics.top1(model, val_rows)
    out["vorticity"] = metrics.vorticity_discriminability(model, val_rows, pairs=1024)
    # validation documents: the shared split, first `val_tokens` tokens of each book
    docs, cur = [], []
    for t in val.tolist():
        if t == vocab.eot_id:
            docs.append(cur[:val_tokens])
            cur = []
        else:
            cur.append(t)
    window, stride = metrics.full_context_windows(model)
    backoff_only = cfg.build(vocab)  # same counts and fitted beta, no episodes: what memory adds
    backoff_only.memory.backoff.load(model.memory.backoff.state())
    backoff_only.memory.params, backoff_only.memory.fitted = model.memory.params, True
    t0 = time.perf_counter()
    out["bpb"] = {
        "untrained": metrics.bits_per_byte(cfg.build(vocab), docs, window=window, stride=stride),
        "backoff_only": metrics.bits_per_byte(backoff_only, docs, window=window, stride=stride),
        "holographic_full_context": metrics.bits_per_byte(model, docs, window=window, stride=stride),
        "holographic_evaluator_windows": metrics.bits_per_byte(model, docs),
        "val_docs": len(docs), "val_tokens": sum(map(len, docs)),
        "val_bytes": sum(len(vocab.token_bytes[t]) for d in docs for t in d),
    }
    out["bpb_seconds"] = time.perf_counter() - t0
    out["fit"] = dict(model.memory.fit_info)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per context size")
    parser.add_argument("--part", choices=("speed", "quality", "all"), default="all")
    parser.add_argument("--quality-tokens", type=int, default=1_000_000, help="pg19 train tokens for quality")
    parser.add_argument("--val-tokens", type=int, default=10_000, help="tokens per validation book for bpb")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child()
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads (OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}), "
          f"cuda available: {torch.cuda.is_available()}"
          " (no GPU is lent to this task: CPU figures only)")
    print(f"load average at start: {os.getloadavg()}")
    vocab, stream, val = gpt2_vocab_and_stream(2_500_000)
    print(f"pg19 gpt2 tokens: train {stream.numel():,}, validation {val.numel():,}")

    results: dict[str, object] = {"threads": args.threads, "load_start": os.getloadavg()}
    if args.part in ("quality", "all"):
        for flavor in ("base", "short"):
            q = quality(vocab, stream[: args.quality_tokens], val, flavor, args.val_tokens)
            results[f"quality_{flavor}"] = q
            b = q["bpb"]
            print(f"[{flavor}, context {q['context_size']}] val bpb ({b['val_tokens']:,} tokens of "
                  f"{b['val_docs']} books): untrained {b['untrained']:.3f}, backoff only {b['backoff_only']:.3f}, "
                  f"holographic {b['holographic_full_context']:.3f} (evaluator windows "
                  f"{b['holographic_evaluator_windows']:.3f})")
            print(f"    seen top-1 {q['seen_top1']}\n    validation top-1 {q['validation_top1']}\n"
                  f"    vorticity {q['vorticity']}\n    sleep {q['sleep']}")
    if args.part == "quality":
        print(json.dumps(results, default=float))
        return
    rates, model64 = {}, None
    for context in (64, 512, 4096):
        rate, model = train_rate(vocab, stream, context, args.seconds)
        rates[context] = rate
        if context == 64:
            model64 = model
        print(f"context {context:5d}: {rate['per_s']:10,.0f} samples/s ({rate['per_cpu_s']:10,.0f} per CPU-second)"
              f"   original {ORIGINAL[context]:7,d}   x{rate['per_s'] / ORIGINAL[context]:7.1f}")
    print(f"4096 vs 64: {rates[4096]['per_s'] / rates[64]['per_s']:.2f} of the context-64 rate (goal >= 0.5)")
    results["train_samples_per_s"] = rates

    # fill the context-64 store to 1M keys if the timed run did not get there
    rows = rows_of(stream, model64.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model64.train_seq_len + 1))
    s = 0
    while model64.memory.store.size < MILLION and s < rows.shape[0]:
        model64.observe(rows[s : s + batch])
        s += batch
    ret = retrieval_rates(model64, val)
    print(f"retrieval with {ret['stored_keys']:,.0f} stored keys: {ret['knn_queries_per_s']:,.0f} kNN queries/s "
          f"({ret['knn_queries_per_cpu_s']:,.0f} per CPU-second; original ~1 query/s with 8,192 stored); "
          f"full score(): {ret['score_queries_per_s']:,.0f} queries/s ({ret['score_queries_per_cpu_s']:,.0f} per "
          "CPU-second)")
    results["retrieval"] = ret

    env = dict(os.environ, HB_THREADS=str(args.threads))
    child = subprocess.run([sys.executable, __file__, "--memory-child"], capture_output=True, text=True, env=env,
                           check=True)
    mem = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"memory: {mem['bytes_per_episode']} bytes per stored episode; {mem['episodes']:,} episodes -> store "
          f"{mem['store_bytes'] / 2**20:,.0f} MiB; process RSS: after imports "
          f"{mem['rss_after_imports_bytes'] / 2**20:,.0f} MiB, with data {mem['rss_before_model_bytes'] / 2**20:,.0f}"
          f" MiB, with 1M episodes {mem['rss_after_fill_bytes'] / 2**20:,.0f} MiB; peak "
          f"{mem['peak_rss_bytes'] / 2**20:,.0f} MiB (peak before the model existed: "
          f"{mem['peak_rss_before_model_bytes'] / 2**20:,.0f} MiB)")
    results["memory"] = mem
    results["load_end"] = os.getloadavg()
    print(f"load average at end: {os.getloadavg()}")
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
